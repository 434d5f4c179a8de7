package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// batchSpec describes a v2 batch for tests. The builder is written from the
// protocol description (not taken from any client library).
type batchSpec struct {
	codec      int
	timestamps []int64 // one per record; len = record count
	valueSize  int
	pid        int64 // -1 = not idempotent
	epoch      int16
	seq        int32
	control    bool
	txn        bool
	logAppend  bool // set the LogAppendTime attribute
}

func spec(n int, ts int64) batchSpec {
	s := batchSpec{pid: -1, epoch: -1, seq: -1, valueSize: 10}
	for i := 0; i < n; i++ {
		s.timestamps = append(s.timestamps, ts)
	}
	return s
}

func (s batchSpec) idem(pid int64, epoch int16, seq int32) batchSpec {
	s.pid, s.epoch, s.seq = pid, epoch, seq
	return s
}

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func buildBatch(t testing.TB, s batchSpec) []byte {
	t.Helper()
	n := len(s.timestamps)
	if n == 0 {
		t.Fatal("batch without records")
	}
	baseTs, maxTs := s.timestamps[0], s.timestamps[0]
	for _, ts := range s.timestamps {
		baseTs, maxTs = min(baseTs, ts), max(maxTs, ts)
	}
	var recs []byte
	for i, ts := range s.timestamps {
		var body []byte
		body = append(body, 0) // attributes
		body = appendVarint(body, ts-baseTs)
		body = appendVarint(body, int64(i))
		key := []byte{byte('k'), byte(i)}
		body = appendVarint(body, int64(len(key)))
		body = append(body, key...)
		val := bytes.Repeat([]byte{byte('a' + i%26)}, s.valueSize)
		body = appendVarint(body, int64(len(val)))
		body = append(body, val...)
		body = appendVarint(body, 0) // headers
		recs = appendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	switch s.codec {
	case codecGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(recs)
		w.Close()
		recs = buf.Bytes()
	case codecSnappy:
		recs = xerial.Encode(nil, recs)
	case codecLZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		w.Write(recs)
		w.Close()
		recs = buf.Bytes()
	case codecZstd:
		enc, _ := zstd.NewWriter(nil)
		recs = enc.EncodeAll(recs, nil)
		enc.Close()
	}
	attrs := uint16(s.codec)
	if s.logAppend {
		attrs |= attrTimestampType
	}
	if s.txn {
		attrs |= attrTransactional
	}
	if s.control {
		attrs |= attrControl
	}
	b := make([]byte, batchHeaderSize, batchHeaderSize+len(recs))
	binary.BigEndian.PutUint64(b[offBaseOffset:], 0)
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(batchHeaderSize-logOverhead+len(recs)))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], 0xffffffff)
	b[offMagic] = 2
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(n-1))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(baseTs))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(maxTs))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(s.pid))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(s.epoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(s.seq))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(n))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

// splitBatches returns the headers of the batches in b, failing the test on
// anything malformed or failing its CRC.
func splitBatches(t testing.TB, b []byte) []batchHeader {
	t.Helper()
	var hs []batchHeader
	for len(b) > 0 {
		one, h, err := nextBatch(b)
		if err != nil {
			t.Fatalf("malformed read result: %v", err)
		}
		if err := checkShape(one, &h); err != nil {
			t.Fatalf("batch at offset %d fails validation: %v", h.baseOffset, err)
		}
		hs = append(hs, h)
		b = b[len(one):]
	}
	return hs
}

// testClock is a settable clock.
type testClock struct{ ms atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.ms.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	return c
}
func (c *testClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// faultFS wraps the OS and counts or fails fsyncs and writes.
type faultFS struct {
	OSFS
	syncs       atomic.Int64
	failSync    atomic.Bool
	failWrite   atomic.Bool // next data write writes half, then fails
	writeFailed atomic.Int64
	slowSync    time.Duration
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	of, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: of, fs: f}, nil
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) Sync() error {
	f.fs.syncs.Add(1)
	if f.fs.slowSync > 0 {
		time.Sleep(f.fs.slowSync)
	}
	if f.fs.failSync.Load() {
		return errors.New("injected fsync failure")
	}
	return f.File.Sync()
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) > 0 && bytes.Count(p[:min(len(p), 64)], []byte{0}) < 64 && f.fs.failWrite.CompareAndSwap(true, false) {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		f.fs.writeFailed.Add(1)
		return n, errors.New("injected torn write")
	}
	return f.File.WriteAt(p, off)
}

type storeEnv struct {
	t     *testing.T
	dir   string
	clock *testClock
	fs    FS
	log   *captureHandler
	cfg   *LogConfig // for Options.LogConfig; nil = default
}

func newEnv(t *testing.T) *storeEnv {
	return &storeEnv{t: t, dir: t.TempDir(), clock: newClock(),
		log: &captureHandler{mu: new(sync.Mutex), lines: new([]string)}}
}

// logged returns the log lines so far that contain substr.
func (e *storeEnv) logged(substr string) []string {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	var out []string
	for _, l := range *e.log.lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (e *storeEnv) open() *Store {
	e.t.Helper()
	opts := Options{Dir: e.dir, Now: e.clock.Now, FS: e.fs, Logger: slog.New(e.log)}
	if e.cfg != nil {
		cfg := *e.cfg
		opts.LogConfig = func(string, int32) LogConfig { return cfg }
	}
	s, err := Open(opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	return s
}

// crash abandons a store the way a killed process would: nothing is
// flushed, checkpointed or marked clean. Only goroutines and descriptors
// are cleaned up so the test process doesn't leak them.
func (s *Store) crash() {
	s.mu.Lock()
	s.closed = true
	logs := s.logs
	s.mu.Unlock()
	for _, l := range logs {
		l.appendMu.Lock()
		l.mu.Lock()
		l.closed = true
		segs := l.segs
		uns := l.unsynced
		l.unsynced = nil
		l.mu.Unlock()
		l.appendMu.Unlock()
		for _, sg := range uns {
			sg.release()
		}
		for _, sg := range segs {
			sg.release()
		}
	}
	close(s.sync.stop)
	<-s.sync.done
}

func testCfg() LogConfig {
	cfg := DefaultLogConfig()
	cfg.RetentionMs = -1
	return cfg
}

func mustCreate(t *testing.T, s *Store, topic string, cfg LogConfig) *Log {
	t.Helper()
	l, err := s.Create(topic, 0, [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// readAll reads every batch from offset `from` to the end.
func readAll(t testing.TB, l *Log, from int64) []batchHeader {
	t.Helper()
	var out []batchHeader
	for off := from; off < l.LogEndOffset(); {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		hs := splitBatches(t, res.Records)
		if len(hs) == 0 {
			t.Fatalf("Read(%d) returned nothing below LEO %d", off, l.LogEndOffset())
		}
		out = append(out, hs...)
		off = hs[len(hs)-1].lastOffset() + 1
	}
	return out
}

func segmentFiles(t *testing.T, dir, ext string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	return m
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func recrcTest(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}
