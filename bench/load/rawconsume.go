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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumeRaw reads like consume, but with the cheapest client possible, so
// the broker, not the client, is the bottleneck: each consumer sends
// sessionless full Fetch requests for its partitions to the leader and
// walks the batch headers of the answer (base offset, length, record
// count) without decoding records, decompressing or checking CRCs. The
// receiving copy from the kernel is all that is left on the client. bytes
// is records times -record-size (the records bench/load produces).
func consumeRaw(ctx context.Context, c config) (*result, error) {
	ends, err := ensureTopic(ctx, c, false)
	if err != nil {
		return nil, err
	}
	cls, err := clients(ctx, c, 1)
	if err != nil {
		return nil, err
	}
	defer closeAll(cls)
	cl := cls[0]
	mctx, mcancel := context.WithTimeout(ctx, 30*time.Second)
	md, err := kadm.NewClient(cl).Metadata(mctx, c.topic)
	mcancel()
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[c.topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("metadata for %s: %v", c.topic, td.Err)
	}
	// The consumers' partitions, grouped by leader.
	type part struct {
		p      int32
		next   int64
		end    int64
		leader int32
	}
	groups := split(ends, c.topic, c.consumers)
	work := make([][]*part, len(groups))
	for i, ps := range groups {
		for _, p := range ps {
			end := ends[c.topic][p].Offset
			if c.records <= 0 && end <= 0 {
				continue
			}
			work[i] = append(work[i], &part{p: p, end: end, leader: td.Partitions[p].Leader})
		}
	}
	settings := []kv{{"consumers", strconv.Itoa(len(groups))}, {"partitions", strconv.Itoa(len(ends[c.topic]))},
		{"fetch_max_bytes", strconv.Itoa(c.fetchMaxBytes)}, {"fetch_max_partition_bytes", strconv.Itoa(c.fetchMaxPartitionBytes)},
		{"client", "raw"}}

	m, rctx, cancel, err := startReading(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var (
		total, fetches, batchBytes atomic.Int64
		wg                         sync.WaitGroup
		errs                       = make([]error, len(work))
	)
	for i, parts := range work {
		if len(parts) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() error {
				for rctx.Err() == nil {
					req := kmsg.NewPtrFetchRequest()
					req.ReplicaID, req.MaxWaitMillis, req.MinBytes = -1, int32(c.fetchMaxWait.Milliseconds()), 1
					req.MaxBytes, req.SessionID, req.SessionEpoch = int32(c.fetchMaxBytes), 0, -1
					t := kmsg.NewFetchRequestTopic()
					t.Topic, t.TopicID = c.topic, td.ID
					leader := int32(-1)
					for _, p := range parts {
						if c.records <= 0 && p.next >= p.end {
							continue
						}
						leader = p.leader
						fp := kmsg.NewFetchRequestTopicPartition()
						fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p.p, p.next, int32(c.fetchMaxPartitionBytes)
						fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
						t.Partitions = append(t.Partitions, fp)
					}
					if len(t.Partitions) == 0 {
						return nil // every partition read to its end
					}
					req.Topics = append(req.Topics, t)
					resp, err := req.RequestWith(rctx, cl.Broker(int(leader)))
					if err != nil {
						if rctx.Err() != nil {
							return nil
						}
						return err
					}
					if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
						return fmt.Errorf("fetch: %w", err)
					}
					fetches.Add(1)
					var n int64
					for _, rt := range resp.Topics {
						for _, rp := range rt.Partitions {
							if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
								return fmt.Errorf("fetch %s[%d]: %w", c.topic, rp.Partition, err)
							}
							batchBytes.Add(int64(len(rp.RecordBatches)))
							for _, p := range parts {
								if p.p == rp.Partition {
									k, next := walkBatches(rp.RecordBatches, p.next)
									p.next, n = next, n+k
								}
							}
						}
					}
					if t := total.Add(n); c.records > 0 && t >= c.records {
						cancel()
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	wall, self, broker, err := m.stop()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	n := total.Load()
	settings = append(settings, kv{"fetches", strconv.FormatInt(fetches.Load(), 10)},
		kv{"record_bytes_per_fetch", strconv.FormatInt(batchBytes.Load()/max(fetches.Load(), 1), 10)})
	return &result{records: n, bytes: n * int64(c.recordSize), wall: wall, cpu: self, brokerC: broker, settings: settings}, nil
}

// walkBatches counts the records of the whole v2 batches in b at or after
// offset next (a partial batch at the end, which a broker may send, is
// left for the next fetch) and returns the offset after the last one.
func walkBatches(b []byte, next int64) (records, after int64) {
	const headerLen = 61 // base offset to records count, inclusive
	after = next
	for len(b) >= headerLen {
		size := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
		if size < headerLen || size > len(b) {
			break
		}
		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(int32(binary.BigEndian.Uint32(b[23:27])))
		if last >= after {
			records += int64(int32(binary.BigEndian.Uint32(b[57:61])))
			after = last + 1
		}
		b = b[size:]
	}
	return records, after
}
