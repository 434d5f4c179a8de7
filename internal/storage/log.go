package storage

// Concurrency: who owns what, and the lock order.
//
// A Log's locks, always taken in this order:
//
//	cleanMu  →  segsMu  →  appendMu  →  syncMu  →  mu  →  notifyMu
//
//   - cleanMu: one log cleaner pass at a time (cleaner.go).
//   - segsMu: held by whatever removes or replaces segments other than the
//     active one (retention, DeleteRecords, truncation, close, the
//     cleaner's swap), so that a cleaner swap committed on disk is never
//     overtaken by another removal; appends do not take it.
//   - appendMu serializes everything that changes the log's contents or
//     shape: Append, roll, retention and DeleteRecords, SetConfig, close. It
//     owns the producer state (producers), the appender fields of the active
//     segment (bytesSinceIndex, zeroedTo) and is held across the write(2) of
//     an append, so writes to the active segment never interleave.
//   - syncMu serializes fsync rounds of this log (syncNow), whether started
//     by the Store's group-commit syncer, FlushDue or close.
//   - mu (RWMutex) guards the published view that readers use: the segment
//     list, each segment's size/indexes/timestamps, logStart, leo, durable,
//     cfg, the unsynced-segment list and closed. Writers hold it only to
//     publish, after the bytes are in the file, so readers never see an
//     offset whose bytes have not reached the OS. Fields written under mu
//     are also only written while appendMu is held, so code holding appendMu
//     may read them without mu.
//   - notifyMu guards the Subscribe channel and the parked readers
//     (Watch/Unwatch). It is a leaf.
//
// High watermark. With Store.SetDurableHighWatermark(true) (the broker's
// gregor.durability=fsync) the high watermark is the durable offset: a
// record becomes readable only once an fsync covers it, so no reader ever
// sees a record that a crash can take back. Every append then queues an
// fsync round without waiting for it (Store.requestSync), so records of
// producers that do not wait (acks=0/1) become visible one group-commit
// round later. Otherwise the high watermark is the log end offset. Either
// way logStart <= HW <= leo, and reads never return a batch at or above
// the HW. Parked readers (Watch) are woken when the HW advances: on append
// without durable HW, after the fsync with it.
//
// Readers (Read, ReadRange, OffsetForTimestamp, MaxTimestamp) take mu.RLock
// only long enough to pick a segment, copy its published size and index
// slice headers and take a segment reference; the file I/O happens without
// any Log lock. Segment references (segment.refs) keep a file open while it
// is read even if retention unlinks it meanwhile; readers only ever read
// below the published size, which only grows, so they never see a torn batch.
//
// Store-level locks: Store.mu (the partition map) and the syncer's queue
// mutex are leaves: nothing else is locked while they are held. ckptMu
// (Checkpoint) is taken before Log.mu, so Log code must not call
// Store.Checkpoint while holding a Log lock (DeleteRecordsBefore calls it
// after unlocking).

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// zeroChunk is how far ahead of the writer preallocation zero-fills.
const zeroChunk = 1 << 20

// zeroBuf is the source of preallocation writes. It is written once at
// startup on purpose: a never-touched allocation is backed by the kernel's
// shared zero page, and copying from it into the page cache measured ~2.5x
// slower on the target VM than copying from ordinary resident memory.
var zeroBuf = func() []byte {
	b := make([]byte, zeroChunk)
	for i := range b {
		b[i] = 1
	}
	clear(b)
	return b
}()

// Log is one partition: an ordered list of segments, the last one active.
type Log struct {
	store     *Store
	topic     string
	partition int32
	topicID   [16]byte
	dir       string
	fsys      FS
	logger    *slog.Logger

	appendMu  sync.Mutex
	producers map[int64]*producerState // appendMu
	// cleanMu: one log cleaner pass at a time (cleaner.go); taken before
	// segsMu and appendMu. A pass holds appendMu only to plan.
	cleanMu sync.Mutex
	// segsMu: held by whatever removes or replaces segments other than the
	// active one (retention, DeleteRecords, truncation, close, the
	// cleaner's swap), so a swap committed on disk is never overtaken by
	// another removal. Appends do not take it: a swap does not block them.
	segsMu sync.Mutex

	syncMu sync.Mutex

	mu       sync.RWMutex
	cfg      LogConfig
	segs     []*segment // copy-on-write; the last is active
	logStart int64
	leo      int64
	durable  int64 // recovery point: offsets below it are fsynced
	// hwBase/hwPos: where the durable data ended in the file when durable
	// was last advanced (segment base, byte size), so a read can stop at
	// the high watermark without walking headers. Valid if hwSet.
	hwSet         bool
	hwBase, hwPos int64
	lastFlush     time.Time  // time of the last fsync round (flush.ms)
	unsynced      []*segment // rolled segments not yet fsynced; each holds a ref
	rollGen       int64      // bumped when a segment file is created
	dirSyncGen    int64      // rollGen covered by the last directory fsync
	closed        bool
	// unstable is the first offset of an open transaction (the smallest
	// txnFirst in producers), MaxInt64 if none: the LSO's bound. Written
	// under appendMu and mu.
	unstable int64

	// Leader epochs and replication (epochs.go, replica.go).
	epochs      []epochEntry // leader epoch cache; written under appendMu, published under mu
	epochsDirty bool         // appendMu; the file lags the cache
	leaderEpoch int32        // appendMu; the epoch appends are stamped with
	roleGen     int64        // mu; bumped by BecomeLeader/BecomeFollower
	following   bool         // mu
	repl        bool         // mu; the high watermark is set from outside (replHW)
	replHW      int64        // mu
	replHWSaved bool         // mu; replHW is the checkpointed one, not yet used
	onLocalEnd  atomic.Pointer[func()]

	notifyMu sync.Mutex
	notify   chan struct{}
	readers  []Waker // parked fetches (Watch); notifyMu

	syncQueued atomic.Bool // an fsync round for this log is requested (requestSync)
}

// Topic returns the topic name.
func (l *Log) Topic() string { return l.topic }

// Partition returns the partition number.
func (l *Log) Partition() int32 { return l.partition }

// TopicID returns the topic's 16-byte UUID (partition.metadata).
func (l *Log) TopicID() [16]byte { return l.topicID }

// Dir returns the partition directory.
func (l *Log) Dir() string { return l.dir }

// Config returns the current configuration.
func (l *Log) Config() LogConfig {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg
}

// SetConfig changes the configuration at runtime (AlterConfigs). New values
// apply from the next append, roll or retention run. Unusable values (zero
// segment.bytes, ...) are replaced by defaults.
func (l *Log) SetConfig(cfg LogConfig) {
	cfg = cfg.sanitized()
	l.appendMu.Lock()
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
	l.appendMu.Unlock()
}

// LogStartOffset is the first offset that may be read.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logStart
}

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.leo
}

// HighWatermark is the offset below which records may be read: the log
// end offset, or with a durable high watermark the fsynced offset (see the
// top of this file). Gregor is a single node, so there is no replication to
// wait for.
func (l *Log) HighWatermark() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.hwLocked()
}

// RecoveryPoint is the offset below which everything has been fsynced.
// Addition to the agreed API.
func (l *Log) RecoveryPoint() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.durable
}

// Size is the number of bytes of all segments (DescribeLogDirs).
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Subscribe returns a channel that is closed by the next successful append.
func (l *Log) Subscribe() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	if l.notify == nil {
		l.notify = make(chan struct{})
	}
	return l.notify
}

func (l *Log) wake() {
	l.notifyMu.Lock()
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	l.notifyMu.Unlock()
}

// ProducerInfo describes one idempotent producer's state (debugging).
type ProducerInfo struct {
	ProducerID    int64
	Epoch         int16
	LastSequence  int32 // -1 if no batch in this epoch yet
	LastOffset    int64 // -1 if no batch in this epoch yet
	LastTimestamp int64
	Batches       int // retained batch metadata entries (at most 5)
	// CoordinatorEpoch of the producer's last marker, -1 if none.
	CoordinatorEpoch int32
	// TxnStartOffset is the first offset of its open transaction, -1 if none.
	TxnStartOffset int64
}

// ProducerIDs lists the producer state, sorted by producer id.
func (l *Log) ProducerIDs() []ProducerInfo {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	out := make([]ProducerInfo, 0, len(l.producers))
	for pid, st := range l.producers {
		pi := ProducerInfo{ProducerID: pid, Epoch: st.epoch, LastSequence: -1, LastOffset: -1,
			LastTimestamp: st.lastTimestamp, Batches: st.n, CoordinatorEpoch: st.coordEpoch, TxnStartOffset: -1}
		if st.txnOpen {
			pi.TxnStartOffset = st.txnFirst
		}
		if b := st.last(); b != nil {
			pi.LastSequence, pi.LastOffset = b.lastSeq, b.lastOffset
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

// AppendResult describes a successful Append.
type AppendResult struct {
	BaseOffset     int64 // offset of the first record appended (for a duplicate: the original one)
	LastOffset     int64
	LogAppendTime  int64 // broker time used, ms; -1 if the topic uses CreateTime
	LogStartOffset int64
	Duplicate      bool // idempotent duplicate of one of the last 5 batches: nothing was written
	// Replicated: the log's high watermark is the ISR's (SetReplicated);
	// wait for it with WaitHighWatermark(ctx, LastOffset, RoleGen).
	Replicated bool
	RoleGen    int64 // the role generation the append happened in
}

// Append validates and appends one or more v2 batches (the raw records of a
// Produce request partition). It rewrites records in place: baseOffset and
// partitionLeaderEpoch always (they are outside the CRC), and for
// LogAppendTime topics maxTimestamp and the timestamp-type attribute, with
// the CRC recomputed. All or nothing: after any error nothing was written.
//
// Append returns once the bytes were handed to the OS (write(2)), not after
// fsync; use WaitDurable for that. With flush.messages configured, Append
// itself waits for the fsync when that many messages are unflushed.
//
// Idempotent producers (producerId >= 0) are checked against their epoch and
// sequence; a retry of one of the last 5 batches returns Duplicate with the
// original offsets. A transactional batch opens the producer's transaction
// on this partition (txn.go); a non-transactional one while it is open is
// ErrInvalidTxnState. Control batches come from AppendMarker only.
func (l *Log) Append(records []byte) (AppendResult, error) {
	return l.append(records, false)
}

func (l *Log) append(records []byte, coordinator bool) (AppendResult, error) {
	if len(records) == 0 {
		return AppendResult{}, fmt.Errorf("%w: empty record set", ErrInvalidRecord)
	}
	l.mu.RLock()
	maxMsg, segBytes, compact := l.cfg.MaxMessageBytes, l.cfg.SegmentBytes, l.cfg.Compact
	l.mu.RUnlock()
	var keyless []int32
	var index int32

	// Validate outside the lock: the CRC32C and the walk over the records
	// (decompressing them) are the CPU work of the append path.
	var hbuf [2]batchHeader
	hdrs := hbuf[:0]
	for rest := records; len(rest) > 0; {
		b, h, err := nextBatch(rest)
		if err != nil {
			return AppendResult{}, err
		}
		if h.size() > int64(maxMsg) {
			return AppendResult{}, fmt.Errorf("%w: batch of %d bytes, max.message.bytes is %d", ErrMessageTooLarge, h.size(), maxMsg)
		}
		if err := checkShape(b, &h); err != nil {
			return AppendResult{}, err
		}
		var kl *[]int32
		if compact && !h.isControl() {
			kl = &keyless
		}
		if err := validateRecords(b, &h, kl, index); err != nil {
			return AppendResult{}, err
		}
		index += h.recordCount
		hdrs = append(hdrs, h)
		rest = rest[len(b):]
	}
	if len(keyless) > 0 {
		return AppendResult{}, &KeylessError{Positions: keyless}
	}
	if int64(len(records)) > segBytes {
		return AppendResult{}, fmt.Errorf("%w: %d bytes, segment.bytes is %d", ErrRecordListTooLarge, len(records), segBytes)
	}

	res, flush, err := func() (AppendResult, bool, error) {
		l.appendMu.Lock()
		defer l.appendMu.Unlock() // even if a bug panics: a held appendMu wedges the partition
		return l.appendLocked(records, hdrs, coordinator)
	}()
	if err != nil || res.Duplicate {
		return res, err
	}
	l.afterAppend()
	if flush {
		if err := l.WaitDurable(context.Background(), res.LastOffset); err != nil {
			// The records are in the log (and visible), but not durable.
			return res, err
		}
	}
	return res, nil
}

// afterAppend tells whoever waits for the log to grow.
func (l *Log) afterAppend() {
	l.wake()
	l.mu.RLock()
	repl := l.repl
	l.mu.RUnlock()
	if l.store.hwDurable.Load() {
		// Visible only after an fsync: start one now instead of leaving
		// acks=0/1 records invisible until flush.ms.
		l.store.requestSync(l)
	} else {
		l.localEndMoved()
	}
	if repl || !l.store.hwDurable.Load() {
		// Followers' fetches read up to the log end: wake them now.
		l.wakeReaders()
	}
}

// appendLocked does the part of Append that needs appendMu. flush reports
// whether flush.messages asks for an fsync now.
func (l *Log) appendLocked(records []byte, hdrs []batchHeader, coordinator bool) (res AppendResult, flush bool, err error) {
	if l.closed {
		return res, false, ErrClosed
	}
	if err := l.store.failure(); err != nil {
		return res, false, err
	}
	cfg := &l.cfg

	// Producer state: stage every batch's effect, commit only on success.
	var staged stagedProducers
	next := l.leo
	for i := range hdrs {
		h := &hdrs[i]
		if h.producerID >= 0 {
			st := staged.get(h.producerID, l.producers)
			dup, err := checkProducer(st, h, next, coordinator)
			if err != nil {
				return res, false, err
			}
			if dup != nil {
				l.mu.RLock()
				res = AppendResult{BaseOffset: dup.firstOffset, LastOffset: dup.lastOffset,
					LogAppendTime: -1, LogStartOffset: l.logStart, Duplicate: true,
					Replicated: l.repl, RoleGen: l.roleGen}
				l.mu.RUnlock()
				if cfg.TimestampType == LogAppendTime {
					res.LogAppendTime = dup.timestamp
				}
				return res, false, nil
			}
		}
		next += int64(h.lastOffsetDelta) + 1
	}

	now := l.store.now()
	nowMs := now.UnixMilli()
	base := l.leo
	epoch := max(l.leaderEpoch, 0)
	if n := len(l.epochs); n == 0 || l.epochs[n-1].epoch < epoch {
		l.assignEpoch(epoch, base)
	}
	l.writeEpochs(false) // if an epoch was assigned since the last write
	off, pos := base, 0
	maxTs := int64(-1)
	for i := range hdrs {
		h := &hdrs[i]
		b := records[pos : pos+int(h.size())]
		binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
		binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
		h.baseOffset, h.leaderEpoch = off, epoch
		switch {
		case cfg.TimestampType == LogAppendTime:
			setLogAppendTime(b, nowMs)
			h.maxTimestamp = nowMs
			h.attributes |= attrTimestampType
		case h.logAppendTime():
			clearLogAppendTime(b)
			h.attributes &^= attrTimestampType
		}
		maxTs = max(maxTs, h.maxTimestamp)
		off += int64(h.lastOffsetDelta) + 1
		pos += len(b)
	}
	// These offsets are only rewritten again by the next attempt, so a
	// failed append leaves the caller's buffer consistent with its error.

	seg := l.segs[len(l.segs)-1]
	if l.shouldRoll(seg, int64(len(records)), maxTs, off-1, nowMs) {
		if err := l.rollLocked(now); err != nil {
			return res, false, err
		}
		seg = l.segs[len(l.segs)-1]
	}

	at := seg.size
	end := at + int64(len(records))
	if cfg.Preallocate && end > seg.zeroedTo {
		l.zeroAhead(seg, end)
	}
	if _, err := seg.log.WriteAt(records, at); err != nil {
		// Cut a partial write back so the file ends on a batch boundary; the
		// dir is failed either way, as Kafka takes a log dir offline on an
		// I/O error.
		if terr := seg.log.Truncate(at); terr != nil {
			l.logger.Error("cannot truncate after failed write", "file", seg.name(), "err", terr)
		}
		return res, false, l.store.fail(fmt.Errorf("write %s: %w", seg.name(), err))
	}
	if end > seg.zeroedTo {
		seg.zeroedTo = end
	}

	unstable := l.unstable
	for i := range staged {
		if u := &staged[i]; u.state.txnOpen {
			if cur := l.producers[u.pid]; cur == nil || !cur.txnOpen {
				unstable = min(unstable, u.state.txnFirst)
			}
		}
	}
	l.mu.Lock()
	p := at
	for i := range hdrs {
		seg.indexBatch(&hdrs[i], p, cfg.IndexIntervalBytes)
		p += hdrs[i].size()
	}
	seg.size = end
	seg.modified = now
	l.unstable = unstable // with leo: never a moment where the LSO passes an open transaction
	l.leo = off
	flush = l.leo-l.durable >= cfg.FlushMessages
	repl, gen := l.repl, l.roleGen
	l.mu.Unlock()

	for i := range staged {
		u := &staged[i]
		if cur := l.producers[u.pid]; cur != nil {
			*cur = u.state
		} else {
			st := u.state
			l.producers[u.pid] = &st
		}
	}

	res = AppendResult{BaseOffset: base, LastOffset: off - 1, LogAppendTime: -1, LogStartOffset: l.logStart,
		Replicated: repl, RoleGen: gen}
	if cfg.TimestampType == LogAppendTime {
		res.LogAppendTime = nowMs
	}
	return res, flush, nil
}

// shouldRoll applies Kafka's roll rules to an append of n bytes whose
// largest timestamp is maxTs and last offset lastOffset.
func (l *Log) shouldRoll(seg *segment, n, maxTs, lastOffset, nowMs int64) bool {
	if seg.size == 0 {
		return false
	}
	cfg := &l.cfg
	if seg.size+n > cfg.SegmentBytes {
		return true
	}
	// segment.ms counts from the first batch's timestamp if it has one
	// (compared with the incoming batch's), else from segment creation.
	waited := nowMs - seg.created.UnixMilli()
	if seg.firstTs >= 0 {
		waited = maxTs - seg.firstTs
	}
	if waited > cfg.SegmentMs {
		return true
	}
	return seg.indexFull(cfg) || lastOffset-seg.base > math.MaxInt32
}

// zeroAhead zero-fills the active segment from what exists up to the next
// 1 MiB boundary past end (never beyond segment.bytes unless the data is).
// The data write that follows overwrites the zeros; what it buys is that
// page-cache pages and disk blocks exist and the file size is already
// final for this stretch, so the write and the next fdatasync do less.
// Failure only disables the optimization.
func (l *Log) zeroAhead(seg *segment, end int64) {
	target := (end + zeroChunk - 1) / zeroChunk * zeroChunk
	if target > l.cfg.SegmentBytes {
		target = max(end, l.cfg.SegmentBytes)
	}
	from := seg.zeroedTo
	for from < target {
		n := min(int64(len(zeroBuf)), target-from)
		if _, err := seg.log.WriteAt(zeroBuf[:n], from); err != nil {
			l.logger.Debug("preallocation failed", "file", seg.name(), "err", err)
			// Whatever part was written is zeros beyond the data: harmless.
			return
		}
		from += n
	}
	seg.zeroedTo = target
}

// rollLocked closes the active segment for appends and starts a new one at
// the log end offset. Caller holds appendMu.
//
// The new segment is created before the old one is finished, so a roll
// that cannot open files (EMFILE: transient, see Store.fail) changes
// nothing: the old segment stays active and whole, the append that wanted
// the roll is refused, and the next append tries the roll again.
func (l *Log) rollLocked(now time.Time) error {
	old := l.segs[len(l.segs)-1]
	if old.size == 0 {
		return nil
	}
	ns, err := createSegment(l.fsys, l.dir, l.leo, now)
	if err != nil {
		removeSegmentFiles(l.fsys, l.dir, l.leo)
		return l.store.fail(fmt.Errorf("roll %s: %w", l.dir, err))
	}
	if err := l.finishSegment(old); err != nil {
		ns.release()
		removeSegmentFiles(l.fsys, l.dir, l.leo)
		return l.store.fail(err)
	}
	// Kafka snapshots producer state at every roll, named by the new base.
	l.writeSnapshot(l.leo, false)

	old.acquire() // the unsynced list's reference
	l.mu.Lock()
	segs := make([]*segment, len(l.segs), len(l.segs)+1)
	copy(segs, l.segs)
	l.segs = append(segs, ns)
	l.unsynced = append(l.unsynced, old)
	l.rollGen++
	l.mu.Unlock()
	if !l.store.hwDurable.Load() {
		// Kafka flushes a rolled segment in the background whatever
		// flush.ms says. Here it also frees the unsynced list's reference:
		// without a round, a segment that retention or the cleaner
		// removes would stay open, its disk space held, until close.
		l.store.requestSync(l)
	}
	l.logger.Debug("rolled segment", "topic", l.topic, "partition", l.partition, "base", ns.base)
	return nil
}

// removeSegmentFiles unlinks what a failed createSegment may have left.
// base is above every published segment's base, so nothing live is named so.
func removeSegmentFiles(fsys FS, dir string, base int64) {
	for _, ext := range []string{extLog, extIndex, extTimeIndex, extTxnIndex} {
		fsys.Remove(segmentPath(dir, base, ext))
	}
}

// finishSegment prepares a segment that will take no more appends: the final
// time index entry, index files written, preallocated tail trimmed.
func (l *Log) finishSegment(seg *segment) error {
	l.mu.Lock()
	seg.appendTimeEntry()
	l.mu.Unlock()
	if err := seg.writeIndexes(false); err != nil {
		return fmt.Errorf("write indexes of %s: %w", seg.name(), err)
	}
	if seg.zeroedTo > seg.size {
		if err := seg.log.Truncate(seg.size); err != nil {
			return fmt.Errorf("trim %s: %w", seg.name(), err)
		}
		seg.zeroedTo = seg.size
	}
	return nil
}

// writeSnapshot stores the producer state as of offset. Failures are logged
// only: a missing snapshot just means a longer rebuild from the log.
func (l *Log) writeSnapshot(offset int64, sync bool) {
	data := encodeSnapshot(l.producers)
	path := segmentPath(l.dir, offset, extSnapshot)
	err := func() error {
		if sync {
			return writeFileAtomic(l.fsys, l.dir, filepath.Base(path), data)
		}
		f, err := l.fsys.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(data, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}()
	if err != nil {
		l.logger.Warn("cannot write producer snapshot", "file", path, "err", err)
		return
	}
	l.pruneSnapshots(offset)
}

// pruneSnapshots keeps the newest few snapshots (so a torn newest one can
// fall back to an older one) and none below the log start.
func (l *Log) pruneSnapshots(newest int64) {
	offs := listSnapshots(l.fsys, l.dir)
	l.mu.RLock()
	start := l.segs[0].base
	l.mu.RUnlock()
	kept := 0
	for i := len(offs) - 1; i >= 0; i-- {
		o := offs[i]
		if o > newest {
			continue
		}
		if kept < 3 && o >= start {
			kept++
			continue
		}
		l.fsys.Remove(segmentPath(l.dir, o, extSnapshot))
	}
}

// listSnapshots returns the offsets of the *.snapshot files in dir, sorted.
func listSnapshots(fsys FS, dir string) []int64 {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil
	}
	return snapshotOffsets(ents)
}

// snapshotOffsets returns the offsets of the *.snapshot files among ents,
// sorted.
func snapshotOffsets(ents []fs.DirEntry) []int64 {
	var offs []int64
	for _, e := range ents {
		if o, ok := parseOffsetName(e.Name(), extSnapshot); ok {
			offs = append(offs, o)
		}
	}
	slices.Sort(offs)
	return offs
}

// parseOffsetName parses "<20 digits><ext>".
func parseOffsetName(name, ext string) (int64, bool) {
	if len(name) != 20+len(ext) || name[20:] != ext {
		return 0, false
	}
	var o int64
	for _, c := range name[:20] {
		if c < '0' || c > '9' {
			return 0, false
		}
		if o > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		o = o*10 + int64(c-'0')
	}
	return o, true
}

// close flushes and closes the log. With remove, the caller deletes the
// directory next and nothing is flushed.
func (l *Log) close(remove bool) error {
	l.segsMu.Lock()
	defer l.segsMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return nil
	}
	var err error
	if !remove && l.store.failure() != nil {
		// An offline dir gets no more writes: nothing is flushed, and
		// Store.Close writes no clean-shutdown marker, so the next start
		// recovers the log.
		remove = true
		err = l.store.failure()
	}
	if !remove {
		active := l.segs[len(l.segs)-1]
		if ferr := l.finishSegment(active); ferr != nil {
			err = ferr
		} else if ferr := active.writeIndexes(true); ferr != nil {
			err = ferr
		}
		if serr := l.syncNow(); serr != nil && err == nil {
			err = serr
		}
		if err == nil {
			l.writeSnapshot(l.leo, true)
		}
	}
	l.mu.Lock()
	l.closed = true
	segs, unsynced := l.segs, l.unsynced
	l.unsynced = nil
	l.mu.Unlock()
	for _, s := range unsynced {
		s.release()
	}
	for _, s := range segs {
		s.release()
	}
	l.wake()
	l.wakeReaders()
	return err
}
