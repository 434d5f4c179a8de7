package broker

// InitProducerId (key 22), versions 0-5.
//
// Idempotent (non-transactional) producers get a fresh producer id at epoch
// 0 on every call, as in Kafka: the id and epoch a v3+ request carries are
// only meaningful to a transaction coordinator. Producer ids are unique
// cluster-wide and across restarts: each broker hands out ids from blocks
// the controller allocates through the metadata log (AllocateProducerIds).
// Without a block (no controller reachable) the answer is
// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
//
// A request with a transactional id goes to the transaction coordinator
// (internal/txn), which answers NOT_COORDINATOR unless this broker leads
// the id's __transaction_state partition.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registerRaw(22, 0, 5, func(c *conn, inf *inflight, kreq kmsg.Request) {
		req := kreq.(*kmsg.InitProducerIDRequest)
		if req.TransactionalID == nil {
			inf.reply(initIdempotent(c, req))
			return
		}
		c.goAsync(inf, func() kmsg.Response {
			if _, err := c.b.txnTopic(c.ctx); err != nil {
				resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
				resp.ProducerID, resp.ProducerEpoch = -1, -1
				resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				return resp
			}
			return c.b.txns.InitProducerID(c.ctx, req)
		})
	})
}

func initIdempotent(c *conn, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	id, err := c.b.pids.next(c.ctx)
	if err != nil {
		c.log.Warn("allocating producer id failed", "err", err)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// producerIDs hands out producer ids from the block the controller last
// allocated to this broker.
type producerIDs struct {
	b        *Broker
	mu       sync.Mutex
	nextID   int64
	blockEnd int64
}

func (p *producerIDs) next(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextID >= p.blockEnd {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		first, n, err := p.b.allocateProducerIDs(ctx)
		if err != nil {
			return -1, err
		}
		p.nextID, p.blockEnd = first, first+n
	}
	id := p.nextID
	p.nextID++
	return id, nil
}
