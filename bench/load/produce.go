package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/bench/internal/kopt"
)

// slot is one reusable record. It is also the record's Context, which
// franz-go hands back in the promise untouched, so the promise finds the
// send time (the record's own Timestamp is truncated to milliseconds) and
// the slot without a lookup.
type slot struct {
	context.Context
	rec  kgo.Record
	sent time.Time
}

// pool is a producer's fixed set of records: a record is taken to be
// produced and returned by its promise, so the number of slots bounds what
// is unacknowledged and nothing is allocated per record.
type pool chan *slot

func newPool(n int, topic string, value func(i int) []byte) pool {
	p := make(pool, n)
	for i := range n {
		s := &slot{Context: context.Background()}
		s.rec = kgo.Record{Topic: topic, Value: value(i)}
		p <- s
	}
	return p
}

// take readies a slot's record for another send at now.
func (s *slot) take(topic string, now time.Time) *kgo.Record {
	v := s.rec.Value
	s.rec = kgo.Record{Topic: topic, Value: v, Context: s}
	s.sent = now
	return &s.rec
}

// payloads is a block of random (incompressible) bytes and the value of
// record slot i: non-overlapping windows of it in turn, so no two records
// within a batch of up to batchBytes repeat each other.
type payloads struct {
	block      []byte
	size, span int
}

func newPayloads(size, batchBytes int) *payloads {
	n := max(8<<20, 2*batchBytes) + size
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{'g', 'r', 'e', 'g', 'o', 'r'})
	rng.Read(b)
	return &payloads{block: b, size: size, span: (n - size) / max(size, 1)}
}

func (p *payloads) value(i int) []byte {
	if p.span == 0 {
		return p.block[:p.size:p.size]
	}
	off := i % p.span * p.size
	return p.block[off : off+p.size : off+p.size]
}

// slots is how many records a producer keeps, from -buffer-bytes.
func (c config) slots() int { return max(1, c.bufferBytes/max(c.recordSize, 1)) }

func producerOpts(c config) ([]kgo.Opt, []kv, error) {
	acks, inflight, err := kopt.Acks(c.acks, c.idempotent, c.maxInflight)
	if err != nil {
		return nil, nil, err
	}
	comp, err := kopt.Compression(c.compression)
	if err != nil {
		return nil, nil, err
	}
	// franz-go's own buffer limits sit above the slots, so Produce never
	// blocks: the wait for a free slot is the only back-pressure.
	n := c.slots()
	opts := append(acks, comp, kgo.ProducerLinger(c.linger), kgo.ProducerBatchMaxBytes(int32(c.batchBytes)),
		kgo.MaxBufferedRecords(n+1), kgo.MaxBufferedBytes(2*n*(c.recordSize+64)))
	if c.batchBytes > 100<<20-(1<<20) {
		opts = append(opts, kgo.BrokerMaxWriteBytes(int32(c.batchBytes)+(1<<20)))
	}
	inf := strconv.Itoa(inflight)
	if inflight == 0 {
		inf = "idempotent"
	}
	return opts, []kv{{"acks", c.acks}, {"producers", strconv.Itoa(c.producers)},
		{"record_size", strconv.Itoa(c.recordSize)}, {"linger_ms", fmt.Sprint(c.linger.Seconds() * 1000)},
		{"batch_bytes", strconv.Itoa(c.batchBytes)}, {"compression", c.compression},
		{"max_inflight", inf}, {"rate", fmt.Sprint(c.rate)}}, nil
}

// clients makes n clients with opts and waits until each has connected.
func clients(ctx context.Context, c config, n int, opts ...kgo.Opt) ([]*kgo.Client, error) {
	var cls []*kgo.Client
	for range n {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)...)
		if err != nil {
			closeAll(cls)
			return nil, err
		}
		cls = append(cls, cl)
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = cl.Ping(pctx)
		cancel()
		if err != nil {
			closeAll(cls)
			return nil, fmt.Errorf("connect to %v: %w", c.brokers, err)
		}
	}
	return cls, nil
}

func closeAll(cls []*kgo.Client) {
	for _, cl := range cls {
		cl.Close()
	}
}

// ensureTopic creates the topic unless it exists, and returns its
// partitions' end offsets once every partition has a leader.
func ensureTopic(ctx context.Context, c config, create bool) (kadm.ListedOffsets, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if create {
		resp, err := adm.CreateTopic(ctx, int32(c.partitions), int16(c.rf), nil, c.topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return nil, fmt.Errorf("create topic %s: %w", c.topic, err)
		}
	}
	for {
		ends, err := adm.ListEndOffsets(ctx, c.topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil && len(ends[c.topic]) > 0 {
			return ends, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("topic %s: %v", c.topic, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// counters are a producer's totals, updated by its promise.
type counters struct {
	acked  atomic.Int64
	failed atomic.Int64
	err    atomic.Pointer[error]
}

func (k *counters) fail(err error) {
	k.failed.Add(1)
	k.err.CompareAndSwap(nil, &err)
}

// share is producer i's part of total records (0: no limit).
func share(total int64, i, n int) int64 {
	if total <= 0 {
		return -1
	}
	s := total / int64(n)
	if int64(i) < total%int64(n) {
		s++
	}
	return s
}

func produce(ctx context.Context, c config) (*result, error) {
	if _, err := ensureTopic(ctx, c, true); err != nil {
		return nil, err
	}
	opts, settings, err := producerOpts(c)
	if err != nil {
		return nil, err
	}
	cls, err := clients(ctx, c, c.producers, opts...)
	if err != nil {
		return nil, err
	}
	defer closeAll(cls)
	pl := newPayloads(c.recordSize, c.batchBytes)
	pools := make([]pool, len(cls))
	for i := range cls {
		pools[i] = newPool(c.slots(), c.topic, func(j int) []byte { return pl.value(i*c.slots() + j) })
	}
	hists := make([]*hist, len(cls))
	ks := make([]*counters, len(cls))
	for i := range cls {
		hists[i], ks[i] = new(hist), new(counters)
	}

	m, err := startMeter(c.brokerPIDs)
	if err != nil {
		return nil, err
	}
	var deadline time.Time
	if c.duration > 0 {
		deadline = m.start.Add(c.duration)
	}
	var wg sync.WaitGroup
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &sender{cl: cl, topic: c.topic, p: pools[i], h: hists[i], k: ks[i], start: m.start,
				limit: share(c.records, i, len(cls)), until: deadline, drain: c.drain}
			if c.rate > 0 {
				// Producer i takes every len(cls)-th slot of the schedule.
				every := time.Duration(float64(time.Second) / c.rate)
				s.every, s.first = every*time.Duration(len(cls)), every*time.Duration(i)
			}
			if err := s.run(); err != nil {
				ks[i].fail(err)
			}
		}()
	}
	wg.Wait()
	r, err := m.finish()
	if err != nil {
		return nil, err
	}
	r.lat, r.settings = new(hist), settings
	for i, k := range ks {
		if p := k.err.Load(); p != nil {
			return nil, fmt.Errorf("producer %d: %d records failed, the first with: %w", i, k.failed.Load(), *p)
		}
		r.records += k.acked.Load()
		r.lat.merge(hists[i])
	}
	r.bytes = r.records * int64(c.recordSize)
	return r, nil
}

// sender is one producer's send loop.
type sender struct {
	cl     *kgo.Client
	topic  string
	p      pool
	h      *hist
	k      *counters
	start  time.Time
	limit  int64         // records to send; -1: until deadline
	until  time.Time     // zero: no deadline
	drain  time.Duration // how long to wait for the last acks
	every  time.Duration // schedule: record j is due at start+first+j*every; 0: as fast as slots come back
	first  time.Duration
	warmup time.Duration // records due before start+warmup are left out of h
	// stamp, when set, writes record j's due time into its value, and ack
	// latency is from the due time rather than from the Produce call.
	stamp func(v []byte, j int64, due time.Duration)
}

// run sends, then waits for every slot to come back, for at most drain.
func (s *sender) run() error {
	var stop <-chan time.Time
	if !s.until.IsZero() {
		t := time.NewTimer(time.Until(s.until))
		defer t.Stop()
		stop = t.C
	}
	cut := s.start.Add(s.warmup)
	promise := func(r *kgo.Record, err error) {
		sl := r.Context.(*slot)
		if err != nil {
			s.k.fail(err)
		} else {
			if !sl.sent.Before(cut) {
				s.h.record(time.Since(sl.sent))
			}
			s.k.acked.Add(1)
		}
		s.p <- sl
	}
	for j := int64(0); s.limit < 0 || j < s.limit; j++ {
		due := s.first + time.Duration(j)*s.every
		if s.every > 0 {
			if wait := time.Until(s.start.Add(due)); wait > 0 {
				time.Sleep(wait)
			}
		}
		var sl *slot
		select { // a free slot without a timer in the common case
		case sl = <-s.p:
		default:
			select {
			case sl = <-s.p:
			case <-stop:
			}
		}
		// Monotonic clock only: cheaper than time.Now's wall clock too.
		now := s.start.Add(time.Since(s.start))
		if sl == nil || !s.until.IsZero() && now.After(s.until) || s.k.err.Load() != nil {
			if sl != nil {
				s.p <- sl
			}
			break
		}
		if s.stamp != nil {
			now = s.start.Add(due)
			s.stamp(sl.rec.Value, j, due)
		}
		s.cl.Produce(context.Background(), sl.take(s.topic, now), promise)
	}
	// Every slot back means every promise has run.
	t := time.NewTimer(s.drain)
	defer t.Stop()
	for i := range cap(s.p) {
		select {
		case <-s.p:
		case <-t.C:
			return fmt.Errorf("%d records unacknowledged %v after the last send", cap(s.p)-i, s.drain)
		}
	}
	return nil
}
