package controller

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/quorum"
)

// The Kafka APIs that only a controller serves, as functions from request
// to response; the listener that carries them decodes, dispatches and
// encodes. Each is answered from the active controller's decisions;
// errors become the response's error code, never a dropped connection.

// errCode is the Kafka error code of a controller error.
func errCode(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	var e *Error
	if errors.As(err, &e) {
		msg := e.Error()
		return e.Code, &msg
	}
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kerr.RequestTimedOut.Code, &msg
	}
	// A quorum that cannot commit right now (leader change, stopped node):
	// clients retry on NOT_CONTROLLER.
	return kerr.NotController.Code, &msg
}

// HandleBrokerRegistration serves BrokerRegistration (62).
func (c *Controller) HandleBrokerRegistration(ctx context.Context, req *kmsg.BrokerRegistrationRequest, clusterID string) *kmsg.BrokerRegistrationResponse {
	resp := req.ResponseKind().(*kmsg.BrokerRegistrationResponse)
	resp.BrokerEpoch = -1
	if req.ClusterID != clusterID {
		resp.ErrorCode = kerr.InconsistentClusterID.Code
		return resp
	}
	r := Registration{ID: req.BrokerID, IncarnationID: req.IncarnationID}
	if req.Rack != nil {
		r.Rack = *req.Rack
	}
	for _, l := range req.Listeners {
		r.Listeners = append(r.Listeners, metadata.Endpoint{Name: l.Name, Host: l.Host, Port: int32(l.Port), SecurityProtocol: l.SecurityProtocol})
	}
	epoch, err := c.RegisterBroker(ctx, r)
	resp.ErrorCode, _ = errCode(err)
	if err == nil {
		resp.BrokerEpoch = epoch
	}
	return resp
}

// HandleBrokerHeartbeat serves BrokerHeartbeat (63).
func (c *Controller) HandleBrokerHeartbeat(ctx context.Context, req *kmsg.BrokerHeartbeatRequest) *kmsg.BrokerHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
	h := Heartbeat{ID: req.BrokerID, Epoch: req.BrokerEpoch, WantFence: req.WantFence, WantShutDown: req.WantShutdown}
	if req.CurrentMetadataOffset > 0 {
		h.CaughtUp = uint64(req.CurrentMetadataOffset)
	}
	res, err := c.BrokerHeartbeat(ctx, h)
	resp.ErrorCode, _ = errCode(err)
	resp.IsFenced, resp.ShouldShutdown = res.Fenced, res.ShouldShutDown
	if err != nil {
		resp.IsFenced = true
	}
	resp.IsCaughtUp = err == nil && !res.Fenced
	return resp
}

// HandleAllocateProducerIDs serves AllocateProducerIds (67).
func (c *Controller) HandleAllocateProducerIDs(ctx context.Context, req *kmsg.AllocateProducerIDsRequest) *kmsg.AllocateProducerIDsResponse {
	resp := req.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
	first, n, err := c.AllocateProducerIDs(ctx, req.BrokerID, req.BrokerEpoch)
	resp.ErrorCode, _ = errCode(err)
	if err == nil {
		resp.ProducerIDStart, resp.ProducerIDLen = first, int32(min(n, math.MaxInt32))
	}
	return resp
}

// HandleUnregisterBroker serves UnregisterBroker (64).
func (c *Controller) HandleUnregisterBroker(ctx context.Context, req *kmsg.UnregisterBrokerRequest) *kmsg.UnregisterBrokerResponse {
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	resp.ErrorCode, resp.ErrorMessage = errCode(c.UnregisterBroker(ctx, req.BrokerID))
	return resp
}

// HandleAlterPartition serves AlterPartition (56), versions 2+ (topic ids).
func (c *Controller) HandleAlterPartition(ctx context.Context, req *kmsg.AlterPartitionRequest) *kmsg.AlterPartitionResponse {
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionResponseTopic()
		st.TopidID = rt.TopicID // kmsg spells the v2+ field TopidID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionResponseTopicPartition()
			sp.Partition = rp.Partition
			isr := rp.NewISR
			if req.Version >= 3 {
				isr = isr[:0:0]
				for _, e := range rp.NewEpochISR {
					isr = append(isr, e.BrokerID)
				}
			}
			p, err := c.AlterPartition(ctx, req.BrokerID, req.BrokerEpoch, metadata.UUID(rt.TopicID), rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, isr)
			sp.ErrorCode, _ = errCode(err)
			if err == nil {
				sp.LeaderID, sp.LeaderEpoch, sp.ISR, sp.PartitionEpoch = p.Leader, p.LeaderEpoch, p.ISR, p.PartitionEpoch
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// MetadataTopic is the name Kafka gives its metadata log; DescribeQuorum
// asks about its partition 0.
const MetadataTopic = "__cluster_metadata"

// HandleDescribeQuorum serves DescribeQuorum (55) from the raft state:
// the leader, its term as the leader epoch, the commit index as the high
// watermark, and each voter's log end as the leader knows it. lastContact
// gives, for the leader, when each voter was last heard from (nil: now).
func HandleDescribeQuorum(req *kmsg.DescribeQuorumRequest, st quorum.Status, endpoints func(id int32) []kmsg.DescribeQuorumResponseNodeListener) *kmsg.DescribeQuorumResponse {
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewDescribeQuorumResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewDescribeQuorumResponseTopicPartition()
			p.Partition = rp.Partition
			switch {
			case rt.Topic != MetadataTopic || rp.Partition != 0:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case st.Leader != st.ID:
				// Name the leader this voter knows, so the caller can go there.
				p.ErrorCode = kerr.NotLeaderForPartition.Code
				p.LeaderID, p.LeaderEpoch = -1, int32(min(st.Term, math.MaxInt32))
				if st.Leader != 0 {
					p.LeaderID = int32(st.Leader)
				}
			default:
				p.LeaderID = int32(st.Leader)
				p.LeaderEpoch = int32(min(st.Term, math.MaxInt32))
				p.HighWatermark = int64(st.Commit)
				now := time.Now().UnixMilli()
				for _, v := range st.Voters {
					rs := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
					rs.ReplicaID = int32(v.ID)
					rs.LogEndOffset = int64(v.Match)
					rs.LastFetchTimestamp, rs.LastCaughtUpTimestamp = -1, -1
					if v.Match >= st.Commit {
						rs.LastFetchTimestamp, rs.LastCaughtUpTimestamp = now, now
					}
					p.CurrentVoters = append(p.CurrentVoters, rs)
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	if req.Version >= 2 && endpoints != nil {
		for _, v := range st.Voters {
			n := kmsg.NewDescribeQuorumResponseNode()
			n.NodeID = int32(v.ID)
			n.Listeners = endpoints(int32(v.ID))
			resp.Nodes = append(resp.Nodes, n)
		}
	}
	return resp
}
