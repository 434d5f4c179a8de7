package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fetchAll returns the raw batches a log holds from offset from on, as a
// follower would fetch them.
func fetchAll(t *testing.T, l *Log, from int64) []byte {
	t.Helper()
	fr, _, err := l.ReadReplicaRange(from, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Release()
	b, err := fr.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLeaderEpochsStampedAndAnswered(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "t", testCfg())
	l.BecomeLeader(0)
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	l.BecomeLeader(3)
	mustAppend(t, l, buildBatch(t, spec(3, 1)))
	l.BecomeLeader(5) // led, nothing appended yet
	hs := readAllTo(t, l)
	if hs[0].leaderEpoch != 0 || hs[1].leaderEpoch != 3 {
		t.Fatalf("batch epochs %d, %d; want 0, 3", hs[0].leaderEpoch, hs[1].leaderEpoch)
	}
	// Epoch 5 has no data yet: it is in the cache, and reaches the file
	// with the first append under it.
	data, _ := os.ReadFile(filepath.Join(l.Dir(), leaderEpochFile))
	if string(data) != "0\n2\n0 0\n3 2\n" {
		t.Fatalf("leader-epoch-checkpoint %q", data)
	}
	for _, c := range []struct {
		ask       int32
		end       int64
		wantEpoch int32
	}{{5, 5, 5}, {3, 5, 3}, {4, 5, 3}, {0, 2, 0}, {1, 2, 0}, {6, -1, -1}, {-1, -1, -1}} {
		if end, ep := l.EndOffsetForEpoch(c.ask); end != c.end || ep != c.wantEpoch {
			t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", c.ask, end, ep, c.end, c.wantEpoch)
		}
	}
	// The cache survives a restart, and a lost file is rebuilt from the
	// batches.
	s.Close()
	s = e.open()
	l = s.Get("t", 0)
	if got := l.epochsString(); got != "(0,0)(3,2)" {
		// An epoch that starts at the log end has no data: dropped at load
		// as Kafka does, and assigned again when led again.
		t.Fatalf("after restart: %s", got)
	}
	s.Close()
	os.Remove(filepath.Join(l.Dir(), leaderEpochFile))
	s = e.open()
	l = s.Get("t", 0)
	if got := l.epochsString(); got != "(0,0)(3,2)" {
		t.Fatalf("rebuilt: %s", got)
	}
	l.BecomeLeader(7)
	mustAppend(t, l, buildBatch(t, spec(1, 1)))
	data, _ = os.ReadFile(filepath.Join(l.Dir(), leaderEpochFile))
	if string(data) != "0\n3\n0 0\n3 2\n7 5\n" {
		t.Fatalf("leader-epoch-checkpoint after an append in epoch 7: %q", data)
	}
	s.Close()
}

// A leader that appended nothing in its epoch before another was elected
// keeps an epoch entry at its log end; truncating to the log end (what the
// new leader's diverging epoch asks) must drop it, or the follower would
// report that epoch again and diverge forever.
func TestTruncateToLogEndDropsEmptyEpoch(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "t", testCfg())
	l.BecomeLeader(2)
	mustAppend(t, l, buildBatch(t, spec(3, 1)))
	l.BecomeLeader(3) // elected, then paused before any append
	gen := l.BecomeFollower()
	if got := l.LatestEpoch(); got != 3 {
		t.Fatalf("latest epoch %d, want 3", got)
	}
	if err := l.TruncateTo(3, gen); err != nil {
		t.Fatal(err)
	}
	if got, leo := l.LatestEpoch(), l.LogEndOffset(); got != 2 || leo != 3 {
		t.Fatalf("after TruncateTo(log end): latest epoch %d, log end %d; want 2, 3", got, leo)
	}
	data, _ := os.ReadFile(filepath.Join(l.Dir(), leaderEpochFile))
	if string(data) != "0\n1\n2 0\n" {
		t.Fatalf("leader-epoch-checkpoint %q", data)
	}
}

func readAllTo(t *testing.T, l *Log) []batchHeader {
	t.Helper()
	return splitBatches(t, fetchAll(t, l, l.LogStartOffset()))
}

func TestAppendReplicaKeepsLeaderOffsetsAndProducers(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	leader := mustCreate(t, s, "a", testCfg())
	leader.BecomeLeader(2)
	mustAppend(t, leader, buildBatch(t, spec(3, 1).idem(7, 0, 0)))
	mustAppend(t, leader, buildBatch(t, spec(2, 1).idem(7, 0, 3)))

	f, err := s.Create("b", 0, [16]byte{9}, testCfg())
	if err != nil {
		t.Fatal(err)
	}
	gen := f.BecomeFollower()
	leo, err := f.AppendReplica(fetchAll(t, leader, 0), gen)
	if err != nil || leo != 5 {
		t.Fatalf("AppendReplica: leo %d, %v", leo, err)
	}
	if got := f.epochsString(); got != "(2,0)" {
		t.Fatalf("follower epochs %s", got)
	}
	// A batch that does not follow the log end is refused.
	if _, err := f.AppendReplica(fetchAll(t, leader, 3), gen); !errors.Is(err, ErrUnexpectedOffset) {
		t.Fatalf("overlapping append: %v", err)
	}
	// The follower rebuilt the idempotent producer's state: as a new
	// leader, it recognizes a retry of the last batch and the next
	// sequence.
	f.BecomeLeader(3)
	mustAppend(t, leader, buildBatch(t, spec(1, 1)))
	if _, err := f.AppendReplica(fetchAll(t, leader, 5), gen); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower append after becoming leader: %v", err)
	}
	res, err := f.Append(buildBatch(t, spec(2, 1).idem(7, 0, 3)))
	if err != nil || !res.Duplicate || res.BaseOffset != 3 {
		t.Fatalf("retry on the new leader: %+v %v", res, err)
	}
	if _, err := f.Append(buildBatch(t, spec(1, 1).idem(7, 0, 9))); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap on the new leader: %v", err)
	}
	res = mustAppend(t, f, buildBatch(t, spec(1, 1).idem(7, 0, 5)))
	if res.BaseOffset != 5 {
		t.Fatalf("next batch at %d", res.BaseOffset)
	}
}

func TestTruncateToDivergence(t *testing.T) {
	e := newEnv(t)
	cfg := testCfg()
	cfg.SegmentBytes = 300 // several segments
	e.cfg = &cfg
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "t", cfg)
	l.BecomeLeader(1)
	for i := 0; i < 6; i++ {
		mustAppend(t, l, buildBatch(t, spec(2, int64(i)).idem(4, 0, int32(2*i))))
	}
	l.BecomeLeader(2)
	for i := 6; i < 10; i++ {
		mustAppend(t, l, buildBatch(t, spec(2, int64(i)).idem(4, 0, int32(2*i))))
	}
	if n := len(segmentFiles(t, l.Dir(), extLog)); n < 3 {
		t.Fatalf("want several segments, have %d", n)
	}
	gen := l.BecomeFollower()
	// Offset 13 is inside the batch [12, 13]: the whole batch goes.
	if err := l.TruncateTo(13, gen); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 12 {
		t.Fatalf("LEO %d after truncating to 13", l.LogEndOffset())
	}
	if got := l.epochsString(); got != "(1,0)" {
		// Epoch 2 started at 12, which is now the end: it goes.
		t.Fatalf("epochs %s", got)
	}
	if err := l.TruncateTo(7, gen); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 6 || l.epochsString() != "(1,0)" {
		t.Fatalf("LEO %d epochs %s", l.LogEndOffset(), l.epochsString())
	}
	if got := readAllTo(t, l); len(got) != 3 || got[2].lastOffset() != 5 {
		t.Fatalf("batches after truncation: %d", len(got))
	}
	// Appends continue at the new end, with producer state rolled back.
	if _, err := l.AppendReplica(fetchAll(t, buildLeaderLog(t, s, 6), 6), gen); err != nil {
		t.Fatal(err)
	}
	// The truncation survives a crash and restart.
	s.crash()
	s = e.open()
	l = s.Get("t", 0)
	if l.LogEndOffset() != 8 {
		t.Fatalf("LEO after restart %d", l.LogEndOffset())
	}
	if got := l.epochsString(); got != "(1,0)(7,6)" {
		t.Fatalf("epochs after restart %s", got)
	}
}

// buildLeaderLog makes a log "src" whose log starts at offset start and
// holds one 2-record batch in epoch 7.
func buildLeaderLog(t *testing.T, s *Store, start int64) *Log {
	t.Helper()
	l, err := s.Create("src", 0, [16]byte{5}, testCfg())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFullyAndStartAt(start, l.BecomeFollower()); err != nil {
		t.Fatal(err)
	}
	l.BecomeLeader(7)
	mustAppend(t, l, buildBatch(t, spec(2, 1).idem(4, 0, 12)))
	return l
}

func TestReplicatedHighWatermark(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	s.SetDurableHighWatermark(true)
	l := mustCreate(t, s, "t", testCfg())
	gen := l.BecomeLeader(0)
	l.SetReplicated(true)
	res := mustAppend(t, l, buildBatch(t, spec(3, 1)))
	if err := l.WaitDurable(context.Background(), res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if hw := l.HighWatermark(); hw != 0 {
		t.Fatalf("replicated HW %d before any follower", hw)
	}
	if r, _ := l.Read(0, 1<<20); len(r.Records) != 0 {
		t.Fatal("read above the replicated HW")
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitHighWatermark(context.Background(), res.LastOffset, gen) }()
	time.Sleep(20 * time.Millisecond)
	l.SetHighWatermark(2)
	select {
	case err := <-done:
		t.Fatalf("wait ended below its offset: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	l.SetHighWatermark(3)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.SetHighWatermark(1) || l.HighWatermark() != 3 {
		t.Fatal("HW moved backwards")
	}
	// Losing leadership ends a wait with ErrNotLeader.
	res = mustAppend(t, l, buildBatch(t, spec(1, 1)))
	go func() { done <- l.WaitHighWatermark(context.Background(), res.LastOffset, gen) }()
	time.Sleep(20 * time.Millisecond)
	l.BecomeFollower()
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("wait across a role change: %v", err)
	}
}

// The epoch cache is written without fsync as epochs start: a crash can
// leave an older file, which the last batch shows is behind; it is then
// rebuilt from the batches.
func TestStaleEpochCacheRebuilt(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	l := mustCreate(t, s, "t", testCfg())
	l.BecomeLeader(2)
	mustAppend(t, l, buildBatch(t, spec(3, 1)))
	l.BecomeLeader(5)
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	dir := l.Dir()
	s.crash()
	if err := os.WriteFile(filepath.Join(dir, leaderEpochFile), []byte("0\n1\n2 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = e.open()
	defer s.Close()
	if got := s.Get("t", 0).epochsString(); got != "(2,0)(5,3)" {
		t.Fatalf("epochs after reopening with a stale file: %s", got)
	}
}
