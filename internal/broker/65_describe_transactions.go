package broker

// DescribeTransactions (key 65), version 0, and ListTransactions (key 66),
// versions 0-2: the transaction coordinator's view (internal/txn) of the
// transactional ids whose __transaction_state partitions this broker
// leads. Admin clients ask every broker for ListTransactions and merge.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	register(65, 0, 0, func(c *conn, v int16, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
		return c.b.txns.DescribeTransactions(req)
	})
	register(66, 0, 2, func(c *conn, v int16, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
		return c.b.txns.ListTransactions(req)
	})
}
