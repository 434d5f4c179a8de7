package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestWaitDurableGroupCommit(t *testing.T) {
	e := newEnv(t)
	ffs := &faultFS{slowSync: 2 * time.Millisecond} // a disk where fsync costs something
	e.fs = ffs
	s := e.open()
	defer s.Close()
	var logs []*Log
	for _, topic := range []string{"a", "b", "c", "d"} {
		logs = append(logs, mustCreate(t, s, topic, testCfg()))
	}
	const waiters = 200
	before := ffs.syncs.Load()
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := logs[i%len(logs)]
			res, err := l.Append(buildBatch(t, spec(1, 1)))
			if err == nil {
				err = l.WaitDurable(context.Background(), res.LastOffset)
			}
			if err == nil && l.RecoveryPoint() <= res.LastOffset {
				err = errors.New("WaitDurable returned before the recovery point passed the offset")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	syncs := ffs.syncs.Load() - before
	t.Logf("%d waiters on %d partitions needed %d fsyncs", waiters, len(logs), syncs)
	if syncs >= waiters/2 {
		t.Fatalf("%d fsyncs for %d waiters: no group commit", syncs, waiters)
	}
	for _, l := range logs {
		if l.RecoveryPoint() != l.LogEndOffset() {
			t.Fatalf("recovery point %d, LEO %d", l.RecoveryPoint(), l.LogEndOffset())
		}
	}
	// Already durable: returns at once without an fsync.
	before = ffs.syncs.Load()
	if err := logs[0].WaitDurable(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if ffs.syncs.Load() != before {
		t.Fatal("fsync for an offset that was already durable")
	}
}

func TestWaitDurableFutureOffsetAndCancel(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "f", testCfg())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.WaitDurable(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for data never appended: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitDurable(context.Background(), 1) }()
	time.Sleep(5 * time.Millisecond)
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter for an offset appended later never released")
	}
}

func TestFsyncFailureIsSticky(t *testing.T) {
	e := newEnv(t)
	ffs := &faultFS{}
	e.fs = ffs
	s := e.open()
	l := mustCreate(t, s, "fail", testCfg())
	res := mustAppend(t, l, buildBatch(t, spec(1, 1)))
	ffs.failSync.Store(true)
	if err := l.WaitDurable(context.Background(), res.LastOffset); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("WaitDurable with failing fsync: %v", err)
	}
	if l.RecoveryPoint() != 0 {
		t.Fatalf("recovery point advanced to %d despite the failure", l.RecoveryPoint())
	}
	ffs.failSync.Store(false) // a later fsync "succeeding" must not restore trust
	if err := l.WaitDurable(context.Background(), res.LastOffset); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("second WaitDurable: %v", err)
	}
	if _, err := l.Append(buildBatch(t, spec(1, 1))); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after fsync failure: %v", err)
	}
	// The dir is offline, as in Kafka: nothing is served from it.
	if _, err := l.Read(0, 100); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("read from an offline log dir: %v", err)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed() not closed after an fsync failure")
	}
	if !errors.Is(s.Failure(), ErrStorageFailed) || len(e.logged("log dir failed")) != 1 {
		t.Fatalf("failure not reported: %v, %v", s.Failure(), e.logged("log dir failed"))
	}
	s.Close()
	// No clean-shutdown marker after a failure: the next Open recovers.
	s = e.open()
	defer s.Close()
	if len(e.logged("clean_shutdown=false")) != 2 {
		t.Fatalf("second open should be unclean: %v", e.logged("opened"))
	}
}

func TestFlushMessages(t *testing.T) {
	e := newEnv(t)
	ffs := &faultFS{}
	e.fs = ffs
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.FlushMessages = 1
	l := mustCreate(t, s, "fm", cfg)
	for i := 0; i < 5; i++ {
		res := mustAppend(t, l, buildBatch(t, spec(2, 1)))
		if rp := l.RecoveryPoint(); rp != res.LastOffset+1 {
			t.Fatalf("flush.messages=1: recovery point %d after append ending at %d", rp, res.LastOffset)
		}
	}
	cfg.FlushMessages = 5
	l.SetConfig(cfg)
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	if rp := l.RecoveryPoint(); rp != 10 {
		t.Fatalf("4 unflushed < flush.messages 5, but recovery point is %d", rp)
	}
	mustAppend(t, l, buildBatch(t, spec(1, 1)))
	if rp := l.RecoveryPoint(); rp != 15 {
		t.Fatalf("5 unflushed = flush.messages, recovery point %d", rp)
	}
}

func TestFlushDue(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.FlushMs = 1000
	l := mustCreate(t, s, "fd", cfg)
	l2 := mustCreate(t, s, "never", testCfg())
	mustAppend(t, l, buildBatch(t, spec(3, 1)))
	mustAppend(t, l2, buildBatch(t, spec(3, 1)))
	if err := s.FlushDue(); err != nil {
		t.Fatal(err)
	}
	if l.RecoveryPoint() != 0 {
		t.Fatal("flushed before flush.ms elapsed")
	}
	e.clock.Advance(1500 * time.Millisecond)
	if err := s.FlushDue(); err != nil {
		t.Fatal(err)
	}
	if l.RecoveryPoint() != 3 {
		t.Fatalf("recovery point %d after flush.ms", l.RecoveryPoint())
	}
	if l2.RecoveryPoint() != 0 {
		t.Fatal("flush.ms=never partition was flushed")
	}
	// The recovery point is what Checkpoint persists.
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	rp := s.readOffsets(recoveryPointFile)
	if rp[topicPartition{"fd", 0}] != 3 || rp[topicPartition{"never", 0}] != 0 {
		t.Fatalf("checkpointed recovery points %v", rp)
	}
}
