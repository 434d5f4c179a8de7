package storage

import (
	"testing"
	"time"
)

func TestRollRules(t *testing.T) {
	hour := time.Hour.Milliseconds()
	tests := []struct {
		name     string
		cfg      func(*LogConfig)
		batchTs  []int64 // one single-record batch per entry
		advance  time.Duration
		wantSegs int
	}{
		{"nothing to roll", func(c *LogConfig) {}, []int64{0, 1, 2}, 0, 1},
		{"segment.bytes", func(c *LogConfig) { c.SegmentBytes = int64(2 * len(buildBatch(t, spec(1, 0)))) }, []int64{0, 1, 2, 3, 4}, 0, 3},
		{"segment.ms by batch timestamps", func(c *LogConfig) { c.SegmentMs = hour }, []int64{0, hour / 2, hour + 1, hour + 2, 3 * hour}, 0, 3},
		{"segment.ms by creation time when batches have no timestamp", func(c *LogConfig) { c.SegmentMs = hour }, []int64{-1, -1}, 2 * time.Hour, 2},
		{"index full", func(c *LogConfig) {
			c.SegmentIndexBytes = 4 * timeIndexEntrySize // 4 time entries / 6 offset entries
			c.IndexIntervalBytes = 0                     // every batch after the first is indexed
		}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			defer s.Close()
			cfg := testCfg()
			tc.cfg(&cfg)
			l := mustCreate(t, s, "roll", cfg)
			for i, ts := range tc.batchTs {
				if i == len(tc.batchTs)-1 {
					e.clock.Advance(tc.advance)
				}
				mustAppend(t, l, buildBatch(t, spec(1, ts)))
			}
			if n := len(segmentFiles(t, l.Dir(), ".log")); n != tc.wantSegs {
				t.Fatalf("%d segments, want %d", n, tc.wantSegs)
			}
			if got := len(readAll(t, l, 0)); got != len(tc.batchTs) {
				t.Fatalf("%d batches readable", got)
			}
		})
	}
}
