package storage

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
)

// FileRange is a byte range of one segment file holding whole batches
// (from FetchRange, possibly ending in part of one): what a fetch sends.
// The segment stays open until Release, even if retention deletes it
// meanwhile, so the range can be sent with sendfile(2) outside any lock.
type FileRange struct {
	// File is the segment's *os.File, or nil when the Store's FS is not the
	// OS (tests); use ReadAt/AppendTo then.
	File *os.File
	Pos  int64
	Size int

	f   File
	rel *rangeRelease
}

type rangeRelease struct {
	once sync.Once
	seg  *segment
}

// Release gives the segment reference back. Safe to call more than once
// and on the zero FileRange.
func (r FileRange) Release() {
	if r.rel != nil {
		r.rel.once.Do(r.rel.seg.release)
	}
}

// AppendTo appends the range's bytes to dst.
func (r FileRange) AppendTo(dst []byte) ([]byte, error) {
	if r.Size == 0 {
		return dst, nil
	}
	n := len(dst)
	dst = grow(dst, r.Size)
	if _, err := r.f.ReadAt(dst[n:], r.Pos); err != nil && err != io.EOF {
		return dst[:n], err
	}
	return dst, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// ReadResult is the answer to a fetch of one partition.
type ReadResult struct {
	Records       []byte // whole batches only, starting with the batch containing the offset
	HighWatermark int64
	// LastStableOffset: below it every transaction is decided (txn.go).
	LastStableOffset int64
	LogStartOffset   int64
	LogEndOffset     int64
}

// Read returns batches starting with the one that contains offset, at most
// maxBytes of them but always at least one whole batch when offset is below
// the high watermark (KIP-74). Nothing at or above the high watermark is
// ever returned: an offset from the high watermark up to the log end gives
// no records and no error (as Kafka answers a consumer); offset below the
// log start or above the log end is ErrOffsetOutOfRange. A read never spans
// two segments (like Kafka's). An offline log dir fails every read with
// ErrStorageFailed.
func (l *Log) Read(offset int64, maxBytes int) (ReadResult, error) {
	return l.ReadInto(nil, offset, maxBytes)
}

// ReadInto is Read appending the records to buf[:0], so a caller can reuse
// pooled buffers. Addition to the agreed API.
func (l *Log) ReadInto(buf []byte, offset int64, maxBytes int) (ReadResult, error) {
	fr, res, err := l.ReadRange(offset, maxBytes)
	if err != nil {
		return res, err
	}
	defer fr.Release()
	res.Records, err = fr.AppendTo(buf[:0])
	if err != nil {
		return ReadResult{}, fmt.Errorf("storage: read %s: %w", l.dir, err)
	}
	return res, nil
}

// segView is a consistent snapshot of a segment's published state.
type segView struct {
	seg  *segment
	size int64
	idx  []offsetEntry
	tidx []timeEntry
	// lazy: the segment's indexes were not loaded when the view was
	// taken; loadIndexes fills idx and tidx.
	lazy bool
}

// viewOf is a view of sg as published now (Log.mu held), loading its
// indexes if they wait for their first use.
func viewOf(sg *segment) segView {
	sg.ensureIndexes()
	return segView{seg: sg, size: sg.size, idx: sg.offIdx, tidx: sg.timeIdx}
}

// loadIndexes fills a lazy view's indexes (no lock needed: a lazy
// segment is sealed, and its indexes never change once loaded).
func (v *segView) loadIndexes() {
	if v.lazy {
		v.seg.ensureIndexes()
		v.idx, v.tidx, v.lazy = v.seg.offIdx, v.seg.timeIdx, false
	}
}

// ReadRange locates what Read would return without reading it. The caller
// must Release the range (the zero range needs no release but allows it).
// The ReadResult has no Records.
func (l *Log) ReadRange(offset int64, maxBytes int) (FileRange, ReadResult, error) {
	return l.readRange(offset, maxBytes, boundHW, false)
}

// FetchRange is ReadRange (committed: ReadRangeCommitted) cut as Kafka
// cuts a consumer's fetch: the batch holding offset whole, however big
// (KIP-74), then bytes up to maxBytes, so the range may end inside a
// batch, which the consumer drops and fetches again. Every client handles
// that partial batch, since Kafka sends one whenever a limit falls inside
// a batch. Filling the limit exactly makes every full-sized answer the
// same size, which a client's allocator reuses: whole batches only gave
// answers of a different size each time, and franz-go then spent 2-3x
// the CPU per byte on fresh memory. It also skips the walk over headers
// to the last whole batch.
func (l *Log) FetchRange(offset int64, maxBytes int, committed bool) (FileRange, ReadResult, error) {
	bound := boundHW
	if committed {
		bound = boundLSO
	}
	return l.readRange(offset, maxBytes, bound, true)
}

// readBound is where a read stops.
type readBound int

const (
	boundHW  readBound = iota // the high watermark: consumers
	boundLEO                  // the log end: followers, coordinator loads
	boundLSO                  // the last stable offset: read_committed consumers
)

// readRange is ReadRange reading up to bound; cut: as FetchRange.
func (l *Log) readRange(offset int64, maxBytes int, bound readBound, cut bool) (FileRange, ReadResult, error) {
	var res ReadResult
	after := int64(-1) // look only at segments with a base above this
	for {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return FileRange{}, res, ErrClosed
		}
		if err := l.store.failure(); err != nil {
			l.mu.RUnlock()
			return FileRange{}, res, err
		}
		realHW := l.hwLocked()
		res = ReadResult{HighWatermark: realHW, LastStableOffset: l.lsoLocked(), LogStartOffset: l.logStart, LogEndOffset: l.leo}
		hw := realHW // the bound of this read, not the reported HW
		switch bound {
		case boundLEO:
			hw = l.leo
		case boundLSO:
			hw = res.LastStableOffset
		}
		if offset < l.logStart || offset > l.leo {
			l.mu.RUnlock()
			return FileRange{}, res, fmt.Errorf("%w: offset %d, log is [%d, %d]", ErrOffsetOutOfRange, offset, res.LogStartOffset, res.LogEndOffset)
		}
		if offset >= hw {
			l.mu.RUnlock()
			return FileRange{}, res, nil
		}
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
		i = max(i, 0)
		for i < len(l.segs) && l.segs[i].base <= after {
			i++
		}
		if i == len(l.segs) {
			l.mu.RUnlock()
			// No segment holds offset although it is below the log end: the
			// published view is inconsistent, which must not happen.
			return FileRange{}, res, fmt.Errorf("%w: %s: offset %d not found below log end %d", ErrCorruption, l.dir, offset, res.LogEndOffset)
		}
		sg := l.segs[i]
		v := viewOf(sg)
		end := int64(-1)
		if hw == realHW {
			end = l.hwBound(i, sg.size, hw)
		} else if hw >= l.leo || i+1 < len(l.segs) && l.segs[i+1].base <= hw {
			end = sg.size
		}
		sg.acquire()
		l.mu.RUnlock()

		var err error
		if end < 0 {
			end, err = v.posOf(hw)
		}
		if err != nil {
			sg.release()
			return FileRange{}, res, err
		}
		v.size = end // the reader's view ends at the bound
		fr, found, err := v.locate(offset, maxBytes, cut)
		if err != nil || found {
			if err != nil {
				sg.release()
			}
			return fr, res, err
		}
		sg.release()
		after = sg.base // the offset lies beyond this segment's data
	}
}

// posOf returns the file position of the first batch at or above offset
// (the segment's size if none is), found through the index and a short
// walk over batch headers.
func (v *segView) posOf(offset int64) (int64, error) {
	sg := v.seg
	var hb [batchHeaderSize]byte
	pos := lookupOffset(v.idx, offset-sg.base)
	for pos < v.size {
		h, err := sg.readHeader(hb[:offBaseTimestamp], pos, v.size)
		if err != nil {
			return 0, err
		}
		if h.baseOffset >= offset {
			break
		}
		pos += h.size()
	}
	return min(pos, v.size), nil
}

// locate finds the batch containing offset in the segment and the end of a
// maxBytes-bounded run of whole batches after it (cut: of bytes, the first
// batch whole).
func (v *segView) locate(offset int64, maxBytes int, cut bool) (FileRange, bool, error) {
	sg := v.seg
	var hb [batchHeaderSize]byte
	pos := lookupOffset(v.idx, offset-sg.base)
	var first batchHeader
	for {
		if pos >= v.size {
			return FileRange{}, false, nil
		}
		h, err := sg.readHeader(hb[:offBaseTimestamp], pos, v.size)
		if err != nil {
			return FileRange{}, false, err
		}
		if h.baseOffset+int64(h.lastOffsetDelta) >= offset {
			first = h
			break
		}
		pos += h.size()
	}
	start := pos
	end := start + first.size()
	if cut {
		end = min(v.size, max(end, start+int64(max(maxBytes, 0))))
	} else if int64(maxBytes) >= v.size-start {
		end = v.size
	} else if limit := start + int64(max(maxBytes, 0)); end < limit {
		// Jump with the index to the last indexed batch starting before
		// the limit, then walk the few headers up to it.
		p := max(end, lookupPosition(v.idx, limit))
		for p < v.size {
			h, err := sg.readHeader(hb[:logOverhead], p, v.size)
			if err != nil {
				return FileRange{}, false, err
			}
			if p+h.size() > limit {
				break
			}
			p += h.size()
		}
		end = p
	}
	fr := FileRange{Pos: start, Size: int(end - start), f: sg.log, rel: &rangeRelease{seg: sg}}
	fr.File, _ = sg.log.(*os.File)
	return fr, true, nil
}

// acquireAll snapshots every segment with a reference; release with
// releaseViews.
func (l *Log) acquireAll() ([]segView, int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, 0, ErrClosed
	}
	if err := l.store.failure(); err != nil {
		return nil, 0, err
	}
	vs := make([]segView, 0, len(l.segs))
	for _, sg := range l.segs {
		sg.acquire()
		if sg.idxLazy.Load() {
			// Loaded only if a lookup needs this segment.
			vs = append(vs, segView{seg: sg, size: sg.size, lazy: true})
		} else {
			vs = append(vs, segView{seg: sg, size: sg.size, idx: sg.offIdx, tidx: sg.timeIdx})
		}
	}
	return vs, l.logStart, nil
}

func releaseViews(vs []segView) {
	for _, v := range vs {
		v.seg.release()
	}
}

// segMaxTs reads a segment's max timestamp under the log lock.
func (l *Log) segMaxTs(sg *segment) (ts, off int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return sg.maxTs, sg.maxTsOff
}

// OffsetForTimestamp answers ListOffsets by timestamp: the offset and
// timestamp of the first record (lowest offset at or above the log start)
// whose timestamp is >= ts. Compressed batches are decompressed to find the
// exact record. found is false if no record qualifies.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	vs, logStart, err := l.acquireAll()
	if err != nil {
		return -1, -1, false, err
	}
	defer releaseViews(vs)
	for _, v := range vs {
		if mts, _ := l.segMaxTs(v.seg); mts < ts || v.size == 0 {
			continue
		}
		// Everything at or below the last time index entry older than ts is
		// older than ts, so the answer lies after it.
		v.loadIndexes()
		from := max(logStart, v.seg.base+lookupTimeBelow(v.tidx, ts)+1)
		pos := lookupOffset(v.idx, from-v.seg.base)
		var (
			hit     recordStamp
			got     bool
			scanErr error
		)
		err := v.seg.walkHeaders(pos, v.size, func(h *batchHeader, p int64) bool {
			if h.lastOffset() < from || h.maxTimestamp < ts {
				return true
			}
			scanErr = v.seg.withBatch(h, p, func(b []byte) error {
				return walkRecords(b, h, func(r recordStamp) bool {
					if r.offset >= from && r.timestamp >= ts {
						hit, got = r, true
						return false
					}
					return true
				})
			})
			return scanErr == nil && !got
		})
		if err == nil {
			err = scanErr
		}
		if err != nil {
			return -1, -1, false, err
		}
		if got {
			return hit.offset, hit.timestamp, true, nil
		}
	}
	return -1, -1, false, nil
}

// withBatch reads the whole batch at pos into a pooled buffer for fn.
func (s *segment) withBatch(h *batchHeader, pos int64, fn func([]byte) error) error {
	bp := getBuf(int(h.size()))
	defer putBuf(bp)
	if _, err := s.log.ReadAt(*bp, pos); err != nil && err != io.EOF {
		return fmt.Errorf("storage: read %s at %d: %w", s.name(), pos, err)
	}
	return fn(*bp)
}

// MaxTimestamp answers ListOffsets with timestamp -3 (KIP-734): the offset
// and timestamp of the record with the largest timestamp (the earliest such
// record on ties), or (-1, -1) if the log has no timestamped record.
func (l *Log) MaxTimestamp() (offset, timestamp int64, err error) {
	vs, _, err := l.acquireAll()
	if err != nil {
		return -1, -1, err
	}
	defer releaseViews(vs)
	best, bestTs, bestOff := -1, int64(-1), int64(-1)
	for i, v := range vs {
		if ts, off := l.segMaxTs(v.seg); ts > bestTs && v.size > 0 {
			best, bestTs, bestOff = i, ts, off
		}
	}
	if best < 0 {
		return -1, -1, nil
	}
	v := vs[best]
	v.loadIndexes()
	pos := lookupOffset(v.idx, bestOff-v.seg.base)
	offset, timestamp = bestOff, bestTs
	var scanErr error
	err = v.seg.walkHeaders(pos, v.size, func(h *batchHeader, p int64) bool {
		if h.lastOffset() < bestOff {
			return true
		}
		scanErr = v.seg.withBatch(h, p, func(b []byte) error {
			top := int64(-1)
			return walkRecords(b, h, func(r recordStamp) bool {
				if r.timestamp > top {
					top, offset = r.timestamp, r.offset
				}
				return true
			})
		})
		return false
	})
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return -1, -1, err
	}
	return offset, timestamp, nil
}
