package storage

import "slices"

// SetDurableHighWatermark chooses what the high watermark is: the durable
// (fsynced) offset when on, the log end offset when off (the default, and
// Kafka's single-node behaviour). The broker turns it on for
// gregor.durability=fsync before it serves anything.
func (s *Store) SetDurableHighWatermark(on bool) { s.hwDurable.Store(on) }

// hwLocked is the high watermark. Requires l.mu (read or write).
func (l *Log) hwLocked() int64 {
	if l.repl {
		return max(l.logStart, min(l.replHW, l.leo))
	}
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
	if l.hwSet && !l.repl && l.hwBase == l.segs[i].base {
		return min(l.hwPos, size)
	}
	return -1
}

// Waker is a parked reader of one or more logs (a long-polling fetch).
type Waker interface {
	// Wake reports that l's high watermark may have advanced, or that l
	// closed or its log dir failed. It runs on the goroutine that changed
	// the log, under the log's notifyMu: it must be quick and must not
	// call back into the log.
	Wake(l *Log)
}

// Watch parks a reader: w.Wake(l) is called whenever the high watermark of
// this log may have advanced, the log closes or the log dir fails. One
// Waker can watch many logs, so a long poll over many partitions needs no
// goroutine per partition, and an append wakes only the readers of its
// own log. Call Unwatch when done; no Wake call starts after it returns.
func (l *Log) Watch(w Waker) {
	l.notifyMu.Lock()
	l.readers = append(l.readers, w)
	l.notifyMu.Unlock()
}

// Unwatch removes a reader added by Watch.
func (l *Log) Unwatch(w Waker) {
	l.notifyMu.Lock()
	if i := slices.Index(l.readers, w); i >= 0 {
		last := len(l.readers) - 1
		l.readers[i] = l.readers[last]
		l.readers[last] = nil
		l.readers = l.readers[:last]
	}
	l.notifyMu.Unlock()
}

// Watchers is how many readers watch the log (Watch without Unwatch).
func (l *Log) Watchers() int {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return len(l.readers)
}

// wakeReaders tells every parked reader of this log.
func (l *Log) wakeReaders() {
	l.notifyMu.Lock()
	for _, w := range l.readers {
		w.Wake(l)
	}
	l.notifyMu.Unlock()
}
