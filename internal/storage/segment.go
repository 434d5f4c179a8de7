package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// A segment is one .log file with its sparse indexes. See log.go for which
// lock guards which field.
type segment struct {
	base int64
	dir  string
	fsys FS
	log  File

	// refs counts the Log's own reference plus one per reader, syncer round
	// or FileRange using the file. The file is closed when it drops to 0, so
	// retention can unlink a segment while a fetch is still sending from it.
	refs atomic.Int32

	// Published state. Written by the appender under Log.mu (write lock);
	// read by anyone under Log.mu.RLock. The index slices are append-only: a
	// reader may keep a copied slice header after unlocking. Of a segment
	// whose indexes are not loaded yet (idxLazy), they are read only after
	// ensureIndexes.
	size     int64 // bytes of whole, valid batches
	lastOff  int64 // last offset stored, base-1 if empty
	offIdx   []offsetEntry
	timeIdx  []timeEntry
	maxTs    int64 // largest batch maxTimestamp, -1 if none
	maxTsOff int64 // last offset of the batch that holds maxTs
	firstTs  int64 // maxTimestamp of the first batch, -1 if none (segment.ms)
	created  time.Time
	modified time.Time // last append (or file mtime): retention fallback
	// aborted lists the aborted transactions whose ABORT marker is in this
	// segment, by marker offset (txn.go). Written under Log.appendMu and
	// Log.mu; entries are appended in place or the slice replaced.
	aborted []AbortedTxn

	// Appender state, owned by Log.appendMu.
	bytesSinceIndex int
	zeroedTo        int64 // file bytes known to exist (data or zero fill)

	// Lazy indexes: a sealed segment that start-up trusted keeps its index
	// files unread until the first lookup needs them (ensureIndexes), as
	// Kafka maps its indexes lazily, so neither start-up time nor memory
	// grows with the size of the log. idxMu serializes that first load;
	// idxInterval is index.interval.bytes, for rebuilding indexes that
	// turn out to be damaged.
	idxLazy     atomic.Bool
	idxMu       sync.Mutex
	idxInterval int
}

func segmentPath(dir string, base int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

const (
	extLog       = ".log"
	extIndex     = ".index"
	extTimeIndex = ".timeindex"
	extSnapshot  = ".snapshot"
)

// createSegment makes a new, empty segment with empty index files (Kafka
// creates them up front; their contents are written at roll/close).
func createSegment(fsys FS, dir string, base int64, now time.Time) (*segment, error) {
	f, err := fsys.OpenFile(segmentPath(dir, base, extLog), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	for _, ext := range []string{extIndex, extTimeIndex} {
		idx, err := fsys.OpenFile(segmentPath(dir, base, ext), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			f.Close()
			return nil, err
		}
		idx.Close()
	}
	s := &segment{base: base, dir: dir, fsys: fsys, log: f, lastOff: base - 1,
		maxTs: -1, maxTsOff: -1, firstTs: -1, created: now, modified: now}
	s.refs.Store(1)
	return s, nil
}

// openSegment opens an existing .log file. Its size is the file size until
// loadIndexes or recover say otherwise.
func openSegment(fsys FS, dir string, base int64) (*segment, error) {
	return openSegmentFile(fsys, dir, base, segmentPath(dir, base, extLog))
}

// openSegmentFile is openSegment of a log file under another name (the
// cleaner's *.cleaned and *.swap files).
func openSegmentFile(fsys FS, dir string, base int64, path string) (*segment, error) {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{base: base, dir: dir, fsys: fsys, log: f, size: st.Size(), lastOff: base - 1,
		maxTs: -1, maxTsOff: -1, firstTs: -1, created: st.ModTime(), modified: st.ModTime()}
	s.zeroedTo = st.Size()
	s.refs.Store(1)
	return s, nil
}

// acquire takes a reference; false if the segment is already fully released.
func (s *segment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.log.Close()
	}
}

// largestTimestamp is what retention.ms compares against (Kafka: the max
// timestamp, or the file's modification time if no batch had one).
func (s *segment) largestTimestamp() int64 {
	if s.maxTs >= 0 {
		return s.maxTs
	}
	return s.modified.UnixMilli()
}

// readHeader reads the first len(buf) bytes of the batch header at pos
// (len(buf) >= logOverhead, cap(buf) >= batchHeaderSize) and checks that a
// batch of the stated length fits below limit. Fields beyond len(buf) are
// zero.
func (s *segment) readHeader(buf []byte, pos, limit int64) (batchHeader, error) {
	var h batchHeader
	if limit-pos < minBatchSize {
		return h, fmt.Errorf("%w: %s: %d bytes at position %d, not a batch", ErrCorruption, s.name(), limit-pos, pos)
	}
	n := len(buf)
	if _, err := s.log.ReadAt(buf, pos); err != nil {
		return h, fmt.Errorf("storage: read %s at %d: %w", s.name(), pos, err)
	}
	full := buf[:batchHeaderSize]
	clear(full[n:])
	h = parseHeader(full)
	if h.length < minBatchSize-logOverhead || pos+h.size() > limit || (n > offMagic && h.magic != 2) {
		return h, fmt.Errorf("%w: %s: bad batch header at position %d (length %d)", ErrCorruption, s.name(), pos, h.length)
	}
	return h, nil
}

func (s *segment) name() string { return segmentPath(s.dir, s.base, extLog) }

// indexBatch updates the in-memory indexes for a batch written at pos. The
// caller holds Log.mu (write) when the segment is published.
func (s *segment) indexBatch(h *batchHeader, pos int64, interval int) {
	if s.firstTs < 0 && s.size == 0 && pos == 0 {
		s.firstTs = h.maxTimestamp
	}
	last := h.lastOffset()
	if h.maxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOff = h.maxTimestamp, last
	}
	if s.bytesSinceIndex > interval {
		s.offIdx = append(s.offIdx, offsetEntry{rel: int32(last - s.base), pos: int32(pos)})
		s.appendTimeEntry()
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += int(h.size())
	s.lastOff = last
}

// appendTimeEntry records (maxTs, maxTsOff) if it moves the time index
// forward; Kafka's time index only ever grows in timestamp.
func (s *segment) appendTimeEntry() {
	if s.maxTs < 0 {
		return
	}
	if n := len(s.timeIdx); n > 0 && s.timeIdx[n-1].ts >= s.maxTs {
		return
	}
	s.timeIdx = append(s.timeIdx, timeEntry{ts: s.maxTs, rel: int32(s.maxTsOff - s.base)})
}

// indexFull reports whether either index reached segment.index.bytes.
func (s *segment) indexFull(cfg *LogConfig) bool {
	return len(s.offIdx) >= cfg.SegmentIndexBytes/offsetIndexEntrySize ||
		len(s.timeIdx) >= cfg.SegmentIndexBytes/timeIndexEntrySize
}

// writeIndexes stores the in-memory indexes in the .index/.timeindex files
// (replacing whatever was there) and optionally fsyncs them.
func (s *segment) writeIndexes(sync bool) error {
	if err := s.writeIndexesAs("", sync); err != nil {
		return err
	}
	return s.writeTxnIndex(s.aborted, sync)
}

// writeIndexFiles writes the three index files named with suffix, fsynced
// (the log cleaner's *.swap files).
func (s *segment) writeIndexFiles(suffix string) error {
	if err := s.writeIndexesAs(suffix, true); err != nil {
		return err
	}
	buf := encodeTxnIndex(s.aborted)
	return writeFileSync(s.fsys, segmentPath(s.dir, s.base, extTxnIndex)+suffix, buf)
}

func (s *segment) writeIndexesAs(suffix string, sync bool) error {
	s.ensureIndexes() // never replace unread files with empty ones
	var buf []byte
	for _, ext := range []string{extIndex, extTimeIndex} {
		if ext == extIndex {
			buf = encodeOffsetIndex(buf[:0], s.offIdx)
		} else {
			buf = encodeTimeIndex(buf[:0], s.timeIdx)
		}
		f, err := s.fsys.OpenFile(segmentPath(s.dir, s.base, ext)+suffix, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(buf, 0)
		if err == nil {
			err = f.Truncate(int64(len(buf)))
		}
		if err == nil && sync {
			err = datasync(f)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFileSync writes a whole file and fsyncs it.
func writeFileSync(fsys FS, path string, data []byte) error {
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadIndexTails prepares a sealed, trusted segment for lazy indexes: it
// reads only the last entry of each index file (for the last offset and
// the largest timestamp the indexes know, and where checkTail starts) and
// marks the indexes to be loaded on first use. It returns the position of
// the last offset index entry (0 if none); an error means the files must
// be read whole now (loadIndexes).
func (s *segment) loadIndexTails(interval int) (int64, error) {
	tail := func(ext string, entry int) ([]byte, error) {
		f, err := s.fsys.OpenFile(segmentPath(s.dir, s.base, ext), os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		n := st.Size()
		if n%int64(entry) != 0 {
			return nil, fmt.Errorf("%s size %d is not a multiple of %d", ext, n, entry)
		}
		if n == 0 {
			return nil, nil
		}
		b := make([]byte, entry)
		if _, err := f.ReadAt(b, n-int64(entry)); err != nil {
			return nil, err
		}
		return b, nil
	}
	ob, err := tail(extIndex, offsetIndexEntrySize)
	if err != nil {
		return 0, err
	}
	tb, err := tail(extTimeIndex, timeIndexEntrySize)
	if err != nil {
		return 0, err
	}
	pos := int64(0)
	if ob != nil {
		last, err := decodeOffsetIndex(ob, s.size)
		if err != nil {
			return 0, err
		}
		pos, s.lastOff = int64(last[0].pos), s.base+int64(last[0].rel)
	}
	if tb != nil {
		last, err := decodeTimeIndex(tb)
		if err != nil {
			return 0, err
		}
		s.maxTs, s.maxTsOff = last[0].ts, s.base+int64(last[0].rel)
	}
	s.idxInterval = interval
	s.idxLazy.Store(true)
	return pos, nil
}

// ensureIndexes loads the indexes of a lazy segment (loadIndexTails) if
// no one has yet. Index files that fail their checks are rebuilt from the
// segment's data, which start-up already trusted. Safe for concurrent
// use with or without Log.mu: idxMu serializes the load, and idxLazy,
// stored after the slices are set, publishes them (a lazy segment is
// sealed, so they never change afterwards).
func (s *segment) ensureIndexes() {
	if !s.idxLazy.Load() {
		return
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if !s.idxLazy.Load() {
		return
	}
	// Only the slices are set: readers may be reading the rest.
	off, tim, err := s.readIndexFiles()
	if err != nil {
		off, tim, err = s.buildIndexes(s.idxInterval)
		if err != nil {
			// Unreadable data: no index; lookups scan from the start.
			off, tim = nil, nil
		}
	}
	s.offIdx, s.timeIdx = off, tim
	s.idxLazy.Store(false)
}

// buildIndexes computes a sealed segment's indexes from its batch
// headers, as the appender would have written them.
func (s *segment) buildIndexes(interval int) ([]offsetEntry, []timeEntry, error) {
	var (
		off      []offsetEntry
		tim      []timeEntry
		since    int
		maxTs    int64 = -1
		maxTsOff int64
	)
	err := s.walkHeaders(0, s.size, func(h *batchHeader, pos int64) bool {
		last := h.lastOffset()
		if h.maxTimestamp > maxTs {
			maxTs, maxTsOff = h.maxTimestamp, last
		}
		if since > interval {
			off = append(off, offsetEntry{rel: int32(last - s.base), pos: int32(pos)})
			if maxTs >= 0 && (len(tim) == 0 || tim[len(tim)-1].ts < maxTs) {
				tim = append(tim, timeEntry{ts: maxTs, rel: int32(maxTsOff - s.base)})
			}
			since = 0
		}
		since += int(h.size())
		return true
	})
	return off, tim, err
}

// loadIndexes reads and sanity-checks the index files of a segment whose
// data is trusted, and derives maxTs from the last time index entry as Kafka
// does. An error means the indexes must be rebuilt.
func (s *segment) loadIndexes() error {
	offIdx, timeIdx, err := s.readIndexFiles()
	if err != nil {
		return err
	}
	s.offIdx, s.timeIdx = offIdx, timeIdx
	if n := len(timeIdx); n > 0 {
		s.maxTs, s.maxTsOff = timeIdx[n-1].ts, s.base+int64(timeIdx[n-1].rel)
	}
	if n := len(offIdx); n > 0 {
		s.lastOff = s.base + int64(offIdx[n-1].rel)
	}
	return nil
}

// readIndexFiles reads and checks the segment's .index and .timeindex.
func (s *segment) readIndexFiles() ([]offsetEntry, []timeEntry, error) {
	b, err := readFile(s.fsys, segmentPath(s.dir, s.base, extIndex))
	if err != nil {
		return nil, nil, err
	}
	offIdx, err := decodeOffsetIndex(b, s.size)
	if err != nil {
		return nil, nil, err
	}
	b, err = readFile(s.fsys, segmentPath(s.dir, s.base, extTimeIndex))
	if err != nil {
		return nil, nil, err
	}
	timeIdx, err := decodeTimeIndex(b)
	if err != nil {
		return nil, nil, err
	}
	return offIdx, timeIdx, nil
}

// scanResult describes what a recovery scan of one segment found.
type scanResult struct {
	validBytes int64
	truncated  int64 // bytes cut off the end of the file
	zeroTail   bool  // the cut bytes were all zero (unused preallocation)
	batches    int
	badReason  string // why scanning stopped before the end of the file
}

// recover validates every batch of the segment (length chain, magic, CRC32C,
// offsets increasing from prevLast), rebuilds the indexes and timestamps, and
// truncates the file at the first invalid batch. It reads the file
// sequentially with a large buffer.
func (s *segment) recover(prevLast int64, interval int) (scanResult, error) {
	st, err := s.log.Stat()
	if err != nil {
		return scanResult{}, err
	}
	fileSize := st.Size()
	s.offIdx, s.timeIdx = nil, nil
	s.maxTs, s.maxTsOff, s.firstTs = -1, -1, -1
	s.size, s.bytesSinceIndex = 0, 0
	s.lastOff = s.base - 1
	if prevLast < s.base-1 {
		prevLast = s.base - 1
	}

	var (
		res      scanResult
		buf      = make([]byte, 1<<20)
		winStart int64 // file position of buf[0]
		winLen   int64 // valid bytes in buf
	)
	// ensure makes [pos, pos+n) available in buf; false if the file is shorter.
	ensure := func(pos, n int64) (bool, error) {
		if pos >= winStart && pos+n <= winStart+winLen {
			return true, nil
		}
		if pos+n > fileSize {
			return false, nil
		}
		want := max(n, int64(1<<20))
		if int64(cap(buf)) < want {
			buf = make([]byte, want)
		}
		buf = buf[:cap(buf)]
		m := min(int64(len(buf)), fileSize-pos)
		k, err := s.log.ReadAt(buf[:m], pos)
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) >= n) {
			return false, fmt.Errorf("storage: read %s at %d: %w", s.name(), pos, err)
		}
		winStart, winLen = pos, int64(k)
		return winLen >= n, nil
	}

	pos := int64(0)
	for pos < fileSize {
		ok, err := ensure(pos, logOverhead)
		if err != nil {
			return res, err
		}
		if !ok {
			res.badReason = "partial batch header"
			break
		}
		length := int64(int32(binary.BigEndian.Uint32(buf[pos-winStart+offBatchLength:])))
		if length < minBatchSize-logOverhead {
			res.badReason = fmt.Sprintf("batch length %d", length)
			break
		}
		size := logOverhead + length
		if ok, err = ensure(pos, size); err != nil {
			return res, err
		} else if !ok {
			res.badReason = fmt.Sprintf("batch of %d bytes runs past the end of the file", size)
			break
		}
		b := buf[pos-winStart : pos-winStart+size]
		h := parseHeader(b)
		if err := verifyStored(b, &h, prevLast); err != nil {
			res.badReason = err.Error()
			break
		}
		s.indexBatch(&h, pos, interval)
		s.size = pos + size
		prevLast = h.lastOffset()
		pos += size
		res.batches++
	}
	res.validBytes = pos
	s.zeroedTo = pos
	if pos < fileSize {
		res.truncated = fileSize - pos
		res.zeroTail = tailZeros(s.log, pos, fileSize)
		if err := s.log.Truncate(pos); err != nil {
			return res, err
		}
	}
	return res, nil
}

// tailZeros reports whether the file bytes from pos on (up to 4 MiB of them)
// are all zero, i.e. the tail is unused preallocated space rather than a
// torn or corrupt write.
func tailZeros(f File, pos, end int64) bool {
	end = min(end, pos+4<<20)
	buf := make([]byte, 64<<10)
	for pos < end {
		n := min(int64(len(buf)), end-pos)
		k, err := f.ReadAt(buf[:n], pos)
		for _, c := range buf[:k] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return k == int(n)
		}
		pos += n
	}
	return true
}
