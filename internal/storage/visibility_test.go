package storage

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gateFS holds every fsync until the test opens the gate, so a test can
// look at the log between an append and the fsync that covers it. It can
// also refuse opens with EMFILE, as a process out of descriptors does.
type gateFS struct {
	OSFS
	mu     sync.Mutex
	gate   chan struct{} // nil: fsyncs pass
	emfile atomic.Bool   // OpenFile fails with EMFILE
	syncs  atomic.Int64
}

func (g *gateFS) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gateFS) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gateFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if g.emfile.Load() {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EMFILE}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, fs: g}, nil
}

type gateFile struct {
	*os.File
	fs *gateFS
}

func (f *gateFile) Sync() error {
	f.fs.mu.Lock()
	gate := f.fs.gate
	f.fs.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

func waitSignal(t *testing.T, ch chanWaker, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake-up: %s", what)
	}
}

func noSignal(t *testing.T, ch chanWaker, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected wake-up: %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

// With a durable high watermark a record is invisible until an fsync
// covers it, the append itself starts that fsync (nobody waits for it), and
// a parked reader is woken when it completes.
func TestDurableHighWatermark(t *testing.T) {
	e := newEnv(t)
	g := &gateFS{}
	e.fs = g
	s := e.open()
	defer func() { g.open(); s.Close() }()
	s.SetDurableHighWatermark(true)
	l := mustCreate(t, s, "hw", testCfg())

	wake := make(chanWaker, 1)
	l.Watch(wake)
	defer l.Unwatch(wake)

	g.close()
	mustAppend(t, l, buildBatch(t, spec(3, 1)))
	if l.LogEndOffset() != 3 || l.HighWatermark() != 0 {
		t.Fatalf("before fsync: LEO %d HW %d, want 3 and 0", l.LogEndOffset(), l.HighWatermark())
	}
	res, err := l.Read(0, 1<<20)
	if err != nil || len(res.Records) != 0 || res.HighWatermark != 0 {
		t.Fatalf("read below LEO but at HW: %d bytes, HW %d, err %v", len(res.Records), res.HighWatermark, err)
	}
	noSignal(t, wake, "append woke a reader before the fsync")

	g.open() // the fsync the append requested completes
	waitSignal(t, wake, "reader not woken when the HW advanced")
	if hw := l.HighWatermark(); hw != 3 {
		t.Fatalf("HW after the fsync %d, want 3", hw)
	}
	if got := readAll(t, l, 0); len(got) != 1 || got[0].lastOffset() != 2 {
		t.Fatalf("after fsync: %d batches", len(got))
	}

	// DeleteRecords cannot pass the HW either.
	g.close()
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	if _, err := l.DeleteRecordsBefore(5); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("DeleteRecords above the HW: %v", err)
	}
	g.open()
}

// Reads stop exactly at the HW, also when the HW position must be found by
// walking headers (after a reopen) and when the HW lies in a rolled
// segment.
func TestReadStopsAtDurableHighWatermark(t *testing.T) {
	e := newEnv(t)
	g := &gateFS{}
	e.fs = g
	cfg := testCfg()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 200
	e.cfg = &cfg
	s := e.open()
	s.SetDurableHighWatermark(true)
	l := mustCreate(t, s, "walk", cfg)
	for range 10 {
		mustAppend(t, l, buildBatch(t, spec(2, 1)))
	}
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()-1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = e.open() // the HW position is not cached after a reopen
	defer func() { g.open(); s.Close() }()
	s.SetDurableHighWatermark(true)
	l = s.Get("walk", 0)
	hw := l.LogEndOffset()
	if l.HighWatermark() != hw {
		t.Fatalf("HW after reopen %d, want LEO %d", l.HighWatermark(), hw)
	}
	g.close()
	for range 30 { // several rolls above the HW
		mustAppend(t, l, buildBatch(t, spec(2, 1)))
	}
	if l.HighWatermark() != hw {
		t.Fatalf("HW moved to %d without an fsync", l.HighWatermark())
	}
	var n int64
	for off := int64(0); off < hw; {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		hs := splitBatches(t, res.Records)
		if len(hs) == 0 {
			t.Fatalf("nothing read at %d below HW %d", off, hw)
		}
		for _, h := range hs {
			if h.lastOffset() >= hw {
				t.Fatalf("read returned offset %d at or above HW %d", h.lastOffset(), hw)
			}
		}
		n += int64(len(hs)) * 2
		off = hs[len(hs)-1].lastOffset() + 1
	}
	if n != hw {
		t.Fatalf("read %d records below the HW, want %d", n, hw)
	}
	g.open()
	deadline := time.Now().Add(5 * time.Second)
	for l.HighWatermark() != l.LogEndOffset() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if l.HighWatermark() != l.LogEndOffset() {
		t.Fatalf("HW %d never reached LEO %d after fsyncs resumed", l.HighWatermark(), l.LogEndOffset())
	}
	readAll(t, l, 0)
}

// Without a durable HW (durability=os) records are visible at once and the
// append wakes only the readers parked on its own log.
func TestWatchWakesOnlyItsLog(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	a := mustCreate(t, s, "a", testCfg())
	b := mustCreate(t, s, "b", testCfg())
	wa, wb := make(chanWaker, 1), make(chanWaker, 1)
	a.Watch(wa)
	b.Watch(wb)
	mustAppend(t, b, buildBatch(t, spec(1, 1)))
	waitSignal(t, wb, "append to b")
	noSignal(t, wa, "append to b woke a's reader")
	if b.HighWatermark() != 1 {
		t.Fatalf("HW %d, want the LEO 1", b.HighWatermark())
	}
	a.Unwatch(wa)
	mustAppend(t, a, buildBatch(t, spec(1, 1)))
	noSignal(t, wa, "unwatched reader woken")
}

// A roll that cannot open its new files (EMFILE) refuses that append with
// a transient error, leaves the old segment active and the log whole, does
// not take the dir offline, and the next append rolls once descriptors are
// back.
func TestRollOutOfDescriptors(t *testing.T) {
	e := newEnv(t)
	g := &gateFS{}
	e.fs = g
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	l := mustCreate(t, s, "fd", cfg)
	for l.LogEndOffset() < 8 {
		mustAppend(t, l, buildBatch(t, spec(1, 1)))
	}
	// Fill the active segment so the next append must roll.
	segs := len(segmentFiles(t, l.Dir(), ".log"))
	for len(segmentFiles(t, l.Dir(), ".log")) == segs {
		mustAppend(t, l, buildBatch(t, spec(1, 1)))
	}
	segs = len(segmentFiles(t, l.Dir(), ".log"))
	bs := int64(len(buildBatch(t, spec(1, 1))))
	for {
		l.mu.RLock()
		act := l.segs[len(l.segs)-1].size
		l.mu.RUnlock()
		if act+bs > cfg.SegmentBytes {
			break // the next append must roll
		}
		mustAppend(t, l, buildBatch(t, spec(1, 1)))
	}
	if n := len(segmentFiles(t, l.Dir(), ".log")); n != segs {
		t.Fatalf("rolled while filling: %d segments, want %d", n, segs)
	}
	leo := l.LogEndOffset()

	g.emfile.Store(true)
	_, err := l.Append(buildBatch(t, spec(1, 1)))
	g.emfile.Store(false)
	if !errors.Is(err, ErrTooManyOpenFiles) || errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append whose roll hit EMFILE: %v", err)
	}
	if s.Failure() != nil {
		t.Fatalf("EMFILE took the log dir offline: %v", s.Failure())
	}
	select {
	case <-s.Failed():
		t.Fatal("Failed() closed by EMFILE")
	default:
	}
	if l.LogEndOffset() != leo || len(segmentFiles(t, l.Dir(), ".log")) != segs {
		t.Fatalf("failed roll changed the log: LEO %d (was %d), %d segments (was %d)", l.LogEndOffset(), leo, len(segmentFiles(t, l.Dir(), ".log")), segs)
	}
	if len(e.logged("out of file descriptors")) == 0 {
		t.Fatal("EMFILE not logged")
	}
	readAll(t, l, 0)

	res := mustAppend(t, l, buildBatch(t, spec(1, 1)))
	if res.BaseOffset != leo || len(segmentFiles(t, l.Dir(), ".log")) != segs+1 {
		t.Fatalf("append after EMFILE: base %d (want %d), %d segments (want %d)", res.BaseOffset, leo, len(segmentFiles(t, l.Dir(), ".log")), segs+1)
	}
	if got := readAll(t, l, 0); got[len(got)-1].lastOffset() != leo {
		t.Fatalf("last offset read %d, want %d", got[len(got)-1].lastOffset(), leo)
	}
	// The log survives a restart intact.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = e.open()
	if l = s.Get("fd", 0); l.LogEndOffset() != leo+1 {
		t.Fatalf("LEO after reopen %d, want %d", l.LogEndOffset(), leo+1)
	}
}

// An fsync round that cannot open a file (EMFILE) fails the waiters of that
// round with the transient error, keeps the dir online, and a later wait
// succeeds.
func TestFsyncOutOfDescriptorsIsTransient(t *testing.T) {
	e := newEnv(t)
	g := &gateFS{}
	e.fs = g
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = 512
	l := mustCreate(t, s, "fsync", cfg)
	var last int64
	for len(segmentFiles(t, l.Dir(), ".log")) < 2 { // a roll: the next fsync opens the dir
		last = mustAppend(t, l, buildBatch(t, spec(1, 1))).LastOffset
	}
	g.emfile.Store(true)
	err := l.WaitDurable(context.Background(), last)
	g.emfile.Store(false)
	if !errors.Is(err, ErrTooManyOpenFiles) {
		t.Fatalf("WaitDurable with EMFILE: %v", err)
	}
	if s.Failure() != nil || l.RecoveryPoint() > last {
		t.Fatalf("after EMFILE: failure %v, recovery point %d", s.Failure(), l.RecoveryPoint())
	}
	if err := l.WaitDurable(context.Background(), last); err != nil {
		t.Fatalf("WaitDurable once descriptors are back: %v", err)
	}
	if _, err := l.Read(0, 100); err != nil {
		t.Fatal(err)
	}
}

// A real I/O error takes the dir offline: reads, appends and offset
// lookups fail with ErrStorageFailed, parked readers are woken, Failed()
// is closed and the failure is logged at Error once.
func TestIOErrorTakesLogDirOffline(t *testing.T) {
	e := newEnv(t)
	ffs := &faultFS{}
	e.fs = ffs
	s := e.open()
	l := mustCreate(t, s, "eio", testCfg())
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	wake := make(chanWaker, 1)
	l.Watch(wake)
	ffs.failSync.Store(true)
	if err := l.WaitDurable(context.Background(), 1); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("WaitDurable: %v", err)
	}
	waitSignal(t, wake, "parked reader not woken by the failure")
	select {
	case <-s.Failed():
	case <-time.After(time.Second):
		t.Fatal("Failed() not closed")
	}
	if _, err := l.Read(0, 100); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("Read: %v", err)
	}
	if _, _, _, err := l.OffsetForTimestamp(0); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("OffsetForTimestamp: %v", err)
	}
	if !errors.Is(l.Err(), ErrStorageFailed) {
		t.Fatalf("Log.Err: %v", l.Err())
	}
	if errs := e.logged("ERROR "); len(errs) != 1 || !strings.Contains(errs[0], "injected fsync failure") {
		t.Fatalf("want one Error line naming the cause, got %v", errs)
	}
	s.Close()
}

// With a durable HW, an fsync round that fails for lack of descriptors is
// retried on its own, so records produced without waiting (acks=0/1)
// still become visible once descriptors are back, with no further append.
func TestDurableHighWatermarkRetriesAfterEMFILE(t *testing.T) {
	e := newEnv(t)
	g := &gateFS{}
	e.fs = g
	s := e.open()
	defer func() { g.open(); s.Close() }()
	s.SetDurableHighWatermark(true)
	cfg := testCfg()
	cfg.SegmentBytes = 512
	l := mustCreate(t, s, "retry", cfg)
	g.close() // rounds block in their first fsync
	for len(segmentFiles(t, l.Dir(), ".log")) < 2 {
		mustAppend(t, l, buildBatch(t, spec(1, 1)))
	}
	leo := l.LogEndOffset()
	g.emfile.Store(true) // the blocked round's later opens fail
	g.open()
	time.Sleep(300 * time.Millisecond) // a few retries, all failing
	if hw := l.HighWatermark(); hw >= leo || s.Failure() != nil {
		t.Fatalf("with EMFILE: HW %d (LEO %d), failure %v", hw, leo, s.Failure())
	}
	g.emfile.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for l.HighWatermark() < leo && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if hw := l.HighWatermark(); hw != leo {
		t.Fatalf("HW %d never reached LEO %d after descriptors came back", hw, leo)
	}
}

// WaitDurableAll waits for many logs at once, in shared group-commit
// rounds: one call makes all of them durable (one fsync per log), and an
// expired context ends the wait.
func TestWaitDurableAll(t *testing.T) {
	e := newEnv(t)
	g := &gateFS{}
	e.fs = g
	s := e.open()
	defer func() { g.open(); s.Close() }()
	s.SetDurableHighWatermark(true)
	var logs []*Log
	var offsets []int64
	for i := 0; i < 40; i++ {
		l := mustCreate(t, s, "all"+string(rune('a'+i%26))+string(rune('a'+i/26)), testCfg())
		logs, offsets = append(logs, l), append(offsets, 1)
	}
	g.close() // creating a log fsyncs its directory: hold fsyncs only now
	for _, l := range logs {
		mustAppend(t, l, buildBatch(t, spec(2, 1)))
	}
	for _, l := range logs {
		if l.HighWatermark() != 0 {
			t.Fatal("durable before any fsync")
		}
	}
	before := g.syncs.Load()
	done := make(chan error, 1)
	go func() { done <- WaitDurableAll(context.Background(), logs, offsets) }()
	g.open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitDurableAll did not return")
	}
	for i, l := range logs {
		if l.HighWatermark() != 2 {
			t.Fatalf("log %d HW %d after WaitDurableAll, want 2", i, l.HighWatermark())
		}
	}
	t.Logf("40 logs durable with %d fsync calls", g.syncs.Load()-before)
	// An expired context is reported, not waited out.
	g.close()
	mustAppend(t, logs[0], buildBatch(t, spec(1, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := WaitDurableAll(ctx, logs[:1], []int64{2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with the fsync held: %v", err)
	}
}
