package broker

// TxnOffsetCommit (key 28), versions 0-5.
//
// Offsets committed inside a transaction: the group coordinator writes
// them as a transactional batch of the producer to the group's
// __consumer_offsets partition, and they become visible when the COMMIT
// marker lands there (writeMarker → group.CompleteTxn). Before that the
// transaction coordinator must know the partition: v0-4 producers added
// it with AddOffsetsToTxn, which is verified; v5+ (transactions v2) adds
// it here implicitly.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
)

func init() {
	registerRaw(28, 0, 5, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.TxnOffsetCommitRequest)
		fail := func(code int16) kmsg.Response {
			resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewTxnOffsetCommitResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp
		}
		c.goAsync(inf, func() kmsg.Response {
			t, err := c.b.offsetsTopic(c.ctx)
			if err != nil {
				return fail(kerr.CoordinatorNotAvailable.Code)
			}
			if !c.b.groups.Owns(req.Group) {
				return fail(kerr.NotCoordinator.Code)
			}
			p := group.PartitionFor(req.Group, t.Partitions)
			if code := c.b.verifyProduceTxn(c.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, group.TopicName, p, req.Version >= 5); code != 0 {
				switch code {
				case kerr.ConcurrentTransactions.Code, kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code:
					// Retriable, but the group coordinator is fine: no
					// rediscovery.
					code = kerr.CoordinatorLoadInProgress.Code
				}
				return fail(code)
			}
			done := make(chan *kmsg.TxnOffsetCommitResponse, 1)
			c.b.groups.TxnOffsetCommit(req, func(r *kmsg.TxnOffsetCommitResponse) { done <- r })
			return <-done
		})
	})
}
