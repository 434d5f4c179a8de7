package broker

// WriteTxnMarkers (key 27), versions 1-2.
//
// Transaction coordinators send it to partition leaders; admin clients
// send it to abort a hanging transaction (kafka-transactions.sh abort).
// Each partition led here gets the COMMIT/ABORT control batch, appended
// and committed like acks=all; __consumer_offsets markers then complete
// the producer's transactional offset commits. Errors are per partition
// (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED, ...).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registerRaw(27, 1, 2, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.WriteTxnMarkersRequest)
		c.goAsync(inf, func() kmsg.Response {
			resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
			ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
			defer cancel()
			for _, m := range req.Markers {
				rm := kmsg.NewWriteTxnMarkersResponseMarker()
				rm.ProducerID = m.ProducerID
				for _, t := range m.Topics {
					rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
					rt.Topic = t.Topic
					for _, p := range t.Partitions {
						rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
						rp.Partition = p
						rp.ErrorCode = c.b.writeMarker(ctx, t.Topic, p, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch)
						rt.Partitions = append(rt.Partitions, rp)
					}
					rm.Topics = append(rm.Topics, rt)
				}
				resp.Markers = append(resp.Markers, rm)
			}
			return resp
		})
	})
}
