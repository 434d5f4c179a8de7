package broker

// FindCoordinator (key 10), versions 0-6.
//
// This node coordinates every group and transactional id. v4+ batches keys
// (coordinator_keys) and answers each in coordinators[]. The first lookup of
// a group creates the internal __consumer_offsets topic, as Kafka does.
// Key type 1 (transactions) is answered too, so clients get a clear error
// from InitProducerId rather than a missing coordinator.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	switch req.CoordinatorType {
	case 0:
		if _, err := b.offsetsTopic(); err != nil {
			code = kerr.CoordinatorNotAvailable.Code
		}
	case 1:
	default:
		code = kerr.InvalidRequest.Code
	}
	for _, k := range keys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key = k
		co.ErrorCode = code
		if code == 0 {
			co.NodeID, co.Host, co.Port = b.cfg.NodeID, b.advHost, b.advPort
		} else {
			co.NodeID, co.Port = -1, -1
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
