package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
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
	mustAppend(t, l, keyedTxnBatch(t, 5, 0, []string{"k0", "k1", "k2"}, "aborted"))
	if _, err := l.AppendMarker(5, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 4, 10)
	if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
		t.Fatal(err)
	}
	markers := 0
	storedBatches(t, l, func(_ []byte, h *batchHeader) {
		if h.isControl() {
			markers++
		}
		if h.producerID == 5 && !h.isControl() && h.recordCount != 0 {
			t.Errorf("aborted batch at %d kept %d records", h.baseOffset, h.recordCount)
		}
	})
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

// keyedTxnBatch is kvBatch as a transactional batch of producer pid.
func keyedTxnBatch(t *testing.T, pid int64, seq int32, keys []string, val string) []byte {
	vals := make([]*string, len(keys))
	for i := range vals {
		vals[i] = sp(val)
	}
	b := kvBatch(t, codecNone, keys, vals)
	be := binary.BigEndian
	be.PutUint64(b[offProducerID:], uint64(pid))
	be.PutUint16(b[offProducerEpoch:], 0)
	be.PutUint32(b[offBaseSequence:], uint32(seq))
	be.PutUint16(b[offAttributes:], attrTransactional)
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

// storedBatches calls fn with every batch of l below its high watermark,
// in order.
func storedBatches(t *testing.T, l *Log, fn func(b []byte, h *batchHeader)) {
	t.Helper()
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
			fn(b, &h)
			off = h.lastOffset() + 1
		}
	}
}

// markersIn lists the offsets of the control batches of l.
func markersIn(t *testing.T, l *Log) []int64 {
	var out []int64
	storedBatches(t, l, func(_ []byte, h *batchHeader) {
		if h.isControl() {
			out = append(out, h.baseOffset)
		}
	})
	return out
}

// Kafka's rule for transaction markers: one goes once no batch of its
// transaction is left before it and delete.retention.ms has passed; the
// others stay.
func TestCleanerRemovesMarkersAfterDeleteRetention(t *testing.T) {
	e := newEnv(t)
	cfg := compactCfg()
	e.cfg = &cfg
	s := e.open()
	l := mustCreate(t, s, "markers", cfg)
	fill(t, l, 2, 10)
	// Producer 5 writes k0..k2 in a transaction that stays open across
	// segment rolls (their producer snapshots hold it open), then aborts.
	mustAppend(t, l, keyedTxnBatch(t, 5, 0, []string{"k0", "k1", "k2"}, "aborted"))
	for i := 0; i < 30; i++ {
		mustAppend(t, l, kvBatch(t, codecNone, []string{"pad"}, []*string{sp(strings.Repeat("p", 100))}))
	}
	snaps := listSnapshots(l.fsys, l.Dir())
	if len(snaps) == 0 {
		t.Fatal("no producer snapshot was written while the transaction was open")
	}
	openSnap := segmentPath(l.Dir(), snaps[len(snaps)-1], extSnapshot)
	openSnapData, err := os.ReadFile(openSnap)
	if err != nil {
		t.Fatal(err)
	}
	abort, err := l.AppendMarker(5, 0, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Producer 6 commits k3, which later records replace: its batch is
	// emptied but stays as its producer's last, so its marker stays too.
	mustAppend(t, l, keyedTxnBatch(t, 6, 0, []string{"k3"}, "six"))
	commit6, err := l.AppendMarker(6, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Producer 5 then writes a key nobody replaces, outside transactions:
	// its last batch, so no later marker of its own closes the aborted
	// transaction when recovery replays.
	live5 := keyedTxnBatch(t, 5, 3, []string{"live5"}, "five")
	binary.BigEndian.PutUint16(live5[offAttributes:], 0)
	binary.BigEndian.PutUint32(live5[offCRC:], crc32.Checksum(live5[offAttributes:], castagnoli))
	mustAppend(t, l, live5)
	fill(t, l, 4, 10)
	for i := 0; i < 30; i++ { // the markers leave the active segment
		mustAppend(t, l, kvBatch(t, codecNone, []string{"pad"}, []*string{sp(strings.Repeat("q", 100))}))
	}
	all := []int64{abort.BaseOffset, commit6.BaseOffset}

	if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
		t.Fatal(err)
	}
	if got := markersIn(t, l); !slices.Equal(got, all) {
		t.Fatalf("markers after the first pass %v, want all of %v (delete.retention.ms has not passed)", got, all)
	}
	if len(l.AbortedTxns(0, l.HighWatermark())) != 1 {
		t.Fatalf("aborted transactions %v, want producer 5's", l.AbortedTxns(0, l.HighWatermark()))
	}

	e.clock.Advance(2 * time.Hour)
	for i := 0; i < 80; i++ {
		mustAppend(t, l, kvBatch(t, codecNone, []string{"pad"}, []*string{sp(strings.Repeat("y", 100))}))
	}
	// Later rolls pruned that snapshot; a partition that rolls seldom
	// still has it. Put it back.
	if err := os.WriteFile(openSnap, openSnapData, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CleanNow(l, DefaultCleanerConfig()); err != nil {
		t.Fatal(err)
	}
	want := []int64{commit6.BaseOffset}
	if got := markersIn(t, l); !slices.Equal(got, want) {
		t.Fatalf("markers after delete.retention.ms %v, want %v (the abort's goes)", got, want)
	}
	if a := l.AbortedTxns(0, l.HighWatermark()); len(a) != 0 {
		t.Fatalf("aborted transactions %v after their marker went", a)
	}
	if len(e.logged("markers_removed=1")) != 1 {
		t.Errorf("no cleaner log line reports the removed marker")
	}
	for _, o := range listSnapshots(l.fsys, l.Dir()) {
		if o <= abort.BaseOffset {
			t.Errorf("producer snapshot %d, at or below the removed marker %d, is still there", o, abort.BaseOffset)
		}
	}

	// Lose the later snapshots as well and crash: recovery replays from
	// the log start, and nothing holds producer 5's transaction open.
	for _, o := range listSnapshots(l.fsys, l.Dir()) {
		if o > abort.BaseOffset {
			l.fsys.Remove(segmentPath(l.Dir(), o, extSnapshot))
		}
	}
	hw := l.HighWatermark()
	s.crash()
	s = e.open()
	defer s.Close()
	l = s.Get("markers", 0)
	if l.HighWatermark() != hw || l.LastStableOffset() != hw {
		t.Fatalf("after recovery HW %d LSO %d, want both %d", l.HighWatermark(), l.LastStableOffset(), hw)
	}
	var five []string
	for _, r := range readKVs(t, l) {
		if r.val == "aborted" {
			t.Errorf("aborted record at %d", r.offset)
		}
		if r.val == "five" {
			five = append(five, r.key)
		}
	}
	if !slices.Equal(five, []string{"live5"}) {
		t.Errorf("producer 5's committed record: %v", five)
	}
}
