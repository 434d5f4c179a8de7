package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppendReadRoundTripAcrossRolls(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 300
	l := mustCreate(t, s, "rt", cfg)

	var want [][]byte
	next := int64(0)
	for i := 0; i < 60; i++ {
		// Vary batch counts and sizes; every third append carries 2 batches.
		b := buildBatch(t, spec(1+i%4, 1000+int64(i)))
		if i%3 == 0 {
			b = append(b, buildBatch(t, spec(2, 1000+int64(i)))...)
		}
		res := mustAppend(t, l, b)
		if res.BaseOffset != next {
			t.Fatalf("append %d: base offset %d, want %d", i, res.BaseOffset, next)
		}
		hs := splitBatches(t, b) // Append rewrote offsets in place, CRC still valid
		if hs[0].baseOffset != next || hs[len(hs)-1].lastOffset() != res.LastOffset {
			t.Fatalf("append %d: batch offsets [%d..%d], result [%d..%d]", i, hs[0].baseOffset, hs[len(hs)-1].lastOffset(), res.BaseOffset, res.LastOffset)
		}
		next = res.LastOffset + 1
		want = append(want, b)
	}
	if got := l.LogEndOffset(); got != next {
		t.Fatalf("LEO %d, want %d", got, next)
	}
	if n := len(segmentFiles(t, l.Dir(), ".log")); n < 3 {
		t.Fatalf("expected several segments with segment.bytes=4096, got %d", n)
	}

	check := func(l *Log) {
		t.Helper()
		// Reading everything in small steps reproduces the appended bytes.
		var got []byte
		for off := int64(0); off < l.LogEndOffset(); {
			res, err := l.Read(off, 500)
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			hs := splitBatches(t, res.Records)
			if len(hs) == 0 || hs[0].baseOffset > off || hs[0].lastOffset() < off {
				t.Fatalf("Read(%d) does not start with the batch containing it", off)
			}
			got = append(got, res.Records...)
			off = hs[len(hs)-1].lastOffset() + 1
		}
		if !bytes.Equal(got, bytes.Join(want, nil)) {
			t.Fatalf("read bytes differ from appended bytes (%d vs %d bytes)", len(got), len(bytes.Join(want, nil)))
		}
		// Every offset maps to the batch containing it.
		for off := int64(0); off < l.LogEndOffset(); off++ {
			res, err := l.Read(off, 1)
			if err != nil {
				t.Fatal(err)
			}
			hs := splitBatches(t, res.Records)
			if len(hs) != 1 || hs[0].baseOffset > off || hs[0].lastOffset() < off {
				t.Fatalf("Read(%d, 1) returned %d batches starting %d", off, len(hs), hs[0].baseOffset)
			}
		}
	}
	check(l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = e.open()
	defer s.Close()
	check(s.Get("rt", 0))
}

func TestReadBounds(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "rb", testCfg())
	big := buildBatch(t, spec(3, 5))
	mustAppend(t, l, big)
	mustAppend(t, l, buildBatch(t, spec(2, 5)))

	tests := []struct {
		name      string
		offset    int64
		maxBytes  int
		wantErr   error
		wantFirst int64 // base offset of the first batch, -1 for empty
		wantN     int
	}{
		{"start", 0, 1 << 20, nil, 0, 2},
		{"mid first batch", 2, 1 << 20, nil, 0, 2},
		{"second batch", 3, 1 << 20, nil, 3, 1},
		{"maxBytes below one batch still returns it", 0, 1, nil, 0, 1},
		{"maxBytes zero", 0, 0, nil, 0, 1},
		{"maxBytes huge", 1, math.MaxInt, nil, 0, 2},
		{"log end is empty", 5, 1 << 20, nil, -1, 0},
		{"past end", 6, 1 << 20, ErrOffsetOutOfRange, 0, 0},
		{"negative", -1, 1 << 20, ErrOffsetOutOfRange, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Read(tc.offset, tc.maxBytes)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.HighWatermark != 5 || res.LogEndOffset != 5 || res.LogStartOffset != 0 {
				t.Fatalf("result offsets %+v", res)
			}
			hs := splitBatches(t, res.Records)
			if len(hs) != tc.wantN || (tc.wantN > 0 && hs[0].baseOffset != tc.wantFirst) {
				t.Fatalf("got %d batches, want %d starting at %d", len(hs), tc.wantN, tc.wantFirst)
			}
		})
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.MaxMessageBytes = 2000
	l := mustCreate(t, s, "bad", cfg)
	mustAppend(t, l, buildBatch(t, spec(1, 1)))
	good := func() []byte { return buildBatch(t, spec(2, 1)) }
	recrc := func(b []byte) { binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli)) }

	tests := []struct {
		name    string
		records func() []byte
		want    error
	}{
		{"crc mismatch", func() []byte { b := good(); b[len(b)-1] ^= 0xff; return b }, ErrCorruptMessage},
		{"crc mismatch in second batch", func() []byte {
			b := good()
			c := good()
			c[offAttributes+5] ^= 1
			return append(b, c...)
		}, ErrCorruptMessage},
		{"magic 1", func() []byte { b := good(); b[offMagic] = 1; return b }, ErrUnsupportedMagic},
		{"magic 0 short legacy message", func() []byte {
			b := make([]byte, 40)
			binary.BigEndian.PutUint32(b[offBatchLength:], 28)
			b[offMagic] = 0
			return b
		}, ErrCorruptMessage},
		{"too large", func() []byte { s := spec(5, 1); s.valueSize = 500; return buildBatch(t, s) }, ErrMessageTooLarge},
		{"length below header", func() []byte { b := good(); binary.BigEndian.PutUint32(b[offBatchLength:], 20); return b }, ErrCorruptMessage},
		{"length beyond data", func() []byte { b := good(); return b[:len(b)-3] }, ErrCorruptMessage},
		{"trailing partial batch", func() []byte { b := good(); return append(b, good()[:30]...) }, ErrCorruptMessage},
		{"trailing bytes shorter than a length", func() []byte { return append(good(), 0, 0, 0) }, ErrCorruptMessage},
		{"record count mismatch", func() []byte {
			b := good()
			binary.BigEndian.PutUint32(b[offRecordCount:], 7)
			recrc(b)
			return b
		}, ErrCorruptMessage},
		{"negative last offset delta", func() []byte {
			b := good()
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], math.MaxUint32)
			recrc(b)
			return b
		}, ErrCorruptMessage},
		{"empty", func() []byte { return nil }, ErrInvalidRecord},
		{"idempotent batch with negative sequence", func() []byte { return buildBatch(t, spec(1, 1).idem(9, 0, -1)) }, ErrInvalidRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leo, size := l.LogEndOffset(), l.Size()
			_, err := l.Append(tc.records())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if l.LogEndOffset() != leo || l.Size() != size {
				t.Fatalf("failed append changed the log: LEO %d->%d size %d->%d", leo, l.LogEndOffset(), size, l.Size())
			}
		})
	}
	// The log still works and nothing of the rejects is readable.
	res := mustAppend(t, l, good())
	if res.BaseOffset != 1 {
		t.Fatalf("next append at %d, want 1", res.BaseOffset)
	}
	if got := len(readAll(t, l, 0)); got != 2 {
		t.Fatalf("%d batches in log, want 2", got)
	}
}

func TestRecordListLargerThanSegment(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.SegmentBytes = 500
	l := mustCreate(t, s, "seg", cfg)
	var b []byte
	for range 5 {
		b = append(b, buildBatch(t, spec(3, 1))...)
	}
	_, err := l.Append(b)
	if !errors.Is(err, ErrRecordListTooLarge) || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestLogAppendTime(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := testCfg()
	cfg.TimestampType = LogAppendTime
	l := mustCreate(t, s, "lat", cfg)
	b := buildBatch(t, spec(3, 42))
	res := mustAppend(t, l, b)
	now := e.clock.Now().UnixMilli()
	if res.LogAppendTime != now {
		t.Fatalf("LogAppendTime %d, want %d", res.LogAppendTime, now)
	}
	got, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h := splitBatches(t, got.Records)[0] // CRC recomputed
	if !h.logAppendTime() || h.maxTimestamp != now || h.baseTimestamp != 42 {
		t.Fatalf("stored header %+v", h)
	}
	off, ts, found, err := l.OffsetForTimestamp(now)
	if err != nil || !found || off != 0 || ts != now {
		t.Fatalf("OffsetForTimestamp = %d %d %v %v", off, ts, found, err)
	}

	// CreateTime topics keep client timestamps and report -1.
	l2 := mustCreate(t, s, "ct", testCfg())
	if r := mustAppend(t, l2, buildBatch(t, spec(1, 42))); r.LogAppendTime != -1 {
		t.Fatalf("CreateTime LogAppendTime = %d", r.LogAppendTime)
	}
}

func TestCreateDeleteAndFiles(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	id := [16]byte{0xde, 0xad, 0xbe, 0xef}
	l, err := s.Create("files", 3, id, testCfg())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("files", 3, id, testCfg()); !errors.Is(err, ErrLogExists) {
		t.Fatalf("second Create: %v", err)
	}
	if _, err := s.Create("../evil", 0, id, testCfg()); err == nil {
		t.Fatal("Create accepted a path-like topic")
	}
	mustAppend(t, l, buildBatch(t, spec(4, 7)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "files-3")
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read(filepath.Join(dir, "partition.metadata")), "version: 0\ntopic_id: 3q2-7wAAAAAAAAAAAAAAAA\n"; got != want {
		t.Fatalf("partition.metadata %q, want %q", got, want)
	}
	if got := read(filepath.Join(dir, "leader-epoch-checkpoint")); got != "0\n1\n0 0\n" {
		t.Fatalf("leader-epoch-checkpoint %q", got)
	}
	for _, f := range []string{"recovery-point-offset-checkpoint", "replication-offset-checkpoint"} {
		if got := read(filepath.Join(e.dir, f)); got != "0\n1\nfiles 3 4\n" {
			t.Fatalf("%s = %q", f, got)
		}
	}
	if got := read(filepath.Join(e.dir, "log-start-offset-checkpoint")); got != "0\n1\nfiles 3 0\n" {
		t.Fatalf("log-start-offset-checkpoint = %q", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, ".kafka_cleanshutdown")); err != nil {
		t.Fatalf("no clean shutdown marker: %v", err)
	}
	for _, f := range []string{"00000000000000000000.log", "00000000000000000000.index", "00000000000000000000.timeindex", "00000000000000000004.snapshot"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s: %v", f, err)
		}
	}
	// The log file holds exactly the batch: preallocation was trimmed.
	if st, _ := os.Stat(filepath.Join(dir, "00000000000000000000.log")); st.Size() != int64(len(buildBatch(t, spec(4, 7)))) {
		t.Fatalf("log file is %d bytes", st.Size())
	}

	s = e.open()
	if _, err := os.Stat(filepath.Join(e.dir, ".kafka_cleanshutdown")); !os.IsNotExist(err) {
		t.Fatalf("clean shutdown marker still present after Open: %v", err)
	}
	l = s.Get("files", 3)
	if l == nil || l.TopicID() != id || l.LogEndOffset() != 4 {
		t.Fatalf("reopened log %+v", l)
	}
	fr, _, err := l.ReadRange(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("files", 3); err != nil {
		t.Fatal(err)
	}
	// A range taken before the delete is still readable.
	if b, err := fr.AppendTo(nil); err != nil || len(b) != fr.Size {
		t.Fatalf("read after delete: %d bytes, %v", len(b), err)
	}
	fr.Release()
	fr.Release()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory still exists: %v", err)
	}
	if s.Get("files", 3) != nil {
		t.Fatal("deleted partition still listed")
	}
	if _, err := l.Read(0, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of deleted log: %v", err)
	}
	s.Close()
	if strings.Contains(strings.Join(e.logged("WARN"), "\n"), "files") {
		t.Fatalf("unexpected warnings: %v", e.logged("WARN"))
	}
}

func TestFileRangeExposesOSFile(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "fr", testCfg())
	b := buildBatch(t, spec(2, 1))
	mustAppend(t, l, b)
	fr, res, err := l.ReadRange(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Release()
	if fr.File == nil || fr.Pos != 0 || fr.Size != len(b) || res.Records != nil || res.LogEndOffset != 2 {
		t.Fatalf("range %+v result %+v", fr, res)
	}
	got := make([]byte, fr.Size)
	if _, err := fr.File.ReadAt(got, fr.Pos); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("file bytes differ: %v", err)
	}
}

func TestSubscribeWakesOnAppend(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "sub", testCfg())
	ch := l.Subscribe()
	select {
	case <-ch:
		t.Fatal("closed before any append")
	default:
	}
	mustAppend(t, l, buildBatch(t, spec(1, 1)))
	select {
	case <-ch:
	default:
		t.Fatal("not closed by the append")
	}
	if l.Subscribe() == ch {
		t.Fatal("Subscribe returned the spent channel")
	}
}

func TestEndOffsetForEpoch(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "ep", testCfg())
	mustAppend(t, l, buildBatch(t, spec(3, 1)))
	if off, ep := l.EndOffsetForEpoch(0); off != 3 || ep != 0 {
		t.Fatalf("epoch 0: %d %d", off, ep)
	}
	if off, ep := l.EndOffsetForEpoch(5); off != -1 || ep != -1 {
		t.Fatalf("epoch 5: %d %d", off, ep)
	}
}

// FetchRange cuts a consumer's read as Kafka does: the first batch whole
// however small the limit, then bytes up to the limit, ending inside a
// batch, never past the high watermark; ReadRange keeps whole batches.
func TestFetchRangeCutsAtTheLimit(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "cut", testCfg())
	l.BecomeLeader(0)
	l.SetReplicated(true)
	var sizes []int
	var all []byte
	for i := range 4 {
		b := buildBatch(t, spec(3, int64(i)))
		mustAppend(t, l, b)
		sizes = append(sizes, len(b))
		all = append(all, b...)
	}
	l.SetHighWatermark(9) // three batches visible
	visible := sizes[0] + sizes[1] + sizes[2]
	read := func(offset int64, maxBytes int, cut bool) []byte {
		t.Helper()
		var fr FileRange
		var err error
		if cut {
			fr, _, err = l.FetchRange(offset, maxBytes, false)
		} else {
			fr, _, err = l.ReadRange(offset, maxBytes)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer fr.Release()
		b, err := fr.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, all[fr.Pos:fr.Pos+int64(fr.Size)]) {
			t.Fatal("range bytes differ from the file's")
		}
		return b
	}
	for _, c := range []struct {
		offset     int64
		maxBytes   int
		cut, whole int // bytes FetchRange and ReadRange return
		name       string
	}{
		{0, 1, sizes[0], sizes[0], "limit below the first batch: it whole (KIP-74)"},
		{0, sizes[0] + 10, sizes[0] + 10, sizes[0], "limit inside the second batch"},
		{0, sizes[0] + sizes[1], sizes[0] + sizes[1], sizes[0] + sizes[1], "limit on a batch boundary"},
		{4, sizes[1] + 20, sizes[1] + 20, sizes[1], "from inside the second batch"},
		{0, 1 << 20, visible, visible, "never past the high watermark"},
	} {
		if got := len(read(c.offset, c.maxBytes, true)); got != c.cut {
			t.Errorf("%s: FetchRange gave %d bytes, want %d", c.name, got, c.cut)
		}
		if got := len(read(c.offset, c.maxBytes, false)); got != c.whole {
			t.Errorf("%s: ReadRange gave %d bytes, want %d", c.name, got, c.whole)
		}
	}
}
