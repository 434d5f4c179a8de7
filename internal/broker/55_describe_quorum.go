package broker

// DescribeQuorum (key 55), versions 0-2.
//
// Answered from the active controller's raft state (controller.
// HandleDescribeQuorum): the leader, its term as the leader epoch, the
// commit index as the high watermark, and each voter's log end. A broker
// that is not the active controller forwards it, as Kafka's brokers do;
// on the controller listener a voter that is not the leader answers
// NOT_LEADER_OR_FOLLOWER so the tool asks the leader. From v2 the voters'
// controller endpoints are listed (Nodes).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/controller"
)

func init() {
	registerAdmin(55, 0, 2, func(_ context.Context, b *Broker, _ int16, req *kmsg.DescribeQuorumRequest) *kmsg.DescribeQuorumResponse {
		return controller.HandleDescribeQuorum(req, b.qnode.Status(), b.voterEndpoints)
	}, func(b *Broker, req *kmsg.DescribeQuorumRequest, code int16) *kmsg.DescribeQuorumResponse {
		// Not the leader: the raft state here says who is, without the
		// voters' progress.
		return controller.HandleDescribeQuorum(req, b.qnode.Status(), nil)
	}, nil)
}

// controllerVoters are the quorum's voters with their controller listener
// address: controller.quorum.voters, or this node alone at its controller
// listener (none when it has none).
func (b *Broker) controllerVoters() []config.Voter {
	if len(b.cfg.QuorumVoters) > 0 {
		return b.cfg.QuorumVoters
	}
	addr, err := b.controllerListenAddr()
	if err != nil {
		return nil
	}
	host, port := splitHostPort(addr.String())
	return []config.Voter{{ID: b.cfg.NodeID, Host: host, Port: port}}
}

// voterEndpoints is a voter's controller listener, for DescribeQuorum v2.
func (b *Broker) voterEndpoints(id int32) []kmsg.DescribeQuorumResponseNodeListener {
	name := "CONTROLLER"
	if len(b.cfg.ControllerListenerNames) > 0 {
		name = b.cfg.ControllerListenerNames[0]
	}
	for _, v := range b.controllerVoters() {
		if v.ID == id {
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			l.Name, l.Host, l.Port = name, v.Host, uint16(v.Port)
			return []kmsg.DescribeQuorumResponseNodeListener{l}
		}
	}
	return nil
}
