package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/bench/internal/proc"

	"github.com/gregorhq/gregor/bench/internal/kpoll"
)

// metadataLatency sends n Metadata (v12) requests for topic one after the
// other on one raw connection and returns their sorted round-trip times
// (request written to response read; the response is not decoded inside
// the timing) and the response size. The last response is decoded to
// check it lists want partitions.
func metadataLatency(addr, topic string, n, want int) ([]time.Duration, int, error) {
	rc, err := dialRaw(addr)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	var (
		lats []time.Duration
		b    []byte
	)
	for range n {
		t0 := time.Now()
		b, err = rc.roundTrip(req)
		if err != nil {
			return nil, 0, err
		}
		lats = append(lats, time.Since(t0))
	}
	size := len(b)
	resp, err := decode(req, b)
	if err != nil {
		return nil, 0, err
	}
	m := resp.(*kmsg.MetadataResponse)
	if len(m.Topics) != 1 {
		return nil, 0, fmt.Errorf("metadata: %d topics", len(m.Topics))
	}
	if err := kerr.ErrorForCode(m.Topics[0].ErrorCode); err != nil {
		return nil, 0, fmt.Errorf("metadata: %w", err)
	}
	if got := len(m.Topics[0].Partitions); got != want {
		return nil, 0, fmt.Errorf("metadata: %d partitions, want %d", got, want)
	}
	slices.Sort(lats)
	return lats, size, nil
}

// fetchCounter counts the Fetch responses a client reads (a kgo hook).
type fetchCounter struct{ n atomic.Int64 }

func (h *fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.n.Add(1)
	}
}

// idleFetch is what one idle consumer of every partition costs the broker.
type idleFetch struct {
	wall      time.Duration
	brokerCPU time.Duration
	fetches   int64
}

// fetchIdle runs one franz-go consumer (no group, fetch sessions on, as by
// default) of all of topic's partitions from their ends, with nothing
// produced, for warm and then dur, and measures the broker's CPU and the
// Fetch responses the consumer read during dur.
func fetchIdle(ctx context.Context, addr, topic string, pid int, maxWait, warm, dur time.Duration) (idleFetch, error) {
	var h fetchCounter
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(maxWait), kgo.WithHooks(&h))
	if err != nil {
		return idleFetch{}, err
	}
	defer cl.Close()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var got atomic.Int64
	go func() { done <- kpoll.Drain(cctx, cl, &got) }()
	var r idleFetch
	err = sleepCtx(ctx, warm)
	if err == nil {
		var c0, c1 time.Duration
		c0, err = proc.CPU(pid)
		n0, t0 := h.n.Load(), time.Now()
		err = errors.Join(err, sleepCtx(ctx, dur))
		r.wall, r.fetches = time.Since(t0), h.n.Load()-n0
		var err1 error
		c1, err1 = proc.CPU(pid)
		r.brokerCPU = c1 - c0
		err = errors.Join(err, err1)
	}
	cancel()
	err = errors.Join(err, <-done)
	if n := got.Load(); n != 0 && err == nil {
		err = fmt.Errorf("idle consumer read %d records; nothing should have been produced", n)
	}
	return r, err
}

// brokerIdle is the broker's CPU over dur with no client doing anything.
func brokerIdle(ctx context.Context, pid int, dur time.Duration) (time.Duration, error) {
	c0, err := proc.CPU(pid)
	if err != nil {
		return 0, err
	}
	if err := sleepCtx(ctx, dur); err != nil {
		return 0, err
	}
	c1, err := proc.CPU(pid)
	return c1 - c0, err
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// values; zero for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*p/100)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
