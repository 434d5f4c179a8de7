package broker

// DescribeCluster (key 60), versions 0-2.
//
// On a client listener it lists the live brokers (v2: fenced ones too when
// asked) at their endpoint on that listener, with the active controller as
// the controller id when it is a live broker. On the controller listener
// it lists the controllers at their controller listener and the active
// one (endpoint type 2, what Kafka's --bootstrap-controller tools send).
// The wrong endpoint type for the listener gets MISMATCHED_ENDPOINT_TYPE
// with Kafka's message.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(60, 0, 2, handleDescribeCluster).alsoController()
}

func handleDescribeCluster(c *conn, v int16, req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	want := int8(1) // brokers
	if c.on == onController {
		want = 2 // controllers
	}
	resp.EndpointType = want
	if v >= 1 && req.EndpointType != want {
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		msg := "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
		if want == 2 {
			msg = "The request was sent to an endpoint of type CONTROLLER, but we wanted an endpoint of type BROKER"
		}
		resp.ErrorMessage = &msg
		resp.ControllerID = -1
		return resp
	}
	resp.ClusterID = b.clusterID
	im := b.catalog.currentImage()
	if want == 2 {
		// The controllers at their controller listener, the active one as
		// the controller id (Kafka's --bootstrap-controller tools).
		resp.ControllerID = int32(b.qnode.Status().Leader)
		if resp.ControllerID == 0 {
			resp.ControllerID = -1
		}
		for _, vt := range b.controllerVoters() {
			br := kmsg.NewDescribeClusterResponseBroker()
			br.NodeID, br.Host, br.Port = vt.ID, vt.Host, int32(vt.Port)
			resp.Brokers = append(resp.Brokers, br)
		}
	} else {
		resp.ControllerID = b.controllerIDForClients(im)
		for _, br := range im.Brokers() {
			if br.Fenced && !(v >= 2 && req.IncludeFencedBrokers) {
				continue
			}
			ep, ok := endpointOf(br, c.listener)
			if !ok {
				continue
			}
			db := kmsg.NewDescribeClusterResponseBroker()
			db.NodeID, db.Host, db.Port, db.IsFenced = br.ID, ep.Host, ep.Port, br.Fenced
			if br.Rack != "" {
				rack := br.Rack
				db.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, db)
		}
		if len(resp.Brokers) == 0 {
			db := kmsg.NewDescribeClusterResponseBroker()
			db.NodeID, db.Host, db.Port = b.cfg.NodeID, b.advHost, b.advPort
			resp.Brokers = append(resp.Brokers, db)
		}
	}
	resp.ClusterAuthorizedOperations = authorizedOpsUnknown
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = authorizedOpsCluster
	}
	return resp
}
