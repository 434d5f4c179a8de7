package storage

import (
	"errors"
	"fmt"
	"time"
)

// removeSegments drops the first n segments (n < len(segs)): unpublishes
// them, moves the log start up to the new first segment and unlinks their
// files. Readers holding a reference finish on the open file. Caller holds
// segsMu and appendMu (or is loading the log).
func (l *Log) removeSegments(n int) {
	l.mu.Lock()
	removed := l.segs[:n]
	segs := make([]*segment, len(l.segs)-n)
	copy(segs, l.segs[n:])
	l.segs = segs
	l.logStart = max(l.logStart, segs[0].base)
	l.mu.Unlock()
	l.truncateEpochsStart(l.logStart)
	l.writeEpochsLocked()
	l.wakeReaders() // the log start moved
	for _, sg := range removed {
		sg.removeFiles()
		l.fsys.Remove(segmentPath(l.dir, sg.base, extSnapshot))
		sg.release()
	}
	for _, o := range listSnapshots(l.fsys, l.dir) {
		if o < segs[0].base {
			l.fsys.Remove(segmentPath(l.dir, o, extSnapshot))
		}
	}
}

// DeleteRecordsBefore moves the log start offset to offset (DeleteRecords)
// and deletes segments that are entirely below it. offset -1 means the high
// watermark; beyond the high watermark is ErrOffsetOutOfRange. It returns
// the new log start offset, persisted in log-start-offset-checkpoint before
// returning.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.segsMu.Lock()
	defer l.segsMu.Unlock()
	l.appendMu.Lock()
	if l.closed {
		l.appendMu.Unlock()
		return 0, ErrClosed
	}
	l.mu.RLock()
	hw := l.hwLocked()
	l.mu.RUnlock()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		l.appendMu.Unlock()
		return 0, fmt.Errorf("%w: delete records before %d, high watermark %d", ErrOffsetOutOfRange, offset, hw)
	}
	if offset <= l.logStart {
		start := l.logStart
		l.appendMu.Unlock()
		return start, nil
	}
	l.mu.Lock()
	l.logStart = offset
	l.mu.Unlock()
	l.truncateEpochsStart(offset)
	l.writeEpochsLocked()
	l.deleteBelowLogStart()
	l.wakeReaders() // the log start moved
	start := l.logStart
	l.appendMu.Unlock()
	l.logger.Info("log start offset moved by DeleteRecords", "log_start_offset", start)
	return start, l.store.Checkpoint()
}

// deleteBelowLogStart removes segments whose successor starts at or below
// the log start offset. The active segment is never removed here.
func (l *Log) deleteBelowLogStart() {
	n := 0
	for n < len(l.segs)-1 && l.segs[n+1].base <= l.logStart {
		n++
	}
	if n > 0 {
		l.removeSegments(n)
	}
}

// EnforceRetention applies retention.ms and retention.bytes to every
// partition whose cleanup.policy includes delete, removes segments below the
// log start offset, expires idle producer ids, and checkpoints log start
// offsets that moved. The broker calls it periodically (Kafka's
// log.retention.check.interval.ms).
func (s *Store) EnforceRetention() error {
	now := s.now()
	moved := false
	var errs []error
	for _, l := range s.Partitions() {
		m, err := l.enforceRetention(now)
		if err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
		moved = moved || m
	}
	if moved {
		if err := s.Checkpoint(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// enforceRetention follows Kafka's deletableSegments: walk segments from the
// oldest, stop at the first that does not qualify; the active segment
// qualifies too unless it is empty, in which case a new empty active segment
// is rolled first so the log always has one.
func (l *Log) enforceRetention(now time.Time) (moved bool, err error) {
	l.segsMu.Lock()
	defer l.segsMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return false, ErrClosed
	}
	before := l.logStart
	cfg := l.cfg
	nowMs := now.UnixMilli()

	deleteWhile := func(pred func(sg *segment, i int) bool) error {
		n := 0
		for n < len(l.segs) {
			sg := l.segs[n]
			if n == len(l.segs)-1 && sg.size == 0 {
				break
			}
			if !pred(sg, n) {
				break
			}
			n++
		}
		if n == 0 {
			return nil
		}
		if n == len(l.segs) {
			if err := l.rollLocked(now); err != nil {
				return err
			}
		}
		l.removeSegments(n)
		return nil
	}

	if cfg.Delete {
		if cfg.RetentionMs >= 0 {
			err := deleteWhile(func(sg *segment, _ int) bool {
				return nowMs-sg.largestTimestamp() > cfg.RetentionMs
			})
			if err != nil {
				return false, err
			}
		}
		if cfg.RetentionBytes >= 0 {
			var total int64
			for _, sg := range l.segs {
				total += sg.size
			}
			diff := total - cfg.RetentionBytes
			if diff > 0 {
				err := deleteWhile(func(sg *segment, _ int) bool {
					if diff-sg.size < 0 {
						return false
					}
					diff -= sg.size
					return true
				})
				if err != nil {
					return false, err
				}
			}
		}
	}
	l.deleteBelowLogStart()

	if exp := l.store.pidExp; exp > 0 {
		for pid, st := range l.producers {
			if nowMs-st.lastTimestamp >= exp.Milliseconds() && !st.txnOpen {
				delete(l.producers, pid)
			}
		}
	}
	if l.logStart != before {
		l.logger.Info("retention moved log start offset", "from", before, "to", l.logStart)
		return true, nil
	}
	return false, nil
}
