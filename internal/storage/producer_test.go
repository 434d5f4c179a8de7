package storage

import (
	"errors"
	"math"
	"testing"
)

func TestIdempotentProducer(t *testing.T) {
	type step struct {
		pid     int64
		epoch   int16
		seq     int32
		n       int
		want    error
		dupOf   int // 1-based index of the original step for a duplicate, 0 = none
		control bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{pid: 1, epoch: 0, seq: 0, n: 3}, {pid: 1, epoch: 0, seq: 3, n: 2}, {pid: 1, epoch: 0, seq: 5, n: 1}}},
		{"duplicate of last", []step{{pid: 1, seq: 0, n: 2}, {pid: 1, seq: 2, n: 2}, {pid: 1, seq: 2, n: 2, dupOf: 2}}},
		{"duplicate of each of the last 5", []step{
			{pid: 1, seq: 0, n: 1}, {pid: 1, seq: 1, n: 1}, {pid: 1, seq: 2, n: 1}, {pid: 1, seq: 3, n: 1},
			{pid: 1, seq: 4, n: 1}, {pid: 1, seq: 5, n: 1},
			{pid: 1, seq: 1, n: 1, dupOf: 2}, {pid: 1, seq: 2, n: 1, dupOf: 3}, {pid: 1, seq: 3, n: 1, dupOf: 4},
			{pid: 1, seq: 4, n: 1, dupOf: 5}, {pid: 1, seq: 5, n: 1, dupOf: 6},
		}},
		{"sixth-oldest is no longer a duplicate", []step{
			{pid: 1, seq: 0, n: 1}, {pid: 1, seq: 1, n: 1}, {pid: 1, seq: 2, n: 1}, {pid: 1, seq: 3, n: 1},
			{pid: 1, seq: 4, n: 1}, {pid: 1, seq: 5, n: 1}, {pid: 1, seq: 0, n: 1, want: ErrOutOfOrderSequence},
		}},
		{"gap", []step{{pid: 1, seq: 0, n: 2}, {pid: 1, seq: 3, n: 1, want: ErrOutOfOrderSequence}}},
		{"overlapping but not equal", []step{{pid: 1, seq: 0, n: 2}, {pid: 1, seq: 1, n: 2, want: ErrOutOfOrderSequence}}},
		{"older epoch", []step{{pid: 1, epoch: 2, seq: 0, n: 1}, {pid: 1, epoch: 1, seq: 1, n: 1, want: ErrInvalidProducerEpoch}}},
		{"older epoch of a duplicate is still fenced", []step{{pid: 1, epoch: 1, seq: 0, n: 1}, {pid: 1, epoch: 2, seq: 0, n: 1}, {pid: 1, epoch: 1, seq: 0, n: 1, want: ErrInvalidProducerEpoch}}},
		{"new epoch restarts at 0", []step{{pid: 1, epoch: 0, seq: 0, n: 5}, {pid: 1, epoch: 1, seq: 0, n: 1}, {pid: 1, epoch: 1, seq: 1, n: 1}}},
		{"new epoch must start at 0", []step{{pid: 1, epoch: 0, seq: 0, n: 5}, {pid: 1, epoch: 1, seq: 5, n: 1, want: ErrOutOfOrderSequence}}},
		{"unknown producer may start anywhere", []step{{pid: 7, epoch: 3, seq: 42, n: 2}, {pid: 7, epoch: 3, seq: 44, n: 1}}},
		{"producers are independent", []step{{pid: 1, seq: 0, n: 1}, {pid: 2, seq: 0, n: 1}, {pid: 1, seq: 1, n: 1}, {pid: 2, seq: 2, n: 1, want: ErrOutOfOrderSequence}}},
		{"sequence wraps to 0", []step{{pid: 1, seq: math.MaxInt32 - 1, n: 2}, {pid: 1, seq: 0, n: 1}}},
		{"batch spanning the wrap", []step{{pid: 1, seq: math.MaxInt32, n: 3}, {pid: 1, seq: 2, n: 1}}},
		{"control batch bumps the epoch", []step{{pid: 1, epoch: 0, seq: 0, n: 1}, {pid: 1, epoch: 1, control: true, n: 1}, {pid: 1, epoch: 0, seq: 1, n: 1, want: ErrInvalidProducerEpoch}, {pid: 1, epoch: 1, seq: 0, n: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			defer s.Close()
			l := mustCreate(t, s, "idem", testCfg())
			results := make([]AppendResult, len(tc.steps))
			for i, st := range tc.steps {
				sp := spec(st.n, 100).idem(st.pid, st.epoch, st.seq)
				if st.control {
					sp.control, sp.seq = true, -1
				}
				leo := l.LogEndOffset()
				res, err := l.Append(buildBatch(t, sp))
				if !errors.Is(err, st.want) {
					t.Fatalf("step %d: err %v, want %v", i+1, err, st.want)
				}
				results[i] = res
				if err != nil {
					if l.LogEndOffset() != leo {
						t.Fatalf("step %d: rejected batch moved LEO", i+1)
					}
					continue
				}
				if st.dupOf > 0 {
					orig := results[st.dupOf-1]
					if !res.Duplicate || res.BaseOffset != orig.BaseOffset || res.LastOffset != orig.LastOffset {
						t.Fatalf("step %d: %+v, want duplicate of %+v", i+1, res, orig)
					}
					if l.LogEndOffset() != leo {
						t.Fatalf("step %d: duplicate was written", i+1)
					}
				} else if res.Duplicate || res.BaseOffset != leo {
					t.Fatalf("step %d: %+v, want a fresh append at %d", i+1, res, leo)
				}
			}
		})
	}
}

// A duplicate must still be recognised after a clean restart and after a
// crash, for each of the last five batches.
func TestProducerStateSurvivesRestart(t *testing.T) {
	for _, mode := range []string{"clean", "crash", "crash after roll", "crash without snapshot"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			cfg := testCfg()
			if mode == "crash after roll" {
				cfg.SegmentBytes = 300
			}
			l := mustCreate(t, s, "ps", cfg)
			mustAppend(t, l, buildBatch(t, spec(2, 1))) // non-idempotent data first
			var orig []AppendResult
			for i := int32(0); i < 7; i++ {
				orig = append(orig, mustAppend(t, l, buildBatch(t, spec(2, 1).idem(5, 3, 2*i))))
			}
			switch mode {
			case "clean":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			case "crash without snapshot":
				s.crash()
				for _, f := range segmentFiles(t, l.Dir(), ".snapshot") {
					removeFile(t, f)
				}
			default:
				s.crash()
			}
			s = e.open()
			defer s.Close()
			l = s.Get("ps", 0)
			for i := 2; i < 7; i++ {
				res, err := l.Append(buildBatch(t, spec(2, 1).idem(5, 3, int32(2*i))))
				if err != nil || !res.Duplicate || res.BaseOffset != orig[i].BaseOffset || res.LastOffset != orig[i].LastOffset {
					t.Fatalf("retry of batch %d after restart: %+v, %v; want duplicate of %+v", i, res, err, orig[i])
				}
			}
			if _, err := l.Append(buildBatch(t, spec(1, 1).idem(5, 3, 20))); !errors.Is(err, ErrOutOfOrderSequence) {
				t.Fatalf("gap after restart: %v", err)
			}
			if _, err := l.Append(buildBatch(t, spec(1, 1).idem(5, 2, 14))); !errors.Is(err, ErrInvalidProducerEpoch) {
				t.Fatalf("old epoch after restart: %v", err)
			}
			res := mustAppend(t, l, buildBatch(t, spec(1, 1).idem(5, 3, 14)))
			if res.BaseOffset != orig[6].LastOffset+1 {
				t.Fatalf("next append at %d, want %d", res.BaseOffset, orig[6].LastOffset+1)
			}
			if ps := l.ProducerIDs(); len(ps) != 1 || ps[0].ProducerID != 5 || ps[0].Epoch != 3 || ps[0].LastSequence != 14 || ps[0].Batches != 5 {
				t.Fatalf("producer state %+v", ps)
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	m := map[int64]*producerState{}
	a := &producerState{epoch: 4}
	for i := int64(0); i < 7; i++ {
		a.push(batchMeta{firstSeq: int32(i * 3), lastSeq: int32(i*3 + 2), firstOffset: 100 + i*3, lastOffset: 102 + i*3, timestamp: 1000 + i})
	}
	m[11] = a
	m[12] = &producerState{epoch: 9, lastTimestamp: 77} // epoch without batches
	m[13] = &producerState{epoch: 0}
	m[13].push(batchMeta{firstSeq: math.MaxInt32 - 1, lastSeq: 1, firstOffset: 5, lastOffset: 8, timestamp: 3})
	got, err := decodeSnapshot(encodeSnapshot(m))
	if err != nil {
		t.Fatal(err)
	}
	for pid, want := range m {
		if g := got[pid]; g == nil || *g != *want {
			t.Fatalf("producer %d: got %+v, want %+v", pid, g, want)
		}
	}
	bad := encodeSnapshot(m)
	bad[len(bad)-1] ^= 1
	if _, err := decodeSnapshot(bad); err == nil {
		t.Fatal("corrupt snapshot accepted")
	}
}
