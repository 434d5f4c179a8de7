package storage

import (
	"os"
	"testing"
)

// Start-up leaves the indexes of sealed segments unread (as Kafka maps
// its indexes lazily): reads, timestamp lookups and truncation load them
// on first use, with the same answers as before the restart, after a
// clean stop and after a crash; an index file damaged in the middle is
// rebuilt from the data when it is first needed.
func TestLazyIndexes(t *testing.T) {
	for _, crash := range []bool{false, true} {
		e := newEnv(t)
		cfg := testCfg()
		cfg.SegmentBytes = 8 << 10
		cfg.IndexIntervalBytes = 200
		e.cfg = &cfg // the config the store opens the log with
		s := e.open()
		l := mustCreate(t, s, "lazy", cfg)
		for i := range 600 {
			mustAppend(t, l, buildBatch(t, spec(3, int64(1000+i))))
		}
		want := readAll(t, l, 0)
		wantTs := make(map[int64]int64) // timestamp → offset
		for _, ts := range []int64{1000, 1150, 1323, 1599} {
			off, _, found, err := l.OffsetForTimestamp(ts)
			if err != nil || !found {
				t.Fatalf("OffsetForTimestamp(%d): %v %v", ts, found, err)
			}
			wantTs[ts] = off
		}
		dir := l.Dir()
		if crash {
			if err := l.syncNow(); err != nil { // below the recovery point: trusted
				t.Fatal(err)
			}
			if err := s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			s.crash()
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// Damage the middle of the second segment's index, keeping its
		// size and last entry: start-up cannot tell.
		l = nil
		s = e.open()
		second := s.Get("lazy", 0).segs[1]
		s.Close()
		idx := segmentPath(dir, second.base, extIndex)
		b, err := os.ReadFile(idx)
		if err != nil || len(b) < 3*offsetIndexEntrySize {
			t.Fatalf("index of %d: %d bytes, %v", second.base, len(b), err)
		}
		copy(b[offsetIndexEntrySize:], b[:offsetIndexEntrySize]) // entry 1 = entry 0: not increasing
		if err := os.WriteFile(idx, b, 0o644); err != nil {
			t.Fatal(err)
		}

		s = e.open()
		l = s.Get("lazy", 0)
		segs := l.segs
		if len(segs) < 4 {
			t.Fatalf("%d segments", len(segs))
		}
		for i, sg := range segs {
			if lazy := sg.idxLazy.Load(); lazy != (i < len(segs)-1) {
				t.Fatalf("crash %v: segment %d of %d lazy %v after start-up", crash, i, len(segs), lazy)
			}
		}
		got := readAll(t, l, 0)
		if len(got) != len(want) {
			t.Fatalf("crash %v: %d batches after restart, want %d", crash, len(got), len(want))
		}
		for i := range got {
			if got[i].baseOffset != want[i].baseOffset || got[i].crc != want[i].crc {
				t.Fatalf("crash %v: batch %d differs", crash, i)
			}
		}
		for i, sg := range segs[:len(segs)-1] {
			if sg.idxLazy.Load() || len(sg.offIdx) == 0 {
				t.Fatalf("crash %v: segment %d: lazy %v, %d index entries after reading it", crash, i, sg.idxLazy.Load(), len(sg.offIdx))
			}
		}
		for ts, off := range wantTs {
			got, _, found, err := l.OffsetForTimestamp(ts)
			if err != nil || !found || got != off {
				t.Fatalf("crash %v: OffsetForTimestamp(%d) = %d %v %v, want %d", crash, ts, got, found, err, off)
			}
		}
		// The rebuilt index equals what the appender wrote.
		if _, _, err := second.readIndexFiles(); err == nil {
			t.Fatal("the damaged index reads as valid")
		}
		built, _, err := l.segs[1].buildIndexes(cfg.IndexIntervalBytes)
		if err != nil || len(built) != len(l.segs[1].offIdx) {
			t.Fatalf("rebuilt index: %d entries (%v), loaded %d", len(built), err, len(l.segs[1].offIdx))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
