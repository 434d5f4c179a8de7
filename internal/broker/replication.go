package broker

// Replication, the leader's side and the bookkeeping of both sides.
//
// Every partition hosted here has a replica (replicaManager.parts), made
// to follow the published image by sync (run by catalog.publish before the
// image becomes visible):
//
//   - Leader (the image names this broker). The log starts the leader
//     epoch at its log end (storage.Log.BecomeLeader) and stamps appends
//     with it. With more than one replica the high watermark is set here:
//     the minimum, over the ISR, of each replica's log end as reported by
//     its fetch offset (followers fetch only once what they appended is
//     fsynced, with gregor.durability=fsync, so the offsets are durable
//     ones), including the leader's own durable end
//     (storage.Log.LocalEnd). It does not advance while the ISR is
//     smaller than min.insync.replicas (KIP-966). Followers that caught up
//     join the ISR, and followers that did not catch up within
//     replica.lag.time.max.ms leave it, both through AlterPartition at the
//     active controller (the change is visible once published).
//   - Follower. The log stops leading (waits for the high watermark end
//     with NOT_LEADER_OR_FOLLOWER) and a fetcher for its leader fetches it
//     (fetcher.go).
//
// Locks: replicaManager.mu guards the map and the fetcher set; replica.mu
// one replica's state. replicaManager.mu → replica.mu → storage locks;
// nothing holds a storage lock while taking replica.mu (the log's
// OnLocalEnd hook runs without log locks).

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

type tpKey struct {
	topic string
	p     int32
}

// replica is this broker's replica of one partition.
type replica struct {
	rm      *replicaManager
	key     tpKey
	topicID metadata.UUID
	log     *storage.Log

	mu              sync.Mutex
	leader          bool
	leaderEpoch     int32
	partitionEpoch  int32
	replicas        []int32
	isr             []int32
	minISR          int
	gen             int64 // the log's role generation (leading or following)
	followingLeader int32 // the leader followed (as follower)
	epochStart      int64 // log end when this leader epoch began
	followers       map[int32]*followerState
	alterPending    bool // an AlterPartition is in flight or waits to be published
	alterEpoch      int32
	fetchingFrom    int32 // leader this replica's fetcher fetches from, -1 none
}

// followerState is what the leader knows of one follower.
type followerState struct {
	leo                int64 // its last fetch offset (-1: none this epoch)
	lastCaughtUp       time.Time
	lastFetch          time.Time
	lastFetchLeaderLEO int64
}

// replicaManager holds the replicas of this broker.
type replicaManager struct {
	b        *Broker
	mu       sync.Mutex // sync and the fetcher set
	parts    map[tpKey]*replica
	view     atomic.Pointer[map[tpKey]*replica] // a copy of parts for get
	fetchers map[int32]*fetcher

	lagMax time.Duration // replica.lag.time.max.ms

	// Replication throttles (throttle.go): bytes sent to followers of
	// throttled replicas, and fetched as a follower of them.
	leaderQuota, followerQuota quota
}

func newReplicaManager(b *Broker) *replicaManager {
	return &replicaManager{b: b, parts: map[tpKey]*replica{}, fetchers: map[int32]*fetcher{},
		lagMax: time.Duration(b.rawInt("replica.lag.time.max.ms", 30000)) * time.Millisecond}
}

// rawInt is an integer broker property from server.properties, or def.
func (b *Broker) rawInt(name string, def int64) int64 {
	if v, ok := b.cfg.Raw[name]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

// get returns the replica of a partition, or nil. It takes no lock: the
// produce and fetch paths must not wait for a sync doing disk work.
func (rm *replicaManager) get(topic string, p int32) *replica {
	if m := rm.view.Load(); m != nil {
		return (*m)[tpKey{topic, p}]
	}
	return nil
}

// publishView makes the current replica set visible to get. Caller holds
// rm.mu.
func (rm *replicaManager) publishView() {
	m := make(map[tpKey]*replica, len(rm.parts))
	for k, r := range rm.parts {
		m[k] = r
	}
	rm.view.Store(&m)
}

// sync makes the replicas follow im: leaders lead, followers fetch, and
// replicas of partitions no longer hosted here stop (their directories are
// removed when a reassignment moved them away).
func (rm *replicaManager) sync(im *metadata.Image) {
	b := rm.b
	me := b.cfg.NodeID
	rm.mu.Lock()
	defer rm.mu.Unlock()
	defer rm.publishView()
	seen := map[tpKey]bool{}
	for _, ti := range im.Topics() {
		var minISR int
		minISRSet := false
		for p, pi := range ti.Partitions {
			if !slices.Contains(pi.Replicas, me) {
				continue
			}
			key := tpKey{ti.Name, int32(p)}
			l := b.store.Get(ti.Name, int32(p))
			if l == nil {
				continue
			}
			if !minISRSet {
				minISR = b.topicMinISR(im, ti.Name)
				minISRSet = true
			}
			seen[key] = true
			r := rm.parts[key]
			if r == nil || r.log != l {
				if r != nil {
					rm.stopFetching(r)
				}
				r = &replica{rm: rm, key: key, topicID: ti.ID, log: l, leaderEpoch: -1, fetchingFrom: -1}
				rm.parts[key] = r
				l.OnLocalEnd(r.maybeAdvanceHW)
			}
			rm.apply(r, pi, minISR)
		}
	}
	for key, r := range rm.parts {
		if seen[key] {
			continue
		}
		rm.stopFetching(r)
		r.log.OnLocalEnd(nil)
		delete(rm.parts, key)
		if t := im.Topic(key.topic); t != nil && int(key.p) < len(t.Partitions) && !slices.Contains(t.Partitions[key.p].Replicas, me) {
			// Moved away by a reassignment: this copy is no longer wanted.
			b.log.Info("removing a replica reassigned away", "topic", key.topic, "partition", key.p)
			if err := b.store.Delete(key.topic, key.p); err != nil {
				b.log.Warn("removing a reassigned-away replica failed", "topic", key.topic, "partition", key.p, "err", err)
			}
		}
	}
}

// prepare puts the logs of replicated partitions in replicated mode
// before anything is served, so their high watermark starts from the
// checkpointed one.
func (rm *replicaManager) prepare(im *metadata.Image) {
	for _, ti := range im.Topics() {
		for p, pi := range ti.Partitions {
			if len(pi.Replicas) <= 1 {
				continue
			}
			if l := rm.b.store.Get(ti.Name, int32(p)); l != nil {
				l.SetReplicated(true)
				l.BecomeFollower()
			}
		}
	}
}

// apply moves one replica to the state pi describes. Caller holds rm.mu.
func (rm *replicaManager) apply(r *replica, pi *metadata.PartitionImage, minISR int) {
	me := rm.b.cfg.NodeID
	replicated := len(pi.Replicas) > 1
	r.mu.Lock()
	wasLeader, oldEpoch := r.leader, r.leaderEpoch
	if pi.PartitionEpoch != r.partitionEpoch {
		r.alterPending = false
	}
	r.replicas, r.isr, r.partitionEpoch, r.minISR = pi.Replicas, pi.ISR, pi.PartitionEpoch, minISR
	lead := pi.Leader == me
	newEpoch := lead && (!wasLeader || oldEpoch != pi.LeaderEpoch)
	r.leader, r.leaderEpoch = lead, pi.LeaderEpoch
	r.mu.Unlock()

	switch {
	case newEpoch:
		rm.stopFetching(r)
		r.log.SetReplicated(replicated)
		gen := r.log.BecomeLeader(pi.LeaderEpoch)
		now := time.Now()
		r.mu.Lock()
		r.gen = gen
		r.epochStart = r.log.LogEndOffset()
		r.followers = map[int32]*followerState{}
		for _, id := range pi.Replicas {
			if id != me {
				// Kafka gives ISR members a fresh catch-up time at election,
				// so they are not dropped before they could fetch.
				fs := &followerState{leo: -1, lastFetchLeaderLEO: -1}
				if slices.Contains(pi.ISR, id) {
					fs.lastCaughtUp = now
				}
				r.followers[id] = fs
			}
		}
		r.alterPending = false
		r.mu.Unlock()
		rm.b.log.Info("leading partition", "topic", r.key.topic, "partition", r.key.p, "leader_epoch", pi.LeaderEpoch,
			"log_end", r.epochStart, "isr", pi.ISR)
	case lead:
		r.log.SetReplicated(replicated)
		r.mu.Lock()
		for _, id := range pi.Replicas {
			if id != me && r.followers[id] == nil {
				r.followers[id] = &followerState{leo: -1, lastFetchLeaderLEO: -1}
			}
		}
		r.mu.Unlock()
	default:
		r.mu.Lock()
		changed := wasLeader || oldEpoch != pi.LeaderEpoch || r.gen == 0 || r.followingLeader != pi.Leader
		r.followingLeader = pi.Leader
		r.mu.Unlock()
		if changed || !r.log.Replicated() {
			// A new leader or epoch: a new role generation, so that a
			// fetch still in flight from the previous one cannot append.
			rm.stopFetching(r)
			r.log.SetReplicated(true)
			gen := r.log.BecomeFollower()
			r.mu.Lock()
			r.gen = gen
			r.mu.Unlock()
		}
		if pi.Leader >= 0 {
			rm.startFetching(r, pi.Leader, pi.LeaderEpoch)
		} else {
			rm.stopFetching(r)
		}
		return
	}
	r.maybeAdvanceHW()
}

// topicMinISR is the topic's min.insync.replicas.
func (b *Broker) topicMinISR(im *metadata.Image, topic string) int {
	v := b.resolveTopicConfig(topicConfigByName["min.insync.replicas"], im.Configs(metadata.ResourceTopic, topic)).value
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// startFetching hands r to the fetcher of leader (made on first use).
// Caller holds rm.mu.
func (rm *replicaManager) startFetching(r *replica, leader, epoch int32) {
	if r.fetchingFrom != leader {
		rm.stopFetching(r)
	}
	f := rm.fetchers[leader]
	if f == nil {
		f = newFetcher(rm, leader)
		rm.fetchers[leader] = f
		rm.b.guardGo("replica fetcher", f.run)
	}
	r.fetchingFrom = leader
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	f.add(r, epoch, gen)
}

// stopFetching takes r from its fetcher. Caller holds rm.mu.
func (rm *replicaManager) stopFetching(r *replica) {
	if r.fetchingFrom < 0 {
		return
	}
	if f := rm.fetchers[r.fetchingFrom]; f != nil {
		f.remove(r.key)
	}
	r.fetchingFrom = -1
}

// isReplicated reports whether the partition has other replicas (its high
// watermark is then the ISR's).
func (r *replica) isReplicated() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.replicas) > 1
}

func (r *replica) isLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// underMinISR reports whether the ISR is smaller than min.insync.replicas.
func (r *replica) underMinISR() (bool, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.isr) < r.minISR, len(r.isr), r.minISR
}

// maybeAdvanceHW recomputes the leader's high watermark.
func (r *replica) maybeAdvanceHW() {
	r.mu.Lock()
	if !r.leader || len(r.replicas) <= 1 {
		r.mu.Unlock()
		return
	}
	if len(r.isr) < r.minISR {
		r.mu.Unlock()
		return
	}
	me := r.rm.b.cfg.NodeID
	hw := r.log.LocalEnd()
	for _, id := range r.isr {
		if id == me {
			continue
		}
		f := r.followers[id]
		if f == nil || f.leo < 0 {
			r.mu.Unlock()
			return
		}
		hw = min(hw, f.leo)
	}
	r.mu.Unlock()
	r.log.SetHighWatermark(hw)
}

// followerFetched records a follower's fetch at offset (its log end, and
// with durable fsync its durable end), advancing the high watermark and
// asking for the follower's return to the ISR once it caught up.
func (r *replica) followerFetched(id int32, offset int64) {
	now := time.Now()
	leo := r.log.LogEndOffset()
	r.mu.Lock()
	f := r.followers[id]
	if !r.leader || f == nil {
		r.mu.Unlock()
		return
	}
	switch {
	case offset >= leo:
		f.lastCaughtUp = now
	case offset >= f.lastFetchLeaderLEO && f.lastFetchLeaderLEO >= 0:
		if f.lastFetch.After(f.lastCaughtUp) {
			f.lastCaughtUp = f.lastFetch
		}
	}
	f.leo, f.lastFetch, f.lastFetchLeaderLEO = offset, now, leo
	var expand []int32
	if !slices.Contains(r.isr, id) && !r.alterPending && offset >= r.log.HighWatermark() && offset >= r.epochStart {
		expand = append(slices.Clone(r.isr), id)
		r.alterPending = true
	}
	r.mu.Unlock()
	r.maybeAdvanceHW()
	if expand != nil {
		r.rm.b.log.Info("follower caught up: adding it to the ISR", "topic", r.key.topic, "partition", r.key.p,
			"follower", id, "isr", expand)
		r.alterISR(expand)
	}
}

// checkLag drops ISR followers that have not caught up within
// replica.lag.time.max.ms.
func (r *replica) checkLag(now time.Time, lagMax time.Duration) {
	r.mu.Lock()
	if !r.leader || r.alterPending || len(r.replicas) <= 1 {
		r.mu.Unlock()
		return
	}
	me := r.rm.b.cfg.NodeID
	var out []int32
	for _, id := range r.isr {
		if id == me {
			continue
		}
		if f := r.followers[id]; f == nil || now.Sub(f.lastCaughtUp) > lagMax {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		r.mu.Unlock()
		return
	}
	isr := slices.DeleteFunc(slices.Clone(r.isr), func(id int32) bool { return slices.Contains(out, id) })
	r.alterPending = true
	r.mu.Unlock()
	r.rm.b.log.Warn("followers fell behind: removing them from the ISR", "topic", r.key.topic, "partition", r.key.p,
		"out", out, "isr", isr, "lag_max", lagMax)
	r.alterISR(isr)
}

// alterISR asks the active controller for an ISR change in the
// background. The replica sees the outcome when it is published; on
// failure it may ask again after a moment.
func (r *replica) alterISR(isr []int32) {
	r.mu.Lock()
	leaderEpoch, partEpoch := r.leaderEpoch, r.partitionEpoch
	r.mu.Unlock()
	b := r.rm.b
	b.guardGo("alter partition", func() {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		err := b.alterPartition(ctx, r.topicID, r.key.p, leaderEpoch, partEpoch, isr)
		if err == nil {
			// Published soon; apply clears alterPending then. Meanwhile
			// wait, so the same change is not asked twice.
			return
		}
		b.log.Info("AlterPartition refused or failed", "topic", r.key.topic, "partition", r.key.p, "isr", isr, "err", err)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-b.ctx.Done():
		}
		r.mu.Lock()
		if r.partitionEpoch == partEpoch {
			r.alterPending = false
		}
		r.mu.Unlock()
	})
}

// alterPartition sends AlterPartition to the active controller.
func (b *Broker) alterPartition(ctx context.Context, topicID metadata.UUID, p, leaderEpoch, partEpoch int32, isr []int32) error {
	epoch := b.epoch.Load()
	if b.qnode.IsLeader() {
		_, err := b.ctl.AlterPartition(ctx, b.cfg.NodeID, epoch, topicID, p, leaderEpoch, partEpoch, isr)
		return err
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.BrokerID, req.BrokerEpoch = b.cfg.NodeID, epoch
	t := kmsg.NewAlterPartitionRequestTopic()
	t.TopicID = topicID
	pp := kmsg.NewAlterPartitionRequestTopicPartition()
	pp.Partition, pp.LeaderEpoch, pp.PartitionEpoch = p, leaderEpoch, partEpoch
	pp.NewISR = isr
	for _, id := range isr {
		s := kmsg.NewAlterPartitionRequestTopicPartitionNewEpochISR()
		s.BrokerID, s.BrokerEpoch = id, -1
		pp.NewEpochISR = append(pp.NewEpochISR, s)
	}
	t.Partitions = append(t.Partitions, pp)
	req.Topics = append(req.Topics, t)
	resp, err := b.forward(ctx, req)
	if err != nil {
		return err
	}
	ar := resp.(*kmsg.AlterPartitionResponse)
	if ar.ErrorCode != 0 {
		return codeError(ar.ErrorCode)
	}
	for _, t := range ar.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return codeError(p.ErrorCode)
			}
		}
	}
	return nil
}

// runISRChecks drops lagging followers from the ISRs this broker leads,
// every half replica.lag.time.max.ms (as Kafka's isr-expiration task).
func (rm *replicaManager) runISRChecks() {
	every := max(rm.lagMax/2, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-rm.b.ctx.Done():
			return
		}
		var rs []*replica
		if m := rm.view.Load(); m != nil {
			rs = make([]*replica, 0, len(*m))
			for _, r := range *m {
				rs = append(rs, r)
			}
		}
		now := time.Now()
		for _, r := range rs {
			r.checkLag(now, rm.lagMax)
		}
	}
}

// waitAcked waits for an acks=all produce: until the high watermark
// passes offset on a replicated partition, or the fsync otherwise.
// It maps the outcome to a Kafka error code (0: acknowledged).
func waitAcked(ctx context.Context, l *storage.Log, res storage.AppendResult, durable bool) int16 {
	var err error
	switch {
	case res.Replicated:
		err = l.WaitHighWatermark(ctx, res.LastOffset, res.RoleGen)
	case durable:
		err = l.WaitDurable(ctx, res.LastOffset)
	default:
		return 0
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, storage.ErrNotLeader), errors.Is(err, storage.ErrClosed):
		return kerr.NotLeaderForPartition.Code
	default:
		return kerr.KafkaStorageError.Code
	}
}
