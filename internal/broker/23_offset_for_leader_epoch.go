package broker

// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// Consumers use it after a leader change to detect log truncation (KIP-320).
// A single node has only ever had leader epoch 0, so epoch 0 ends at the log
// end offset (storage.Log.EndOffsetForEpoch). A current_leader_epoch above
// ours means the client has seen a newer leader than this one:
// UNKNOWN_LEADER_EPOCH, as Kafka answers.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
			l := b.store.Get(rt.Topic, rp.Partition)
			switch {
			case l == nil || b.catalog.get(rt.Topic) == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case v >= 2 && rp.CurrentLeaderEpoch > 0:
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			default:
				sp.EndOffset, sp.LeaderEpoch = l.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
