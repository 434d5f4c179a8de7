package broker

// JoinGroup (key 11), versions 0-9.
//
// The group state machine lives in package group. The answer may come much
// later than the request (when the rebalance completes), so the connection's
// response slot is completed from the coordinator's callback. KIP-394
// (MEMBER_ID_REQUIRED from v4) and static membership (KIP-345,
// group.instance.id from v5) are supported. The member's client host is
// recorded as Kafka shows it ("/127.0.0.1").

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
)

func init() {
	registerRaw(11, 0, 9, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.JoinGroupRequest)
		if _, err := c.b.offsetsTopic(c.ctx); err != nil {
			inf.reply(groupUnavailable(req))
			return
		}
		c.b.groups.JoinGroup(group.JoinRequest{Req: req, ClientID: inf.hdr.ClientID, ClientHost: c.host}, func(resp *kmsg.JoinGroupResponse) {
			resp.Version = req.Version
			inf.reply(resp)
		})
	})
}

func groupUnavailable(req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = 15 // COORDINATOR_NOT_AVAILABLE
	resp.Generation = -1
	return resp
}
