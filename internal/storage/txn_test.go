package storage

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"testing"
)

func txnBatch(t testing.TB, n int, pid int64, epoch int16, seq int32) []byte {
	s := spec(n, 1).idem(pid, epoch, seq)
	s.txn = true
	return buildBatch(t, s)
}

// readCommitted reads batches below the LSO, as a read_committed fetch
// does, and drops the aborted ones with the AbortedTxns list the way a
// consumer does. It returns the offsets of the records it keeps.
func readCommitted(t *testing.T, l *Log) []int64 {
	t.Helper()
	var kept []int64
	for off := l.LogStartOffset(); ; {
		fr, res, err := l.ReadRangeCommitted(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		data, err := fr.AppendTo(nil)
		fr.Release()
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			return kept
		}
		hs := splitBatches(t, data)
		end := hs[len(hs)-1].lastOffset() + 1
		if end > res.LastStableOffset {
			t.Fatalf("read_committed read up to %d, past the LSO %d", end, res.LastStableOffset)
		}
		aborted := l.AbortedTxns(off, end)
		for _, h := range hs {
			if h.isControl() {
				continue
			}
			skip := false
			for _, a := range aborted {
				if a.ProducerID == h.producerID && h.baseOffset >= a.FirstOffset && h.baseOffset <= a.LastOffset {
					skip = true
				}
			}
			if !skip {
				for o := h.baseOffset; o <= h.lastOffset(); o++ {
					kept = append(kept, o)
				}
			}
		}
		off = end
	}
}

func TestTransactionsInTheLog(t *testing.T) {
	for _, restart := range []string{"none", "clean", "crash", "crash without snapshot"} {
		t.Run(restart, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			cfg := testCfg()
			cfg.SegmentBytes = 400 // several segments, markers in later ones
			l := mustCreate(t, s, "tx", cfg)

			plain := mustAppend(t, l, buildBatch(t, spec(1, 1)))
			a1 := mustAppend(t, l, txnBatch(t, 2, 7, 0, 0)) // producer 7: aborted
			c1 := mustAppend(t, l, txnBatch(t, 2, 8, 0, 0)) // producer 8: committed
			if lso := l.LastStableOffset(); lso != a1.BaseOffset {
				t.Fatalf("LSO %d with transactions open from %d", lso, a1.BaseOffset)
			}
			if got := readCommitted(t, l); !slices.Equal(got, []int64{plain.BaseOffset}) {
				t.Fatalf("read_committed before any marker saw %v", got)
			}
			a2 := mustAppend(t, l, txnBatch(t, 1, 7, 0, 2))
			if _, err := l.Append(buildBatch(t, spec(1, 1).idem(7, 0, 3))); !errors.Is(err, ErrInvalidTxnState) {
				t.Fatalf("non-transactional batch in an open transaction: %v", err)
			}
			abort, err := l.AppendMarker(7, 0, false, 3)
			if err != nil {
				t.Fatal(err)
			}
			if lso := l.LastStableOffset(); lso != c1.BaseOffset {
				t.Fatalf("LSO %d after the abort, want %d (producer 8 still open)", lso, c1.BaseOffset)
			}
			commit, err := l.AppendMarker(8, 0, true, 3)
			if err != nil {
				t.Fatal(err)
			}
			open := mustAppend(t, l, txnBatch(t, 1, 9, 0, 0)) // producer 9: left open

			want := []int64{plain.BaseOffset, c1.BaseOffset, c1.LastOffset}
			wantAborted := []AbortedTxn{{ProducerID: 7, FirstOffset: a1.BaseOffset, LastOffset: abort.BaseOffset, LastStableOffset: c1.BaseOffset}}
			check := func(l *Log) {
				t.Helper()
				if lso := l.LastStableOffset(); lso != open.BaseOffset {
					t.Fatalf("LSO %d, want %d (producer 9 open)", lso, open.BaseOffset)
				}
				if got := readCommitted(t, l); !slices.Equal(got, want) {
					t.Fatalf("read_committed saw %v, want %v", got, want)
				}
				if got := l.AbortedTxns(0, l.LogEndOffset()); !slices.Equal(got, wantAborted) {
					t.Fatalf("aborted transactions %+v, want %+v", got, wantAborted)
				}
				if got := l.AbortedTxns(commit.BaseOffset, l.LogEndOffset()); len(got) != 0 {
					t.Fatalf("aborted transactions after the abort marker: %+v", got)
				}
				var p9 *ProducerInfo
				for _, p := range l.ProducerIDs() {
					if p.ProducerID == 9 {
						p9 = &p
					}
				}
				if p9 == nil || p9.TxnStartOffset != open.BaseOffset {
					t.Fatalf("producer 9: %+v", p9)
				}
			}
			check(l)
			_ = a2
			switch restart {
			case "none":
				s.Close()
				return
			case "clean":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				// Kafka's .txnindex: one 34-byte entry, in the marker's segment.
				var entries int
				for _, f := range segmentFiles(t, l.Dir(), ".txnindex") {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					if len(b)%34 != 0 {
						t.Fatalf("%s: %d bytes", f, len(b))
					}
					for ; len(b) > 0; b = b[34:] {
						entries++
						if pid := int64(binary.BigEndian.Uint64(b[2:])); pid != 7 {
							t.Fatalf("txnindex entry of producer %d", pid)
						}
					}
				}
				if entries != 1 {
					t.Fatalf("%d txnindex entries, want 1", entries)
				}
			case "crash":
				s.crash()
			case "crash without snapshot":
				s.crash()
				for _, f := range segmentFiles(t, l.Dir(), ".snapshot") {
					removeFile(t, f)
				}
				for _, f := range segmentFiles(t, l.Dir(), ".txnindex") {
					removeFile(t, f)
				}
			}
			s = e.open()
			defer s.Close()
			l = s.Get("tx", 0)
			check(l)
			// The open transaction still ends with its marker.
			if _, err := l.AppendMarker(9, 0, true, 3); err != nil {
				t.Fatal(err)
			}
			if lso := l.LastStableOffset(); lso != l.LogEndOffset() {
				t.Fatalf("LSO %d after every transaction ended, log end %d", lso, l.LogEndOffset())
			}
		})
	}
}

func TestMarkerFencing(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "fence", testCfg())
	mustAppend(t, l, txnBatch(t, 1, 4, 2, 0))
	if _, err := l.AppendMarker(4, 1, false, 0); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("marker of an older epoch: %v", err)
	}
	// Transactions v2: the coordinator bumps the epoch at the end of each
	// transaction; the marker carries the new one, and a late batch of the
	// old epoch can no longer join the next transaction.
	if _, err := l.AppendMarker(4, 3, true, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(txnBatch(t, 1, 4, 2, 1)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("late batch of the previous epoch: %v", err)
	}
	mustAppend(t, l, txnBatch(t, 1, 4, 3, 0))
	if _, err := l.AppendMarker(4, 3, false, 4); !errors.Is(err, ErrTransactionCoordinatorFenced) {
		t.Fatalf("marker of an older coordinator: %v", err)
	}
}

func TestFollowerRebuildsTransactions(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	leader := mustCreate(t, s, "lead", testCfg())
	mustAppend(t, leader, txnBatch(t, 2, 7, 0, 0))
	mustAppend(t, leader, buildBatch(t, spec(1, 1)))
	if _, err := leader.AppendMarker(7, 0, false, 1); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, leader, txnBatch(t, 1, 8, 0, 0))

	f, err := s.Create("follow", 0, [16]byte{9}, testCfg())
	if err != nil {
		t.Fatal(err)
	}
	gen := f.BecomeFollower()
	for off := int64(0); off < leader.LogEndOffset(); {
		fr, _, err := leader.ReadReplicaRange(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := fr.AppendTo(nil)
		fr.Release()
		if off, err = f.AppendReplica(data, gen); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.AbortedTxns(0, f.LogEndOffset()), leader.AbortedTxns(0, leader.LogEndOffset()); len(got) != 1 || got[0].ProducerID != want[0].ProducerID || got[0].FirstOffset != want[0].FirstOffset || got[0].LastOffset != want[0].LastOffset {
		t.Fatalf("follower's aborted transactions %+v, leader's %+v", got, want)
	}
	f.SetReplicated(true)
	f.SetHighWatermark(f.LogEndOffset())
	if lso := f.LastStableOffset(); lso != 4 {
		t.Fatalf("follower LSO %d, want 4 (producer 8's transaction)", lso)
	}
	// Truncating away the abort marker forgets the aborted transaction and
	// reopens it.
	if err := f.TruncateTo(3, gen); err != nil {
		t.Fatal(err)
	}
	if got := f.AbortedTxns(0, 10); len(got) != 0 {
		t.Fatalf("aborted transactions after truncating the marker: %+v", got)
	}
	if lso := f.LastStableOffset(); lso != 0 {
		t.Fatalf("LSO %d after truncation, want 0", lso)
	}
}
