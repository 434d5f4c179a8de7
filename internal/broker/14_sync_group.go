package broker

// SyncGroup (key 14), versions 0-5.
//
// Followers wait until the leader's assignment arrives; the leader's sync
// moves the group to Stable and answers everyone. An empty assignment is a
// valid answer (a member with no partitions). From v5 the protocol type and
// name must match the group's (INCONSISTENT_GROUP_PROTOCOL).

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	registerRaw(14, 0, 5, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.SyncGroupRequest)
		c.b.groups.SyncGroup(req, func(resp *kmsg.SyncGroupResponse) {
			resp.Version = req.Version
			if resp.MemberAssignment == nil {
				resp.MemberAssignment = []byte{}
			}
			inf.reply(resp)
		})
	})
}
