package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/bench/internal/kopt"

	"github.com/gregorhq/gregor/bench/internal/proc"
)

// throughput is what one produce-as-fast-as-possible run measured.
type throughput struct {
	wall               time.Duration
	records, bytes     int64 // acknowledged inside the measured window
	brokerCPU, selfCPU time.Duration
	requests, reqBytes int64 // Produce requests written inside the window
	written            int64 // bytes the broker wrote (wchar) inside the window
}

// writeRatio is the bytes the broker wrote per byte of record values
// acknowledged.
func (t throughput) writeRatio() float64 {
	if t.bytes == 0 {
		return 0
	}
	return float64(t.written) / float64(t.bytes)
}

// meanRequest is the mean size of the Produce requests written, in KiB.
func (t throughput) meanRequest() float64 {
	if t.requests == 0 {
		return 0
	}
	return float64(t.reqBytes) / float64(t.requests) / 1024
}

// produceWrites counts the Produce requests a client writes (a kgo hook).
type produceWrites struct{ n, bytes atomic.Int64 }

func (h *produceWrites) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 0 && err == nil {
		h.n.Add(1)
		h.bytes.Add(int64(n))
	}
}

func (t throughput) mbps() float64 { return float64(t.bytes) / 1e6 / t.wall.Seconds() }
func (t throughput) rps() float64  { return float64(t.records) / t.wall.Seconds() }

// perGiB is CPU seconds per GiB of record values produced.
func (t throughput) perGiB(cpu time.Duration) float64 {
	if t.bytes == 0 {
		return 0
	}
	return cpu.Seconds() / (float64(t.bytes) / (1 << 30))
}

// slot is one reusable record with its promise, made once, so that the
// produce loop allocates nothing per record. The number of slots bounds
// what is unacknowledged.
type slot struct {
	rec   kgo.Record
	value []byte
	done  func(*kgo.Record, error)
}

// produceFor produces size-byte records (random, incompressible) to topic
// with acks=1 as fast as one franz-go client goes, for warm and then dur,
// and returns what was acknowledged during dur and the CPU used in it.
func produceFor(ctx context.Context, addr, topic string, size int, pid int, warm, dur time.Duration) (throughput, error) {
	const bufferBytes, batchBytes = 16 << 20, 1 << 20
	acks, _, err := kopt.Acks("1", false, 5)
	if err != nil {
		return throughput{}, err
	}
	n := max(4, bufferBytes/size)
	var writes produceWrites
	cl, err := kgo.NewClient(append(acks, kgo.SeedBrokers(addr), kgo.WithHooks(&writes), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(batchBytes), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(n+1), kgo.MaxBufferedBytes(2*n*(size+64)))...)
	if err != nil {
		return throughput{}, err
	}
	defer cl.Close()

	// Values are windows of one random block, so neighbours differ.
	block := make([]byte, max(8<<20, 2*batchBytes)+size)
	rng := rand.NewChaCha8([32]byte{'s', 'c', 'a', 'l', 'e'})
	rng.Read(block)
	span := (len(block) - size) / size
	var (
		records, bytes atomic.Int64
		firstErr       atomic.Pointer[error]
	)
	pool := make(chan *slot, n)
	for i := range n {
		off := i % span * size
		s := &slot{value: block[off : off+size : off+size]}
		s.done = func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			} else {
				records.Add(1)
				bytes.Add(int64(size))
			}
			pool <- s
		}
		pool <- s
	}

	pctx, cancel := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-pctx.Done():
				return
			case s := <-pool:
				s.rec = kgo.Record{Topic: topic, Value: s.value}
				cl.Produce(ctx, &s.rec, s.done)
			}
		}
	}()
	stopLoop := func() {
		cancel()
		<-loopDone
		fctx, fcancel := context.WithTimeout(ctx, 60*time.Second)
		defer fcancel()
		_ = cl.Flush(fctx)
	}
	if err := sleepCtx(ctx, warm); err != nil {
		stopLoop()
		return throughput{}, err
	}
	r0, b0, q0, qb0 := records.Load(), bytes.Load(), writes.n.Load(), writes.bytes.Load()
	c0, err := proc.CPU(pid)
	w0, err1 := procWritten(pid)
	if err := errors.Join(err, err1); err != nil {
		stopLoop()
		return throughput{}, err
	}
	s0, t0 := proc.SelfCPU(), time.Now()
	err = sleepCtx(ctx, dur)
	t := throughput{wall: time.Since(t0), records: records.Load() - r0, bytes: bytes.Load() - b0, selfCPU: proc.SelfCPU() - s0,
		requests: writes.n.Load() - q0, reqBytes: writes.bytes.Load() - qb0}
	c1, err2 := proc.CPU(pid)
	w1, err3 := procWritten(pid)
	stopLoop()
	if err := errors.Join(err, err2, err3); err != nil {
		return t, err
	}
	t.brokerCPU, t.written = c1-c0, w1-w0
	if p := firstErr.Load(); p != nil {
		return t, fmt.Errorf("produce: %w", *p)
	}
	return t, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// firstProduce is one acks=all produce to partition 0 of topic by a new
// franz-go client (idempotent, as by default), retried by the client
// until it is acknowledged or ctx ends.
func firstProduce(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after restart")}).FirstErr()
}

// connResult is what the connection curve measured at one count.
type connResult struct {
	latencies          []time.Duration // produce request to response, in the window
	sent               int64           // requests sent in the window
	wall               time.Duration
	brokerCPU, selfCPU time.Duration
	mem                proc.Memory
	fds                int
}

// connections opens conns raw connections and has each send one-record
// acks=1 Produce requests (v9) of size bytes at total/conns a second,
// to partition i%parts, pipelined (the next is sent on schedule whether
// or not the last was answered). It measures over dur after warm.
func connections(ctx context.Context, addr, topic string, parts, conns, size, total int, pid int, warm, dur time.Duration) (connResult, error) {
	rcs := make([]*rawConn, 0, conns)
	defer func() {
		for _, rc := range rcs {
			rc.Close()
		}
	}()
	for range conns {
		rc, err := dialRaw(addr)
		if err != nil {
			return connResult{}, fmt.Errorf("connection %d: %w", len(rcs)+1, err)
		}
		rcs = append(rcs, rc)
	}
	value := make([]byte, size)
	rand.NewChaCha8([32]byte{'c'}).Read(value)
	batch := recordBatch(value)
	interval := time.Duration(float64(time.Second) * float64(conns) / float64(total))

	var (
		measuring atomic.Bool
		sent      atomic.Int64
		firstErr  atomic.Pointer[error]
		wg        sync.WaitGroup
	)
	fail := func(err error) { firstErr.CompareAndSwap(nil, &err) }
	lats := make([][]time.Duration, conns)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, rc := range rcs {
		req := produceRequest(topic, int32(i%parts), batch)
		times := make(chan time.Time, 4096) // send times of requests in flight, in order
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			defer close(times)
			// A random phase, so the connections do not send in step.
			t := time.NewTimer(time.Duration(rand.Int64N(int64(interval))))
			defer t.Stop()
			var next time.Time // the last send's due time
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
				}
				now := time.Now()
				if next.IsZero() {
					next = now
				}
				if _, err := rc.send(req); err != nil {
					if rctx.Err() == nil {
						fail(err)
					}
					return
				}
				if measuring.Load() {
					sent.Add(1)
				}
				times <- now
				// Keep to the schedule: a late send makes the next ones
				// follow at once, unless the writer is far behind.
				next = next.Add(interval)
				if now.Sub(next) > 100*time.Millisecond {
					next = now
				}
				t.Reset(time.Until(next))
			}
		}()
		go func() { // reader
			defer wg.Done()
			for sentAt := range times {
				_, b, err := rc.recv()
				if err != nil {
					if rctx.Err() == nil {
						fail(err)
					}
					for range times { // let the writer finish
					}
					return
				}
				lat := time.Since(sentAt)
				resp, err := decode(req, b)
				if err == nil {
					if code := produceError(resp.(*kmsg.ProduceResponse)); code != 0 {
						err = kerr.ErrorForCode(code)
					}
				}
				if err != nil {
					fail(err)
					continue
				}
				if measuring.Load() {
					lats[i] = append(lats[i], lat)
				}
			}
		}()
	}
	var res connResult
	err := sleepCtx(ctx, warm)
	if err == nil {
		var c0 time.Duration
		c0, err = proc.CPU(pid)
		s0, t0 := proc.SelfCPU(), time.Now()
		measuring.Store(true)
		err = errors.Join(err, sleepCtx(ctx, dur))
		measuring.Store(false)
		res.wall, res.selfCPU = time.Since(t0), proc.SelfCPU()-s0
		c1, err1 := proc.CPU(pid)
		res.brokerCPU = c1 - c0
		var err2, err3 error
		res.mem, err2 = proc.ReadMemory(pid)
		res.fds, err3 = proc.OpenFDs(pid)
		err = errors.Join(err, err1, err2, err3)
	}
	// Closing the connections ends the readers; the writers see the
	// cancel. Then the latency slices are ours.
	cancel()
	for _, rc := range rcs {
		rc.Close()
	}
	rcs = nil
	wg.Wait()
	if err != nil {
		return res, err
	}
	if p := firstErr.Load(); p != nil {
		return res, *p
	}
	res.sent = sent.Load()
	for _, l := range lats {
		res.latencies = append(res.latencies, l...)
	}
	slices.Sort(res.latencies)
	return res, nil
}
