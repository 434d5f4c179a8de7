package broker

// FindCoordinator (key 10), versions 0-6.
//
// A group's coordinator (key type 0) is the leader of its
// __consumer_offsets partition (group.PartitionFor), a transactional id's
// (key type 1) the leader of its __transaction_state partition
// (txn.PartitionFor, the same hash), at its endpoint on the listener the
// request came in on; a partition without a leader gives
// COORDINATOR_NOT_AVAILABLE, which clients retry. v4+ batches keys
// (coordinator_keys) and answers each in coordinators[]. The first lookup
// creates the internal topic, as Kafka does.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/metadata"
)

func init() {
	register(10, 0, 6, handleFindCoordinator)
}

func handleFindCoordinator(c *conn, v int16, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if v < 4 {
		keys = []string{req.CoordinatorKey}
	}
	code := int16(0)
	var offsets *topic
	var err error
	switch req.CoordinatorType {
	case 0:
		offsets, err = b.offsetsTopic(c.ctx)
	case 1:
		offsets, err = b.txnTopic(c.ctx)
	default:
		code = kerr.InvalidRequest.Code
	}
	if err != nil {
		code = kerr.CoordinatorNotAvailable.Code
	}
	im := b.catalog.currentImage()
	for _, k := range keys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key = k
		co.ErrorCode = code
		co.NodeID, co.Port = -1, -1
		switch {
		case code != 0:
		default:
			leader := offsets.leaderOf(group.PartitionFor(k, offsets.Partitions))
			br := im.Broker(leader)
			ep, ok := metadata.Endpoint{}, false
			if br != nil && (!br.Fenced || leader == b.cfg.NodeID) {
				ep, ok = endpointOf(br, c.listener)
			}
			if ok {
				co.NodeID, co.Host, co.Port = leader, ep.Host, ep.Port
			} else {
				co.ErrorCode = kerr.CoordinatorNotAvailable.Code
			}
		}
		resp.Coordinators = append(resp.Coordinators, co)
	}
	if v < 4 {
		co := resp.Coordinators[0]
		resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = co.ErrorCode, co.NodeID, co.Host, co.Port
		resp.Coordinators = nil
	}
	return resp
}
