package broker

// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// Consumers use it after a leader change to detect log truncation (KIP-320).
// The answer comes from the partition's leader epoch cache
// (leader-epoch-checkpoint, storage.Log.EndOffsetForEpoch): the latest
// epoch ends at the log end offset, an older one where the next epoch
// starts (with the largest epoch at or below the one asked), an epoch
// newer than all is unknown (-1, -1). Only the leader answers
// (NOT_LEADER_OR_FOLLOWER elsewhere), and current_leader_epoch is checked
// against the partition's leader epoch in the metadata image: newer is
// UNKNOWN_LEADER_EPOCH, older FENCED_LEADER_EPOCH, as Kafka answers.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

func init() {
	register(23, 0, 4, handleOffsetForLeaderEpoch)
}

func handleOffsetForLeaderEpoch(c *conn, v int16, req *kmsg.OffsetForLeaderEpochRequest) *kmsg.OffsetForLeaderEpochResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			t := b.catalog.get(rt.Topic)
			var l *storage.Log
			if t != nil {
				l = b.store.Get(rt.Topic, rp.Partition)
			}
			switch {
			case t == nil || t.partition(rp.Partition) == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !b.leads(t, rp.Partition) || l == nil:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			case v >= 2 && epochError(t, rp.Partition, rp.CurrentLeaderEpoch) != 0:
				sp.ErrorCode = epochError(t, rp.Partition, rp.CurrentLeaderEpoch)
			default:
				sp.EndOffset, sp.LeaderEpoch = l.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
