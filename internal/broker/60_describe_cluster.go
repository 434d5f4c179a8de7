package broker

// DescribeCluster (key 60), versions 0-1.
//
// This node is the whole cluster and its controller. Endpoint type 1
// (brokers) is the only one served; v1 requests for controllers (type 2)
// get UNSUPPORTED_ENDPOINT_TYPE, as a broker does in Kafka.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(60, 0, 1, handleDescribeCluster)
}

func handleDescribeCluster(c *conn, v int16, req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = req.EndpointType
	if v >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp
	}
	resp.ClusterID = b.clusterID
	resp.ControllerID = b.cfg.NodeID
	br := kmsg.NewDescribeClusterResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.advHost, b.advPort
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{br}
	resp.ClusterAuthorizedOperations = authorizedOpsUnknown
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = authorizedOpsCluster
	}
	return resp
}
