package broker

// DescribeGroups (key 15), versions 0-5.
//
// State names are Kafka's (Stable, PreparingRebalance, CompletingRebalance,
// Empty, Dead). Member metadata and assignments are filled in only when the
// group is Stable, as in Kafka. An unknown group is reported as Dead with no
// error. Asked for (v3+), authorized operations are every group operation
// (authorized_ops.go) for a group that exists, none for an unknown one. A
// group this broker does not coordinate carries NOT_COORDINATOR (or
// COORDINATOR_LOAD_IN_PROGRESS) and nothing else.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	register(15, 0, 5, func(c *conn, v int16, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, id := range req.Groups {
			s := c.b.groups.Describe(id)
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group, dg.State, dg.ProtocolType, dg.Protocol = s.ID, s.State, s.ProtocolType, s.Protocol
			dg.ErrorCode = s.ErrorCode
			dg.AuthorizedOperations = authorizedOpsUnknown
			if v >= 3 && req.IncludeAuthorizedOperations && s.State != "Dead" && s.ErrorCode == 0 {
				dg.AuthorizedOperations = authorizedOpsGroup
			}
			for _, m := range s.Members {
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
				dm.ProtocolMetadata, dm.MemberAssignment = m.Metadata, m.Assignment
				if dm.ProtocolMetadata == nil {
					dm.ProtocolMetadata = []byte{}
				}
				if dm.MemberAssignment == nil {
					dm.MemberAssignment = []byte{}
				}
				dg.Members = append(dg.Members, dm)
			}
			resp.Groups = append(resp.Groups, dg)
		}
		return resp
	})
}
