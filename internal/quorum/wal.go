package quorum

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Record types in a WAL file (see doc.go).
const (
	recEntry     byte = 1 // a raftpb.Entry
	recHardState byte = 2 // a raftpb.HardState
	recSnapshot  byte = 3 // a raftpb.SnapshotMetadata: the log continues after it
)

// maxRecord bounds one WAL record, so a corrupt length cannot make replay
// allocate gigabytes. Metadata records are small; a whole snapshot is never
// in the WAL (it has its own file).
const maxRecord = 64 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a WAL or snapshot file that fails its checksums
// somewhere other than a torn tail.
var ErrCorrupt = errors.New("quorum: corrupt metadata log")

// wal appends records to the newest of a sequence of files
// wal-<seq>.log. Each file begins with a snapshot record naming the index
// the file continues from, so files older than the newest snapshot can be
// deleted whole. Owned by the node's raft loop goroutine.
type wal struct {
	dir string
	seq uint64
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

func walName(seq uint64) string { return fmt.Sprintf("wal-%016x.log", seq) }

// listSeq returns the sequence numbers of files named prefix<hex>suffix.
func listSeq(dir, prefix, suffix string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, prefix), suffix), 16, 64)
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// replayed is what the WAL files say, oldest first.
type replayed struct {
	snap    *pb.SnapshotMetadata // the newest snapshot record seen (nil: none)
	hs      *pb.HardState
	entries []*pb.Entry // after snap, with later writes replacing earlier ones
	lastSeq uint64
	files   int
}

// replayWAL reads every WAL file. A torn or corrupt record at the end of
// the newest file is a write that a crash interrupted: it is cut off (the
// file truncated there), since nothing after it was ever acknowledged as
// persisted. Damage anywhere else is ErrCorrupt.
func replayWAL(dir string) (*replayed, error) {
	seqs, err := listSeq(dir, "wal-", ".log")
	if err != nil {
		return nil, err
	}
	r := &replayed{files: len(seqs)}
	for i, seq := range seqs {
		last := i == len(seqs)-1
		if err := r.readFile(filepath.Join(dir, walName(seq)), last); err != nil {
			return nil, err
		}
		r.lastSeq = seq
	}
	return r, nil
}

func (r *replayed) readFile(path string, last bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var off int64
	for {
		typ, payload, n, err := readRecord(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !last {
				return fmt.Errorf("%w: %s at byte %d: %v", ErrCorrupt, filepath.Base(path), off, err)
			}
			// A torn tail: drop it so the next append starts clean.
			if terr := f.Truncate(off); terr != nil {
				return terr
			}
			return f.Sync()
		}
		off += n
		if err := r.apply(typ, payload); err != nil {
			return fmt.Errorf("%w: %s at byte %d: %v", ErrCorrupt, filepath.Base(path), off, err)
		}
	}
}

func (r *replayed) apply(typ byte, payload []byte) error {
	switch typ {
	case recEntry:
		e := &pb.Entry{}
		if err := proto.Unmarshal(payload, e); err != nil {
			return err
		}
		idx := e.GetIndex()
		if r.snap != nil && idx <= r.snap.GetIndex() {
			return nil
		}
		// A rewritten index replaces it and everything after it, as raft
		// requires of stable storage.
		if n := len(r.entries); n > 0 {
			first := r.entries[0].GetIndex()
			switch {
			case idx < first:
				r.entries = r.entries[:0]
			case idx <= r.entries[n-1].GetIndex():
				r.entries = r.entries[:idx-first]
			case idx != r.entries[n-1].GetIndex()+1:
				return fmt.Errorf("entry %d after %d: gap", idx, r.entries[n-1].GetIndex())
			}
		}
		r.entries = append(r.entries, e)
	case recHardState:
		hs := &pb.HardState{}
		if err := proto.Unmarshal(payload, hs); err != nil {
			return err
		}
		r.hs = hs
	case recSnapshot:
		m := &pb.SnapshotMetadata{}
		if err := proto.Unmarshal(payload, m); err != nil {
			return err
		}
		r.snap = m
		// Entries the snapshot covers are gone; later ones stay.
		kept := r.entries[:0]
		for _, e := range r.entries {
			if e.GetIndex() > m.GetIndex() {
				kept = append(kept, e)
			}
		}
		r.entries = kept
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

// readRecord reads one framed record: length, CRC32C, type, payload. n is
// the number of bytes it took.
func readRecord(r *bufio.Reader) (typ byte, payload []byte, n int64, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, 0, io.EOF
		}
		return 0, nil, 0, io.ErrUnexpectedEOF
	}
	size := binary.BigEndian.Uint32(hdr[0:])
	sum := binary.BigEndian.Uint32(hdr[4:])
	if size == 0 || size > maxRecord {
		return 0, nil, 0, fmt.Errorf("record length %d", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, 0, io.ErrUnexpectedEOF
	}
	if crc32.Checksum(body, crcTable) != sum {
		return 0, nil, 0, errors.New("checksum mismatch")
	}
	return body[0], body[1:], int64(8 + size), nil
}

// createWAL starts file seq, beginning with the snapshot record snap and
// then hs and entries (those after snap that must survive the deletion of
// older files). The file is fsynced, and so is the directory.
func createWAL(dir string, seq uint64, snap *pb.SnapshotMetadata, hs *pb.HardState, entries []*pb.Entry) (*wal, error) {
	path := filepath.Join(dir, walName(seq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	w := &wal{dir: dir, seq: seq, f: f, w: bufio.NewWriterSize(f, 64<<10)}
	err = w.add(recSnapshot, snap)
	if err == nil && hs != nil {
		err = w.add(recHardState, hs)
	}
	for _, e := range entries {
		if err == nil {
			err = w.add(recEntry, e)
		}
	}
	if err == nil {
		err = w.sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// openWAL continues appending to an existing file.
func openWAL(dir string, seq uint64) (*wal, error) {
	f, err := os.OpenFile(filepath.Join(dir, walName(seq)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	return &wal{dir: dir, seq: seq, f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// add buffers one record; sync makes it durable.
func (w *wal) add(typ byte, m proto.Message) error {
	var err error
	w.buf = append(w.buf[:0], 0, 0, 0, 0, 0, 0, 0, 0, typ)
	w.buf, err = proto.MarshalOptions{}.MarshalAppend(w.buf, m)
	if err != nil {
		return err
	}
	body := w.buf[8:]
	if len(body) > maxRecord {
		return fmt.Errorf("quorum: record of %d bytes exceeds %d", len(body), maxRecord)
	}
	binary.BigEndian.PutUint32(w.buf[0:], uint32(len(body)))
	binary.BigEndian.PutUint32(w.buf[4:], crc32.Checksum(body, crcTable))
	_, err = w.w.Write(w.buf)
	return err
}

func (w *wal) sync() error {
	if err := w.w.Flush(); err != nil {
		return err
	}
	return w.f.Sync()
}

func (w *wal) close() error {
	ferr := w.w.Flush()
	if err := w.f.Close(); ferr == nil {
		ferr = err
	}
	return ferr
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
