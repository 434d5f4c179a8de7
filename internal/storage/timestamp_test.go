package storage

import (
	"errors"
	"testing"
)

func TestOffsetForTimestamp(t *testing.T) {
	codecs := []struct {
		name  string
		codec int
	}{{"none", codecNone}, {"gzip", codecGzip}, {"snappy", codecSnappy}, {"lz4", codecLZ4}, {"zstd", codecZstd}}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			defer s.Close()
			cfg := testCfg()
			cfg.SegmentBytes = 400 // several segments
			cfg.IndexIntervalBytes = 1
			l := mustCreate(t, s, "ts", cfg)
			// Batches whose record timestamps are not sorted inside the batch
			// (CreateTime lets producers do that).
			batches := [][]int64{
				{100, 105, 103}, // offsets 0-2
				{110, 108, 120}, // 3-5
				{119, 130, 125}, // 6-8
				{150, 140, 160}, // 9-11
				{200, 170, 170}, // 12-14
				{210, 211, 300}, // 15-17
			}
			for _, ts := range batches {
				sp := spec(len(ts), 0)
				sp.timestamps, sp.codec, sp.valueSize = ts, c.codec, 40
				mustAppend(t, l, buildBatch(t, sp))
			}
			if n := len(segmentFiles(t, l.Dir(), ".log")); n < 2 {
				t.Fatalf("want several segments, got %d", n)
			}
			tests := []struct {
				ts      int64
				wantOff int64
				wantTs  int64
				found   bool
			}{
				{0, 0, 100, true},
				{100, 0, 100, true},
				{101, 1, 105, true},
				{104, 1, 105, true},
				{106, 3, 110, true},
				{111, 5, 120, true},
				{120, 5, 120, true},
				{121, 7, 130, true},
				{126, 7, 130, true},
				{131, 9, 150, true},
				{141, 9, 150, true},
				{151, 11, 160, true},
				{161, 12, 200, true},
				{201, 15, 210, true},
				{212, 17, 300, true},
				{300, 17, 300, true},
				{301, -1, -1, false},
			}
			for _, tc := range tests {
				off, ts, found, err := l.OffsetForTimestamp(tc.ts)
				if err != nil {
					t.Fatal(err)
				}
				if off != tc.wantOff || ts != tc.wantTs || found != tc.found {
					t.Errorf("OffsetForTimestamp(%d) = (%d, %d, %v), want (%d, %d, %v)", tc.ts, off, ts, found, tc.wantOff, tc.wantTs, tc.found)
				}
			}
			off, ts, err := l.MaxTimestamp()
			if err != nil || off != 17 || ts != 300 {
				t.Fatalf("MaxTimestamp = %d, %d, %v; want 17, 300", off, ts, err)
			}
			// Records below the log start are not answers.
			if _, err := l.DeleteRecordsBefore(2); err != nil {
				t.Fatal(err)
			}
			if off, ts, _, _ := l.OffsetForTimestamp(0); off != 2 || ts != 103 {
				t.Fatalf("after DeleteRecords: (%d, %d), want (2, 103)", off, ts)
			}
			// Same answers after a restart (indexes loaded from disk).
			s.Close()
			s = e.open()
			defer s.Close()
			l = s.Get("ts", 0)
			if off, ts, _, _ := l.OffsetForTimestamp(151); off != 11 || ts != 160 {
				t.Fatalf("after restart: (%d, %d)", off, ts)
			}
			if off, ts, _ := l.MaxTimestamp(); off != 17 || ts != 300 {
				t.Fatalf("MaxTimestamp after restart: %d %d", off, ts)
			}
		})
	}
}

func TestMaxTimestampEmptyAndTies(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "mt", testCfg())
	if off, ts, err := l.MaxTimestamp(); off != -1 || ts != -1 || err != nil {
		t.Fatalf("empty: %d %d %v", off, ts, err)
	}
	if _, _, found, _ := l.OffsetForTimestamp(0); found {
		t.Fatal("found a timestamp in an empty log")
	}
	sp := spec(3, 0)
	sp.timestamps = []int64{5, 9, 9}
	mustAppend(t, l, buildBatch(t, sp))
	mustAppend(t, l, buildBatch(t, spec(2, 9)))
	if off, ts, _ := l.MaxTimestamp(); off != 1 || ts != 9 {
		t.Fatalf("ties: %d %d, want the earliest record (1, 9)", off, ts)
	}
}

func TestCorruptCompressedBatchIsRejected(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "cc", testCfg())
	for _, codec := range []int{codecGzip, codecSnappy, codecLZ4, codecZstd} {
		sp := spec(3, 10)
		sp.codec = codec
		b := buildBatch(t, sp)
		// Garble the compressed payload but keep the CRC valid: a producer
		// bug that would stall every consumer at this offset if stored.
		for i := batchHeaderSize + 4; i < len(b); i += 3 {
			b[i] ^= 0x5a
		}
		recrcTest(b)
		if _, err := l.Append(b); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("codec %d: garbled payload appended (err %v)", codec, err)
		}
	}
	if l.LogEndOffset() != 0 {
		t.Fatalf("log end %d after rejected batches", l.LogEndOffset())
	}
}
