package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fillLog appends n batches of 3 records and returns the log's directory and
// the size of one batch.
func fillLog(t *testing.T, s *Store, cfg LogConfig, n int) (*Log, int) {
	t.Helper()
	l := mustCreate(t, s, "rec", cfg)
	b := buildBatch(t, spec(3, 50))
	for i := 0; i < n; i++ {
		mustAppend(t, l, buildBatch(t, spec(3, 50+int64(i))))
	}
	return l, len(b)
}

func TestRecoveryTruncatesTornTail(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, logFile string, batch int)
		wantLEO int64
		warn    bool
	}{
		{"cut mid-batch", func(t *testing.T, f string, batch int) {
			truncate(t, f, int64(batch*9+batch/2))
		}, 27, true},
		{"cut inside the length field", func(t *testing.T, f string, batch int) {
			truncate(t, f, int64(batch*9+5))
		}, 27, true},
		{"garbage appended", func(t *testing.T, f string, batch int) {
			appendBytes(t, f, bytes.Repeat([]byte{0xab}, 300))
		}, 30, true},
		{"zeros appended (preallocated space)", func(t *testing.T, f string, batch int) {
			appendBytes(t, f, make([]byte, 5000))
		}, 30, false},
		{"bit flip in the 5th batch", func(t *testing.T, f string, batch int) {
			flipByte(t, f, int64(batch*4+batch-3))
		}, 12, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.open()
			l, batch := fillLog(t, s, testCfg(), 10)
			dir := l.Dir()
			s.crash()
			tc.damage(t, filepath.Join(dir, "00000000000000000000.log"), batch)

			s = e.open()
			defer s.Close()
			l = s.Get("rec", 0)
			if got := l.LogEndOffset(); got != tc.wantLEO {
				t.Fatalf("LEO after recovery %d, want %d", got, tc.wantLEO)
			}
			if got := l.RecoveryPoint(); got != tc.wantLEO {
				t.Fatalf("recovery point %d, want %d", got, tc.wantLEO)
			}
			if warned := len(e.logged("truncated torn or corrupt tail")) > 0; warned != tc.warn {
				t.Fatalf("warning logged = %v, want %v; log: %v", warned, tc.warn, e.logged(""))
			}
			hs := readAll(t, l, 0) // validates every CRC
			if int64(len(hs)*3) != tc.wantLEO {
				t.Fatalf("%d batches readable", len(hs))
			}
			if _, err := l.Read(tc.wantLEO+1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read past recovered end: %v", err)
			}
			res := mustAppend(t, l, buildBatch(t, spec(2, 99)))
			if res.BaseOffset != tc.wantLEO {
				t.Fatalf("append after recovery at %d, want %d", res.BaseOffset, tc.wantLEO)
			}
			readAll(t, l, 0)
			// The files survive a clean restart too.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := e.open()
			defer s2.Close()
			if got := len(readAll(t, s2.Get("rec", 0), 0)); got != len(hs)+1 {
				t.Fatalf("%d batches after clean restart, want %d", got, len(hs)+1)
			}
		})
	}
}

func TestRecoveryDeletesSegmentsAfterCorruption(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	cfg := testCfg()
	cfg.SegmentBytes = 1000
	cfg.IndexIntervalBytes = 1
	e.cfg = &cfg
	l, _ := fillLog(t, s, cfg, 40)
	dir := l.Dir()
	logs := segmentFiles(t, dir, ".log")
	if len(logs) < 4 {
		t.Fatalf("want >= 4 segments, got %d", len(logs))
	}
	// Force a full scan (no recovery point), then corrupt the second segment.
	s.crash()
	removeFile(t, filepath.Join(e.dir, recoveryPointFile))
	second := logs[1]
	secondBase, _ := parseOffsetName(filepath.Base(second), extLog)
	flipByte(t, second, 70)

	s = e.open()
	defer s.Close()
	l = s.Get("rec", 0)
	if got := l.LogEndOffset(); got != secondBase {
		t.Fatalf("LEO %d, want %d (start of the corrupt segment)", got, secondBase)
	}
	if n := len(segmentFiles(t, dir, ".log")); n != 2 {
		t.Fatalf("%d segment files left, want 2", n)
	}
	readAll(t, l, 0)
	// The rebuilt index of the first segment is on disk and valid.
	b, err := os.ReadFile(filepath.Join(dir, "00000000000000000000.index"))
	if err != nil || len(b) == 0 {
		t.Fatalf("index: %d bytes, %v", len(b), err)
	}
	if _, err := decodeOffsetIndex(b, 1000); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryRebuildsBrokenIndex(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	cfg := testCfg()
	cfg.SegmentBytes = 1000
	cfg.IndexIntervalBytes = 1
	l, _ := fillLog(t, s, cfg, 30)
	dir := l.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Clean shutdown, but an index file is garbage and one is missing.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.index"), []byte("garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := segmentFiles(t, dir, ".log")
	removeFile(t, logs[1][:len(logs[1])-len(".log")]+".timeindex")

	s = e.open()
	defer s.Close()
	l = s.Get("rec", 0)
	if l.LogEndOffset() != 90 {
		t.Fatalf("LEO %d", l.LogEndOffset())
	}
	if len(e.logged("rebuilding index")) != 2 {
		t.Fatalf("expected two index rebuilds, log: %v", e.logged(""))
	}
	for off := int64(0); off < 90; off += 7 {
		res, err := l.Read(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		if h := splitBatches(t, res.Records)[0]; h.baseOffset > off || h.lastOffset() < off {
			t.Fatalf("Read(%d) got batch %d..%d", off, h.baseOffset, h.lastOffset())
		}
	}
}

func TestCleanShutdownTailCheck(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	l, batch := fillLog(t, s, testCfg(), 5)
	dir := l.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Marker says clean, but the tail is torn: the cheap check must catch it.
	truncate(t, filepath.Join(dir, "00000000000000000000.log"), int64(batch*4+10))
	s = e.open()
	defer s.Close()
	if got := s.Get("rec", 0).LogEndOffset(); got != 12 {
		t.Fatalf("LEO %d, want 12", got)
	}
	if len(e.logged("tail check")) == 0 {
		t.Fatal("tail check failure not logged")
	}
}

func TestTornWriteFailsStoreAndRecovers(t *testing.T) {
	e := newEnv(t)
	ffs := &faultFS{}
	e.fs = ffs
	s := e.open()
	l := mustCreate(t, s, "torn", testCfg())
	mustAppend(t, l, buildBatch(t, spec(2, 1)))
	ffs.failWrite.Store(true)
	cfg := l.Config()
	cfg.Preallocate = false
	l.SetConfig(cfg)
	_, err := l.Append(buildBatch(t, spec(2, 1)))
	if !errors.Is(err, ErrStorageFailed) || ffs.writeFailed.Load() != 1 {
		t.Fatalf("torn write: %v", err)
	}
	if l.LogEndOffset() != 2 {
		t.Fatalf("LEO moved to %d", l.LogEndOffset())
	}
	if _, err := l.Append(buildBatch(t, spec(2, 1))); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after failure: %v", err)
	}
	if _, err := l.Read(0, 1<<20); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("read from an offline log dir: %v", err)
	}
	s.crash()
	s = e.open()
	defer s.Close()
	l = s.Get("torn", 0)
	if l.LogEndOffset() != 2 {
		t.Fatalf("LEO after restart %d", l.LogEndOffset())
	}
	mustAppend(t, l, buildBatch(t, spec(1, 1)))
}

func truncate(t *testing.T, f string, size int64) {
	t.Helper()
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, f string, b []byte) {
	t.Helper()
	fh, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, f string, pos int64) {
	t.Helper()
	fh, err := os.OpenFile(f, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := fh.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}
