package storage

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
)

// The leader epoch cache: for each leader epoch the log has data of, the
// offset its first batch got. It is what OffsetForLeaderEpoch answers from
// and how a follower finds where its log diverged from a new leader's
// (KIP-101, KIP-279). Kafka keeps it in leader-epoch-checkpoint:
//
//	0            version
//	<count>
//	<epoch> <start offset>   one line per entry, epochs and offsets increasing
//
// The cache is written by the appender (appendMu) and published under mu
// for readers; every change is written to the file (a temporary file
// renamed over it) before the call that made it returns. Truncations are
// fsynced; new epochs are not (thousands of partitions change leader at
// once), so after a crash the file may be an older version: loadEpochs
// compares it with the epoch of the log's last batch and rebuilds it from
// the batch headers when it is behind.

type epochEntry struct {
	epoch int32
	start int64
}

func encodeEpochs(es []epochEntry) []byte {
	b := fmt.Appendf(nil, "%d\n%d\n", checkpointVersion, len(es))
	for _, e := range es {
		b = fmt.Appendf(b, "%d %d\n", e.epoch, e.start)
	}
	return b
}

func decodeEpochs(data []byte) ([]epochEntry, error) {
	var es []epochEntry
	err := parseCheckpoint(data, 2, func(f []string) error {
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return fmt.Errorf("leader-epoch-checkpoint entry %q %q", f[0], f[1])
		}
		if n := len(es); n > 0 && (int32(e) <= es[n-1].epoch || o < es[n-1].start) {
			return fmt.Errorf("leader-epoch-checkpoint entries out of order at %d %d", e, o)
		}
		es = append(es, epochEntry{int32(e), o})
		return nil
	})
	return es, err
}

// loadEpochs reads the cache at load time and drops what the log no
// longer holds (entries starting at or beyond the log end after a
// truncated tail). A log with data but no usable cache was written by a
// Gregor that stamped every batch with epoch 0.
func (l *Log) loadEpochs() {
	data, err := readFile(l.fsys, filepath.Join(l.dir, leaderEpochFile))
	var es []epochEntry
	if err == nil {
		es, err = decodeEpochs(data)
	}
	l.epochs = es
	stale := false
	if err == nil && l.leo > l.logStart {
		// The file is written without fsync when an epoch starts or
		// appends extend it: after a crash it may be an older version,
		// which lacks the newest epochs. The last batch tells.
		if last, ok := l.lastBatchEpoch(); ok && (len(es) == 0 || last > es[len(es)-1].epoch) {
			stale = true
		}
	}
	if err != nil || stale {
		l.logger.Warn("leader-epoch-checkpoint unreadable or behind the log; rebuilding it from the log", "err", err)
		l.rebuildEpochs()
	}
	l.truncateEpochsEnd(l.leo)
	l.truncateEpochsStart(l.logStart)
	if n := len(l.epochs); n > 0 {
		l.leaderEpoch = l.epochs[n-1].epoch
	}
}

// lastBatchEpoch is the leader epoch of the log's last batch, read by
// walking the headers from the last index entry of the last non-empty
// segment.
func (l *Log) lastBatchEpoch() (int32, bool) {
	for i := len(l.segs) - 1; i >= 0; i-- {
		sg := l.segs[i]
		if sg.size == 0 {
			continue
		}
		pos := int64(0)
		sg.ensureIndexes()
		if k := len(sg.offIdx); k > 0 {
			pos = int64(sg.offIdx[k-1].pos)
		}
		epoch, ok := int32(-1), false
		err := sg.walkHeaders(pos, sg.size, func(h *batchHeader, _ int64) bool {
			epoch, ok = h.leaderEpoch, true
			return true
		})
		if err != nil {
			return -1, false
		}
		return epoch, ok
	}
	return -1, false
}

// rebuildEpochs builds the cache from the batch headers of the whole log.
func (l *Log) rebuildEpochs() {
	l.epochs = nil
	for _, sg := range l.segs {
		if sg.size == 0 {
			continue
		}
		err := sg.walkHeaders(0, sg.size, func(h *batchHeader, _ int64) bool {
			if n := len(l.epochs); h.leaderEpoch >= 0 && (n == 0 || h.leaderEpoch > l.epochs[n-1].epoch) {
				l.epochs = append(l.epochs, epochEntry{h.leaderEpoch, max(h.baseOffset, l.logStart)})
			}
			return true
		})
		if err != nil {
			l.logger.Warn("cannot rebuild the leader epoch cache", "err", err)
			break
		}
	}
	l.epochsDirty = true
}

// writeEpochsLocked writes the cache if it changed, with an fsync (a role
// change or truncation: rare). Caller holds appendMu.
func (l *Log) writeEpochsLocked() { l.writeEpochs(true) }

// writeEpochs writes the cache if it changed; without sync the file may be
// lost in a crash and is then rebuilt from the log at load. A failure is
// logged and retried at the next change.
func (l *Log) writeEpochs(sync bool) {
	if !l.epochsDirty || l.closed {
		return
	}
	l.mu.RLock()
	data := encodeEpochs(l.epochs)
	l.mu.RUnlock()
	write := writeFileAtomic
	if !sync {
		write = renameNoSync
	}
	if err := write(l.fsys, l.dir, leaderEpochFile, data); err != nil {
		l.logger.Warn("cannot write leader-epoch-checkpoint", "err", err)
		return
	}
	l.epochsDirty = false
}

// assignEpoch records that epoch starts at offset, as Kafka's
// LeaderEpochFileCache.assign: an epoch at or below the latest one is
// ignored; entries that would not precede it (starting at or after
// offset) are replaced. Caller holds appendMu.
func (l *Log) assignEpoch(epoch int32, offset int64) {
	n := len(l.epochs)
	if n > 0 && epoch <= l.epochs[n-1].epoch {
		return
	}
	keep := n
	for keep > 0 && l.epochs[keep-1].start >= offset {
		keep--
	}
	es := make([]epochEntry, keep, keep+1)
	copy(es, l.epochs[:keep])
	es = append(es, epochEntry{epoch, offset})
	l.mu.Lock()
	l.epochs = es
	l.mu.Unlock()
	l.epochsDirty = true
}

// truncateEpochsEnd drops entries starting at or beyond end (the log was
// truncated there). Caller holds appendMu (or is loading the log).
func (l *Log) truncateEpochsEnd(end int64) {
	keep := len(l.epochs)
	for keep > 0 && l.epochs[keep-1].start >= end {
		keep--
	}
	if keep == len(l.epochs) {
		return
	}
	es := append([]epochEntry(nil), l.epochs[:keep]...)
	l.mu.Lock()
	l.epochs = es
	l.mu.Unlock()
	l.epochsDirty = true
}

// truncateEpochsStart moves the cache's start up to the log start offset:
// entries wholly below it go, and the one that covers it starts there.
// Caller holds appendMu (or is loading the log).
func (l *Log) truncateEpochsStart(start int64) {
	i := 0
	for i+1 < len(l.epochs) && l.epochs[i+1].start <= start {
		i++
	}
	if len(l.epochs) == 0 || (i == 0 && l.epochs[0].start >= start) {
		return
	}
	es := append([]epochEntry(nil), l.epochs[i:]...)
	if es[0].start < start {
		es[0].start = start
	}
	l.mu.Lock()
	l.epochs = es
	l.mu.Unlock()
	l.epochsDirty = true
}

// LatestEpoch is the newest leader epoch the log has data of (or was led
// in), or -1: a follower's LastFetchedEpoch.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if n := len(l.epochs); n > 0 {
		return l.epochs[n-1].epoch
	}
	return -1
}

// EpochOf is the leader epoch offset was written in: the newest cache
// entry starting at or below it, -1 if there is none.
func (l *Log) EpochOf(offset int64) int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	epoch := int32(-1)
	for _, e := range l.epochs {
		if e.start > offset {
			break
		}
		epoch = e.epoch
	}
	return epoch
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch as Kafka's leader epoch
// cache does: for the latest epoch, the log end offset; for an older epoch
// the start offset of the first epoch after it, with the largest epoch at
// or below the one asked; (-1, -1) for an epoch newer than every entry,
// and for any epoch when the cache is empty.
func (l *Log) EndOffsetForEpoch(epoch int32) (endOffset int64, leaderEpoch int32) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.endOffsetForLocked(epoch)
}

func (l *Log) endOffsetForLocked(epoch int32) (int64, int32) {
	es := l.epochs
	n := len(es)
	if epoch < 0 || n == 0 {
		return -1, -1
	}
	if epoch == es[n-1].epoch {
		return l.leo, epoch
	}
	hi := -1 // first entry with a larger epoch
	for i, e := range es {
		if e.epoch > epoch {
			hi = i
			break
		}
	}
	if hi < 0 {
		return -1, -1
	}
	if hi == 0 {
		return es[0].start, epoch
	}
	return es[hi].start, es[hi-1].epoch
}

// epochsString is the cache for logs and tests.
func (l *Log) epochsString() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var b bytes.Buffer
	for _, e := range l.epochs {
		fmt.Fprintf(&b, "(%d,%d)", e.epoch, e.start)
	}
	return b.String()
}

// renameNoSync replaces name in dir with data through a temporary file and
// a rename, without fsync.
func renameNoSync(fsys FS, dir, name string, data []byte) error {
	if err := writeFileNoSync(fsys, dir, name+".tmp", data); err != nil {
		return err
	}
	return fsys.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name))
}
