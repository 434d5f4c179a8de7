package broker

// AddPartitionsToTxn (key 24), versions 0-5.
//
// v0-3 come from transactional producers (transactions v1) and add
// partitions to their transaction; v4+ is the brokers' batched form
// (several transactional ids, VerifyOnly), which partition leaders send to
// verify or, with transactions v2, add a partition a transactional batch
// is produced to (txn.go verifyTxn). Both are answered by the transaction
// coordinator (internal/txn).

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	registerRaw(24, 0, 5, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.AddPartitionsToTxnRequest)
		c.goAsync(inf, func() kmsg.Response { return c.b.txns.AddPartitionsToTxn(c.ctx, req) })
	})
}
