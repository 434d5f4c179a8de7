package broker

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedPartitions[T any](m map[int32]T) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// offsetsTopic returns the __consumer_offsets topic, creating it on first
// use with Kafka's settings for it (compacted, 100 MiB segments).
func (b *Broker) offsetsTopic(ctx context.Context) (*topic, error) {
	if t := b.catalog.get(group.TopicName); t != nil {
		return t, nil
	}
	// offsets.topic.replication.factor (3), capped by the cluster's size
	// (its voters: every node is a broker too) so that a single node
	// works with the defaults. Until that many brokers are registered the
	// creation fails and coordinators are not available, as in Kafka.
	rf := min(b.rawInt("offsets.topic.replication.factor", 3), int64(len(b.voterIDs)))
	t, err := b.createTopicInternal(ctx, controller.TopicSpec{Name: group.TopicName, Partitions: b.cfg.OffsetsTopicPartitions,
		ReplicationFactor: int16(max(rf, 1)), Configs: map[string]string{
			"cleanup.policy":   "compact",
			"segment.bytes":    "104857600",
			"compression.type": "producer",
		}})
	if err != nil {
		b.log.Warn("creating __consumer_offsets failed", "err", err)
		return nil, err
	}
	return t, nil
}

// createTopicInternal creates a topic on the broker's own behalf (auto
// creation, internal topics) at the active controller, and returns it once
// published here. A topic that exists already is returned as it is.
func (b *Broker) createTopicInternal(ctx context.Context, spec controller.TopicSpec) (*topic, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var code int16
	var msg string
	if b.qnode.IsLeader() {
		res, err := b.ctl.CreateTopics(ctx, []controller.TopicSpec{spec}, false)
		switch {
		case err != nil:
			code, msg = ctlErr(err)
		case res[0].Err != nil:
			code, msg = res[0].Err.Code, res[0].Err.Message
		default:
			b.log.Info("created topic", "topic", spec.Name, "partitions", res[0].Partitions)
			b.awaitBrokers(ctx)
		}
	} else {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = spec.Name, spec.Partitions, spec.ReplicationFactor
		for _, k := range sortedKeys(spec.Configs) {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			v := spec.Configs[k]
			c.Name, c.Value = k, &v
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 15000
		resp, err := b.forward(ctx, req)
		switch {
		case err != nil:
			code, msg = ctlErr(err)
		case len(resp.(*kmsg.CreateTopicsResponse).Topics) == 1:
			st := resp.(*kmsg.CreateTopicsResponse).Topics[0]
			code = st.ErrorCode
			if st.ErrorMessage != nil {
				msg = *st.ErrorMessage
			}
		}
	}
	if code != 0 && code != kerr.TopicAlreadyExists.Code {
		switch code {
		case kerr.InvalidTopicException.Code:
			return nil, &errCollision{spec.Name, msg}
		case kerr.PolicyViolation.Code:
			return nil, &errPartitionLimit{msg}
		}
		return nil, fmt.Errorf("creating topic %s: %s (%s)", spec.Name, kerr.ErrorForCode(code), msg)
	}
	b.waitTopics(ctx, []string{spec.Name}, true)
	if t := b.catalog.get(spec.Name); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("topic %s not published here yet", spec.Name)
}

// offsetsPartition is the coordinator's view of one __consumer_offsets
// partition.
func (b *Broker) offsetsPartition(p int32) (group.Log, error) {
	if _, err := b.offsetsTopic(b.ctx); err != nil {
		return nil, err
	}
	l := b.store.Get(group.TopicName, p)
	if l == nil {
		return nil, storage.ErrClosed
	}
	return b.groupLog(l), nil
}

// groupLog is a __consumer_offsets log as the coordinator uses it: writes
// only while this broker leads it, acknowledged once committed (the high
// watermark passed them on a replicated partition, else the fsync), and
// loads that read everything this replica has (what a previous leader
// acknowledged may lie above this replica's high watermark).
type groupLog struct {
	*storage.Log
	b   *Broker
	gen int64
}

func (b *Broker) groupLog(l *storage.Log) *groupLog {
	return &groupLog{Log: l, b: b, gen: l.RoleGen()}
}

func (g *groupLog) Append(records []byte) (storage.AppendResult, error) {
	if r := g.b.replicas.get(g.Topic(), g.Partition()); r != nil && !r.isLeader() {
		return storage.AppendResult{}, storage.ErrNotLeader
	}
	if _, _, ok := transactional(records); ok {
		// Transactional offset commits: a producer's id and epoch, no
		// sequence.
		return g.Log.AppendCoordinator(records)
	}
	return g.Log.Append(records)
}

func (g *groupLog) WaitDurable(ctx context.Context, offset int64) error {
	if g.Replicated() {
		return g.WaitHighWatermark(ctx, offset, g.gen)
	}
	return g.Log.WaitDurable(ctx, offset)
}

func (g *groupLog) Read(offset int64, maxBytes int) (storage.ReadResult, error) {
	return g.ReadLocal(offset, maxBytes)
}

// syncCoordinator makes the group coordinator own exactly the
// __consumer_offsets partitions this broker leads in im: groups load where
// leadership arrived and unload where it left. Called by catalog.publish
// before the image is visible, so a client told to come here finds its
// group loaded.
func (b *Broker) syncCoordinator(im *metadata.Image) {
	want := map[int32]bool{}
	if t := im.Topic(group.TopicName); t != nil {
		for p, pi := range t.Partitions {
			if pi.Leader == b.cfg.NodeID {
				want[int32(p)] = true
			}
		}
	}
	for _, p := range b.groups.Owned() {
		if !want[p] {
			b.groups.UnloadPartition(p)
		}
	}
	for _, p := range sortedPartitions(want) {
		var l group.Log
		if sl := b.store.Get(group.TopicName, p); sl != nil {
			l = b.groupLog(sl)
		}
		if err := b.groups.LoadPartition(p, l); err != nil {
			b.log.Error("loading groups of a __consumer_offsets partition failed", "partition", p, "err", err)
		}
	}
}

// subscribedTopics decodes a consumer protocol subscription, for
// OffsetDelete's check that a group no longer consumes a topic.
func subscribedTopics(protocolType string, metadata []byte) []string {
	if protocolType != "consumer" || len(metadata) == 0 {
		return nil
	}
	var s kmsg.ConsumerMemberMetadata
	if err := s.ReadFrom(metadata); err != nil {
		return nil
	}
	return s.Topics
}
