package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Loading a partition at Open.
//
// After a clean shutdown (marker present) the files are trusted: indexes are
// loaded and sanity-checked, and only the last segment's tail is walked
// (header chain must end exactly at the file end, last batch's CRC must
// match). Anything odd falls back to a full scan of that segment.
//
// After an unclean shutdown, every segment from the one containing the
// recovery point onward is scanned batch by batch (length, magic, CRC32C,
// offsets increasing). The first bad batch truncates its segment there and
// every later segment is deleted: data after a hole is never served. Indexes
// of scanned segments are rebuilt, the scanned data is fsynced and the
// recovery point becomes the log end offset.
//
// Producer state comes from the newest valid snapshot at or below the log
// end offset plus the batch headers after it.
func (s *Store) loadLog(job *loadJob, clean bool) (_ *Log, holeErr error, _ error) {
	fsys, dir, tp := s.fsys, job.dir, job.tp
	recoveryPoint, logStart := job.recoveryPoint, job.logStart
	var topicID [16]byte
	if job.metaErr != nil {
		s.logger.Warn("partition has no readable partition.metadata", "dir", dir, "err", job.metaErr)
	} else if id, err := decodePartitionMetadata(job.meta); err != nil {
		s.logger.Warn("bad partition.metadata", "dir", dir, "err", err)
	} else {
		topicID = id
	}
	cfg0 := DefaultLogConfig()
	if s.cfgFor != nil {
		cfg0 = s.cfgFor(tp.topic, tp.partition).sanitized()
	}
	l := s.makeLog(dir, tp, topicID, cfg0)
	cfg := &l.cfg

	// One listing serves finishing swaps, the segments and the producer
	// snapshots; it is read again only if something in it changed.
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	if changed, err := finishSwaps(fsys, dir, ents, s.logger); err != nil {
		return nil, nil, err
	} else if changed {
		if ents, err = fsys.ReadDir(dir); err != nil {
			return nil, nil, err
		}
	}
	var bases []int64
	logs := make(map[int64]bool)
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			fsys.Remove(filepath.Join(dir, name))
			continue
		}
		if b, ok := parseOffsetName(name, extLog); ok {
			bases = append(bases, b)
			logs[b] = true
		}
	}
	for _, e := range ents { // index files without a .log are leftovers of a deletion
		for _, ext := range []string{extIndex, extTimeIndex, extTxnIndex} {
			if b, ok := parseOffsetName(e.Name(), ext); ok && !logs[b] {
				fsys.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	slices.Sort(bases)

	var segs []*segment
	fail := func(err error) (*Log, error, error) {
		for _, sg := range segs {
			sg.release()
		}
		return nil, nil, err
	}
	for _, b := range bases {
		sg, err := openSegment(fsys, dir, b)
		if err != nil {
			return fail(err)
		}
		segs = append(segs, sg)
	}
	if len(segs) == 0 {
		base := max(logStart, 0)
		sg, err := createSegment(fsys, dir, base, s.now())
		if err != nil {
			return fail(err)
		}
		segs = append(segs, sg)
	}

	// Segments before `from` are trusted; from `from` on they are scanned.
	from := len(segs) - 1
	if !clean {
		from = 0
		for i, sg := range segs {
			if sg.base <= recoveryPoint {
				from = i
			}
		}
	}
	scanned := make(map[*segment]bool)
	// holeErr is the first hole between segments, if not accepted.
	// snapsListed: no segment was removed since ents was read, so its
	// snapshot files are still the ones on disk.
	snapsListed := true
	var tailChecked *segment
	prevLast := int64(-1)
	for i := 0; i < len(segs); i++ {
		sg := segs[i]
		last := i == len(segs)-1
		trusted := i < from || (clean && last)
		if sg.base <= prevLast {
			s.logger.Warn("segment overlaps the previous one; deleting it and everything after",
				"file", sg.name(), "previous_last_offset", prevLast)
			segs = l.dropSegments(segs, i)
			snapsListed = false
			break
		}
		ok := false
		if trusted && !last {
			// A sealed segment: its indexes wait for their first use.
			if pos, err := sg.loadIndexTails(cfg.IndexIntervalBytes); err == nil {
				if err := sg.checkTailFrom(pos); err != nil {
					s.logger.Warn("inner segment failed its tail check; scanning it", "file", sg.name(), "err", err)
					sg.idxLazy.Store(false)
					sg.offIdx, sg.timeIdx = nil, nil
				} else {
					ok = true
				}
				trusted = ok
			}
		}
		if trusted && !ok {
			if err := sg.loadIndexes(); err != nil {
				s.logger.Warn("rebuilding index", "file", sg.name(), "err", err)
			} else if !last {
				// An inner segment must end where the next one starts; its
				// tail says where it really ends (a file cut short or
				// emptied behind our back shows here).
				if err := sg.checkTail(); err != nil {
					s.logger.Warn("inner segment failed its tail check; scanning it", "file", sg.name(), "err", err)
				} else {
					ok = true
				}
			} else if err := sg.checkTail(); err != nil {
				s.logger.Warn("last segment failed its tail check; scanning it", "file", sg.name(), "err", err)
			} else {
				tailChecked = sg
				ok = true
			}
		}
		if !ok {
			res, err := sg.recover(prevLast, cfg.IndexIntervalBytes)
			if err != nil {
				return fail(err)
			}
			scanned[sg] = true
			if res.truncated > 0 {
				attrs := []any{"file", sg.name(), "valid_bytes", res.validBytes,
					"truncated_bytes", res.truncated, "next_offset", sg.lastOff + 1, "reason", res.badReason}
				if res.zeroTail && res.truncated >= 4096 {
					s.logger.Info("trimmed unused preallocated tail", attrs...)
				} else {
					s.logger.Warn("truncated torn or corrupt tail", attrs...)
				}
				if !last {
					s.logger.Warn("deleting segments after a truncated one", "dir", dir, "from_base", segs[i+1].base)
					segs = l.dropSegments(segs, i+1)
					snapsListed = false
				}
			}
		}
		if sg.size > 0 {
			prevLast = sg.lastOff
		} else {
			prevLast = max(prevLast, sg.base-1)
		}
		if i < len(segs)-1 {
			next := segs[i+1].base
			// A compacted log has gaps between segments by design (the
			// cleaner drops the records at a segment's end).
			if end := prevLast + 1; end < next && next > logStart && !cfg.Compact {
				holeErr = s.segmentHole(tp, sg, segs[i+1], end, holeErr)
			}
		}
	}
	active := segs[len(segs)-1]
	if !scanned[active] && tailChecked != active {
		// The segment that became last because later ones were dropped was
		// loaded as an inner segment; establish its real end.
		if err := active.checkTail(); err != nil {
			if _, err := active.recover(-1, cfg.IndexIntervalBytes); err != nil {
				return fail(err)
			}
			scanned[active] = true
		}
	}
	leo := active.base
	if active.size > 0 {
		leo = active.lastOff + 1
	}
	l.segs = segs
	l.leo = leo
	l.logStart = max(logStart, segs[0].base)
	if l.logStart > leo {
		l.logStart = leo
	}
	// Segments wholly below the log start (a crash between DeleteRecords'
	// checkpoint and the file deletion).
	n := 0
	for n < len(l.segs)-1 && l.segs[n+1].base <= l.logStart {
		n++
	}
	if n > 0 {
		l.removeSegments(n)
		snapsListed = false
	}

	for _, sg := range l.segs {
		sg.loadTxnIndex()
	}
	// Persist rebuilt indexes of inactive segments; make scanned data durable
	// so the recovery point can be the log end.
	for _, sg := range l.segs[:len(l.segs)-1] {
		if scanned[sg] {
			if err := sg.writeIndexes(true); err != nil {
				return fail(err)
			}
		}
	}
	// A log that holds no record has nothing to make durable: if a crash
	// loses its files, the catalog recreates the partition empty. Skipping
	// the fsyncs keeps restarting after a crash with thousands of fresh
	// partitions in seconds.
	empty := leo == 0 && len(segs) == 1 && active.size == 0
	for sg := range scanned {
		if slices.Contains(l.segs, sg) && !empty {
			if err := datasync(sg.log); err != nil {
				return fail(err)
			}
		}
	}
	if (len(scanned) > 0 || !clean) && !empty {
		if err := syncDir(fsys, dir); err != nil {
			return fail(err)
		}
	}
	l.durable = leo
	l.lastFlush = s.now()
	active.zeroedTo = active.size
	if active.size > 0 {
		active.bytesSinceIndex = int(active.size)
		if k := len(active.offIdx); k > 0 {
			active.bytesSinceIndex = int(active.size - int64(active.offIdx[k-1].pos))
		}
	}

	snaps := snapshotOffsets(ents)
	if !snapsListed {
		snaps = listSnapshots(fsys, dir)
	}
	replayed, err := l.loadProducers(snaps)
	if err != nil {
		return fail(err)
	}
	// The replay rebuilt the aborted transactions of the segments it
	// covered; keep the inactive ones' files in step.
	for _, sg := range l.segs[:len(l.segs)-1] {
		if sg.lastOff >= replayed {
			if err := sg.writeTxnIndex(sg.aborted, true); err != nil {
				return fail(err)
			}
		}
	}
	// What loadEpochs changed (entries past the log end dropped, or the
	// cache rebuilt) is written with the next epoch change or append, not
	// here: with thousands of partitions, a write (and fsync) each made
	// start-up take seconds. Until then the file may hold entries past the
	// log end, which the next load drops again.
	l.loadEpochs()
	return l, holeErr, nil
}

// segmentHole reports offsets [end, next.base) missing between two
// segments: a middle segment removed, emptied or cut short while the
// broker was down. Recovery never papers over it silently: unless
// gregor.recovery.accept.gaps names the partition, the partition opens
// offline (KAFKA_STORAGE_ERROR) and the error is returned; with the
// property, the hole is accepted (reads skip to the next segment) and
// logged. first is the hole already found, if any, and is kept.
func (s *Store) segmentHole(tp topicPartition, sg, next *segment, end int64, first error) error {
	attrs := []any{"topic", tp.topic, "partition", tp.partition, "missing_from", end, "missing_to", next.base - 1,
		"segment", sg.name(), "next_segment", filepath.Base(next.name())}
	if s.gapsOK != nil && s.gapsOK(tp.topic, tp.partition) {
		s.logger.Error("RECOVERY ACCEPTED A HOLE: records in the missing offsets are lost (gregor.recovery.accept.gaps)", attrs...)
		return first
	}
	s.logger.Error("partition has a hole between segments; serving it would hide lost records, so it is OFFLINE "+
		"(restore the segment files, or accept the loss with gregor.recovery.accept.gaps="+fmt.Sprintf("%s-%d", tp.topic, tp.partition)+")", attrs...)
	if first != nil {
		return first
	}
	return fmt.Errorf("%w: %s-%d: offsets %d to %d are missing between segments %s and %s; restore them or set gregor.recovery.accept.gaps",
		ErrPartitionOffline, tp.topic, tp.partition, end, next.base-1, filepath.Base(sg.name()), filepath.Base(next.name()))
}

// dropSegments deletes segs[i:] from disk and returns segs[:i]; i >= 1.
func (l *Log) dropSegments(segs []*segment, i int) []*segment {
	for _, sg := range segs[i:] {
		sg.removeFiles()
		sg.release()
	}
	return segs[:i]
}

// removeFiles unlinks a segment's files. Open descriptors stay valid.
func (s *segment) removeFiles() {
	for _, ext := range []string{extLog, extIndex, extTimeIndex, extTxnIndex} {
		if err := s.fsys.Remove(segmentPath(s.dir, s.base, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = err // best effort: Open cleans up orphans
		}
	}
}

// checkTail is the cheap clean-shutdown check of the last segment: walk the
// headers from the last index entry to the end of the file, require the
// chain to end exactly there, verify the last batch's CRC and pick up the
// timestamps and last offset the index doesn't have.
func (s *segment) checkTail() error {
	pos := int64(0)
	if k := len(s.offIdx); k > 0 {
		pos = int64(s.offIdx[k-1].pos)
	}
	return s.checkTailFrom(pos)
}

// checkTailFrom is checkTail from the batch at pos, a known batch start.
func (s *segment) checkTailFrom(pos int64) error {
	if s.size == 0 {
		return nil
	}
	var hb [batchHeaderSize]byte
	first, err := s.readHeader(hb[:], 0, s.size)
	if err != nil {
		return err
	}
	s.firstTs = first.maxTimestamp
	var lastH batchHeader
	lastPos := int64(-1)
	for pos < s.size {
		h, err := s.readHeader(hb[:], pos, s.size)
		if err != nil {
			return err
		}
		if h.lastOffset() < s.lastOff && lastPos >= 0 {
			return fmt.Errorf("offsets go backwards at position %d", pos)
		}
		if h.maxTimestamp > s.maxTs {
			s.maxTs, s.maxTsOff = h.maxTimestamp, h.lastOffset()
		}
		s.lastOff = h.lastOffset()
		lastH, lastPos = h, pos
		pos += h.size()
	}
	if pos != s.size {
		return fmt.Errorf("batch chain ends at %d, file at %d", pos, s.size)
	}
	var b []byte
	if n := lastH.size(); n <= walkWindow {
		// Start-up checks the last batch of every partition: small ones
		// borrow a pooled buffer.
		w := walkWindows.Get().(*[walkWindow]byte)
		defer walkWindows.Put(w)
		b = w[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := s.log.ReadAt(b, lastPos); err != nil {
		return err
	}
	h := parseHeader(b)
	return verifyStored(b, &h, s.base-1)
}

// loadProducers rebuilds producer state: newest valid snapshot at or below
// the log end, then the batch headers from there to the end. Snapshots
// above the log end (data lost in recovery) are deleted. The replay also
// rebuilds the aborted transactions from the offset it started at, which
// it returns, and the first unstable offset.
func (l *Log) loadProducers(offs []int64) (int64, error) {
	start := l.segs[0].base
	l.producers = make(map[int64]*producerState)
	for i := len(offs) - 1; i >= 0; i-- {
		o := offs[i]
		path := segmentPath(l.dir, o, extSnapshot)
		if o > l.leo {
			l.fsys.Remove(path)
			continue
		}
		data, err := readFile(l.fsys, path)
		if err == nil {
			var m map[int64]*producerState
			if m, err = decodeSnapshot(data); err == nil {
				l.producers = m
				start = max(o, start)
				break
			}
		}
		l.logger.Warn("ignoring unreadable producer snapshot", "file", path, "err", err)
		l.fsys.Remove(path)
	}
	var aborted []AbortedTxn
	for _, sg := range l.segs {
		if sg.size == 0 || (sg.lastOff < start && sg != l.segs[len(l.segs)-1]) {
			continue
		}
		pos := int64(0)
		if start > sg.base {
			sg.ensureIndexes()
			pos = lookupOffset(sg.offIdx, start-sg.base)
		}
		var rerr error
		err := sg.walkHeaders(pos, sg.size, func(h *batchHeader, pos int64) bool {
			if h.baseOffset < start {
				return true
			}
			var m txnMarker
			if h.isControl() && h.size() <= 4096 {
				b := make([]byte, h.size())
				if _, err := sg.log.ReadAt(b, pos); err != nil {
					rerr = fmt.Errorf("storage: read %s at %d: %w", sg.name(), pos, err)
					return false
				}
				m = parseMarker(b)
			}
			if t, ok := replayProducer(l.producers, h, m); ok && t.abort {
				lso := min(l.firstUnstableLocked(), t.last+1)
				aborted = append(aborted, AbortedTxn{ProducerID: t.pid, FirstOffset: t.first, LastOffset: t.last, LastStableOffset: lso})
			}
			return true
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return start, err
		}
	}
	unstable := l.firstUnstableLocked()
	l.mu.Lock()
	l.dropAbortedFrom(start)
	for _, a := range aborted {
		l.addAbortedLocked(a)
	}
	l.unstable = unstable
	l.mu.Unlock()
	return start, nil
}

// walkWindow is walkHeaders' read window; windows are pooled, because
// start-up walks the tail of every partition's log, several times.
const walkWindow = 64 << 10

var walkWindows = sync.Pool{New: func() any { return new([walkWindow]byte) }}

// walkHeaders calls fn with each batch header from pos up to limit, reading
// through a window so small batches cost one read per many headers.
func (s *segment) walkHeaders(pos, limit int64, fn func(h *batchHeader, pos int64) bool) error {
	const window = walkWindow
	w := walkWindows.Get().(*[walkWindow]byte)
	defer walkWindows.Put(w)
	buf := w[:]
	var winStart, winLen int64
	small := true
	for pos < limit {
		if pos < winStart || pos+batchHeaderSize > winStart+winLen {
			n := int64(batchHeaderSize)
			if small {
				n = window
			}
			n = min(n, limit-pos)
			if n < batchHeaderSize {
				return fmt.Errorf("%w: %s: %d bytes at position %d, not a batch header", ErrCorruption, s.name(), n, pos)
			}
			k, err := s.log.ReadAt(buf[:n], pos)
			if int64(k) < batchHeaderSize {
				return fmt.Errorf("storage: read %s at %d: %v", s.name(), pos, err)
			}
			winStart, winLen = pos, int64(k)
		}
		h := parseHeader(buf[pos-winStart:])
		if h.length < minBatchSize-logOverhead || pos+h.size() > limit || h.magic != 2 {
			return fmt.Errorf("%w: %s: bad batch header at position %d", ErrCorruption, s.name(), pos)
		}
		if !fn(&h, pos) {
			return nil
		}
		small = h.size() < window/4
		pos += h.size()
	}
	return nil
}
