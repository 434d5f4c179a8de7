package broker

// AlterPartitionReassignments (key 45), versions 0-1.
//
// KIP-455: each partition names its target replicas, or null to cancel
// the reassignment in progress. The active controller validates
// (UNKNOWN_TOPIC_OR_PARTITION; an empty list, a broker twice or an
// unregistered broker is INVALID_REPLICA_ASSIGNMENT; cancelling where
// nothing is in progress is NO_REASSIGNMENT_IN_PROGRESS; v1's
// allow_replication_factor_change=false refuses a target of another size
// with INVALID_REPLICATION_FACTOR) and commits the accepted partitions as
// one batch: replicas become target ∪ current (target first), with the
// adding and removing sets recorded. A reassignment completes when its
// last adding replica joins the ISR (the leader's AlterPartition), at once
// if nothing is to be added. Cancelling reverts to the original replicas.
// A partition twice in one request is INVALID_REQUEST the second time.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
)

func init() {
	registerAdmin(45, 0, 1, alterPartitionReassignments, func(_ *Broker, req *kmsg.AlterPartitionAssignmentsRequest, code int16) *kmsg.AlterPartitionAssignmentsResponse {
		resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
		resp.ErrorCode = code
		return resp
	}, func(c *conn, _ *kmsg.AlterPartitionAssignmentsRequest, resp *kmsg.AlterPartitionAssignmentsResponse) {
		if resp.ErrorCode == 0 {
			c.b.waitMetaPublished(c.ctx)
		}
	})
}

// alterPartitionReassignments runs AlterPartitionReassignments where this
// node is the active controller.
func alterPartitionReassignments(ctx context.Context, b *Broker, v int16, req *kmsg.AlterPartitionAssignmentsRequest) *kmsg.AlterPartitionAssignmentsResponse {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	var rs []controller.Reassignment
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			rs = append(rs, controller.Reassignment{Topic: rt.Topic, Partition: rp.Partition, Target: rp.Replicas})
		}
	}
	res, err := b.ctl.AlterPartitionReassignments(ctx, rs, v < 1 || req.AllowReplicationFactorChange)
	if err != nil {
		code, msg := ctlErr(err)
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			if e := res[i]; e != nil {
				msg := e.Error()
				sp.ErrorCode, sp.ErrorMessage = e.Code, &msg
			}
			i++
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	b.awaitBrokers(ctx)
	return resp
}
