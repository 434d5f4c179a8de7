package storage

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*LogConfig)
		// appended batches: 10 batches, timestamps 1 hour apart from clock
		// start - 10h; each batch ends up in its own segment.
		advance       time.Duration
		wantLogStart  int64
		wantSegments  int
		wantCheckFile bool
	}{
		{"infinite", func(c *LogConfig) {}, 0, 0, 10, false},
		{"retention.ms deletes old segments", func(c *LogConfig) { c.RetentionMs = (5*time.Hour + 30*time.Minute).Milliseconds() }, 0, 15, 5, true},
		{"retention.ms deletes everything, active too", func(c *LogConfig) { c.RetentionMs = time.Hour.Milliseconds() }, 20 * time.Hour, 30, 1, true},
		{"retention.bytes", func(c *LogConfig) { c.RetentionBytes = 3 * int64(batchSize) }, 0, 21, 3, true},
		{"retention.bytes just below one segment more", func(c *LogConfig) { c.RetentionBytes = 3*int64(batchSize) + 1 }, 0, 18, 4, true},
		{"compact only: no retention", func(c *LogConfig) {
			c.RetentionMs = 1
			c.Delete, c.Compact = false, true
		}, 0, 0, 10, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			defer s.Close()
			cfg := testCfg()
			cfg.SegmentBytes = int64(batchSize) // one batch per segment
			cfg.RetentionMs, cfg.RetentionBytes = -1, -1
			tc.cfg(&cfg)
			l := mustCreate(t, s, "ret", cfg)
			start := e.clock.Now().Add(-10 * time.Hour)
			for i := 0; i < 10; i++ {
				mustAppend(t, l, buildBatch(t, spec(3, start.Add(time.Duration(i)*time.Hour).UnixMilli())))
			}
			if n := len(segmentFiles(t, l.Dir(), ".log")); n != 10 {
				t.Fatalf("setup: %d segments", n)
			}
			e.clock.Advance(tc.advance)
			if err := s.EnforceRetention(); err != nil {
				t.Fatal(err)
			}
			if got := l.LogStartOffset(); got != tc.wantLogStart {
				t.Fatalf("log start %d, want %d", got, tc.wantLogStart)
			}
			if n := len(segmentFiles(t, l.Dir(), ".log")); n != tc.wantSegments {
				t.Fatalf("%d segment files, want %d", n, tc.wantSegments)
			}
			if n := len(segmentFiles(t, l.Dir(), ".index")); n != tc.wantSegments {
				t.Fatalf("%d index files, want %d", n, tc.wantSegments)
			}
			if l.LogEndOffset() != 30 {
				t.Fatalf("LEO %d", l.LogEndOffset())
			}
			if tc.wantLogStart > 0 {
				if _, err := l.Read(tc.wantLogStart-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("read below log start: %v", err)
				}
			}
			readAll(t, l, tc.wantLogStart)
			cp, _ := os.ReadFile(filepath.Join(e.dir, logStartOffsetFile))
			if tc.wantCheckFile && !strings.Contains(string(cp), "ret 0 "+itoa(tc.wantLogStart)) {
				t.Fatalf("log-start-offset-checkpoint = %q", cp)
			}
			// Appends continue at the right offset, and the log start
			// survives a restart.
			mustAppend(t, l, buildBatch(t, spec(1, e.clock.Now().UnixMilli())))
			s.Close()
			s = e.open()
			defer s.Close()
			if got := s.Get("ret", 0).LogStartOffset(); got != tc.wantLogStart {
				t.Fatalf("log start after restart %d", got)
			}
		})
	}
}

var batchSize = len(buildBatch(&testing.T{}, spec(3, 0)))

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestDeleteRecordsBefore(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = int64(batchSize) * 2
	l := mustCreate(t, s, "dr", cfg)
	for i := 0; i < 10; i++ { // 5 segments of 2 batches (6 offsets)
		mustAppend(t, l, buildBatch(t, spec(3, 1)))
	}
	tests := []struct {
		offset    int64
		wantStart int64
		wantErr   error
		wantSegs  int
	}{
		{offset: 31, wantErr: ErrOffsetOutOfRange, wantSegs: 5},
		{offset: 4, wantStart: 4, wantSegs: 5},   // inside the first segment
		{offset: 2, wantStart: 4, wantSegs: 5},   // never moves back
		{offset: 13, wantStart: 13, wantSegs: 3}, // [0,6) and [6,12) are wholly below
		{offset: -1, wantStart: 30, wantSegs: 1}, // the active segment always stays
	}
	for _, tc := range tests {
		got, err := l.DeleteRecordsBefore(tc.offset)
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("DeleteRecordsBefore(%d): %v", tc.offset, err)
		}
		if err == nil && got != tc.wantStart {
			t.Fatalf("DeleteRecordsBefore(%d) = %d, want %d", tc.offset, got, tc.wantStart)
		}
		if n := len(segmentFiles(t, l.Dir(), ".log")); n != tc.wantSegs {
			t.Fatalf("after DeleteRecordsBefore(%d): %d segments, want %d", tc.offset, n, tc.wantSegs)
		}
		if tc.wantErr == nil {
			if _, err := l.Read(tc.wantStart-1, 10); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below start after DeleteRecordsBefore(%d): %v", tc.offset, err)
			}
			cp, _ := os.ReadFile(filepath.Join(e.dir, logStartOffsetFile))
			if !strings.Contains(string(cp), "dr 0 "+itoa(tc.wantStart)) {
				t.Fatalf("checkpoint not updated: %q", cp)
			}
		}
	}
	if res, err := l.Read(30, 10); err != nil || len(res.Records) != 0 || res.LogStartOffset != 30 {
		t.Fatalf("read at log end: %+v %v", res, err)
	}
	ep, _ := os.ReadFile(filepath.Join(l.Dir(), leaderEpochFile))
	if string(ep) != "0\n1\n0 30\n" {
		t.Fatalf("leader-epoch-checkpoint %q", ep)
	}
	if r := mustAppend(t, l, buildBatch(t, spec(1, 1))); r.BaseOffset != 30 || r.LogStartOffset != 30 {
		t.Fatalf("append after delete: %+v", r)
	}
}

// Readers must never fail or see torn data while retention deletes segments
// under them and appends roll new ones.
func TestConcurrentAppendReadRetention(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = 2048
	cfg.RetentionBytes = 8192
	l := mustCreate(t, s, "conc", cfg)
	stop := make(chan struct{})
	errc := make(chan error, 8)
	done := make(chan struct{})
	for w := 0; w < 2; w++ {
		go func() {
			for i := 0; i < 400; i++ {
				if _, err := l.Append(buildBatch(t, spec(1+i%5, int64(i)))); err != nil {
					errc <- err
					return
				}
			}
			done <- struct{}{}
		}()
	}
	for r := 0; r < 3; r++ {
		go func() {
			for {
				select {
				case <-stop:
					errc <- nil
					return
				default:
				}
				off := l.LogStartOffset()
				res, err := l.Read(off, 3000)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention moved the start between the two calls
				}
				if err != nil {
					errc <- err
					return
				}
				for b := res.Records; len(b) > 0; {
					one, h, err := nextBatch(b)
					if err == nil {
						err = checkShape(one, &h)
					}
					if err != nil {
						errc <- err
						return
					}
					b = b[len(one):]
				}
			}
		}()
	}
	go func() {
		for {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			if err := s.EnforceRetention(); err != nil {
				errc <- err
				return
			}
			if _, _, _, err := l.OffsetForTimestamp(100); err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := 0; i < 2; i++ {
		select {
		case <-done:
		case err := <-errc:
			t.Fatal(err)
		}
	}
	close(stop)
	for i := 0; i < 4; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if l.LogStartOffset() == 0 {
		t.Fatal("retention never ran")
	}
}

// Without a durable high watermark (gregor.durability=os) nothing waits
// for fsyncs, yet a rolled segment is still fsynced in the background, as
// Kafka flushes at roll, so one that retention removes is closed and its
// disk space freed, not held open until the broker stops.
func TestRetentionClosesRemovedSegmentsWithoutDurableHW(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = int64(batchSize) // one batch per segment
	cfg.RetentionBytes = 2 * int64(batchSize)
	l := mustCreate(t, s, "osret", cfg)
	for i := 0; i < 10; i++ {
		mustAppend(t, l, buildBatch(t, spec(3, e.clock.Now().UnixMilli())))
	}
	l.mu.RLock()
	old := slices.Clone(l.segs[:5])
	l.mu.RUnlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.RLock()
		n := len(l.unsynced)
		l.mu.RUnlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rolled segments still wait for an fsync", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	for _, sg := range old {
		if r := sg.refs.Load(); r != 0 {
			t.Errorf("segment %d removed by retention still has %d references (its file stays open)", sg.base, r)
		}
	}
}
