package txn

import (
	"context"
	"errors"
	"math"
	"regexp"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/guard"
)

// allocPID gets a new producer id; the code is Kafka's for a failure
// (a kerr.Error from the allocator is passed on; else the retriable
// COORDINATOR_LOAD_IN_PROGRESS, what Kafka answers while it has no block).
func (c *Coordinator) allocPID(ctx context.Context) (int64, int16) {
	if c.nextPID == nil {
		return -1, kerr.CoordinatorNotAvailable.Code
	}
	pid, err := c.nextPID(ctx)
	if err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return -1, ke.Code
		}
		return -1, kerr.CoordinatorLoadInProgress.Code
	}
	if pid < 0 {
		return -1, kerr.UnknownServerError.Code
	}
	return pid, 0
}

// InitProducerID serves InitProducerId for a transactional id: a new id
// gets a new producer id at epoch 0; an existing one gets its epoch bumped
// (a new producer id when the epoch is exhausted). An Ongoing transaction is
// aborted first with a fencing epoch bump, and the request answered
// CONCURRENT_TRANSACTIONS until that abort completed (the client retries).
// v3+ carries the producer's current id and epoch (KIP-360 recovery).
func (c *Coordinator) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.Version = req.Version
	resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
	fail := func(code int16) *kmsg.InitProducerIDResponse {
		resp.ErrorCode = fencedCode(code, req.Version, 4)
		return resp
	}
	if req.TransactionalID == nil || *req.TransactionalID == "" {
		return fail(kerr.InvalidRequest.Code)
	}
	id := *req.TransactionalID
	if len(id) > math.MaxInt16 {
		// Its __transaction_state key (TransactionLogKey v0) holds the id
		// with an int16 length; a longer one (a flexible request can carry
		// it) would be written wrapped and unreadable.
		return fail(kerr.InvalidRequest.Code)
	}
	if req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > c.cfg.MaxTimeout {
		return fail(kerr.InvalidTransactionTimeout.Code)
	}
	var exp *expected
	switch {
	case req.ProducerID == noProducerID && req.ProducerEpoch == noProducerEpoch:
	case req.ProducerID == noProducerID || req.ProducerEpoch == noProducerEpoch:
		return fail(kerr.InvalidRequest.Code)
	default:
		exp = &expected{req.ProducerID, req.ProducerEpoch}
	}
	spare := int64(-1) // a producer id allocated with no lock held
	for attempt := 0; attempt < 4; attempt++ {
		ps, t, code := c.locked(id)
		if code != 0 {
			return fail(code)
		}
		if t == nil {
			if spare < 0 {
				if spare, code = c.allocPID(ctx); code != 0 {
					return fail(code)
				}
				continue // time passed: look again
			}
			c.mu.Lock()
			if c.parts[ps.p] == ps && !ps.loading && ps.txns[id] == nil {
				nowMs := c.now().UnixMilli()
				ps.txns[id] = &txnMeta{id: id, part: ps, lastEpoch: noProducerEpoch, persisted: persisted{
					pid: spare, prevPID: noProducerID, nextPID: noProducerID, epoch: noProducerEpoch,
					timeoutMs: req.TransactionTimeoutMillis, state: StateEmpty, parts: map[TopicPartition]struct{}{},
					startMs: -1, lastUpdateMs: nowMs}}
				spare = -1
			}
			c.mu.Unlock()
			continue
		}
		pid, epoch, code, needPID := c.initLocked(t, req.TransactionTimeoutMillis, exp, spare)
		t.mu.Unlock()
		if needPID {
			if spare, code = c.allocPID(ctx); code != 0 {
				return fail(code)
			}
			continue
		}
		if code != 0 {
			return fail(code)
		}
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
		return resp
	}
	return fail(kerr.ConcurrentTransactions.Code)
}

type expected struct {
	pid   int64
	epoch int16
}

// initLocked is InitProducerId's transition of t. Requires t.mu. needPID:
// call again with a spare producer id.
func (c *Coordinator) initLocked(t *txnMeta, timeoutMs int32, exp *expected, spare int64) (pid int64, epoch int16, code int16, needPID bool) {
	if t.pending {
		return 0, 0, kerr.ConcurrentTransactions.Code, false
	}
	// KIP-360: the request's producer must be the current one, or one just
	// created (epoch -1), or the previous one whose epoch ran out (a retry
	// of a rotation whose answer was lost).
	if exp != nil && t.epoch != noProducerEpoch && exp.pid != t.pid &&
		(exp.pid != t.prevPID || !epochExhausted(exp.epoch)) {
		return 0, 0, kerr.ProducerFenced.Code, false
	}
	switch t.state {
	case StatePrepareCommit, StatePrepareAbort:
		return 0, 0, kerr.ConcurrentTransactions.Code, false
	case StateOngoing:
		if code := c.fenceLocked(t); code != 0 {
			return 0, 0, code, false
		}
		return 0, 0, kerr.ConcurrentTransactions.Code, false
	case StateEmpty, StateCompleteCommit, StateCompleteAbort:
	default:
		return 0, 0, kerr.ConcurrentTransactions.Code, false
	}
	n := c.next(t)
	n.state, n.parts, n.startMs, n.timeoutMs, n.nextPID = StateEmpty, map[TopicPartition]struct{}{}, -1, timeoutMs, noProducerID
	last := noProducerEpoch
	switch {
	case epochExhausted(t.epoch) && (exp == nil || exp.epoch == t.epoch):
		if spare < 0 {
			return 0, 0, 0, true
		}
		n.pid, n.epoch = spare, 0
		if exp != nil {
			last = t.epoch
		}
	case exp == nil:
		n.epoch = t.epoch + 1
	case t.epoch == noProducerEpoch || exp.epoch == t.epoch:
		n.epoch, last = t.epoch+1, t.epoch
	case exp.epoch == t.lastEpoch:
		// A retry of a bump whose answer was lost: same epoch again.
		n.epoch, last = t.epoch, t.lastEpoch
	default:
		return 0, 0, kerr.ProducerFenced.Code, false
	}
	if code := c.persist(t, n); code != 0 {
		return 0, 0, code, false
	}
	t.lastEpoch, t.fenced = last, false
	return t.pid, t.epoch, 0, false
}

// fenceLocked aborts t's Ongoing transaction with a bumped epoch, so the
// producer that runs it is fenced (InitProducerId of a new instance, a
// timed-out transaction): PrepareAbort is made durable, then markers and
// CompleteAbort follow in the background. Requires t.mu.
func (c *Coordinator) fenceLocked(t *txnMeta) int16 {
	n := c.next(t)
	switch {
	case t.failedFence: // the bumped epoch was never handed out; reuse it
	case t.epoch == math.MaxInt16:
		c.log.Error("cannot fence a producer at the maximum epoch", "transactional_id", t.id, "producer_id", t.pid)
		return kerr.UnknownServerError.Code
	default:
		n.epoch = t.epoch + 1
	}
	n.state, n.nextPID = StatePrepareAbort, noProducerID
	if code := c.persist(t, n); code != 0 {
		t.failedFence = !t.removed
		return code
	}
	t.failedFence, t.fenced, t.lastEpoch = false, true, noProducerEpoch
	c.goComplete(t)
	return 0
}

// goFence aborts t's transaction in the background if it is still Ongoing.
func (c *Coordinator) goFence(t *txnMeta) {
	ps := t.part
	if ps.ctx.Err() != nil {
		return
	}
	c.wg.Add(1)
	guard.Go(c.log, "txn fence "+t.id, func() {
		defer c.wg.Done()
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.removed || t.pending || t.state != StateOngoing {
			return
		}
		if code := c.fenceLocked(t); code != 0 {
			c.log.Warn("aborting a transaction failed", "transactional_id", t.id, "error", kerr.ErrorForCode(code))
		} else {
			c.log.Info("aborting transaction", "transactional_id", t.id, "producer_id", t.pid, "epoch", t.epoch)
		}
	}, nil)
}

// goComplete writes the markers of t's Prepare* state and then its
// Complete* state, in the background, retrying with back-off until it
// succeeds or the partition is unloaded. Requires t.mu.
func (c *Coordinator) goComplete(t *txnMeta) {
	ps := t.part
	if ps.ctx.Err() != nil {
		return
	}
	m := Markers{TransactionalID: t.id, ProducerID: t.pid, ProducerEpoch: t.epoch,
		Commit: t.state == StatePrepareCommit, CoordinatorEpoch: ps.epoch,
		TransactionVersion: int8(t.tv), Partitions: sortedParts(t.parts)}
	c.wg.Add(1)
	guard.Go(c.log, "txn markers "+t.id, func() {
		defer c.wg.Done()
		c.complete(t, m)
	}, nil)
}

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (c *Coordinator) complete(t *txnMeta, m Markers) {
	ps := t.part
	backoff := minBackoff
	sleep := func() bool {
		timer := time.NewTimer(backoff)
		defer timer.Stop()
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ps.ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	for len(m.Partitions) > 0 && c.markers != nil {
		err := c.markers.WriteMarkers(ps.ctx, m)
		if err == nil {
			break
		}
		if ps.ctx.Err() != nil {
			return
		}
		c.log.Debug("transaction markers not written yet", "transactional_id", m.TransactionalID, "err", err)
		if !sleep() {
			return
		}
	}
	backoff = minBackoff
	for {
		t.mu.Lock()
		if t.removed || t.pid != m.ProducerID || t.epoch != m.ProducerEpoch ||
			(t.state != StatePrepareCommit && t.state != StatePrepareAbort) {
			t.mu.Unlock()
			return
		}
		code := int16(-1)
		if !t.pending {
			n := c.next(t)
			n.state = StateCompleteAbort
			if t.state == StatePrepareCommit {
				n.state = StateCompleteCommit
			}
			n.parts = map[TopicPartition]struct{}{}
			if n.tv >= 2 && n.nextPID != noProducerID {
				// TV2 epoch overflow: the producer continues with the
				// next producer id, now that the markers are written.
				n.pid, n.epoch = n.nextPID, 0
			}
			n.nextPID = noProducerID
			code = c.persist(t, n)
		}
		t.mu.Unlock()
		if code == 0 {
			return
		}
		if !sleep() {
			return
		}
	}
}

// partsOf converts a request's topics to partitions.
func partsOf[T any](topics []T, get func(*T) (string, []int32)) []TopicPartition {
	var out []TopicPartition
	for i := range topics {
		name, ps := get(&topics[i])
		for _, p := range ps {
			out = append(out, TopicPartition{name, p})
		}
	}
	return out
}

// AddPartitionsToTxn serves v0-3 (a client adds partitions to its
// transaction) and v4+ (brokers, batched; VerifyOnly checks that the
// partitions are already in the ongoing transaction, else adds them: the
// implicit add of transactions v2). The broker checks that the topics exist
// and are authorized before calling.
func (c *Coordinator) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	resp.Version = req.Version
	if req.Version < 4 {
		parts := partsOf(req.Topics, func(t *kmsg.AddPartitionsToTxnRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
		code := fencedCode(c.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts, false), req.Version, 2)
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, tx := range req.Transactions {
		parts := partsOf(tx.Topics, func(t *kmsg.AddPartitionsToTxnRequestTransactionTopic) (string, []int32) {
			return t.Topic, t.Partitions
		})
		var perPart map[TopicPartition]int16
		var code int16
		if tx.VerifyOnly {
			code, perPart = c.verifyPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts)
		} else {
			code = c.addPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts, true)
		}
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, code
				if perPart != nil {
					rp.ErrorCode = perPart[TopicPartition{t.Topic, p}]
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp
}

// addPartitions adds parts to id's transaction, starting it if need be.
// implicit: the add of a TV2 producer's first write to a partition.
func (c *Coordinator) addPartitions(id string, pid int64, epoch int16, parts []TopicPartition, implicit bool) int16 {
	if id == "" {
		return kerr.InvalidRequest.Code
	}
	_, t, code := c.locked(id)
	if code != 0 {
		return code
	}
	if t == nil {
		return kerr.InvalidProducerIDMapping.Code
	}
	defer t.mu.Unlock()
	switch {
	case t.pid != pid:
		return kerr.InvalidProducerIDMapping.Code
	case t.epoch != epoch:
		return kerr.ProducerFenced.Code
	case t.pending:
		return kerr.ConcurrentTransactions.Code
	}
	switch t.state {
	case StateOngoing:
		missing := false
		for _, tp := range parts {
			if _, ok := t.parts[tp]; !ok {
				missing = true
				break
			}
		}
		if !missing {
			return 0
		}
	case StateEmpty, StateCompleteCommit, StateCompleteAbort:
	default: // Prepare*: the previous transaction is completing
		return kerr.ConcurrentTransactions.Code
	}
	n := c.next(t)
	if t.state != StateOngoing {
		n.startMs = n.lastUpdateMs
	}
	n.state = StateOngoing
	for _, tp := range parts {
		n.parts[tp] = struct{}{}
	}
	if implicit {
		n.tv = 2
	}
	return c.persist(t, n)
}

// verifyPartitions is AddPartitionsToTxn VerifyOnly: each partition is
// answered NONE if it is in the ongoing transaction, else
// INVALID_TXN_STATE (what Kafka's produce path reports to the client; its
// coordinator says TRANSACTION_ABORTABLE and the leader translates).
func (c *Coordinator) verifyPartitions(id string, pid int64, epoch int16, parts []TopicPartition) (int16, map[TopicPartition]int16) {
	if id == "" {
		return kerr.InvalidRequest.Code, nil
	}
	_, t, code := c.locked(id)
	if code != 0 {
		return code, nil
	}
	if t == nil {
		return kerr.InvalidProducerIDMapping.Code, nil
	}
	defer t.mu.Unlock()
	switch {
	case t.pid != pid:
		return kerr.InvalidProducerIDMapping.Code, nil
	case t.epoch != epoch:
		return kerr.ProducerFenced.Code, nil
	case t.state == StatePrepareCommit || t.state == StatePrepareAbort:
		return kerr.ConcurrentTransactions.Code, nil
	}
	out := make(map[TopicPartition]int16, len(parts))
	for _, tp := range parts {
		out[tp] = kerr.InvalidTxnState.Code
		if _, ok := t.parts[tp]; ok && t.state == StateOngoing {
			out[tp] = 0
		}
	}
	return 0, out
}

// AddOffsetsToTxn adds the group's __consumer_offsets partition to the
// transaction.
func (c *Coordinator) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	resp.Version = req.Version
	tp := TopicPartition{group.TopicName, group.PartitionFor(req.Group, c.cfg.OffsetsPartitions)}
	resp.ErrorCode = fencedCode(c.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []TopicPartition{tp}, false), req.Version, 2)
	return resp
}

// EndTxn commits or aborts the ongoing transaction: Prepare* is made
// durable, the client answered, and markers and Complete* follow in the
// background. v5 is transactions v2: every EndTxn bumps the epoch (a new
// producer id when it runs out), the response carries the producer id and
// epoch to use next, a retry of a completed EndTxn is answered with
// success again, and an abort with nothing in the transaction (Empty or
// Complete*, at the current epoch) is allowed: it bumps the epoch and
// writes no marker.
func (c *Coordinator) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.Version = req.Version
	resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
	if req.TransactionalID == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	spare := int64(-1)
	for attempt := 0; attempt < 3; attempt++ {
		_, t, code := c.locked(req.TransactionalID)
		if code == 0 && t == nil {
			code = kerr.InvalidProducerIDMapping.Code
		}
		if code != 0 {
			resp.ErrorCode = fencedCode(code, req.Version, 2)
			return resp
		}
		pid, epoch, code, needPID := c.endLocked(t, req, spare)
		t.mu.Unlock()
		if needPID {
			if spare, code = c.allocPID(ctx); code != 0 {
				resp.ErrorCode = code
				return resp
			}
			continue
		}
		resp.ErrorCode = fencedCode(code, req.Version, 2)
		if code == 0 {
			resp.ProducerID, resp.ProducerEpoch = pid, epoch
		}
		return resp
	}
	resp.ErrorCode = kerr.ConcurrentTransactions.Code
	return resp
}

// endLocked is EndTxn's transition of t. Requires t.mu.
func (c *Coordinator) endLocked(t *txnMeta, req *kmsg.EndTxnRequest, spare int64) (pid int64, epoch int16, code int16, needPID bool) {
	tv2 := req.Version >= 5
	pid, e := req.ProducerID, req.ProducerEpoch
	stored2 := t.tv >= 2
	// TV2 retries: the epoch was bumped by this EndTxn (not by a fence),
	// or it overflowed and the producer id changed.
	retryBump := stored2 && !t.fenced && int32(t.epoch) == int32(e)+1
	retryOverflow := stored2 && t.prevPID == pid && e == math.MaxInt16-1 && t.epoch == 0
	// Transactions v2 allow aborting a transaction with nothing in it (no
	// partition added; franz-go does when every produce failed): it bumps
	// the epoch like any end, so a registration the producer does not know
	// of cannot join its next transaction.
	emptyAbort := tv2 && !req.Commit && e == t.epoch && t.pid == pid &&
		(t.state == StateEmpty || t.state == StateCompleteCommit || t.state == StateCompleteAbort)
	var valid bool
	switch {
	case emptyAbort:
		valid = true
	case !stored2:
		valid = e == t.epoch
	case t.state == StatePrepareCommit || t.state == StatePrepareAbort:
		valid = retryBump
	case t.state == StateCompleteCommit || t.state == StateCompleteAbort:
		valid = retryBump || retryOverflow || e == t.epoch
	default:
		valid = e == t.epoch
	}
	switch {
	case t.pid != pid && !retryOverflow:
		return 0, 0, kerr.InvalidProducerIDMapping.Code, false
	case !valid:
		return 0, 0, kerr.ProducerFenced.Code, false
	case t.pending:
		return 0, 0, kerr.ConcurrentTransactions.Code, false
	}
	switch {
	case t.state == StateOngoing, emptyAbort:
	case t.state == StateCompleteCommit, t.state == StateCompleteAbort:
		if (!stored2 || retryBump || retryOverflow) && req.Commit == (t.state == StateCompleteCommit) {
			return t.pid, t.epoch, 0, false // a retry of a finished EndTxn
		}
		return 0, 0, kerr.InvalidTxnState.Code, false
	case t.state == StatePrepareCommit, t.state == StatePrepareAbort:
		if req.Commit == (t.state == StatePrepareCommit) {
			return 0, 0, kerr.ConcurrentTransactions.Code, false
		}
		return 0, 0, kerr.InvalidTxnState.Code, false
	case t.state == StateEmpty:
		return 0, 0, kerr.InvalidTxnState.Code, false
	default:
		return 0, 0, kerr.ConcurrentTransactions.Code, false
	}
	n := c.next(t)
	n.state, n.nextPID, n.tv = StatePrepareAbort, noProducerID, 0
	if req.Commit {
		n.state = StatePrepareCommit
	}
	if tv2 {
		n.tv = 2
		if epochExhausted(t.epoch) {
			if spare < 0 {
				return 0, 0, 0, true
			}
			n.nextPID = spare
		}
		n.epoch = t.epoch + 1
	}
	if code := c.persist(t, n); code != 0 {
		return 0, 0, code, false
	}
	if tv2 {
		t.lastEpoch = e
	}
	t.fenced = false
	c.goComplete(t)
	if t.nextPID != noProducerID {
		return t.nextPID, 0, 0, false
	}
	return t.pid, t.epoch, 0, false
}

// Tick runs the periodic work; the broker calls it about every second.
// At most every AbortInterval it aborts transactions Ongoing for longer
// than their timeout, with an epoch bump that fences their producer; at
// most every ExpireInterval it removes transactional ids idle (Empty or
// Complete*) for longer than IDExpiration, with a tombstone.
func (c *Coordinator) Tick(now time.Time) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	abort := now.Sub(c.lastAbort) >= c.cfg.AbortInterval
	if abort {
		c.lastAbort = now
	}
	expire := c.cfg.IDExpiration > 0 && now.Sub(c.lastExpire) >= c.cfg.ExpireInterval
	if expire {
		c.lastExpire = now
	}
	type partTxns struct {
		ps   *partState
		txns []*txnMeta
	}
	var parts []partTxns
	if abort || expire {
		for _, ps := range c.parts {
			if ps.loading {
				continue
			}
			pt := partTxns{ps: ps}
			for _, t := range ps.txns {
				pt.txns = append(pt.txns, t)
			}
			parts = append(parts, pt)
		}
	}
	c.mu.Unlock()
	nowMs := now.UnixMilli()
	for _, pt := range parts {
		var expired []*txnMeta
		for _, t := range pt.txns {
			t.mu.Lock()
			if !t.removed && !t.pending {
				switch t.state {
				case StateOngoing:
					if abort && t.startMs+int64(t.timeoutMs) < nowMs {
						c.goFence(t)
					}
				case StateEmpty, StateCompleteCommit, StateCompleteAbort:
					if expire && t.lastUpdateMs <= nowMs-c.cfg.IDExpiration.Milliseconds() {
						t.pending = true
						expired = append(expired, t)
					}
				}
			}
			t.mu.Unlock()
		}
		if len(expired) > 0 {
			c.goExpire(pt.ps, expired, now)
		}
	}
}

// goExpire writes tombstones for expired ids (marked pending by the
// caller) and drops them once durable.
func (c *Coordinator) goExpire(ps *partState, txns []*txnMeta, now time.Time) {
	release := func(ok bool) {
		for _, t := range txns {
			t.mu.Lock()
			t.pending = false
			if ok && !t.removed {
				c.mu.Lock()
				if ps.txns[t.id] == t {
					delete(ps.txns, t.id)
				}
				c.mu.Unlock()
				t.removed, t.removedCode, t.state = true, 0, StateDead
			}
			t.mu.Unlock()
		}
	}
	c.wg.Add(1)
	guard.Go(c.log, "txn expire", func() {
		defer c.wg.Done()
		l, err := c.logOf(ps)
		if err != nil {
			release(false)
			return
		}
		recs := make([]kv, len(txns))
		for i, t := range txns {
			recs[i] = kv{key: txnKey(t.id)}
		}
		res, err := l.Append(encodeBatch(recs, now))
		if err == nil {
			err = l.WaitDurable(ps.ctx, res.LastOffset)
		}
		if err != nil {
			c.log.Warn("expiring transactional ids failed", "partition", ps.p, "ids", len(txns), "err", err)
		} else {
			c.log.Info("expired transactional ids", "partition", ps.p, "ids", len(txns))
		}
		release(err == nil)
	}, func(any) { release(false) })
}

// DescribeTransactions describes the ids this coordinator owns (v0).
func (c *Coordinator) DescribeTransactions(req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	resp.Version = req.Version
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ProducerID, st.ProducerEpoch = noProducerID, noProducerEpoch
		st.StartTimestamp = -1
		if id == "" {
			st.ErrorCode = kerr.InvalidRequest.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		_, t, code := c.locked(id)
		switch {
		case code != 0:
			st.ErrorCode = code
		case t == nil:
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			if t.state == StateDead {
				st.ErrorCode = kerr.TransactionalIDNotFound.Code
			} else {
				st.State, st.TimeoutMillis, st.StartTimestamp = t.state.String(), t.timeoutMs, t.startMs
				st.ProducerID, st.ProducerEpoch = t.pid, t.epoch
				for _, tp := range sortedParts(t.parts) {
					if n := len(st.Topics); n > 0 && st.Topics[n-1].Topic == tp.Topic {
						st.Topics[n-1].Partitions = append(st.Topics[n-1].Partitions, tp.Partition)
						continue
					}
					rt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
					st.Topics = append(st.Topics, rt)
				}
			}
			t.mu.Unlock()
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

// ListTransactions lists the ids of the partitions this coordinator owns
// (v0-2): filters by state names, producer ids, running longer than
// DurationFilterMillis (v1), and a transactional id pattern (v2; Go's RE2
// syntax, matched against the whole id as Java's Matcher.matches does).
func (c *Coordinator) ListTransactions(req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	resp.Version = req.Version
	var re *regexp.Regexp
	if req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if re, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
	}
	states := map[State]bool{}
	for _, name := range req.StateFilters {
		found := false
		for i, n := range stateNames {
			if n == name {
				states[State(i)], found = true, true
			}
		}
		if !found {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	pids := map[int64]bool{}
	for _, p := range req.ProducerIDFilters {
		pids[p] = true
	}
	c.mu.Lock()
	var txns []*txnMeta
	loading := false
	for _, ps := range c.parts {
		if ps.loading {
			loading = true
			break
		}
		for _, t := range ps.txns {
			txns = append(txns, t)
		}
	}
	c.mu.Unlock()
	if loading {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	nowMs := c.now().UnixMilli()
	for _, t := range txns {
		t.mu.Lock()
		include := !t.removed && t.state != StateDead &&
			(len(pids) == 0 || pids[t.pid]) &&
			(len(req.StateFilters) == 0 || states[t.state]) &&
			(req.DurationFilterMillis < 0 || nowMs-t.startMs > req.DurationFilterMillis) &&
			(re == nil || re.MatchString(t.id))
		if include {
			st := kmsg.NewListTransactionsResponseTransactionState()
			st.TransactionalID, st.ProducerID, st.TransactionState = t.id, t.pid, t.state.String()
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		t.mu.Unlock()
	}
	sort.Slice(resp.TransactionStates, func(i, j int) bool {
		return resp.TransactionStates[i].TransactionalID < resp.TransactionStates[j].TransactionalID
	})
	return resp
}
