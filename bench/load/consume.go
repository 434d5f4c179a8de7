package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// split deals the topic's partitions out to at most n consumers.
func split(ends kadm.ListedOffsets, topic string, n int) [][]int32 {
	var all []int32
	for p := range ends[topic] {
		all = append(all, p)
	}
	slices.Sort(all)
	out := make([][]int32, min(n, len(all)))
	for i, p := range all {
		out[i%len(out)] = append(out[i%len(out)], p)
	}
	return out
}

func consumerOpts(c config, parts []int32, from map[int32]int64) []kgo.Opt {
	offs := make(map[int32]kgo.Offset, len(parts))
	for _, p := range parts {
		if from == nil {
			offs[p] = kgo.NewOffset().AtStart()
		} else {
			offs[p] = kgo.NewOffset().At(from[p])
		}
	}
	return []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: offs}),
		kgo.FetchMaxBytes(int32(c.fetchMaxBytes)), kgo.FetchMaxPartitionBytes(int32(c.fetchMaxPartitionBytes)),
		kgo.FetchMaxWait(c.fetchMaxWait), kgo.BrokerMaxReadBytes(int32(max(c.fetchMaxBytes, c.fetchMaxPartitionBytes) + 1<<20)),
	}
}

// fetchErr is the first error in fs other than the context's.
func fetchErr(fs kgo.Fetches) error {
	var err error
	fs.EachError(func(t string, p int32, e error) {
		if err == nil && !errors.Is(e, context.Canceled) && !errors.Is(e, context.DeadlineExceeded) {
			err = fmt.Errorf("fetch %s[%d]: %w", t, p, e)
		}
	})
	return err
}

func consume(ctx context.Context, c config) (*result, error) {
	ends, err := ensureTopic(ctx, c, false)
	if err != nil {
		return nil, err
	}
	groups := split(ends, c.topic, c.consumers)
	var cls []*kgo.Client
	defer func() { closeAll(cls) }()
	for _, parts := range groups {
		cl, err := clients(ctx, c, 1, consumerOpts(c, parts, nil)...)
		if err != nil {
			return nil, err
		}
		cls = append(cls, cl[0])
	}
	settings := []kv{{"consumers", strconv.Itoa(len(cls))}, {"partitions", strconv.Itoa(len(ends[c.topic]))},
		{"fetch_max_bytes", strconv.Itoa(c.fetchMaxBytes)}, {"fetch_max_partition_bytes", strconv.Itoa(c.fetchMaxPartitionBytes)}}

	m, rctx, cancel, err := startReading(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var (
		total, bytes atomic.Int64
		wg           sync.WaitGroup
		errs         = make([]error, len(cls))
	)
	for i, cl := range cls {
		// Done with a partition at the end offset listed above, unless a
		// record count was asked for.
		left := map[int32]int64{}
		if c.records <= 0 {
			for _, p := range groups[i] {
				if o := ends[c.topic][p]; o.Offset > 0 {
					left[p] = o.Offset
				}
			}
			if len(left) == 0 {
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = readLoop(rctx, cl, c.records, left, &total, &bytes, cancel)
		}()
	}
	wg.Wait()
	r, err := m.finish(errs...)
	if err != nil {
		return nil, err
	}
	r.records, r.bytes, r.settings = total.Load(), bytes.Load(), settings
	return r, nil
}

// readLoop reads until every partition in left reached its end offset, or
// total reached records (records > 0; then it cancels the others), or ctx
// ends. It counts records and value bytes without reading the values.
func readLoop(ctx context.Context, cl *kgo.Client, records int64, left map[int32]int64, total, bytes *atomic.Int64, cancel func()) error {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if err := fetchErr(fs); err != nil {
			return err
		}
		var n, b int64
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				b += int64(len(r.Value))
			}
			n += int64(len(p.Records))
			if end, ok := left[p.Partition]; ok && len(p.Records) > 0 && p.Records[len(p.Records)-1].Offset+1 >= end {
				delete(left, p.Partition)
			}
		})
		bytes.Add(b)
		if t := total.Add(n); records > 0 && t >= records {
			cancel()
			return nil
		}
		if records <= 0 && len(left) == 0 {
			return nil
		}
	}
	return nil
}
