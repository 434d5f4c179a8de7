package broker

// ListPartitionReassignments (key 46), version 0.
//
// The reassignments in progress (KIP-455) as the active controller's image
// has them: of every partition when topics is null, else of the named
// partitions; partitions that are unknown or not being reassigned are left
// out, as in KRaft. Each lists the replicas (target then removing) and the
// adding and removing ones.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
)

func init() {
	registerAdmin(46, 0, 0, listPartitionReassignments, func(_ *Broker, req *kmsg.ListPartitionReassignmentsRequest, code int16) *kmsg.ListPartitionReassignmentsResponse {
		resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
		resp.ErrorCode = code
		return resp
	}, nil)
}

// listPartitionReassignments runs ListPartitionReassignments where this
// node is the active controller.
func listPartitionReassignments(_ context.Context, b *Broker, _ int16, req *kmsg.ListPartitionReassignmentsRequest) *kmsg.ListPartitionReassignmentsResponse {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	var parts []controller.TopicPartitions
	if req.Topics != nil {
		parts = make([]controller.TopicPartitions, 0, len(req.Topics))
		for _, rt := range req.Topics {
			parts = append(parts, controller.TopicPartitions{Topic: rt.Topic, Partitions: rt.Partitions})
		}
	}
	list, err := b.ctl.ListPartitionReassignments(parts)
	if err != nil {
		code, msg := ctlErr(err)
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	index := map[string]int{}
	for _, r := range list {
		i, ok := index[r.Topic]
		if !ok {
			i = len(resp.Topics)
			index[r.Topic] = i
			st := kmsg.NewListPartitionReassignmentsResponseTopic()
			st.Topic = r.Topic
			resp.Topics = append(resp.Topics, st)
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition, sp.Replicas, sp.AddingReplicas, sp.RemovingReplicas = r.Partition, r.Replicas, r.Adding, r.Removing
		if sp.AddingReplicas == nil {
			sp.AddingReplicas = []int32{}
		}
		if sp.RemovingReplicas == nil {
			sp.RemovingReplicas = []int32{}
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	return resp
}
