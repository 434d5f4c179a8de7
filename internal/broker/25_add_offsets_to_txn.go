package broker

// AddOffsetsToTxn (key 25), versions 0-4: adds the group's
// __consumer_offsets partition to the transaction (transactions v1; with
// v2, TxnOffsetCommit v5+ adds it implicitly). Answered by the
// transaction coordinator (internal/txn).

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	registerRaw(25, 0, 4, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.AddOffsetsToTxnRequest)
		c.goAsync(inf, func() kmsg.Response {
			if _, err := c.b.offsetsTopic(c.ctx); err != nil {
				resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
				resp.ErrorCode = 15 // COORDINATOR_NOT_AVAILABLE
				return resp
			}
			return c.b.txns.AddOffsetsToTxn(c.ctx, req)
		})
	})
}
