package storage

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gregorhq/gregor/internal/guard"
)

// Group commit. WaitDurable callers of every partition queue up; a single
// syncer goroutine per Store takes the whole queue, fsyncs each log that has
// unsynced data once, then releases all of them. While a round runs, new
// waiters queue for the next one, so under load each round covers many
// appends and the fsync rate stays at what the disk can do.
//
// Besides waiters, a log can ask for a round without waiting
// (requestSync): with a durable high watermark every append does, so that
// its records become visible one round later.
//
// A round whose fsync of a log fails transiently (out of file descriptors)
// hands the error to that log's waiters, and retries a requested round
// after syncRetryDelay; any other failure takes the log dir offline.

type waiter struct {
	l      *Log
	offset int64
	ch     chan error // buffered: the syncer never blocks on a gone waiter
}

type syncer struct {
	mu      sync.Mutex
	waiters []*waiter
	spare   []*waiter
	pending []*Log // requestSync; each with syncQueued set
	stopped bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newSyncer() *syncer {
	return &syncer{kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (sy *syncer) enqueue(w *waiter) bool {
	sy.mu.Lock()
	if sy.stopped {
		sy.mu.Unlock()
		return false
	}
	sy.waiters = append(sy.waiters, w)
	sy.mu.Unlock()
	select {
	case sy.kick <- struct{}{}:
	default:
	}
	return true
}

// syncRetryDelay is how long a requested round waits after a transient
// failure before it is tried again.
const syncRetryDelay = 100 * time.Millisecond

// requestSync queues an fsync round for l without waiting for it. Repeated
// requests before the round starts cost one atomic load each.
func (s *Store) requestSync(l *Log) {
	if l.syncQueued.Load() || !l.syncQueued.CompareAndSwap(false, true) {
		return
	}
	sy := s.sync
	sy.mu.Lock()
	if sy.stopped {
		sy.mu.Unlock()
		return
	}
	sy.pending = append(sy.pending, l)
	sy.mu.Unlock()
	select {
	case sy.kick <- struct{}{}:
	default:
	}
}

func (s *Store) runSyncer() {
	sy := s.sync
	defer close(sy.done)
	for {
		stopping := false
		select {
		case <-sy.kick:
		case <-sy.stop:
			stopping = true
		}
		sy.mu.Lock()
		ws := sy.waiters
		sy.waiters = sy.spare[:0]
		pending := sy.pending
		sy.pending = nil
		if stopping {
			sy.stopped = true
		}
		sy.mu.Unlock()
		for _, l := range pending {
			// Cleared before the round snapshots the log end, so an append
			// from here on requests the next round.
			l.syncQueued.Store(false)
		}

		errs, synced := s.syncRound(ws, pending)
		for _, l := range pending {
			if err := errs[l]; err != nil && isTransientIO(err) && !stopping {
				guard.AfterFunc(syncRetryDelay, s.logger, "fsync retry", func() { s.requestSync(l) })
			}
		}
		requeue := false
		released := 0
		for _, w := range ws {
			if w.offset < w.l.RecoveryPoint() {
				w.ch <- nil
				released++
				continue
			}
			if err := s.failure(); err != nil {
				w.ch <- err
				continue
			}
			if err := errs[w.l]; err != nil && isTransientIO(err) {
				w.ch <- err
				continue
			}
			w.l.mu.RLock()
			closed := w.l.closed
			w.l.mu.RUnlock()
			if closed || stopping {
				w.ch <- ErrClosed
				continue
			}
			// Data for this offset arrived after the round's snapshot.
			requeue = true
			sy.mu.Lock()
			sy.waiters = append(sy.waiters, w)
			sy.mu.Unlock()
		}
		if s.obs != nil && synced > 0 {
			s.obs.Round(synced, released)
		}
		clear(ws)
		sy.mu.Lock()
		sy.spare = ws[:0]
		sy.mu.Unlock()
		if stopping {
			return
		}
		if requeue {
			select {
			case sy.kick <- struct{}{}:
			default:
			}
		}
	}
}

// syncRound fsyncs every distinct log with a waiter that is not yet
// covered, and every requested log. Logs are synced concurrently (bounded)
// because on most filesystems concurrent fsyncs share journal commits. It
// returns the logs whose fsync failed, with the error, and how many logs
// it fsynced.
func (s *Store) syncRound(ws []*waiter, requested []*Log) (map[*Log]error, int) {
	var logs []*Log
	for _, w := range ws {
		if w.offset < w.l.RecoveryPoint() || slices.Contains(logs, w.l) {
			continue
		}
		logs = append(logs, w.l)
	}
	for _, l := range requested {
		if !slices.Contains(logs, l) {
			logs = append(logs, l)
		}
	}
	var (
		mu   sync.Mutex
		errs map[*Log]error
	)
	record := func(l *Log, err error) {
		if err == nil {
			return
		}
		mu.Lock()
		if errs == nil {
			errs = make(map[*Log]error)
		}
		errs[l] = err
		mu.Unlock()
	}
	if len(logs) == 1 {
		record(logs[0], logs[0].syncNow())
		return errs, 1
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, l := range logs {
		sem <- struct{}{}
		wg.Add(1)
		guard.Go(s.logger, "fsync", func() {
			defer func() { <-sem; wg.Done() }()
			record(l, l.syncNow())
		}, func(v any) { record(l, fmt.Errorf("fsync of %s panicked: %v", l.dir, v)) })
	}
	wg.Wait()
	return errs, len(logs)
}

// WaitDurable blocks until every record up to and including offset is
// fsynced (group commit across all partitions of the Store). It returns
// ctx.Err() if ctx ends first and the fsync error if a flush failed; after
// a failed fsync the Store never claims durability again (ErrStorageFailed).
// An offset at or beyond the log end waits for that data to be appended.
func (l *Log) WaitDurable(ctx context.Context, offset int64) error {
	for {
		ch := l.Subscribe()
		l.mu.RLock()
		durable, leo, closed := l.durable, l.leo, l.closed
		l.mu.RUnlock()
		if offset < durable {
			return nil
		}
		if err := l.store.failure(); err != nil {
			return err
		}
		if closed {
			return ErrClosed
		}
		if offset < leo {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w := &waiter{l: l, offset: offset, ch: make(chan error, 1)}
	if !l.store.sync.enqueue(w) {
		return ErrClosed
	}
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitDurableAll waits until each log is durable up to and including its
// offset, which must already be in the log (below its log end). All the
// waits join the same group-commit rounds, so many partitions cost about
// one round, not one each. It returns the first error, or ctx's.
func WaitDurableAll(ctx context.Context, logs []*Log, offsets []int64) error {
	ws := make([]*waiter, 0, len(logs))
	for i, l := range logs {
		if offsets[i] < l.RecoveryPoint() {
			continue
		}
		if err := l.store.failure(); err != nil {
			return err
		}
		w := &waiter{l: l, offset: offsets[i], ch: make(chan error, 1)}
		if !l.store.sync.enqueue(w) {
			return ErrClosed
		}
		ws = append(ws, w)
	}
	var first error
	for _, w := range ws {
		select {
		case err := <-w.ch:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// syncNow fsyncs whatever this log has written but not yet synced: rolled
// segments (with their index files), the partition directory if a segment
// file was created, and the active segment. Then it advances the recovery
// point to the log end offset observed before the fsyncs.
func (l *Log) syncNow() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()

	if err := l.store.failure(); err != nil {
		return err // an offline dir is not flushed again
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	leo := l.leo
	if leo <= l.durable && len(l.unsynced) == 0 && l.rollGen == l.dirSyncGen {
		l.mu.RUnlock()
		return nil
	}
	pending := len(l.unsynced)
	rolled := make([]*segment, pending)
	copy(rolled, l.unsynced)
	gen := l.rollGen
	needDir := gen != l.dirSyncGen
	active := l.segs[len(l.segs)-1]
	// The active segment's published size ends exactly at leo (both are
	// published together), so after the fsync the HW lies at this byte.
	activeSize := active.size
	active.acquire() // cannot fail: a published, open log holds a reference
	l.mu.RUnlock()
	defer active.release()

	began := time.Now()
	err := func() error {
		for _, seg := range rolled {
			if err := datasync(seg.log); err != nil {
				return fmt.Errorf("fsync %s: %w", seg.name(), err)
			}
			for _, ext := range []string{extIndex, extTimeIndex} {
				if err := syncPath(l.fsys, segmentPath(seg.dir, seg.base, ext)); err != nil {
					return err
				}
			}
		}
		if needDir {
			if err := syncDir(l.fsys, l.dir); err != nil {
				return fmt.Errorf("fsync dir %s: %w", l.dir, err)
			}
		}
		if leo > active.base || activeSize > 0 {
			if err := datasync(active.log); err != nil {
				return fmt.Errorf("fsync %s: %w", active.name(), err)
			}
		}
		return nil
	}()
	if err != nil {
		l.mu.RLock()
		closed := l.closed
		l.mu.RUnlock()
		if closed {
			// Deleted or closed under us (its directory may be gone): not a
			// disk failure.
			return ErrClosed
		}
		return l.store.fail(err)
	}
	if obs := l.store.obs; obs != nil {
		obs.Fsynced(time.Since(began))
	}

	l.mu.Lock()
	done := l.unsynced[:pending]
	l.unsynced = append([]*segment(nil), l.unsynced[pending:]...)
	l.dirSyncGen = gen
	advanced := leo > l.durable
	if advanced {
		l.durable = leo
		l.hwSet, l.hwBase, l.hwPos = true, active.base, activeSize
	}
	l.lastFlush = l.store.now()
	l.mu.Unlock()
	for _, seg := range done {
		seg.release()
	}
	if advanced && l.store.hwDurable.Load() {
		l.wakeReaders()
		l.localEndMoved()
	}
	return nil
}

// syncPath fsyncs a file by name; a missing file is not an error (index
// files of a segment deleted meanwhile).
func syncPath(fsys FS, path string) error {
	f, err := fsys.OpenFile(path, 0, 0)
	if err != nil {
		if isTransientIO(err) {
			// Not synced; claiming durability now would be a lie.
			return fmt.Errorf("open %s: %w", path, err)
		}
		return nil
	}
	serr := f.Sync()
	f.Close()
	if serr != nil {
		return fmt.Errorf("fsync %s: %w", path, serr)
	}
	return nil
}

// flushDue is FlushDue for one log.
func (l *Log) flushDue(now time.Time) error {
	l.mu.RLock()
	flushMs, dirty, last := l.cfg.FlushMs, l.leo > l.durable, l.lastFlush
	l.mu.RUnlock()
	if !dirty || flushMs == 1<<63-1 || now.Sub(last).Milliseconds() < flushMs {
		return nil
	}
	return l.syncNow()
}
