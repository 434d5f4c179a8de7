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

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// diskStorage is raft's Storage: a MemoryStorage that holds what the WAL and
// the newest snapshot file hold. Everything raft reads comes from memory;
// save makes a Ready batch durable before it is added there, as the Ready
// contract requires. Owned by the raft loop goroutine, except that raft
// itself reads the MemoryStorage (which has its own lock).
type diskStorage struct {
	*raft.MemoryStorage
	dir string
	wal *wal
	// keep is how many entries before a snapshot stay in memory and in the
	// new WAL file, so a follower a little behind catches up from the log
	// instead of needing the whole snapshot; keepBytes bounds their size
	// (0: no bound), so a few huge entries are not all kept.
	keep, keepBytes uint64
}

func snapName(index uint64) string { return fmt.Sprintf("snap-%016x.snap", index) }

// openStorage loads the newest valid snapshot and the WAL written after it.
// A fresh directory yields empty storage. It reports whether anything was
// there (so the caller restarts raft instead of bootstrapping it).
func openStorage(dir string, keep, keepBytes uint64) (*diskStorage, bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, err
	}
	s := &diskStorage{MemoryStorage: raft.NewMemoryStorage(), dir: dir, keep: keep, keepBytes: keepBytes}
	snap, err := loadNewestSnapshot(dir)
	if err != nil {
		return nil, false, err
	}
	r, err := replayWAL(dir)
	if err != nil {
		return nil, false, err
	}
	existed := r.files > 0 || snap != nil
	if snap != nil {
		if err := s.ApplySnapshot(snap); err != nil {
			return nil, false, err
		}
	}
	if r.snap.GetIndex() > 0 && (snap == nil || r.snap.GetIndex() > snap.GetMetadata().GetIndex()) {
		// The WAL names a snapshot whose file is gone: the log before it is
		// gone too, so the state cannot be rebuilt.
		return nil, false, fmt.Errorf("%w: WAL continues from snapshot %d, but no such snapshot file", ErrCorrupt, r.snap.GetIndex())
	}
	if r.hs != nil {
		if err := s.SetHardState(r.hs); err != nil {
			return nil, false, err
		}
	}
	first, _ := s.FirstIndex()
	var ents []*pb.Entry
	for _, e := range r.entries {
		if e.GetIndex() >= first {
			ents = append(ents, e)
		}
	}
	if len(ents) > 0 {
		// MemoryStorage panics on a gap; a gap here means the snapshot the
		// WAL continues from was unreadable and an older one was used.
		if last, _ := s.LastIndex(); ents[0].GetIndex() > last+1 {
			return nil, false, fmt.Errorf("%w: log resumes at %d but state ends at %d", ErrCorrupt, ents[0].GetIndex(), last)
		}
	}
	if err := s.Append(ents); err != nil {
		return nil, false, err
	}
	if r.files == 0 {
		meta := &pb.SnapshotMetadata{}
		if snap != nil {
			meta = snap.GetMetadata()
		}
		s.wal, err = createWAL(dir, 1, meta, nil, nil)
	} else {
		s.wal, err = openWAL(dir, r.lastSeq)
	}
	if err != nil {
		return nil, false, err
	}
	return s, existed, nil
}

// save persists one Ready batch: a received snapshot (its file first, then
// a WAL record that the log continues after it), the entries and the hard
// state, with one fsync. Only then may the batch's messages be sent.
func (s *diskStorage) save(hs *pb.HardState, ents []*pb.Entry, snap *pb.Snapshot) error {
	if snap != nil && !raft.IsEmptySnap(snap) {
		if err := writeSnapshot(s.dir, snap); err != nil {
			return err
		}
		if err := s.wal.add(recSnapshot, snap.GetMetadata()); err != nil {
			return err
		}
	}
	for _, e := range ents {
		if err := s.wal.add(recEntry, e); err != nil {
			return err
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		if err := s.wal.add(recHardState, hs); err != nil {
			return err
		}
	}
	if err := s.wal.sync(); err != nil {
		return err
	}
	// Memory follows disk.
	if snap != nil && !raft.IsEmptySnap(snap) {
		if err := s.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		if err := s.SetHardState(hs); err != nil {
			return err
		}
	}
	return s.Append(ents)
}

// snapshot records the state machine's image as of applied index i, then
// starts a new WAL file holding only what comes after the entries kept,
// and removes the older files. A crash at any point leaves either the old
// files (still complete) or the new ones.
func (s *diskStorage) snapshot(i uint64, cs *pb.ConfState, data []byte) error {
	snap, err := s.CreateSnapshot(i, cs, data)
	if err != nil {
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return nil
		}
		return err
	}
	if err := writeSnapshot(s.dir, snap); err != nil {
		return err
	}
	compact := uint64(1)
	if i > s.keep {
		compact = i - s.keep
	}
	if s.keepBytes > 0 {
		// Keep entries back from i while they fit in keepBytes.
		var size uint64
		for j := i; j > compact; j-- {
			ents, err := s.Entries(j, j+1, 1<<62)
			if err != nil || len(ents) == 0 {
				break // compacted already
			}
			if size += uint64(proto.Size(ents[0])); size > s.keepBytes {
				compact = j
				break
			}
		}
	}
	if first, _ := s.FirstIndex(); compact > first {
		if err := s.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	// The new file continues from the compaction point: it carries the
	// kept entries, the hard state and everything after.
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	var ents []*pb.Entry
	if last >= first {
		if ents, err = s.Entries(first, last+1, 1<<62); err != nil {
			return err
		}
	}
	hs, _, _ := s.InitialState()
	term, err := s.Term(first - 1)
	if err != nil {
		return err
	}
	from := &pb.SnapshotMetadata{Index: proto.Uint64(first - 1), Term: proto.Uint64(term), ConfState: cs}
	nw, err := createWAL(s.dir, s.wal.seq+1, from, hs, ents)
	if err != nil {
		return err
	}
	old := s.wal
	s.wal = nw
	if err := old.close(); err != nil {
		return err
	}
	return s.removeOld(nw.seq, i)
}

// removeOld deletes WAL files before seq and snapshots other than the one
// at index keepSnap and the one before it.
func (s *diskStorage) removeOld(seq, keepSnap uint64) error {
	seqs, err := listSeq(s.dir, "wal-", ".log")
	if err != nil {
		return err
	}
	for _, q := range seqs {
		if q < seq {
			os.Remove(filepath.Join(s.dir, walName(q)))
		}
	}
	snaps, err := listSeq(s.dir, "snap-", ".snap")
	if err != nil {
		return err
	}
	for i, idx := range snaps {
		if idx != keepSnap && i < len(snaps)-2 {
			os.Remove(filepath.Join(s.dir, snapName(idx)))
		}
	}
	return syncDir(s.dir)
}

func (s *diskStorage) close() error { return s.wal.close() }

// writeSnapshot writes snap-<index>.snap: length, CRC32C, then the
// raftpb.Snapshot (metadata and the state machine's image). Written to a
// temporary name, fsynced, renamed, and the directory fsynced.
func writeSnapshot(dir string, snap *pb.Snapshot) error {
	body, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	buf := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(buf[0:], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(body, crcTable))
	buf = append(buf, body...)
	path := filepath.Join(dir, snapName(snap.GetMetadata().GetIndex()))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// loadNewestSnapshot returns the newest snapshot file that reads whole, or
// nil if there is none. A damaged newest file falls back to the previous
// one (the WAL still covers what came after it, since WAL files are only
// removed after a newer snapshot is safely written).
func loadNewestSnapshot(dir string) (*pb.Snapshot, error) {
	idxs, err := listSeq(dir, "snap-", ".snap")
	if err != nil {
		return nil, err
	}
	for i := len(idxs) - 1; i >= 0; i-- {
		snap, err := readSnapshot(filepath.Join(dir, snapName(idxs[i])))
		if err == nil {
			return snap, nil
		}
	}
	return nil, nil
}

func readSnapshot(path string) (*pb.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[0:])
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(size) != st.Size()-8 {
		return nil, fmt.Errorf("%w: %s: length %d, file holds %d", ErrCorrupt, path, size, st.Size()-8)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, path)
	}
	snap := &pb.Snapshot{}
	if err := proto.Unmarshal(body, snap); err != nil {
		return nil, err
	}
	return snap, nil
}
