package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kvBatch builds a batch of keyed records; a nil value is a tombstone, a
// nil key a keyless record.
func kvBatch(t testing.TB, codec int, keys []string, values []*string) []byte {
	t.Helper()
	var recs []byte
	for i := range keys {
		var body []byte
		body = append(body, 0)
		body = binary.AppendVarint(body, 0)
		body = binary.AppendVarint(body, int64(i))
		if keys[i] == "" {
			body = binary.AppendVarint(body, -1)
		} else {
			body = binary.AppendVarint(body, int64(len(keys[i])))
			body = append(body, keys[i]...)
		}
		if values[i] == nil {
			body = binary.AppendVarint(body, -1)
		} else {
			body = binary.AppendVarint(body, int64(len(*values[i])))
			body = append(body, *values[i]...)
		}
		body = binary.AppendVarint(body, 0)
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	var err error
	if recs, err = compressRecords(codec, recs); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, batchHeaderSize, batchHeaderSize+len(recs))
	be := binary.BigEndian
	be.PutUint32(b[offLeaderEpoch:], 0)
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], uint16(codec))
	be.PutUint32(b[offLastOffsetDelta:], uint32(len(keys)-1))
	be.PutUint64(b[offBaseTimestamp:], 1)
	be.PutUint64(b[offMaxTimestamp:], 1)
	be.PutUint64(b[offProducerID:], 0xffffffffffffffff)
	be.PutUint16(b[offProducerEpoch:], 0xffff)
	be.PutUint32(b[offBaseSequence:], 0xffffffff)
	be.PutUint32(b[offRecordCount:], uint32(len(keys)))
	b = append(b, recs...)
	be.PutUint32(b[offBatchLength:], uint32(len(b)-logOverhead))
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

func sp(s string) *string { return &s }

type kvRec struct {
	offset    int64
	key, val  string
	tombstone bool
}

// readKVs reads every record of the log, in order, checking offsets only
// grow.
func readKVs(t *testing.T, l *Log) []kvRec {
	t.Helper()
	var out []kvRec
	last := int64(-1)
	for off := l.LogStartOffset(); off < l.HighWatermark(); {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(res.Records) == 0 {
			t.Fatalf("no records at %d below the high watermark %d", off, l.HighWatermark())
		}
		for rest := res.Records; len(rest) > 0; {
			b, h, err := nextBatch(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = rest[len(b):]
			if err := verifyStored(b, &h, last); err != nil {
				t.Fatalf("batch at %d: %v", h.baseOffset, err)
			}
			raw, err := decompressRecords(b, &h)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := parseRecords(raw, &h, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if len(out) > 0 && r.offset <= out[len(out)-1].offset {
					t.Fatalf("offset %d after %d", r.offset, out[len(out)-1].offset)
				}
				kv := kvRec{offset: r.offset, key: string(r.key), tombstone: r.nullValue}
				if !r.nullValue {
					body := r.raw
					_, n := binary.Varint(body)
					body = body[n+1:]
					for k := 0; k < 2; k++ {
						_, n = binary.Varint(body)
						body = body[n:]
					}
					kl, n := binary.Varint(body)
					body = body[n+int(max(kl, 0)):]
					vl, n := binary.Varint(body)
					kv.val = string(body[n : n+int(vl)])
				}
				out = append(out, kv)
			}
			last = h.lastOffset()
			off = h.lastOffset() + 1
		}
	}
	return out
}

func compactCfg() LogConfig {
	cfg := testCfg()
	cfg.Compact, cfg.Delete = true, false
	cfg.SegmentBytes = 2048
	cfg.DeleteRetentionMs = int64(time.Hour / time.Millisecond)
	return cfg
}

// fill appends rounds of updates of keys k0..k(nkeys-1): the value of key
// k in round r is "r<r>-k<k>"; codecs rotate.
func fill(t *testing.T, l *Log, rounds, nkeys int) map[string]string {
	latest := map[string]string{}
	codecs := []int{codecNone, codecGzip, codecSnappy, codecLZ4, codecZstd}
	for r := 0; r < rounds; r++ {
		var keys []string
		var vals []*string
		for k := 0; k < nkeys; k++ {
			key, val := fmt.Sprintf("k%d", k), fmt.Sprintf("r%d-k%d", r, k)
			keys, vals = append(keys, key), append(vals, sp(val))
			latest[key] = val
			if len(keys) == 5 || k == nkeys-1 {
				mustAppend(t, l, kvBatch(t, codecs[r%len(codecs)], keys, vals))
				keys, vals = nil, nil
			}
		}
	}
	return latest
}

func TestCleanerKeepsTheLatestValuePerKey(t *testing.T) {
	e := newEnv(t)
	cfg := compactCfg()
	e.cfg = &cfg
	s := e.open()
	l := mustCreate(t, s, "compact", cfg)
	latest := fill(t, l, 20, 30)
	before := l.Size()
	endBefore := l.LogEndOffset()
	ok, err := s.CleanNow(l, DefaultCleanerConfig())
	if err != nil || !ok {
		t.Fatalf("CleanNow: %v %v", ok, err)
	}
	check := func(l *Log) {
		t.Helper()
		got := readKVs(t, l)
		lastOf := map[string]kvRec{}
		seen := map[string]int{}
		for _, r := range got {
			lastOf[r.key] = r
			seen[r.key]++
		}
		for k, v := range latest {
			if lastOf[k].val != v {
				t.Errorf("key %s: last value %q, want %q", k, lastOf[k].val, v)
			}
		}
		if l.LogEndOffset() != endBefore {
			t.Errorf("log end moved from %d to %d", endBefore, l.LogEndOffset())
		}
		// The cleaned part holds each key at most once.
		dups := 0
		for _, n := range seen {
			if n > 2 { // once cleaned, and maybe once more in the active segment
				dups++
			}
		}
		if dups > 0 {
			t.Errorf("%d keys appear more than twice after cleaning", dups)
		}
	}
	check(l)
	if after := l.Size(); after*3 > before {
		t.Errorf("size %d -> %d: expected at least a 3x reduction", before, after)
	}
	t.Logf("size %d -> %d bytes, %d segments", before, l.Size(), len(l.segs))
	// The cleaned log survives a restart as it is.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = e.open()
	defer s.Close()
	l = s.Get("compact", 0)
	check(l)
	// The checkpoint remembers the first dirty offset: nothing to do.
	if ok, err := s.CleanNow(l, DefaultCleanerConfig()); ok || err != nil {
		t.Fatalf("a second pass with nothing dirty: %v %v", ok, err)
	}
}

func TestCleanerTombstones(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := compactCfg()
	l := mustCreate(t, s, "tomb", cfg)
	fill(t, l, 5, 20)
	mustAppend(t, l, kvBatch(t, codecNone, []string{"k3", "k7"}, []*string{nil, nil}))
	for i := 0; i < 40; i++ {
		mustAppend(t, l, kvBatch(t, codecNone, []string{"pad"}, []*string{sp(strings.Repeat("x", 100))}))
	}
	has := func(key string) (tomb bool, present bool) {
		for _, r := range readKVs(t, l) {
			if r.key == key {
				tomb, present = r.tombstone, true
			}
		}
		return
	}
	if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
		t.Fatal(err)
	}
	if tomb, ok := has("k3"); !ok || !tomb {
		t.Fatalf("before delete.retention.ms the tombstone of k3 is visible: tomb=%v present=%v", tomb, ok)
	}
	// Past delete.retention.ms, the next pass (with new dirty data) drops it.
	e.clock.Advance(2 * time.Hour)
	for i := 0; i < 80; i++ {
		mustAppend(t, l, kvBatch(t, codecNone, []string{"pad"}, []*string{sp(strings.Repeat("y", 100))}))
	}
	if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
		t.Fatal(err)
	}
	if _, ok := has("k3"); ok {
		t.Fatalf("the tombstone of k3 survived delete.retention.ms")
	}
	if _, ok := has("k11"); !ok {
		t.Fatalf("k11 (never deleted) is gone")
	}
}

func TestCleanerCrashAtEveryStep(t *testing.T) {
	for _, step := range []string{"before swap", "swap committed", "replaced removed"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			cfg := compactCfg()
			e.cfg = &cfg // as the broker gives the topic's config at load
			s := e.open()
			l := mustCreate(t, s, "crash", cfg)
			latest := fill(t, l, 15, 25)
			end := l.LogEndOffset()
			defer func(f func(string) bool) { cleanerCrash = f }(cleanerCrash)
			cleanerCrash = func(at string) bool { return at == step }
			if _, err := s.CleanNow(l, DefaultCleanerConfig()); err == nil {
				t.Fatal("the pass did not stop")
			}
			cleanerCrash = func(string) bool { return false }
			s.crash()
			s = e.open()
			defer s.Close()
			l = s.Get("crash", 0)
			if l.Offline() != nil {
				t.Fatalf("offline after the crash: %v", l.Offline())
			}
			if l.LogEndOffset() != end {
				t.Fatalf("log end %d, want %d", l.LogEndOffset(), end)
			}
			lastOf := map[string]string{}
			for _, r := range readKVs(t, l) {
				lastOf[r.key] = r.val
			}
			for k, v := range latest {
				if lastOf[k] != v {
					t.Errorf("key %s: %q, want %q", k, lastOf[k], v)
				}
			}
			for _, f := range []string{"*.cleaned", "*.swap"} {
				if m, _ := filepath.Glob(filepath.Join(l.Dir(), f)); len(m) > 0 {
					t.Errorf("left over after recovery: %v", m)
				}
			}
			// And cleaning works again.
			if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
				t.Fatal(err)
			}
			lastOf = map[string]string{}
			for _, r := range readKVs(t, l) {
				lastOf[r.key] = r.val
			}
			for k, v := range latest {
				if lastOf[k] != v {
					t.Errorf("after cleaning again, key %s: %q, want %q", k, lastOf[k], v)
				}
			}
		})
	}
}

func TestCleanerDropsAbortedTransactions(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "txc", compactCfg())
	fill(t, l, 2, 10)
	// Producer 5 writes k0..k2 in a transaction it aborts.
	b := kvBatch(t, codecNone, []string{"k0", "k1", "k2"}, []*string{sp("aborted"), sp("aborted"), sp("aborted")})
	be := binary.BigEndian
	be.PutUint64(b[offProducerID:], 5)
	be.PutUint16(b[offProducerEpoch:], 0)
	be.PutUint32(b[offBaseSequence:], 0)
	be.PutUint16(b[offAttributes:], attrTransactional)
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	mustAppend(t, l, b)
	if _, err := l.AppendMarker(5, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 4, 10)
	if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
		t.Fatal(err)
	}
	markers := 0
	for off := l.LogStartOffset(); off < l.HighWatermark(); {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for rest := res.Records; len(rest) > 0; {
			b, h, err := nextBatch(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = rest[len(b):]
			if h.isControl() {
				markers++
			}
			if h.producerID == 5 && !h.isControl() && h.recordCount != 0 {
				t.Errorf("aborted batch at %d kept %d records", h.baseOffset, h.recordCount)
			}
			off = h.lastOffset() + 1
		}
	}
	if markers != 1 {
		t.Errorf("%d markers after cleaning, want the 1 kept", markers)
	}
	for _, r := range readKVs(t, l) {
		if r.val == "aborted" {
			t.Errorf("aborted record at %d survived cleaning", r.offset)
		}
	}
}

// Segments larger than the cleaner's 1 MiB read window, with batches
// straddling its edge and one batch larger than the window.
func TestCleanerLargeSegments(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	cfg := compactCfg()
	cfg.SegmentBytes = 4 << 20
	cfg.MaxMessageBytes = 4 << 20
	l := mustCreate(t, s, "large", cfg)
	latest := map[string]string{}
	for i := 0; i < 9000; i++ {
		k := fmt.Sprintf("k%d", i%100)
		v := fmt.Sprintf("%d-%s", i, strings.Repeat("x", 900+i%37))
		if i == 4000 || i == 8999 {
			v = strings.Repeat("B", 1536<<10) // bigger than the read window
		}
		latest[k] = v
		mustAppend(t, l, kvBatch(t, codecNone, []string{k}, []*string{&v}))
	}
	if len(l.segs) < 3 {
		t.Fatalf("only %d segments", len(l.segs))
	}
	// A small window of a prime size: its edge falls at every place of a
	// batch, header included.
	defer func(w int) { cleanerReadWindow = w }(cleanerReadWindow)
	cleanerReadWindow = 9973
	if ok, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil || !ok {
		t.Fatalf("CleanNow: %v %v", ok, err)
	}
	lastOf := map[string]string{}
	for _, r := range readKVs(t, l) {
		lastOf[r.key] = r.val
	}
	for k, v := range latest {
		if lastOf[k] != v {
			t.Errorf("key %s: %d bytes, want %d", k, len(lastOf[k]), len(v))
		}
	}
}
