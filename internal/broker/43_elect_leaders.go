package broker

// ElectLeaders (key 43), versions 0-2.
//
// KIP-460: election_type 0 (PREFERRED; the only type before v1) moves
// leadership to each partition's first replica when it is live and in the
// ISR, answering ELECTION_NOT_NEEDED where it already leads and
// PREFERRED_LEADER_NOT_AVAILABLE where it cannot; 1 (UNCLEAN) elects a
// partition without a leader, from the ISR if a member is live, else the
// first live replica (data may be lost), answering ELECTION_NOT_NEEDED
// where a leader exists and ELIGIBLE_LEADERS_NOT_AVAILABLE where no
// replica is live. Null topic_partitions means every partition, and then
// only the partitions an election was needed for are reported (as KRaft).
// Unknown topics or partitions are UNKNOWN_TOPIC_OR_PARTITION. The active
// controller decides and commits all the elections as one batch; a broker
// that is not the controller forwards the request and answers once it has
// published the outcome.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
)

func init() {
	registerAdmin(43, 0, 2, electLeaders, func(_ *Broker, req *kmsg.ElectLeadersRequest, code int16) *kmsg.ElectLeadersResponse {
		resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
		resp.ErrorCode = code
		for _, rt := range req.Topics {
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewElectLeadersResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}, func(c *conn, _ *kmsg.ElectLeadersRequest, _ *kmsg.ElectLeadersResponse) {
		c.b.waitMetaPublished(c.ctx)
	})
}

// electLeaders runs ElectLeaders where this node is the active controller.
func electLeaders(ctx context.Context, b *Broker, v int16, req *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	typ := controller.ElectPreferredType
	if v >= 1 {
		typ = req.ElectionType
	}
	if typ != controller.ElectPreferredType && typ != controller.ElectUncleanType {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	var parts []controller.TopicPartitions
	if req.Topics != nil {
		parts = make([]controller.TopicPartitions, 0, len(req.Topics))
		for _, rt := range req.Topics {
			parts = append(parts, controller.TopicPartitions{Topic: rt.Topic, Partitions: rt.Partitions})
		}
	}
	res, err := b.ctl.ElectLeaders(ctx, typ, parts)
	if err != nil {
		code, msg := ctlErr(err)
		for _, tp := range parts {
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = tp.Topic
			for _, p := range tp.Partitions {
				sp := kmsg.NewElectLeadersResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.ErrorMessage = p, code, &msg
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		if v >= 1 {
			resp.ErrorCode = code
		}
		return resp
	}
	index := map[string]int{}
	for _, r := range res {
		i, ok := index[r.Topic]
		if !ok {
			i = len(resp.Topics)
			index[r.Topic] = i
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = r.Topic
			resp.Topics = append(resp.Topics, st)
		}
		sp := kmsg.NewElectLeadersResponseTopicPartition()
		sp.Partition = r.Partition
		if r.Err != nil {
			msg := r.Err.Error()
			sp.ErrorCode, sp.ErrorMessage = r.Err.Code, &msg
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	if len(res) > 0 {
		b.log.Info("leader election", "type", typ, "partitions", len(res))
	}
	b.awaitBrokers(ctx)
	return resp
}
