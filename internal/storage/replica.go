package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

// Replication support: what a partition needs from its log when it has
// more than one replica. The broker's replica manager decides; the log
// only keeps the state consistent:
//
//   - Leader epochs. BecomeLeader starts an epoch at the log end offset;
//     appends are stamped with it. A follower's appends keep the leader's
//     offsets and epochs (AppendReplica) and extend the epoch cache from
//     them.
//   - The high watermark. In replicated mode (SetReplicated) it is set from
//     outside: on the leader it is the minimum log end over the ISR
//     (counted only once fsynced on each replica with a durable high
//     watermark), on a follower what the leader last reported, clamped to
//     its own log end. It never moves backwards except by truncation.
//   - Truncation to where a follower's log diverged from its leader's
//     (TruncateTo) or, when the leader's log starts beyond the follower's
//     end, starting over empty (TruncateFullyAndStartAt).
//   - OnLocalEnd: told whenever the offset this replica can count towards
//     the high watermark moves (after an fsync with a durable high
//     watermark, after an append without one).

// ErrNotLeader: the log stopped being led in the epoch a wait started in
// (the broker answers NOT_LEADER_OR_FOLLOWER). Addition to the agreed API.
var ErrNotLeader = errors.New("storage: leadership changed")

// ErrUnexpectedOffset: a replicated batch does not follow the log end.
var ErrUnexpectedOffset = errors.New("storage: replicated batch does not follow the log end")

// BecomeLeader makes appends carry epoch and records that the epoch starts
// at the log end offset. It returns the role generation, which
// WaitHighWatermark uses to notice a later change of role.
func (l *Log) BecomeLeader(epoch int32) int64 {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if epoch >= l.leaderEpoch || l.leaderEpoch < 0 {
		l.leaderEpoch = epoch
	}
	l.assignEpoch(epoch, l.leo)
	// Not written here (thousands of partitions change leader at once, and
	// at every start): an entry with no data yet is not needed after a
	// crash. The first append under it writes the file (appendLocked), and
	// one lost in a crash is rebuilt at load from the batches (loadEpochs).
	l.mu.Lock()
	l.roleGen++
	l.following = false
	gen := l.roleGen
	l.mu.Unlock()
	l.wakeReaders()
	return gen
}

// BecomeFollower ends any leadership (high watermark waits in progress
// return ErrNotLeader) and starts a new role generation: the broker calls
// it for every new leader or leader epoch, so a fetch from a previous
// leader cannot change the log any more. It returns the generation.
func (l *Log) BecomeFollower() int64 {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	l.roleGen++
	l.following = true
	gen := l.roleGen
	l.mu.Unlock()
	l.wakeReaders()
	return gen
}

// checkFollowing refuses a follower operation from a fetch made in
// another role generation. Caller holds appendMu (roleGen and following
// only change under it).
func (l *Log) checkFollowing(gen int64) error {
	if !l.following || l.roleGen != gen {
		return ErrNotLeader
	}
	return nil
}

// RoleGen is the current role generation (see BecomeLeader).
func (l *Log) RoleGen() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.roleGen
}

// SetReplicated switches the high watermark between replicated mode (set
// with SetHighWatermark) and the single-replica rule (the durable offset
// or the log end). Entering replicated mode starts from the high watermark
// the log has now, so it never moves backwards.
func (l *Log) SetReplicated(on bool) {
	l.mu.Lock()
	if on && !l.repl {
		hw := l.hwLocked()
		if l.replHWSaved {
			// Restarted: the checkpointed high watermark, not the durable
			// offset, which may hold records the ISR never had.
			hw = min(hw, max(l.logStart, l.replHW))
		}
		l.replHW = hw
	}
	l.replHWSaved = false
	changed := l.repl != on
	l.repl = on
	l.mu.Unlock()
	if changed {
		l.wakeReaders()
	}
}

// Replicated reports whether the high watermark is set from outside.
func (l *Log) Replicated() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.repl
}

// SetHighWatermark advances the replicated high watermark to hw (clamped
// to the log end) and wakes parked readers if it moved. It reports
// whether it moved.
func (l *Log) SetHighWatermark(hw int64) bool {
	l.mu.Lock()
	hw = min(hw, l.leo)
	moved := l.repl && hw > l.replHW
	if moved {
		l.replHW = hw
	}
	l.mu.Unlock()
	if moved {
		l.wakeReaders()
	}
	return moved
}

// LocalEnd is the offset this replica counts towards the high watermark:
// the durable offset with a durable high watermark, else the log end.
func (l *Log) LocalEnd() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.store.hwDurable.Load() {
		return l.durable
	}
	return l.leo
}

// OnLocalEnd sets the function told when LocalEnd may have moved. It runs
// on the appending or fsyncing goroutine with no log lock held.
func (l *Log) OnLocalEnd(fn func()) {
	if fn == nil {
		l.onLocalEnd.Store(nil)
		return
	}
	l.onLocalEnd.Store(&fn)
}

func (l *Log) localEndMoved() {
	if fn := l.onLocalEnd.Load(); fn != nil {
		(*fn)()
	}
}

// chanWaker turns Wake calls into a channel signal.
type chanWaker chan struct{}

func (w chanWaker) Wake(*Log) {
	select {
	case w <- struct{}{}:
	default:
	}
}

// WaitHighWatermark waits until the high watermark passes offset (acks=all
// of a replicated partition). It fails with ErrNotLeader when the role
// generation moves on from gen, and with ctx's error when it ends first.
func (l *Log) WaitHighWatermark(ctx context.Context, offset int64, gen int64) error {
	w := make(chanWaker, 1)
	l.Watch(w)
	defer l.Unwatch(w)
	for {
		l.mu.RLock()
		hw, g, closed := l.hwLocked(), l.roleGen, l.closed
		l.mu.RUnlock()
		switch {
		case hw > offset:
			return nil
		case closed:
			return ErrClosed
		case g != gen:
			return ErrNotLeader
		}
		if err := l.store.failure(); err != nil {
			return err
		}
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ReadReplicaRange is ReadRange for a follower's fetch: it reads up to the
// log end, not the high watermark.
func (l *Log) ReadReplicaRange(offset int64, maxBytes int) (FileRange, ReadResult, error) {
	return l.readRange(offset, maxBytes, boundLEO, false)
}

// ReadLocal is Read up to the log end offset instead of the high
// watermark: a new group coordinator loads everything its replica has,
// since what a previous leader acknowledged may lie above this replica's
// high watermark.
func (l *Log) ReadLocal(offset int64, maxBytes int) (ReadResult, error) {
	fr, res, err := l.readRange(offset, maxBytes, boundLEO, false)
	if err != nil {
		return res, err
	}
	defer fr.Release()
	res.Records, err = fr.AppendTo(nil)
	if err != nil {
		return ReadResult{}, fmt.Errorf("storage: read %s: %w", l.dir, err)
	}
	return res, nil
}

// AppendReplica appends batches fetched from the leader as they are: with
// the leader's offsets and epochs. The first batch must not start below
// the log end. Each batch's CRC is checked; a trailing partial batch (a
// fetch cut short) is ignored. It returns the new log end offset.
//
// gen is the role generation the caller's fetch was made in: when the
// log's role changed since (it leads now, or follows another leader), the
// append is refused with ErrNotLeader. The same holds for the other
// follower operations below.
func (l *Log) AppendReplica(records []byte, gen int64) (int64, error) {
	var hdrs []batchHeader
	size := 0
	l.mu.RLock()
	prev := l.leo - 1
	segBytes := l.cfg.SegmentBytes
	l.mu.RUnlock()
	first := true
	for rest := records; len(rest) >= logOverhead; {
		b, h, err := nextBatch(rest)
		if err != nil {
			if len(hdrs) > 0 && errors.Is(err, ErrCorruptMessage) && len(rest) < int(h.size()) {
				break // partial trailing batch
			}
			if len(hdrs) > 0 {
				break
			}
			return 0, err
		}
		if first {
			if h.baseOffset <= prev {
				return 0, fmt.Errorf("%w: batch at %d, log end %d", ErrUnexpectedOffset, h.baseOffset, prev+1)
			}
			first = false
		}
		if err := verifyStored(b, &h, prev); err != nil {
			return 0, fmt.Errorf("%w: replicated batch: %v", ErrCorruptMessage, err)
		}
		prev = h.lastOffset()
		hdrs = append(hdrs, h)
		size += len(b)
		rest = rest[len(b):]
	}
	if len(hdrs) == 0 {
		return l.LogEndOffset(), nil
	}
	records = records[:size]
	if int64(size) > segBytes {
		// Split: each part must fit a segment on its own.
		var leo int64
		var err error
		for start, i := 0, 0; i < len(hdrs); {
			end, j := start, i
			for j < len(hdrs) && (j == i || int64(end-start)+hdrs[j].size() <= segBytes) {
				end += int(hdrs[j].size())
				j++
			}
			if leo, err = l.AppendReplica(records[start:end], gen); err != nil {
				return leo, err
			}
			start, i = end, j
		}
		return leo, nil
	}

	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if err := l.checkFollowing(gen); err != nil {
		return 0, err
	}
	if err := l.store.failure(); err != nil {
		return 0, err
	}
	if hdrs[0].baseOffset < l.leo {
		return 0, fmt.Errorf("%w: batch at %d, log end %d", ErrUnexpectedOffset, hdrs[0].baseOffset, l.leo)
	}
	now := l.store.now()
	last := &hdrs[len(hdrs)-1]
	seg := l.segs[len(l.segs)-1]
	if l.shouldRoll(seg, int64(size), last.maxTimestamp, last.lastOffset(), now.UnixMilli()) ||
		(seg.size > 0 && hdrs[0].baseOffset-seg.base > 1<<31-1) {
		if err := l.rollAtLocked(now, hdrs[0].baseOffset); err != nil {
			return 0, err
		}
		seg = l.segs[len(l.segs)-1]
	} else if seg.size == 0 && seg.base != hdrs[0].baseOffset && len(l.segs) == 1 && l.leo == seg.base {
		// An empty log taking data that starts later (the leader's log
		// start is beyond offset 0): start the segment there.
		if err := l.restartEmptyLocked(hdrs[0].baseOffset, now); err != nil {
			return 0, err
		}
		seg = l.segs[len(l.segs)-1]
	}
	at := seg.size
	end := at + int64(size)
	if l.cfg.Preallocate && end > seg.zeroedTo {
		l.zeroAhead(seg, end)
	}
	if _, err := seg.log.WriteAt(records, at); err != nil {
		if terr := seg.log.Truncate(at); terr != nil {
			l.logger.Error("cannot truncate after failed write", "file", seg.name(), "err", terr)
		}
		return 0, l.store.fail(fmt.Errorf("write %s: %w", seg.name(), err))
	}
	if end > seg.zeroedTo {
		seg.zeroedTo = end
	}
	var ended []completedTxn
	for i, p := 0, 0; i < len(hdrs); i++ {
		h := &hdrs[i]
		var m txnMarker
		if h.isControl() {
			m = parseMarker(records[p : p+int(h.size())])
		}
		p += int(h.size())
		if t, ok := replayProducer(l.producers, h, m); ok {
			ended = append(ended, t)
		}
		if n := len(l.epochs); h.leaderEpoch >= 0 && (n == 0 || h.leaderEpoch > l.epochs[n-1].epoch) {
			l.assignEpoch(h.leaderEpoch, h.baseOffset)
		}
	}
	unstable := l.firstUnstableLocked()
	l.mu.Lock()
	p := at
	for i := range hdrs {
		seg.indexBatch(&hdrs[i], p, l.cfg.IndexIntervalBytes)
		p += hdrs[i].size()
	}
	seg.size = end
	seg.modified = now
	var abortedIn []*segment
	for _, t := range ended {
		if t.abort {
			if sg := l.addAbortedLocked(AbortedTxn{ProducerID: t.pid, FirstOffset: t.first, LastOffset: t.last,
				LastStableOffset: min(unstable, t.last+1)}); sg != nil && !slices.Contains(abortedIn, sg) {
				abortedIn = append(abortedIn, sg)
			}
		}
	}
	l.unstable = unstable
	l.leo = last.lastOffset() + 1
	leo := l.leo
	l.mu.Unlock()
	for _, sg := range abortedIn {
		l.saveAborted(sg)
	}
	if n := len(l.epochs); n > 0 {
		l.leaderEpoch = max(l.leaderEpoch, l.epochs[n-1].epoch)
	}
	l.writeEpochs(false)
	l.wake()
	if l.store.hwDurable.Load() {
		l.store.requestSync(l)
	} else {
		l.localEndMoved()
	}
	return leo, nil
}

// rollAtLocked is rollLocked for a new segment based at base (>= leo):
// replicated data may skip offsets. Caller holds appendMu.
func (l *Log) rollAtLocked(now time.Time, base int64) error {
	if base == l.leo {
		return l.rollLocked(now)
	}
	// Roll at the log end first, then restart that empty segment at base.
	if err := l.rollLocked(now); err != nil {
		return err
	}
	return l.restartEmptyLocked(base, now)
}

// restartEmptyLocked replaces the empty active segment by one based at
// base >= leo, moving the log end (and, for an empty log, the log start)
// there. Caller holds appendMu.
func (l *Log) restartEmptyLocked(base int64, now time.Time) error {
	old := l.segs[len(l.segs)-1]
	if old.size != 0 || base < l.leo {
		return fmt.Errorf("storage: restart of a non-empty segment %s", old.name())
	}
	if base == old.base {
		return nil
	}
	ns, err := createSegment(l.fsys, l.dir, base, now)
	if err != nil {
		removeSegmentFiles(l.fsys, l.dir, base)
		return l.store.fail(fmt.Errorf("roll %s: %w", l.dir, err))
	}
	l.mu.Lock()
	segs := make([]*segment, len(l.segs))
	copy(segs, l.segs)
	segs[len(segs)-1] = ns
	l.segs = segs
	if len(segs) == 1 {
		l.logStart = base
	}
	l.leo = base
	if l.durable < base && l.durable >= old.base {
		// Nothing lies between: the empty segment held no data.
		l.durable = base
	}
	l.rollGen++
	l.mu.Unlock()
	old.removeFiles()
	old.release()
	return nil
}

// TruncateTo removes every batch at or after offset (a follower whose log
// diverged from its new leader's). A batch that holds offset goes whole,
// so the log may end below offset. Producer state and the epoch cache are
// rebuilt to match; the high watermark is clamped. Offsets below the log
// start empty the log and restart it at offset.
func (l *Log) TruncateTo(offset int64, gen int64) error {
	return l.followerOp(gen, func() error { return l.truncateLocked(offset) })
}

// followerOp runs fn under segsMu and appendMu if the log is open and
// still follows in role generation gen.
func (l *Log) followerOp(gen int64, fn func() error) error {
	l.segsMu.Lock()
	defer l.segsMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.checkFollowing(gen); err != nil {
		return err
	}
	return fn()
}

func (l *Log) truncateLocked(offset int64) error {
	if offset >= l.leo {
		// Nothing to cut, but as Kafka does, drop an epoch entry at the
		// log end: a leader that appended nothing in its epoch before
		// another was elected. Kept, it would make the follower's
		// LastFetchedEpoch diverge again and again.
		l.truncateEpochsEnd(l.leo)
		l.writeEpochsLocked()
		return nil
	}
	if offset < l.logStart {
		return l.truncateFullyLocked(offset)
	}
	i := len(l.segs) - 1
	for i > 0 && l.segs[i].base > offset {
		i--
	}
	sg := l.segs[i]
	// Where in sg the first batch ending at or after offset starts.
	v := viewOf(sg)
	pos := lookupOffset(v.idx, offset-sg.base)
	var hb [batchHeaderSize]byte
	for pos < v.size {
		h, err := sg.readHeader(hb[:offBaseTimestamp], pos, v.size)
		if err != nil {
			return err
		}
		if h.lastOffset() >= offset {
			break
		}
		pos += h.size()
	}
	// Open the kept segment anew: readers of the old object keep theirs.
	if err := sg.log.Truncate(pos); err != nil {
		return l.store.fail(fmt.Errorf("truncate %s: %w", sg.name(), err))
	}
	ns, err := openSegment(l.fsys, l.dir, sg.base)
	if err != nil {
		return l.store.fail(fmt.Errorf("reopen %s: %w", sg.name(), err))
	}
	if _, err := ns.recover(-1, l.cfg.IndexIntervalBytes); err != nil {
		ns.release()
		return l.store.fail(fmt.Errorf("rescan %s: %w", sg.name(), err))
	}
	ns.created, ns.modified = sg.created, l.store.now()
	ns.zeroedTo = ns.size
	ns.bytesSinceIndex = int(ns.size)
	if k := len(ns.offIdx); k > 0 {
		ns.bytesSinceIndex = int(ns.size - int64(ns.offIdx[k-1].pos))
	}
	if err := ns.writeIndexes(false); err != nil {
		l.logger.Warn("cannot write indexes after truncation", "file", ns.name(), "err", err)
	}
	removed := l.segs[i+1:]
	// syncMu: an fsync round in progress uses the unsynced segments
	// without references of its own.
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	segs := make([]*segment, i+1)
	copy(segs, l.segs[:i+1])
	segs[i] = ns
	l.segs = segs
	l.leo = ns.base
	if ns.size > 0 {
		l.leo = ns.lastOff + 1
	}
	l.durable = min(l.durable, l.leo)
	l.hwSet = false
	l.replHW = min(l.replHW, l.leo)
	var keep []*segment
	for _, u := range l.unsynced {
		if u.base < ns.base {
			keep = append(keep, u)
		} else {
			defer u.release()
		}
	}
	l.unsynced = keep
	l.rollGen++
	newLeo := l.leo
	l.mu.Unlock()
	sg.release()
	for _, r := range removed {
		r.removeFiles()
		r.release()
	}
	l.truncateEpochsEnd(newLeo)
	l.writeEpochsLocked()
	for _, o := range listSnapshots(l.fsys, l.dir) {
		if o > newLeo {
			l.fsys.Remove(segmentPath(l.dir, o, extSnapshot))
		}
	}
	if _, err := l.loadProducers(listSnapshots(l.fsys, l.dir)); err != nil {
		return err
	}
	l.logger.Info("truncated log", "to", newLeo)
	l.store.requestSync(l)
	l.wake()
	l.wakeReaders()
	return nil
}

// TruncateFullyAndStartAt empties the log and restarts it at offset: a
// follower whose log ends before the leader's log start.
func (l *Log) TruncateFullyAndStartAt(offset int64, gen int64) error {
	return l.followerOp(gen, func() error { return l.truncateFullyLocked(offset) })
}

func (l *Log) truncateFullyLocked(offset int64) error {
	now := l.store.now()
	removeSegmentFiles(l.fsys, l.dir, offset) // a leftover of ours at that base
	ns, err := createSegment(l.fsys, l.dir, offset, now)
	if err != nil {
		return l.store.fail(fmt.Errorf("restart %s: %w", l.dir, err))
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	old := l.segs
	unsynced := l.unsynced
	l.segs = []*segment{ns}
	l.unsynced = nil
	l.logStart, l.leo, l.durable = offset, offset, offset
	l.unstable = math.MaxInt64
	l.hwSet = false
	l.replHW = offset
	l.epochs = nil
	l.rollGen++
	l.mu.Unlock()
	for _, s := range unsynced {
		s.release()
	}
	for _, s := range old {
		if s.base != offset {
			s.removeFiles()
		}
		s.release()
	}
	l.epochsDirty = true
	l.writeEpochsLocked()
	for _, o := range listSnapshots(l.fsys, l.dir) {
		l.fsys.Remove(segmentPath(l.dir, o, extSnapshot))
	}
	l.producers = make(map[int64]*producerState)
	if err := syncDir(l.fsys, l.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return l.store.fail(err)
	}
	l.logger.Info("emptied log to restart it", "at", offset)
	l.wake()
	l.wakeReaders()
	return nil
}

// AdvanceLogStart moves a follower's log start offset up to its leader's
// (DeleteRecords or retention there), never past the log end, and removes
// segments wholly below it. It reports whether it moved.
func (l *Log) AdvanceLogStart(offset int64, gen int64) (moved bool, err error) {
	err = l.followerOp(gen, func() error {
		offset = min(offset, l.leo)
		if offset <= l.logStart {
			return nil
		}
		l.mu.Lock()
		l.logStart = offset
		l.mu.Unlock()
		l.truncateEpochsStart(offset)
		l.writeEpochsLocked()
		l.deleteBelowLogStart()
		moved = true
		return nil
	})
	return moved, err
}
