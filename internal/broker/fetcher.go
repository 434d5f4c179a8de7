package broker

// The follower's side of replication: one fetcher per leader broker
// fetches every partition this broker follows there, with Kafka's Fetch
// as a replica (ReplicaState, LastFetchedEpoch, CurrentLeaderEpoch), over
// the leader's inter.broker.listener.name endpoint.
//
// Each round: fetch from each partition's log end; a partition whose log
// diverged from the leader's (the response's DivergingEpoch) is truncated
// to where they agree (Kafka's rules: the end offset, on both sides, of
// the largest epoch they share) and fetched again; records are appended as
// the leader stored them (storage.Log.AppendReplica), and with
// gregor.durability=fsync fsynced before the next fetch, so the offset the
// next fetch reports to the leader is a durable one. The leader's high
// watermark, clamped to the local log end, becomes this replica's.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/storage"
)

type fetchState struct {
	r          *replica
	epoch      int32 // the leader epoch this broker knows for the partition
	gen        int64 // the log's role generation when handed to this fetcher
	delayUntil time.Time
}

type fetcher struct {
	rm     *replicaManager
	leader int32

	mu    sync.Mutex
	parts map[tpKey]*fetchState
	wake  chan struct{}

	cl   *kgo.Client // owned by run
	addr string
}

func newFetcher(rm *replicaManager, leader int32) *fetcher {
	return &fetcher{rm: rm, leader: leader, parts: map[tpKey]*fetchState{}, wake: make(chan struct{}, 1)}
}

func (f *fetcher) add(r *replica, epoch int32, gen int64) {
	f.mu.Lock()
	st := f.parts[r.key]
	if st == nil || st.r != r || st.epoch != epoch || st.gen != gen {
		f.parts[r.key] = &fetchState{r: r, epoch: epoch, gen: gen}
	}
	f.mu.Unlock()
	f.kick()
}

func (f *fetcher) remove(key tpKey) {
	f.mu.Lock()
	delete(f.parts, key)
	f.mu.Unlock()
}

func (f *fetcher) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run fetches until the broker shuts down.
func (f *fetcher) run() {
	b := f.rm.b
	defer func() {
		if f.cl != nil {
			f.cl.Close()
			f.cl = nil
		}
	}()
	maxWait := time.Duration(b.rawInt("replica.fetch.wait.max.ms", 500)) * time.Millisecond
	backoff := time.Duration(b.rawInt("replica.fetch.backoff.ms", 1000)) * time.Millisecond
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for b.ctx.Err() == nil {
		parts := f.ready()
		if len(parts) == 0 {
			idle.Reset(100 * time.Millisecond)
			select {
			case <-f.wake:
			case <-idle.C:
			case <-b.ctx.Done():
				return
			}
			continue
		}
		if err := f.round(parts, maxWait); err != nil {
			if b.ctx.Err() != nil {
				return
			}
			b.log.Debug("replica fetch failed", "leader", f.leader, "err", err)
			if f.cl != nil {
				f.cl.Close()
				f.cl = nil
			}
			idle.Reset(min(backoff, 200*time.Millisecond))
			select {
			case <-idle.C:
			case <-b.ctx.Done():
				return
			}
		}
	}
}

// ready returns the partitions to fetch now.
func (f *fetcher) ready() []*fetchState {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*fetchState, 0, len(f.parts))
	for _, st := range f.parts {
		if now.After(st.delayUntil) {
			c := *st
			out = append(out, &c)
		}
	}
	return out
}

// delay holds a partition back after an error its leader answered.
func (f *fetcher) delay(key tpKey, d time.Duration) {
	f.mu.Lock()
	if st := f.parts[key]; st != nil {
		st.delayUntil = time.Now().Add(d)
	}
	f.mu.Unlock()
}

// client returns the connection to the leader's inter-broker endpoint.
func (f *fetcher) client() (*kgo.Broker, error) {
	b := f.rm.b
	br := b.catalog.currentImage().Broker(f.leader)
	if br == nil {
		return nil, fmt.Errorf("leader %d is not registered", f.leader)
	}
	ep, ok := endpointOf(br, b.cfg.InterBrokerListenerName)
	if !ok {
		ep, ok = endpointOf(br, "")
	}
	if !ok {
		return nil, fmt.Errorf("leader %d has no endpoint", f.leader)
	}
	addr := net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port)))
	if f.cl != nil && f.addr != addr {
		f.cl.Close()
		f.cl = nil
	}
	if f.cl == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
			kgo.ClientID("gregor-replica-fetcher-"+strconv.Itoa(int(b.cfg.NodeID))),
			kgo.DialTimeout(2*time.Second), kgo.RequestRetries(0),
			kgo.RequestTimeoutOverhead(3*time.Second), kgo.ConnIdleTimeout(time.Minute))
		if err != nil {
			return nil, err
		}
		f.cl, f.addr = cl, addr
	}
	return f.cl.SeedBrokers()[0], nil
}

// round sends one Fetch for parts and carries out the answer.
func (f *fetcher) round(parts []*fetchState, maxWait time.Duration) error {
	b := f.rm.b
	br, err := f.client()
	if err != nil {
		return err
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = b.cfg.NodeID
	req.ReplicaState.ID, req.ReplicaState.Epoch = b.cfg.NodeID, b.epoch.Load()
	req.MaxWaitMillis = int32(maxWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = int32(b.rawInt("replica.fetch.response.max.bytes", 10<<20))
	req.SessionEpoch = -1
	partMax := int32(b.rawInt("replica.fetch.max.bytes", 1<<20))
	byTopic := map[string]int{}
	type sent struct {
		st     *fetchState
		offset int64
	}
	sentParts := map[tpKey]sent{}
	throttled := map[tpKey]bool{}
	for _, st := range parts {
		r := st.r
		if th, over := b.followerThrottled(r.key.topic, r.key.p); over {
			continue // over the follower throttle: not this round
		} else if th {
			throttled[r.key] = true
		}
		ti, ok := byTopic[r.key.topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = r.key.topic, r.topicID
			ti = len(req.Topics)
			byTopic[r.key.topic] = ti
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = r.key.p
		p.CurrentLeaderEpoch = st.epoch
		p.FetchOffset = r.log.LogEndOffset()
		p.LastFetchedEpoch = r.log.LatestEpoch()
		p.LogStartOffset = r.log.LogStartOffset()
		p.PartitionMaxBytes = partMax
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, p)
		sentParts[r.key] = sent{st, p.FetchOffset}
	}
	if len(req.Topics) == 0 {
		// Everything is throttled right now.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-b.ctx.Done():
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, maxWait+10*time.Second)
	defer cancel()
	kresp, err := br.Request(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	var logs []*storage.Log
	var lasts []int64
	for _, rt := range resp.Topics {
		name := rt.Topic
		if name == "" {
			for _, st := range parts {
				if st.r.topicID == rt.TopicID {
					name = st.r.key.topic
					break
				}
			}
		}
		for _, rp := range rt.Partitions {
			key := tpKey{name, rp.Partition}
			s, ok := sentParts[key]
			if !ok {
				continue
			}
			l := s.st.r.log
			switch rp.ErrorCode {
			case 0:
			case kerr.OffsetOutOfRange.Code:
				f.outOfRange(key, s.st, s.offset, rp)
				continue
			case kerr.NotLeaderForPartition.Code, kerr.FencedLeaderEpoch.Code, kerr.UnknownLeaderEpoch.Code,
				kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicID.Code:
				// Metadata is moving: wait for the next image.
				f.delay(key, 100*time.Millisecond)
				continue
			default:
				b.log.Warn("replica fetch: the leader answered an error", "topic", key.topic, "partition", key.p,
					"leader", f.leader, "err", kerr.ErrorForCode(rp.ErrorCode))
				f.delay(key, time.Second)
				continue
			}
			if rp.DivergingEpoch.Epoch >= 0 && rp.DivergingEpoch.EndOffset >= 0 {
				f.truncateDiverged(key, s.st, rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset)
				continue
			}
			if len(rp.RecordBatches) > 0 {
				if l.LogEndOffset() != s.offset {
					continue // the log changed under this round (truncated, restarted)
				}
				leo, err := l.AppendReplica(rp.RecordBatches, s.st.gen)
				if errors.Is(err, storage.ErrNotLeader) {
					continue // its role changed since this fetch was sent
				}
				if err != nil {
					b.log.Error("appending replicated records failed", "topic", key.topic, "partition", key.p, "err", err)
					f.delay(key, time.Second)
					continue
				}
				if leo > s.offset {
					logs = append(logs, l)
					lasts = append(lasts, leo-1)
				}
				if throttled[key] {
					b.replicas.followerQuota.record(int64(len(rp.RecordBatches)), time.Now())
				}
			}
			if l.RoleGen() != s.st.gen {
				continue
			}
			l.SetHighWatermark(rp.HighWatermark)
			if rp.LogStartOffset > l.LogStartOffset() {
				if _, err := l.AdvanceLogStart(rp.LogStartOffset, s.st.gen); err != nil && !errors.Is(err, storage.ErrNotLeader) {
					b.log.Warn("cannot follow the leader's log start offset", "topic", key.topic, "partition", key.p, "err", err)
				}
			}
		}
	}
	if len(logs) > 0 && b.cfg.Durability == config.DurabilityFsync {
		// The next fetch tells the leader these offsets: make them true
		// for a crash too. All partitions share the group commit.
		wctx, wcancel := context.WithTimeout(b.ctx, 30*time.Second)
		err := storage.WaitDurableAll(wctx, logs, lasts)
		wcancel()
		if err != nil && !errors.Is(err, storage.ErrClosed) {
			return fmt.Errorf("fsync of replicated records: %w", err)
		}
	}
	return nil
}

// truncateDiverged truncates a log the leader says diverged from its own
// after epoch ended at endOffset (Kafka's rules).
func (f *fetcher) truncateDiverged(key tpKey, st *fetchState, epoch int32, endOffset int64) {
	l := st.r.log
	leo := l.LogEndOffset()
	fEnd, fEpoch := l.EndOffsetForEpoch(epoch)
	var to int64
	switch {
	case fEpoch < 0:
		to = min(endOffset, leo)
	case fEpoch != epoch:
		to = min(fEnd, leo)
	default:
		to = min(endOffset, fEnd)
	}
	f.rm.b.log.Info("replica diverged from its leader: truncating", "topic", key.topic, "partition", key.p,
		"leader", f.leader, "leader_epoch", epoch, "leader_end", endOffset, "log_end", leo, "truncate_to", to)
	before := l.LatestEpoch()
	if err := l.TruncateTo(to, st.gen); err != nil && !errors.Is(err, storage.ErrNotLeader) {
		f.rm.b.log.Error("truncation failed", "topic", key.topic, "partition", key.p, "err", err)
		f.delay(key, time.Second)
		return
	}
	if l.LogEndOffset() == leo && l.LatestEpoch() == before {
		// Nothing changed, so the next fetch would diverge the same way:
		// do not spin on it.
		f.delay(key, 500*time.Millisecond)
	}
}

// outOfRange handles OFFSET_OUT_OF_RANGE: a log that ends before the
// leader's log start starts over there; one that ends beyond the leader's
// end (possible only after an unclean election) is cut back to the
// leader's high watermark.
func (f *fetcher) outOfRange(key tpKey, st *fetchState, offset int64, rp kmsg.FetchResponseTopicPartition) {
	b := f.rm.b
	l := st.r.log
	var err error
	switch {
	case rp.LogStartOffset >= 0 && offset < rp.LogStartOffset:
		b.log.Info("replica behind the leader's log start: starting over there", "topic", key.topic, "partition", key.p,
			"log_end", offset, "leader_log_start", rp.LogStartOffset)
		err = l.TruncateFullyAndStartAt(rp.LogStartOffset, st.gen)
	case rp.HighWatermark >= 0 && rp.HighWatermark < offset:
		b.log.Warn("replica ahead of its leader: truncating to the leader's high watermark", "topic", key.topic,
			"partition", key.p, "log_end", offset, "leader_hw", rp.HighWatermark)
		err = l.TruncateTo(rp.HighWatermark, st.gen)
	default:
		f.delay(key, time.Second)
	}
	if err != nil && !errors.Is(err, storage.ErrNotLeader) {
		b.log.Error("truncation failed", "topic", key.topic, "partition", key.p, "err", err)
		f.delay(key, time.Second)
	}
}
