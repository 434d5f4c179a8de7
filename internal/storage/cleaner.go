package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/gregorhq/gregor/internal/guard"
)

// The log cleaner: compaction of cleanup.policy=compact logs, with Kafka's
// semantics.
//
// A compacted log is, from its log start, a clean part (already compacted)
// followed by a dirty part starting at its first dirty offset, which the
// cleaner keeps in <log dir>/cleaner-offset-checkpoint (Kafka's format,
// like the other checkpoints). A pass over one log:
//
//  1. Picks the cleanable range: whole segments below the first
//     uncleanable offset, the smallest of the active segment's base, the
//     last stable offset (open transactions are never cleaned) and the
//     first segment holding records newer than min.compaction.lag.ms. The
//     log is cleaned when its dirty bytes are at least
//     min.cleanable.dirty.ratio of the cleanable bytes, or when its oldest
//     dirty record is older than max.compaction.lag.ms.
//  2. Builds the offset map of the dirty part: for each key (by a 128-bit
//     hash), the offset of its last record, skipping control batches and
//     aborted transactions. The map holds at most
//     log.cleaner.dedupe.buffer.size / 24 entries, as Kafka's does; when
//     full, the pass ends at the last segment that fit.
//  3. Rewrites the segments from the log start to that end, grouped so
//     each group fits one segment: a record is kept if its key's last
//     offset is its own or its key was not seen in the dirty part; records
//     of aborted transactions are dropped; a tombstone (null value) is
//     dropped once it is in the clean part and its segment is older than
//     delete.retention.ms. Batches keep their base offset, last offset
//     delta, timestamps and producer fields and are recompressed with their
//     codec; a batch left empty is dropped, unless it is its producer's
//     last, whose empty header keeps the producer's sequence. A
//     transaction marker goes once no batch of its transaction is left
//     before it (Kafka's rule: the pass saw none) and, like a tombstone, it
//     is in the clean part and its segment is older than
//     delete.retention.ms; otherwise it is kept. A pass that removes markers
//     deletes the producer snapshots at or below the last of them, which may
//     still hold such a transaction open. Segments (and groups left
//     empty) keep their base offsets, so a compacted log has gaps between
//     segments, which recovery accepts for compacted logs only.
//  4. Swaps each group in with Kafka's protocol: the new files are written
//     as *.cleaned and fsynced, renamed to *.swap (the log file last: from
//     then on the group is committed), then the segments it replaces are
//     deleted and the *.swap files renamed over the group's first segment.
//     Recovery (finishSwaps) deletes *.cleaned files and completes any
//     *.swap group, so a crash at any point leaves a consistent log.
//
// Appends and reads go on during a pass: the cleaner reads immutable
// segments without a log lock. The swap holds segsMu, which retention,
// DeleteRecords, truncation and close take too, so no other removal
// overtakes a committed swap; it gives up (discarding its output) if one
// changed the segments before. Appends do not wait for the swap's renames
// and directory fsyncs: appendMu is taken only to publish the new segment
// list. Readers of a replaced segment keep reading their open file. The
// cleaner's goroutine runs on a thread of the lowest CPU priority
// (priority_linux.go), gives its P to waiting goroutines every
// cleanerSlice (passBufs.yield), and reuses its buffers and compressors
// across batches (passBufs), so a pass neither delays nor drives the
// garbage collector for the appends running beside it.

const (
	cleanerCheckpointFile = "cleaner-offset-checkpoint"
	extCleaned            = ".cleaned"
	extSwap               = ".swap"
	// offsetMapEntry is what Kafka charges a key in the dedupe buffer:
	// a 16-byte hash and an 8-byte offset.
	offsetMapEntry = 24
)

// CleanerConfig are the broker's log.cleaner.* settings.
type CleanerConfig struct {
	Enable              bool          // log.cleaner.enable (true)
	DedupeBufferSize    int64         // log.cleaner.dedupe.buffer.size (128 MiB)
	IOMaxBytesPerSecond float64       // log.cleaner.io.max.bytes.per.second (unlimited)
	Backoff             time.Duration // log.cleaner.backoff.ms (15 s): sleep when nothing is cleanable
}

// DefaultCleanerConfig is Kafka's.
func DefaultCleanerConfig() CleanerConfig {
	return CleanerConfig{Enable: true, DedupeBufferSize: 128 << 20, IOMaxBytesPerSecond: math.MaxFloat64, Backoff: 15 * time.Second}
}

// CleanStats describes one cleaning pass over a log.
type CleanStats struct {
	FirstDirty, End            int64 // the dirty section cleaned: [FirstDirty, End)
	BytesRead, BytesWritten    int64
	RecordsRead, RecordsKept   int64
	SegmentsBefore, SegmentsIn int
	MarkersRemoved             int64
	MapEntries, MapCapacity    int // keys in the offset map, and its room
	Duration                   time.Duration
}

type cleaner struct {
	s      *Store
	cfg    CleanerConfig
	stop   chan struct{}
	done   chan struct{}
	wake   chan struct{}
	mu     sync.Mutex     // guards dirty, uncleanable and stats
	dirty  map[*Log]int64 // first dirty offset per log
	ckpt   map[topicPartition]int64
	thrott *ioThrottle
	// uncleanable: logs a pass failed on (not a lost race with retention
	// or a truncation), skipped from then on, as Kafka does.
	uncleanable map[*Log]bool
	stats       CleanerMetrics
}

// CleanerMetrics is the cleaner's state for monitoring (Kafka's LogCleaner
// and LogCleanerManager metrics); see Store.CleanerMetrics.
type CleanerMetrics struct {
	Enabled bool
	Dead    bool      // the cleaner's goroutine ended (Kafka's DeadThreadCount)
	Started time.Time // when the cleaner started
	LastRun time.Time // end of the last pass that cleaned, zero if none
	// Of the last pass that cleaned: how full its offset map was (percent
	// of what log.cleaner.dedupe.buffer.size holds), bytes written per
	// byte read (percent) and how long it took.
	BufferUtilizationPercent float64
	RecopyPercent            float64
	CleanTime                time.Duration
	// Totals since start.
	Passes                   int64
	BytesRead, BytesWritten  int64
	RecordsRead, RecordsKept int64
	MarkersRemoved           int64
	// Now: the logs passes failed on and their bytes, and the largest
	// dirty share (percent) of the cleanable part of a compacted log.
	UncleanablePartitions int
	UncleanableBytes      int64
	MaxDirtyPercent       float64
}

// StartCleaner starts the background cleaner (one goroutine, Kafka's
// log.cleaner.threads=1). Close stops it.
func (s *Store) StartCleaner(cfg CleanerConfig) {
	if !cfg.Enable {
		return
	}
	if cfg.DedupeBufferSize <= 0 {
		cfg.DedupeBufferSize = DefaultCleanerConfig().DedupeBufferSize
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultCleanerConfig().Backoff
	}
	c := s.newCleaner(cfg)
	s.mu.Lock()
	if s.closed || s.cleaner != nil {
		s.mu.Unlock()
		return
	}
	s.cleaner = c
	s.mu.Unlock()
	// run closes done however it ends, a recovered panic included.
	guard.Go(s.logger, "log cleaner", c.run, nil)
}

func (s *Store) newCleaner(cfg CleanerConfig) *cleaner {
	return &cleaner{s: s, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1),
		dirty: map[*Log]int64{}, ckpt: s.readOffsets(cleanerCheckpointFile), thrott: newIOThrottle(cfg.IOMaxBytesPerSecond),
		uncleanable: map[*Log]bool{}, stats: CleanerMetrics{Started: time.Now()}}
}

// CleanerMetrics reports the background cleaner's state; Enabled is false
// when it was not started.
func (s *Store) CleanerMetrics() CleanerMetrics {
	s.mu.RLock()
	c := s.cleaner
	s.mu.RUnlock()
	if c == nil {
		return CleanerMetrics{}
	}
	c.mu.Lock()
	m := c.stats
	bad := make([]*Log, 0, len(c.uncleanable))
	for l := range c.uncleanable {
		bad = append(bad, l)
	}
	c.mu.Unlock()
	m.Enabled = true
	select {
	case <-c.done:
		select {
		case <-c.stop:
		default:
			m.Dead = true
		}
	default:
	}
	for _, l := range bad {
		if l.Offline() == nil {
			m.UncleanablePartitions++
			m.UncleanableBytes += l.Size()
		}
	}
	for _, l := range s.Partitions() {
		if d, ok := c.dirtyPercent(l); ok {
			m.MaxDirtyPercent = max(m.MaxDirtyPercent, d)
		}
	}
	return m
}

// dirtyPercent is the dirty share of l's cleanable part, as planFor
// computes it, without planning a pass.
func (c *cleaner) dirtyPercent(l *Log) (float64, bool) {
	firstDirty := c.firstDirty(l)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed || !l.cfg.Compact || len(l.segs) < 2 {
		return 0, false
	}
	firstDirty = max(firstDirty, l.logStart)
	var clean, dirty int64
	for _, sg := range l.segs[:len(l.segs)-1] {
		if sg.lastOff < firstDirty {
			clean += sg.size
		} else {
			dirty += sg.size
		}
	}
	if clean+dirty == 0 {
		return 0, false
	}
	return 100 * float64(dirty) / float64(clean+dirty), true
}

// stopCleaner stops the cleaner and waits for its pass to end.
func (s *Store) stopCleaner() {
	s.mu.Lock()
	c := s.cleaner
	s.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *cleaner) run() {
	defer close(c.done)
	backgroundPriority()
	for {
		cleaned := false
		for _, l := range c.s.Partitions() {
			select {
			case <-c.stop:
				return
			default:
			}
			c.mu.Lock()
			skip := c.uncleanable[l]
			c.mu.Unlock()
			if skip {
				continue
			}
			if ok, err := c.maybeClean(l); err != nil {
				if !errors.Is(err, errCleanAborted) && !errors.Is(err, ErrClosed) {
					c.s.logger.Warn("log cleaner failed; the partition is marked uncleanable until restart", "topic", l.topic, "partition", l.partition, "err", err)
					c.mu.Lock()
					c.uncleanable[l] = true
					c.mu.Unlock()
				}
			} else if ok {
				cleaned = true
			}
		}
		if cleaned {
			continue
		}
		t := time.NewTimer(c.cfg.Backoff)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// CleanNow runs one cleaning pass over l if it is cleanable, as the
// background cleaner would; it returns whether it cleaned. For tests and
// tools; the background cleaner may run at the same time only if started
// (passes over one log never overlap: they take the log's cleanMu).
func (s *Store) CleanNow(l *Log, cfg CleanerConfig) (bool, error) {
	s.mu.Lock()
	c := s.cleaner
	s.mu.Unlock()
	if c == nil {
		if cfg.DedupeBufferSize <= 0 {
			cfg.DedupeBufferSize = DefaultCleanerConfig().DedupeBufferSize
		}
		c = s.newCleaner(cfg)
	}
	return c.maybeClean(l)
}

var errCleanAborted = errors.New("storage: cleaning aborted: the log changed")

// firstDirty is the log's first dirty offset, from the checkpoint.
func (c *cleaner) firstDirty(l *Log) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.dirty[l]; ok {
		return d
	}
	d := c.ckpt[topicPartition{l.topic, l.partition}]
	c.dirty[l] = d
	return d
}

// setFirstDirty records a pass and writes the checkpoint of every log.
// Lock order: a log's mu is never taken under c.mu (planFor takes c.mu
// under the log's locks).
func (c *cleaner) setFirstDirty(l *Log, off int64) {
	c.mu.Lock()
	c.dirty[l] = off
	logs := make([]*Log, 0, len(c.dirty))
	for lg := range c.dirty {
		logs = append(logs, lg)
	}
	c.mu.Unlock()
	var gone []*Log
	for _, lg := range logs {
		lg.mu.RLock()
		if lg.closed {
			gone = append(gone, lg)
		}
		lg.mu.RUnlock()
	}
	c.mu.Lock()
	for _, lg := range gone {
		// Deleted (or its store closed): a partition created again under
		// the name starts clean of this checkpoint.
		delete(c.dirty, lg)
		delete(c.uncleanable, lg)
		delete(c.ckpt, topicPartition{lg.topic, lg.partition})
	}
	m := make(map[topicPartition]int64, len(c.dirty))
	for lg, d := range c.dirty {
		m[topicPartition{lg.topic, lg.partition}] = d
	}
	c.mu.Unlock()
	c.s.ckptMu.Lock()
	err := writeFileAtomic(c.s.fsys, c.s.dir, cleanerCheckpointFile, encodeOffsets(m))
	c.s.ckptMu.Unlock()
	if err != nil {
		c.s.logger.Warn("cannot write the cleaner checkpoint", "err", err)
	}
}

// plan is what a pass over a log will do.
type plan struct {
	segs       []*segment // the segments to rewrite, from the log start; each holds a reference
	firstDirty int64
	end        int64 // first uncleanable offset (a segment base)
	now        time.Time
	cfg        LogConfig
	lastOfPID  map[int64]int64 // producer id -> last offset of its last batch
	aborted    []AbortedTxn
}

func (p *plan) release() {
	for _, sg := range p.segs {
		sg.release()
	}
}

// maybeClean cleans l when it is a compacted log whose dirty part is due.
func (c *cleaner) maybeClean(l *Log) (bool, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	p, ok := c.planFor(l)
	if !ok {
		return false, nil
	}
	defer p.release()
	st, err := c.clean(l, p)
	if err != nil {
		return false, err
	}
	c.setFirstDirty(l, st.End)
	c.mu.Lock()
	m := &c.stats
	m.LastRun = time.Now()
	m.BufferUtilizationPercent = 100 * float64(st.MapEntries) / float64(st.MapCapacity)
	m.RecopyPercent = 0
	if st.BytesRead > 0 {
		m.RecopyPercent = 100 * float64(st.BytesWritten) / float64(st.BytesRead)
	}
	m.CleanTime = st.Duration
	m.Passes++
	m.BytesRead += st.BytesRead
	m.BytesWritten += st.BytesWritten
	m.RecordsRead += st.RecordsRead
	m.RecordsKept += st.RecordsKept
	m.MarkersRemoved += st.MarkersRemoved
	c.mu.Unlock()
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
	red := 0.0
	if st.BytesRead > 0 {
		red = 100 * (1 - float64(st.BytesWritten)/float64(st.BytesRead))
	}
	c.s.logger.Info(fmt.Sprintf("Log cleaner thread 0 cleaned log %s-%d (dirty section = [%d, %d])", l.topic, l.partition, st.FirstDirty, st.End),
		"processed", mb(st.BytesRead), "seconds", st.Duration.Seconds(),
		"start_size", mb(st.BytesRead), "start_messages", st.RecordsRead,
		"end_size", mb(st.BytesWritten), "end_messages", st.RecordsKept,
		"size_reduction_pct", fmt.Sprintf("%.1f", red),
		"segments", fmt.Sprintf("%d -> %d", st.SegmentsBefore, st.SegmentsIn),
		"markers_removed", st.MarkersRemoved)
	return true, nil
}

// planFor decides whether l is due, and takes references on the segments
// a pass would rewrite.
func (c *cleaner) planFor(l *Log) (*plan, bool) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed || !l.cfg.Compact || len(l.segs) < 2 || l.store.failure() != nil {
		return nil, false
	}
	cfg := l.cfg
	now := l.store.now()
	nowMs := now.UnixMilli()
	// The first uncleanable offset: the active segment, open transactions,
	// min.compaction.lag.ms.
	limit := min(l.segs[len(l.segs)-1].base, l.lsoLocked())
	n := 0 // segments wholly below the limit
	for n < len(l.segs)-1 && l.segs[n+1].base <= limit {
		sg := l.segs[n]
		if cfg.MinCompactionLagMs > 0 && sg.largestTimestamp() > nowMs-cfg.MinCompactionLagMs {
			break
		}
		n++
	}
	if n == 0 {
		return nil, false
	}
	end := l.segs[n].base
	firstDirty := max(c.firstDirty(l), l.logStart)
	if firstDirty >= end {
		return nil, false
	}
	var cleanBytes, dirtyBytes int64
	due := false
	for _, sg := range l.segs[:n] {
		if sg.lastOff < firstDirty {
			cleanBytes += sg.size
			continue
		}
		dirtyBytes += sg.size
		if cfg.MaxCompactionLagMs < math.MaxInt64 && sg.firstTs >= 0 && sg.firstTs < nowMs-cfg.MaxCompactionLagMs {
			due = true
		}
	}
	if dirtyBytes == 0 {
		return nil, false
	}
	ratio := float64(dirtyBytes) / float64(cleanBytes+dirtyBytes)
	if !due && ratio < cfg.MinCleanableRatio {
		return nil, false
	}
	p := &plan{firstDirty: firstDirty, end: end, now: now, cfg: cfg, lastOfPID: map[int64]int64{}}
	for _, sg := range l.segs[:n] {
		sg.acquire()
		p.segs = append(p.segs, sg)
	}
	for _, sg := range l.segs { // a marker may lie past the cleanable part
		p.aborted = append(p.aborted, sg.aborted...)
	}
	for pid, st := range l.producers {
		if b := st.last(); b != nil {
			p.lastOfPID[pid] = b.lastOffset
		}
	}
	return p, true
}

// record is one record of a batch being filtered.
type record struct {
	raw       []byte // the whole record, length prefix included
	offset    int64
	key       []byte
	nullKey   bool
	nullValue bool
}

// parseRecords splits decompressed records.
func parseRecords(b []byte, h *batchHeader, dst []record) ([]record, error) {
	bad := func() ([]record, error) {
		return dst, fmt.Errorf("%w: batch at offset %d: malformed record", ErrCorruption, h.baseOffset)
	}
	for i := int32(0); i < h.recordCount; i++ {
		length, n := binary.Varint(b)
		if n <= 0 || length < 0 || int64(len(b)-n) < length {
			return bad()
		}
		raw, body := b[:n+int(length)], b[n:n+int(length)]
		b = b[n+int(length):]
		if len(body) < 1 {
			return bad()
		}
		body = body[1:] // attributes
		var v int64
		if _, n = binary.Varint(body); n <= 0 { // timestamp delta
			return bad()
		}
		body = body[n:]
		if v, n = binary.Varint(body); n <= 0 { // offset delta
			return bad()
		}
		body = body[n:]
		r := record{raw: raw, offset: h.baseOffset + v}
		klen, n := binary.Varint(body)
		if n <= 0 || klen > int64(len(body)-n) {
			return bad()
		}
		body = body[n:]
		if klen < 0 {
			r.nullKey = true
		} else {
			r.key, body = body[:klen], body[klen:]
		}
		vlen, n := binary.Varint(body)
		if n <= 0 {
			return bad()
		}
		r.nullValue = vlen < 0
		dst = append(dst, r)
	}
	return dst, nil
}

// decompressRecords returns the batch's records section, decompressed.
func decompressRecords(batch []byte, h *batchHeader) ([]byte, error) {
	return decompressInto(nil, batch, h)
}

// decompressInto is decompressRecords writing into dst's storage (grown
// as needed), so a pass reuses one buffer: the result is valid until the
// next call with the same dst. An uncompressed batch's records are
// returned in place.
func decompressInto(dst []byte, batch []byte, h *batchHeader) ([]byte, error) {
	if h.compression() == codecNone {
		return batch[batchHeaderSize:], nil
	}
	s, release, err := openRecords(batch, h)
	if err != nil {
		return nil, err
	}
	defer release()
	if ss, ok := s.(*sliceStream); ok {
		return append(dst[:0], ss.b...), nil
	}
	r := s.(io.Reader)
	dst = dst[:0]
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// compressRecords compresses a records section with codec.
func compressRecords(codec int, raw []byte) ([]byte, error) {
	return new(codecs).compress(nil, codec, raw)
}

// codecs are a pass's compressors, made once and reset per batch.
type codecs struct {
	buf bytes.Buffer
	gz  *gzip.Writer
	lz  *lz4.Writer
	zs  *zstd.Encoder
}

func (cs *codecs) close() {
	if cs.zs != nil {
		cs.zs.Close()
	}
}

// compress appends raw compressed with codec to dst (for codecNone, raw
// itself is returned).
func (cs *codecs) compress(dst []byte, codec int, raw []byte) ([]byte, error) {
	buf := &cs.buf
	buf.Reset()
	switch codec {
	case codecNone:
		return raw, nil
	case codecGzip:
		if cs.gz == nil {
			cs.gz = gzip.NewWriter(buf)
		} else {
			cs.gz.Reset(buf)
		}
		if _, err := cs.gz.Write(raw); err != nil {
			return nil, err
		}
		if err := cs.gz.Close(); err != nil {
			return nil, err
		}
	case codecSnappy:
		return xerial.Encode(dst, raw), nil
	case codecLZ4:
		if cs.lz == nil {
			cs.lz = lz4.NewWriter(buf)
		} else {
			cs.lz.Reset(buf)
		}
		if _, err := cs.lz.Write(raw); err != nil {
			return nil, err
		}
		if err := cs.lz.Close(); err != nil {
			return nil, err
		}
	case codecZstd:
		if cs.zs == nil {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			cs.zs = enc
		}
		return cs.zs.EncodeAll(raw, dst), nil
	default:
		return nil, fmt.Errorf("unknown codec %d", codec)
	}
	return append(dst, buf.Bytes()...), nil
}

// rebuildBatch writes a batch holding only kept, with the original
// header (base offset, last offset delta, timestamps, producer fields).
func (pb *passBufs) rebuildBatch(orig []byte, h *batchHeader, kept []record) ([]byte, error) {
	raw := pb.kept[:0]
	for _, r := range kept {
		raw = append(raw, r.raw...)
	}
	pb.kept = raw
	codec := h.compression()
	if len(kept) == 0 {
		codec = codecNone
	}
	body, err := pb.compress(pb.body[:0], codec, raw)
	if err != nil {
		return nil, err
	}
	if codec != codecNone {
		pb.body = body
	}
	b := append(pb.batch[:0], orig[:batchHeaderSize]...)
	b = append(b, body...)
	pb.batch = b
	attrs := uint16(h.attributes)&^attrCompressionMask | uint16(codec)
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)-logOverhead))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(len(kept)))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b, nil
}

// cleanerSlice is how long a pass runs before it lets other goroutines
// have its P (yield).
const cleanerSlice = 100 * time.Microsecond

// yield gives the pass's P to any goroutine waiting for one, once the pass
// has run for cleanerSlice. Go's scheduler would otherwise let the pass
// run 10 ms before preempting it, and a produce or fetch that became
// runnable meanwhile on a busy machine would wait that long.
func (pb *passBufs) yield() {
	if now := time.Now(); now.Sub(pb.ran) >= cleanerSlice {
		runtime.Gosched()
		pb.ran = time.Now()
	}
}

// passBufs are one pass's buffers and compressors, reused batch after
// batch: a pass allocates next to nothing per batch, so it does not drive
// the garbage collector (whose assists would slow the appends running
// beside it).
type passBufs struct {
	window []byte    // eachBatch's read window
	raw    []byte    // a batch's decompressed records
	recs   []record  // its records
	kept   []byte    // the kept records of a rebuilt batch
	body   []byte    // their compressed form
	batch  []byte    // the rebuilt batch
	ran    time.Time // when the pass last yielded
	codecs
}

// offsetMap is the dedupe buffer: key hash -> offset of its last record.
type offsetMap struct {
	m   map[[16]byte]int64
	max int
	h   hash.Hash // FNV-128a, reused for every key
}

func (om *offsetMap) key(k []byte) [16]byte {
	om.h.Reset()
	om.h.Write(k)
	var out [16]byte
	om.h.Sum(out[:0])
	return out
}

// abortedAt reports whether a transactional batch of pid at offset belongs
// to an aborted transaction.
func (p *plan) abortedAt(pid, offset int64) bool {
	for _, a := range p.aborted {
		if a.ProducerID == pid && offset >= a.FirstOffset && offset <= a.LastOffset {
			return true
		}
	}
	return false
}

// txnTracker follows transactions through a pass, in offset order, to
// decide which markers may go (Kafka's CleanedTransactionMetadata): an
// ABORT marker once the pass saw no batch of its transaction, a COMMIT
// marker likewise.
type txnTracker struct {
	aborted   []AbortedTxn // the plan's, by first offset
	next      int
	abortOpen map[int64]bool // producer -> a batch of its aborted txn was seen
	commitRun map[int64]bool // producer -> a batch of its committed txn was seen
	removed   map[[2]int64]bool
	lastGone  int64 // offset of the last marker removed, -1 if none
}

func newTxnTracker(aborted []AbortedTxn) *txnTracker {
	a := slices.Clone(aborted)
	slices.SortFunc(a, func(x, y AbortedTxn) int { return cmp.Compare(x.FirstOffset, y.FirstOffset) })
	return &txnTracker{aborted: a, abortOpen: map[int64]bool{}, commitRun: map[int64]bool{}, removed: map[[2]int64]bool{}, lastGone: -1}
}

// upTo starts the aborted transactions that begin at or before offset.
func (t *txnTracker) upTo(offset int64) {
	for t.next < len(t.aborted) && t.aborted[t.next].FirstOffset <= offset {
		t.abortOpen[t.aborted[t.next].ProducerID] = false
		t.next++
	}
}

// data notes a data batch.
func (t *txnTracker) data(h *batchHeader) {
	t.upTo(h.lastOffset())
	if !h.isTransactional() {
		return
	}
	if _, ok := t.abortOpen[h.producerID]; ok {
		t.abortOpen[h.producerID] = true
	} else {
		t.commitRun[h.producerID] = true
	}
}

// marker notes a control batch and reports whether it may go.
func (t *txnTracker) marker(h *batchHeader, m txnMarker) bool {
	t.upTo(h.lastOffset())
	if !m.valid {
		return false // not a transaction marker: kept
	}
	if !m.commit {
		seen, ok := t.abortOpen[h.producerID]
		delete(t.abortOpen, h.producerID)
		return !(ok && seen)
	}
	seen := t.commitRun[h.producerID]
	delete(t.commitRun, h.producerID)
	return !seen
}

// cleanerReadWindow is how much of a segment the cleaner reads at once (a
// variable for tests).
var cleanerReadWindow = 1 << 20

// eachBatch reads sg's batches in order, throttled.
func (c *cleaner) eachBatch(pb *passBufs, sg *segment, fn func(b []byte, h *batchHeader) error) error {
	size := sg.size
	window := cleanerReadWindow
	if cap(pb.window) < window {
		pb.window = make([]byte, 0, window)
	}
	buf := pb.window[:0]
	for pos := int64(0); pos < size; {
		n := min(int64(window), size-pos)
		buf = buf[:n]
		if _, err := sg.log.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("storage: read %s: %w", sg.name(), err)
		}
		c.thrott.wait(n)
		bad := func(at int64) error {
			return fmt.Errorf("%w: %s: bad batch header at position %d", ErrCorruption, sg.name(), at)
		}
		var p int64
		for p+batchHeaderSize <= n {
			h := parseHeader(buf[p:])
			if h.length < minBatchSize-logOverhead || h.magic != 2 {
				return bad(pos + p)
			}
			if h.size() > n-p {
				break
			}
			if err := fn(buf[p:p+h.size()], &h); err != nil {
				return err
			}
			p += h.size()
			pb.yield()
		}
		if p == 0 { // a batch larger than the window
			if n < batchHeaderSize {
				return bad(pos)
			}
			h := parseHeader(buf)
			if h.length < minBatchSize-logOverhead || h.magic != 2 || pos+h.size() > size {
				return bad(pos)
			}
			big := make([]byte, h.size())
			if _, err := sg.log.ReadAt(big, pos); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("storage: read %s: %w", sg.name(), err)
			}
			if err := fn(big, &h); err != nil {
				return err
			}
			p = h.size()
		}
		pos += p
	}
	return nil
}

// clean runs one pass (steps 2-4 of the doc above).
func (c *cleaner) clean(l *Log, p *plan) (CleanStats, error) {
	start := time.Now()
	st := CleanStats{FirstDirty: p.firstDirty, SegmentsBefore: len(p.segs)}
	// 2. The offset map of the dirty part.
	om := &offsetMap{m: map[[16]byte]int64{}, max: max(int(float64(c.cfg.DedupeBufferSize)*0.9/offsetMapEntry), 1), h: fnv.New128a()}
	end := p.end
	pb := &passBufs{}
	defer pb.close()
	full := false
	for _, sg := range p.segs {
		if sg.lastOff < p.firstDirty {
			continue
		}
		segFull := false
		err := c.eachBatch(pb, sg, func(b []byte, h *batchHeader) error {
			if segFull || h.lastOffset() < p.firstDirty || h.isControl() ||
				(h.isTransactional() && p.abortedAt(h.producerID, h.baseOffset)) {
				return nil
			}
			raw, err := decompressInto(pb.raw, b, h)
			if err != nil {
				return err
			}
			if h.compression() != codecNone {
				pb.raw = raw
			}
			if pb.recs, err = parseRecords(raw, h, pb.recs[:0]); err != nil {
				return err
			}
			for _, r := range pb.recs {
				if r.nullKey || r.offset < p.firstDirty {
					continue
				}
				k := om.key(r.key)
				if _, ok := om.m[k]; !ok && len(om.m) >= om.max {
					segFull = true
					return nil
				}
				om.m[k] = r.offset
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		if segFull {
			full = true
			end = sg.base
			break
		}
	}
	if end <= p.firstDirty {
		return st, fmt.Errorf("storage: log cleaner: the dedupe buffer (log.cleaner.dedupe.buffer.size) cannot hold the keys of one segment of %s-%d", l.topic, l.partition)
	}
	_ = full
	st.End = end
	st.MapEntries, st.MapCapacity = len(om.m), om.max

	// 3. and 4. Rewrite the segments below end, group by group.
	var groups [][]*segment
	var cur []*segment
	var curSize int64
	for _, sg := range p.segs {
		if sg.base >= end {
			break
		}
		if len(cur) > 0 && (curSize+sg.size > p.cfg.SegmentBytes || sg.lastOff-cur[0].base > math.MaxInt32) {
			groups = append(groups, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, sg)
		curSize += sg.size
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	horizon := p.now.UnixMilli() - p.cfg.DeleteRetentionMs
	tt := newTxnTracker(p.aborted)
	for _, g := range groups {
		if err := c.cleanGroup(l, p, pb, g, om, tt, end, horizon, &st); err != nil {
			return st, err
		}
		st.SegmentsIn++
	}
	if tt.lastGone >= 0 {
		// A snapshot at or below a removed marker may hold its transaction
		// open, and recovery would find no marker to close it: without
		// them, recovery starts from a later snapshot or the log start.
		for _, o := range listSnapshots(l.fsys, l.dir) {
			if o <= tt.lastGone {
				l.fsys.Remove(segmentPath(l.dir, o, extSnapshot))
			}
		}
	}
	st.Duration = time.Since(start)
	return st, nil
}

// cleanGroup rewrites one group of segments into one and swaps it in.
func (c *cleaner) cleanGroup(l *Log, p *plan, pb *passBufs, g []*segment, om *offsetMap, tt *txnTracker, end, horizon int64, st *CleanStats) error {
	base := g[0].base
	dir := l.dir
	cleanedPath := segmentPath(dir, base, extLog) + extCleaned
	l.fsys.Remove(cleanedPath)
	f, err := l.fsys.OpenFile(cleanedPath, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			l.fsys.Remove(cleanedPath)
		}
	}()
	var pos int64
	var aborted []AbortedTxn
	var modified time.Time
	lastOff := g[len(g)-1].lastOff
	for _, a := range p.aborted { // the group's, as planned (under the log's locks)
		if a.LastOffset >= base && a.LastOffset <= lastOff {
			aborted = append(aborted, a)
		}
	}
	for _, sg := range g {
		modified = maxTime(modified, sg.modified)
		oldSeg := sg.modified.UnixMilli() <= horizon
		err := c.eachBatch(pb, sg, func(b []byte, h *batchHeader) error {
			st.BytesRead += int64(len(b))
			keep := b
			if h.isControl() {
				if tt.marker(h, parseMarker(b)) && h.lastOffset() < p.firstDirty && oldSeg {
					st.MarkersRemoved++
					tt.removed[[2]int64{h.producerID, h.baseOffset}] = true
					tt.lastGone = h.lastOffset()
					return nil
				}
			} else {
				tt.data(h)
			}
			if !h.isControl() && h.baseOffset < end {
				raw, err := decompressInto(pb.raw, b, h)
				if err != nil {
					return err
				}
				if h.compression() != codecNone {
					pb.raw = raw
				}
				if pb.recs, err = parseRecords(raw, h, pb.recs[:0]); err != nil {
					return err
				}
				recs := pb.recs
				st.RecordsRead += int64(len(recs))
				abortedData := h.isTransactional() && p.abortedAt(h.producerID, h.baseOffset)
				kept := recs[:0]
				for _, r := range recs {
					switch {
					case abortedData:
						continue
					case r.nullKey:
					default:
						if last, ok := om.m[om.key(r.key)]; ok && last > r.offset {
							continue // a later record of the key exists
						}
						if r.nullValue && r.offset < p.firstDirty && oldSeg {
							continue // a tombstone past delete.retention.ms
						}
					}
					kept = append(kept, r)
				}
				st.RecordsKept += int64(len(kept))
				// An empty batch stays (header only) only when it is its
				// producer's last, which keeps the producer's sequence, as
				// Kafka does: some clients (kafka-python 2.0.2) fail on a
				// fetch that returns nothing but empty batches.
				switch {
				case len(kept) == len(recs):
				case len(kept) == 0 && !(h.producerID >= 0 && p.lastOfPID[h.producerID] == h.lastOffset()):
					keep = nil
				default:
					nb, err := pb.rebuildBatch(b, h, kept)
					if err != nil {
						return err
					}
					keep = nb
				}
			} else if !h.isControl() {
				st.RecordsRead += int64(h.recordCount)
				st.RecordsKept += int64(h.recordCount)
			}
			if keep == nil {
				return nil
			}
			if _, err := f.WriteAt(keep, pos); err != nil {
				return err
			}
			c.thrott.wait(int64(len(keep)))
			pos += int64(len(keep))
			return nil
		})
		if err != nil {
			return err
		}
	}
	st.BytesWritten += pos
	aborted = slices.DeleteFunc(aborted, func(a AbortedTxn) bool { return tt.removed[[2]int64{a.ProducerID, a.LastOffset}] })
	if err := datasync(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The new segment, opened and indexed from the cleaned file.
	ns, err := openSegmentFile(l.fsys, dir, base, cleanedPath)
	if err != nil {
		return err
	}
	nsOK := false
	defer func() {
		if !nsOK {
			ns.release()
		}
	}()
	if _, err := ns.recover(base-1, p.cfg.IndexIntervalBytes); err != nil {
		return err
	}
	ns.aborted = aborted
	ns.created, ns.modified = g[0].created, modified
	ns.zeroedTo = ns.size

	// 4. The swap: indexes, then the log, to *.swap (committed), then the
	// replaced segments go and the *.swap files take their names.
	for _, ext := range []string{extIndex, extTimeIndex, extTxnIndex} {
		l.fsys.Remove(segmentPath(dir, base, ext) + extSwap)
	}
	if err := ns.writeIndexFiles(extSwap); err != nil {
		return err
	}
	// segsMu, not appendMu: appends go on during the renames and the
	// directory fsyncs; only what removes segments waits. Appends may roll
	// meanwhile, which adds segments after the group and moves nothing.
	l.segsMu.Lock()
	defer l.segsMu.Unlock()
	l.mu.RLock()
	live := !l.closed && l.holdsGroup(g)
	l.mu.RUnlock()
	if !live {
		for _, ext := range []string{extIndex, extTimeIndex, extTxnIndex} {
			l.fsys.Remove(segmentPath(dir, base, ext) + extSwap)
		}
		return errCleanAborted
	}
	if cleanerCrash("before swap") {
		return errCrashed
	}
	if err := l.fsys.Rename(cleanedPath, segmentPath(dir, base, extLog)+extSwap); err != nil {
		return l.store.fail(fmt.Errorf("log cleaner: %w", err))
	}
	if err := syncDir(l.fsys, dir); err != nil {
		return l.store.fail(fmt.Errorf("log cleaner: %w", err))
	}
	if cleanerCrash("swap committed") {
		return errCrashed
	}
	for _, sg := range g[1:] {
		sg.removeFiles()
	}
	if cleanerCrash("replaced removed") {
		return errCrashed
	}
	if err := completeSwap(l.fsys, dir, base); err != nil {
		return l.store.fail(fmt.Errorf("log cleaner: %w", err))
	}
	os.Chtimes(segmentPath(dir, base, extLog), modified, modified)
	// Publish. The replaced segments may still be in l.unsynced: they stay
	// there, and the next fsync round syncs their (unlinked) files and
	// drops them, as it does for any rolled segment; that round holds no
	// references of its own, so they must not be released under it.
	// appendMu only for the publish (no I/O under it): code holding
	// appendMu reads the segment list without mu.
	l.appendMu.Lock()
	l.mu.Lock()
	i := slices.Index(l.segs, g[0])
	segs := make([]*segment, 0, len(l.segs)-len(g)+1)
	segs = append(segs, l.segs[:i]...)
	segs = append(segs, ns)
	segs = append(segs, l.segs[i+len(g):]...)
	l.segs = segs
	l.mu.Unlock()
	l.appendMu.Unlock()
	for _, sg := range g {
		sg.release() // the log's own reference; the plan holds another
	}
	ok, nsOK = true, true
	return nil
}

// holdsGroup reports whether g is still a run of l's segments, none of
// them active. Caller holds mu.
func (l *Log) holdsGroup(g []*segment) bool {
	i := slices.Index(l.segs, g[0])
	return i >= 0 && i+len(g) < len(l.segs) && slices.Equal(l.segs[i:i+len(g)], g)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// completeSwap finishes a committed swap of the group based at base: the
// *.swap files take their final names (indexes first, the log last).
func completeSwap(fsys FS, dir string, base int64) error {
	for _, ext := range []string{extIndex, extTimeIndex, extTxnIndex, extLog} {
		from := segmentPath(dir, base, ext) + extSwap
		if _, err := fsys.Stat(from); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // renamed already, by the pass a crash interrupted
			}
			return err
		}
		if err := fsys.Rename(from, segmentPath(dir, base, ext)); err != nil {
			return err
		}
	}
	return syncDir(fsys, dir)
}

// finishSwaps is recovery's part of the protocol, before segments are
// opened: *.cleaned files are an unfinished pass and go; a group whose log
// reached *.swap is committed: the segments it replaces (those based
// within its offsets) are deleted and its files take their final names;
// index *.swap files without their log are leftovers and go. ents is
// dir's listing; changed reports that a file in it was removed or renamed.
func finishSwaps(fsys FS, dir string, ents []fs.DirEntry, logger interface {
	Warn(string, ...any)
}) (changed bool, _ error) {
	var swaps []int64
	var logs []int64
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, extCleaned):
			changed = true
			logger.Warn("removing the output of an interrupted log cleaner pass", "file", filepath.Join(dir, name))
			fsys.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, extLog+extSwap):
			if b, ok := parseOffsetName(strings.TrimSuffix(name, extSwap), extLog); ok {
				swaps = append(swaps, b)
			}
		default:
			if b, ok := parseOffsetName(name, extLog); ok {
				logs = append(logs, b)
			}
		}
	}
	for _, base := range swaps {
		changed = true
		path := segmentPath(dir, base, extLog) + extSwap
		sg, err := openSegmentFile(fsys, dir, base, path)
		if err != nil {
			return changed, err
		}
		if _, err := sg.recover(base-1, 4096); err != nil {
			sg.release()
			return changed, err
		}
		last := sg.lastOff
		sg.release()
		logger.Warn("completing an interrupted log cleaner swap", "dir", dir, "base", base, "last_offset", last)
		for _, b := range logs {
			if b > base && b <= last {
				for _, ext := range []string{extLog, extIndex, extTimeIndex, extTxnIndex} {
					fsys.Remove(segmentPath(dir, b, ext))
				}
			}
		}
		if err := completeSwap(fsys, dir, base); err != nil {
			return changed, err
		}
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, extSwap) && !strings.HasSuffix(name, extLog+extSwap) {
			trimmed := strings.TrimSuffix(name, extSwap)
			ext := filepath.Ext(trimmed)
			if b, ok := parseOffsetName(trimmed, ext); ok && !slices.Contains(swaps, b) {
				changed = true
				fsys.Remove(filepath.Join(dir, name))
			}
		}
	}
	return changed, nil
}

// cleanerCrash is a test hook: true makes a pass stop dead at that step,
// leaving its files as a crash would.
var cleanerCrash = func(step string) bool { return false }

var errCrashed = errors.New("storage: log cleaner stopped by a test")

// ioThrottle bounds the cleaner's reads and writes
// (log.cleaner.io.max.bytes.per.second).
type ioThrottle struct {
	rate  float64
	start time.Time
	bytes float64
}

func newIOThrottle(rate float64) *ioThrottle {
	return &ioThrottle{rate: rate, start: time.Now()}
}

func (t *ioThrottle) wait(n int64) {
	if t.rate <= 0 || t.rate >= math.MaxFloat64/2 {
		return
	}
	t.bytes += float64(n)
	elapsed := time.Since(t.start).Seconds()
	if want := t.bytes / t.rate; want > elapsed {
		time.Sleep(time.Duration((want - elapsed) * float64(time.Second)))
	}
	if elapsed > 1 { // a fresh window now and then
		t.start, t.bytes = time.Now(), 0
	}
}
