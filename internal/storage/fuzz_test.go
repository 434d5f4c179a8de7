package storage

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzAppend feeds arbitrary bytes to Append: it must never panic, and
// whatever it accepts must read back as valid batches, byte for byte.
func FuzzAppend(f *testing.F) {
	f.Add(buildBatch(f, spec(3, 1)))
	f.Add(append(buildBatch(f, spec(1, 1)), buildBatch(f, spec(2, 1))...))
	f.Add(buildBatch(f, spec(2, 1).idem(1, 0, 0)))
	sp := spec(4, 5)
	sp.codec = codecZstd
	f.Add(buildBatch(f, sp))
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	// One log for all executions of this process (each fuzz worker runs
	// this function once); retention keeps it small.
	dir := f.TempDir()
	s, err := Open(Options{Dir: dir, FS: noSyncFS{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	cfg := DefaultLogConfig()
	cfg.SegmentBytes = 64 << 10
	cfg.RetentionBytes = 256 << 10
	cfg.RetentionMs = -1
	cfg.MaxMessageBytes = 32 << 10
	l, err := s.Create("fuzz", 0, [16]byte{}, cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		res, err := l.Append(in)
		if err != nil || res.Duplicate {
			return
		}
		l.store.EnforceRetention()
		r, err := l.Read(res.BaseOffset, len(in))
		if err != nil {
			t.Fatalf("Read of accepted append at %d: %v", res.BaseOffset, err)
		}
		if !bytes.Equal(r.Records, in) {
			t.Fatalf("read back %d bytes, appended %d (or different content)", len(r.Records), len(in))
		}
		hs := splitBatches(t, r.Records)
		if hs[0].baseOffset != res.BaseOffset || hs[len(hs)-1].lastOffset() != res.LastOffset {
			t.Fatalf("offsets [%d, %d], result %+v", hs[0].baseOffset, hs[len(hs)-1].lastOffset(), res)
		}
	})
}

// FuzzRecover opens a partition whose only segment (and optionally index)
// holds arbitrary bytes. Open must not panic. After an unclean shutdown it
// must serve only batches that pass their CRC; after a "clean" one (where
// files are trusted, like Kafka) nothing may panic either.
func FuzzRecover(f *testing.F) {
	good := append(buildBatch(f, spec(3, 1)), buildBatch(f, spec(2, 9))...)
	binary.BigEndian.PutUint64(good[len(buildBatch(f, spec(3, 1))):], 3)
	f.Add(good, []byte{}, false)
	f.Add(good[:len(good)-7], []byte{}, false)
	f.Add(append(bytes.Clone(good), 0xff, 0, 0, 0), []byte{0, 0, 0, 3, 0, 0, 0, 73}, true)
	f.Add(bytes.Repeat([]byte{0}, 200), []byte{}, true)
	f.Fuzz(func(t *testing.T, segment, index []byte, clean bool) {
		dir := fuzzDir(t)
		pdir := filepath.Join(dir, "t-0")
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		write := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(pdir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("00000000000000000000.log", segment)
		if len(index) > 0 {
			write("00000000000000000000.index", index)
		}
		if clean {
			if err := os.WriteFile(filepath.Join(dir, cleanShutdownFile), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Open(Options{Dir: dir, FS: noSyncFS{}})
		if err != nil {
			return // refusing to open is fine; panicking is not
		}
		defer s.Close()
		l := s.Get("t", 0)
		if l == nil {
			t.Fatal("partition not loaded")
		}
		l.OffsetForTimestamp(5)
		l.MaxTimestamp()
		for off := l.LogStartOffset(); off < l.LogEndOffset(); {
			res, err := l.Read(off, 1<<20)
			if err != nil {
				if clean {
					return
				}
				t.Fatalf("Read(%d) of a recovered log: %v", off, err)
			}
			var last int64 = -1
			for b := res.Records; len(b) > 0; {
				one, h, err := nextBatch(b)
				if err == nil {
					err = checkShape(one, &h)
				}
				if err != nil {
					if clean {
						return
					}
					t.Fatalf("recovered log served a bad batch: %v", err)
				}
				last = h.lastOffset()
				b = b[len(one):]
			}
			if last < off {
				if clean {
					return
				}
				t.Fatalf("Read(%d) made no progress", off)
			}
			off = last + 1
		}
		if !clean {
			// Appending after recovery works and lands at the log end.
			leo := l.LogEndOffset()
			if r, err := l.Append(buildBatch(t, spec(1, 1))); err != nil || r.BaseOffset != leo {
				t.Fatalf("append after recovery: %+v %v (LEO was %d)", r, err, leo)
			}
		}
	})
}

// noSyncFS skips fsync: durability is irrelevant to what the fuzzers check
// and fsync would make each execution take milliseconds.
type noSyncFS struct{ OSFS }

func (noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ *os.File }

func (noSyncFile) Sync() error { return nil }

// fuzzDir is a per-execution directory, on tmpfs when there is one: on a
// disk mounted with discard, creating and removing files dominates the cost
// of an execution and the fuzzer crawls.
func fuzzDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "gregor-fuzz")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
