package storage

import "slices"

// SetDurableHighWatermark chooses what the high watermark is: the durable
// (fsynced) offset when on, the log end offset when off (the default, and
// Kafka's single-node behaviour). The broker turns it on for
// gregor.durability=fsync before it serves anything.
func (s *Store) SetDurableHighWatermark(on bool) { s.hwDurable.Store(on) }

// hwLocked is the high watermark. Requires l.mu (read or write).
func (l *Log) hwLocked() int64 {
	if !l.store.hwDurable.Load() {
		return l.leo
	}
	// durable <= leo always; logStart may pass durable when DeleteRecords
	// or retention removes data an fsync has not covered yet, and the HW
	// never lies below the log start (LSO <= HW <= LEO).
	return max(l.logStart, min(l.durable, l.leo))
}

// hwBound returns how many bytes of sg, whose published size is size, lie
// below the high watermark hw, or -1 if that is not known without reading
// headers. Requires l.mu.
func (l *Log) hwBound(i int, size, hw int64) int64 {
	if hw >= l.leo || i+1 < len(l.segs) && l.segs[i+1].base <= hw {
		return size // the whole segment is below the HW
	}
	if l.hwSet && l.hwBase == l.segs[i].base {
		return min(l.hwPos, size)
	}
	return -1
}

// Watch parks a reader: ch gets a (non-blocking) send whenever the high
// watermark of this log may have advanced, the log closes or the log dir
// fails. ch should have a buffer of 1; one channel can watch many logs, so
// a long poll over many partitions needs no goroutine per partition. Call
// Unwatch when done.
func (l *Log) Watch(ch chan struct{}) {
	l.notifyMu.Lock()
	l.readers = append(l.readers, ch)
	l.notifyMu.Unlock()
}

// Unwatch removes a reader added by Watch.
func (l *Log) Unwatch(ch chan struct{}) {
	l.notifyMu.Lock()
	if i := slices.Index(l.readers, ch); i >= 0 {
		last := len(l.readers) - 1
		l.readers[i] = l.readers[last]
		l.readers[last] = nil
		l.readers = l.readers[:last]
	}
	l.notifyMu.Unlock()
}

// wakeReaders signals every parked reader of this log.
func (l *Log) wakeReaders() {
	l.notifyMu.Lock()
	for _, ch := range l.readers {
		select {
		case ch <- struct{}{}:
		default: // already signalled; the reader will re-read everything
		}
	}
	l.notifyMu.Unlock()
}
