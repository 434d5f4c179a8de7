package broker

// Heartbeat (key 12), versions 0-4.
//
// Resets the member's session timer. REBALANCE_IN_PROGRESS tells a member
// of the current generation to rejoin; ILLEGAL_GENERATION and
// UNKNOWN_MEMBER_ID tell a stale one it was dropped.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	register(12, 0, 4, func(c *conn, v int16, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
		return c.b.groups.Heartbeat(req)
	})
}
