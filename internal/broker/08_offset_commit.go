package broker

// OffsetCommit (key 8), versions 0-9.
//
// Members commit with their member id and generation; a group with no
// members (assign() consumers, tools) commits with generation -1. Commits to
// unknown topics get UNKNOWN_TOPIC_OR_PARTITION, metadata longer than
// offset.metadata.max.bytes OFFSET_METADATA_TOO_LARGE. The answer is sent
// once the records in __consumer_offsets are durable (fsynced with
// gregor.durability=fsync). Retention fields of v2-4 are ignored, as in
// Kafka since 2.1: offsets.retention.minutes applies.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	registerRaw(8, 0, 9, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.OffsetCommitRequest)
		if _, err := c.b.offsetsTopic(c.ctx); err != nil {
			resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewOffsetCommitResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					sp := kmsg.NewOffsetCommitResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, 15
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			inf.reply(resp)
			return
		}
		c.b.groups.OffsetCommit(req, func(resp *kmsg.OffsetCommitResponse) { inf.reply(resp) })
	})
}
