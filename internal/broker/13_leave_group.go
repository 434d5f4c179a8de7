package broker

// LeaveGroup (key 13), versions 0-5.
//
// v0-2 remove one member by id; v3+ remove a batch of members, each by
// member id or group.instance.id, with an error per member.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	register(13, 0, 5, func(c *conn, v int16, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
		return c.b.groups.LeaveGroup(req)
	})
}
