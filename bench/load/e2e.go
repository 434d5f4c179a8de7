package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// e2e runs producers on a fixed schedule and consumers in this process.
// Record i (over all producers) is due at i/rate after the start; its value
// holds that due time (nanoseconds after the start) in bytes 0-7 and i in
// bytes 8-15, so a consumer can time it and check it arrives exactly once.
func e2e(ctx context.Context, c config) (*result, error) {
	ends, err := ensureTopic(ctx, c, true)
	if err != nil {
		return nil, err
	}
	n := c.records
	if n <= 0 {
		n = int64(c.rate * c.duration.Seconds())
	}
	if n < 1 {
		return nil, errors.New("-rate and -duration leave no records to send")
	}
	popts, settings, err := producerOpts(c)
	if err != nil {
		return nil, err
	}
	prods, err := clients(ctx, c, c.producers, popts...)
	if err != nil {
		return nil, err
	}
	defer closeAll(prods)
	from := map[int32]int64{}
	for p, o := range ends[c.topic] {
		from[p] = o.Offset
	}
	var cons []*kgo.Client
	defer func() { closeAll(cons) }()
	for _, parts := range split(ends, c.topic, c.consumers) {
		cl, err := clients(ctx, c, 1, consumerOpts(c, parts, from)...)
		if err != nil {
			return nil, err
		}
		cons = append(cons, cl[0])
	}
	settings = append(settings, kv{"consumers", strconv.Itoa(len(cons))},
		kv{"warmup_s", fmt.Sprint(c.warmup.Seconds())})

	pl := newPayloads(c.recordSize, c.batchBytes)
	pools := make([]pool, len(prods))
	for i := range prods {
		// Each record has its own value: the first 16 bytes are rewritten
		// per send.
		pools[i] = newPool(c.slots(), c.topic, func(j int) []byte {
			return append([]byte(nil), pl.value(i*c.slots()+j)...)
		})
	}
	var (
		seen  = make([]atomic.Uint32, (n+31)/32)
		got   atomic.Int64
		chist = make([]*hist, len(cons))
		cerrs = make([]error, len(cons))
		ahist = make([]*hist, len(prods))
		ks    = make([]*counters, len(prods))
	)

	m, err := startMeter(c.brokerPIDs)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cwg sync.WaitGroup
	for i, cl := range cons {
		chist[i] = new(hist)
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			cerrs[i] = e2eRead(cctx, cl, m.start, c, n, seen, &got, chist[i], cancel)
		}()
	}
	every := time.Duration(float64(time.Second) / c.rate)
	var pwg sync.WaitGroup
	for i, cl := range prods {
		ahist[i], ks[i] = new(hist), new(counters)
		P := int64(len(prods))
		s := &sender{cl: cl, topic: c.topic, p: pools[i], h: ahist[i], k: ks[i], start: m.start,
			limit: share(n, i, len(prods)), every: every * time.Duration(P), first: every * time.Duration(i),
			warmup: c.warmup, drain: c.drain,
			stamp: func(v []byte, j int64, due time.Duration) {
				binary.BigEndian.PutUint64(v[0:8], uint64(due))
				binary.BigEndian.PutUint64(v[8:16], uint64(j*P+int64(i)))
			}}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			if err := s.run(); err != nil {
				ks[i].fail(err)
			}
		}()
	}
	pwg.Wait()
	for i, k := range ks {
		if p := k.err.Load(); p != nil {
			cancel()
			cwg.Wait()
			return nil, fmt.Errorf("producer %d: %d records failed, the first with: %w", i, k.failed.Load(), *p)
		}
	}
	done := make(chan struct{})
	go func() { cwg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.drain):
		cancel()
		<-done
	}
	r, err := m.finish(cerrs...)
	if err != nil {
		return nil, err
	}
	if g := got.Load(); g != n {
		return nil, fmt.Errorf("%d of %d records not consumed %v after the last ack", n-g, n, c.drain)
	}
	r.records, r.bytes, r.lat, r.ack, r.settings = n, n*int64(c.recordSize), new(hist), new(hist), settings
	for _, h := range chist {
		r.lat.merge(h)
	}
	for _, h := range ahist {
		r.ack.merge(h)
	}
	return r, nil
}

// e2eRead reads records until all n arrived (then it cancels the others) or
// ctx ends, checking each arrives once and intact, and times those due after
// the warm-up.
func e2eRead(ctx context.Context, cl *kgo.Client, base time.Time, c config, n int64, seen []atomic.Uint32,
	got *atomic.Int64, h *hist, cancel func()) error {
	warm := c.warmup
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Since(base)
		if err := fetchErr(fs); err != nil {
			return err
		}
		var err error
		k := int64(0)
		fs.EachRecord(func(r *kgo.Record) {
			if err != nil {
				return
			}
			if len(r.Value) != c.recordSize {
				err = fmt.Errorf("record at %s[%d]@%d: %d bytes, want %d", r.Topic, r.Partition, r.Offset, len(r.Value), c.recordSize)
				return
			}
			due := time.Duration(binary.BigEndian.Uint64(r.Value[0:8]))
			i := binary.BigEndian.Uint64(r.Value[8:16])
			if i >= uint64(n) || seen[i/32].Or(1<<(i%32))&(1<<(i%32)) != 0 {
				err = fmt.Errorf("record at %s[%d]@%d: unexpected or repeated sequence %d", r.Topic, r.Partition, r.Offset, i)
				return
			}
			if due >= warm {
				h.record(now - due)
			}
			k++
		})
		if err != nil {
			return err
		}
		if got.Add(k) >= n {
			cancel()
			return nil
		}
	}
	return nil
}
