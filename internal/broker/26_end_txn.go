package broker

// EndTxn (key 26), versions 0-5: commit or abort. The coordinator
// (internal/txn) answers once PrepareCommit/PrepareAbort is committed in
// __transaction_state; the markers follow. v5 (transactions v2) bumps the
// producer epoch at every end and returns it.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	registerRaw(26, 0, 5, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.EndTxnRequest)
		c.goAsync(inf, func() kmsg.Response { return c.b.txns.EndTxn(c.ctx, req) })
	})
}
