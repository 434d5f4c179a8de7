package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
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
func (b *Broker) offsetsTopic() (*topic, error) {
	if t := b.catalog.get(group.TopicName); t != nil {
		return t, nil
	}
	t, err := b.catalog.create(group.TopicName, b.cfg.OffsetsTopicPartitions, map[string]string{
		"cleanup.policy":   "compact",
		"segment.bytes":    "104857600",
		"compression.type": "producer",
	}, true)
	if err == errTopicExists {
		return t, nil
	}
	if err != nil {
		b.log.Error("creating __consumer_offsets failed", "err", err)
		return nil, err
	}
	b.log.Info("created internal topic", "topic", group.TopicName, "partitions", b.cfg.OffsetsTopicPartitions)
	return t, nil
}

// offsetsPartition is the coordinator's view of one __consumer_offsets
// partition.
func (b *Broker) offsetsPartition(p int32) (group.Log, error) {
	if _, err := b.offsetsTopic(); err != nil {
		return nil, err
	}
	l := b.store.Get(group.TopicName, p)
	if l == nil {
		return nil, storage.ErrClosed
	}
	return l, nil
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
