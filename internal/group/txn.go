package group

// Transactional offset commits: TxnOffsetCommit writes a producer's
// offsets into its transaction, and CompleteTxn settles them when the
// transaction's COMMIT or ABORT marker is in the log.
//
// A TxnOffsetCommit appends its offset records (the OffsetCommit schemas)
// as one transactional batch: the request's producer id and epoch,
// attributes bit 4, base sequence -1. Its offsets are then pending for
// that producer (Group.txnOffsets): OffsetFetch does not return them, and
// with RequireStable answers UNSTABLE_OFFSET_COMMIT for their partitions.
// A COMMIT marker makes them the committed offsets, an ABORT drops them.
//
// Order: every offset, plain or transactional, remembers the log offset
// of its record. A committed transactional offset replaces the current
// one only if its record was written after it, so a plain OffsetCommit
// written after the transactional records wins wherever the marker lands
// (Kafka behaves the same). A marker settles only the entries written
// before it: the same producer id may already have written offsets of its
// next transaction.
//
// Pending entries are recorded when the batch is appended (under Group.mu,
// so in log order), not when its fsync returns: a marker may be committed
// before the commit's own wait ends (the transaction coordinator aborting
// a timed-out transaction), and it must find them. The client is answered
// only once the batch is durable.
//
// Replay (coordinator.go) builds the same state from the log: records of
// transactional batches go to the producer's pending entries, a control
// batch settles them at its offset, exactly as CompleteTxn does. A plain
// offset tombstone (OffsetDelete, expiry) drops every producer's pending
// entries of that partition and a group tombstone those of the group, in
// memory as in replay, so a reload rebuilds what was in memory.

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/storage"
)

// txnEnd is a marker reported while its partition was loading, applied
// once the replay is done.
type txnEnd struct {
	producerID   int64
	commit       bool
	markerOffset int64
}

// settle applies a marker at markerOffset to one producer's pending
// entries of one group: entries written before the marker go and, for a
// commit, the newest of each partition becomes the committed offset
// unless committed already holds one written later. Entries of a
// partition are in log order. committed must not be nil when commit is
// true. It reports whether entries remain (written after the marker).
func settle(committed map[tp]offsetCommit, pending map[tp][]offsetCommit, commit bool, markerOffset int64) bool {
	for k, es := range pending {
		n := 0
		for n < len(es) && es[n].logOffset < markerOffset {
			n++
		}
		if n == 0 {
			continue
		}
		if commit {
			e := es[n-1]
			if cur, ok := committed[k]; !ok || cur.logOffset < e.logOffset {
				committed[k] = e
			}
		}
		if n == len(es) {
			delete(pending, k)
		} else {
			pending[k] = es[n:]
		}
	}
	return len(pending) > 0
}

// hasTxnOffset reports whether some producer has a pending offset for k.
// Requires g.mu.
func (g *Group) hasTxnOffset(k tp) bool {
	for _, pend := range g.txnOffsets {
		if len(pend[k]) > 0 {
			return true
		}
	}
	return false
}

// dropTxnOffsets forgets every producer's pending offsets of k (the
// partition's offset was deleted). Requires g.mu.
func (g *Group) dropTxnOffsets(k tp) {
	for pid, pend := range g.txnOffsets {
		delete(pend, k)
		if len(pend) == 0 {
			delete(g.txnOffsets, pid)
		}
	}
}

// completeTxn settles producerID's pending offsets at a marker and
// reports whether some remain. Requires g.mu.
func (g *Group) completeTxn(producerID int64, commit bool, markerOffset int64) bool {
	pend := g.txnOffsets[producerID]
	if pend == nil {
		return false
	}
	if settle(g.offsets, pend, commit, markerOffset) {
		return true
	}
	delete(g.txnOffsets, producerID)
	return false
}

// trackTxn notes that group id has pending offsets of producerID, so that
// CompleteTxn finds it without visiting every group of the partition.
// The index is a hint: a stale entry (a group deleted or settled since)
// costs one lookup. Callers may hold a Group.mu.
func (c *Coordinator) trackTxn(p int32, producerID int64, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.parts[p]
	if ps == nil {
		return
	}
	ps.trackTxnLocked(producerID, id)
}

// trackTxnLocked: see trackTxn. Requires c.mu (or an unpublished ps).
func (ps *partState) trackTxnLocked(producerID int64, id string) {
	if ps.producers == nil {
		ps.producers = map[int64]map[string]struct{}{}
	}
	ids := ps.producers[producerID]
	if ids == nil {
		ids = map[string]struct{}{}
		ps.producers[producerID] = ids
	}
	ids[id] = struct{}{}
}

// CompleteTxn settles the transactional offsets producerID wrote to
// partition p of __consumer_offsets before markerOffset. The broker calls
// it once a COMMIT (commit) or ABORT marker for the producer, appended to
// p at markerOffset, is committed. On commit those offsets become the
// committed offsets, except where an offset written later (a plain
// OffsetCommit after the transactional records) is already committed; on
// abort they are dropped. Offsets the producer wrote after the marker stay
// pending. A negative markerOffset settles all of the producer's pending
// offsets. A producer with nothing pending, or a partition not owned, is
// a no-op; a partition still loading applies the marker once the replay
// is done, unless the replay read it.
func (c *Coordinator) CompleteTxn(p int32, producerID int64, commit bool, markerOffset int64) {
	if markerOffset < 0 {
		markerOffset = math.MaxInt64
	}
	c.mu.Lock()
	ps := c.parts[p]
	if ps == nil {
		c.mu.Unlock()
		return
	}
	if ps.loading {
		ps.deferred = append(ps.deferred, txnEnd{producerID, commit, markerOffset})
		c.mu.Unlock()
		return
	}
	var groups []*Group
	for id := range ps.producers[producerID] {
		if g := c.groups[id]; g != nil {
			groups = append(groups, g)
		}
	}
	// Groups that keep entries past the marker are tracked again below;
	// a TxnOffsetCommit meanwhile tracks its group itself.
	delete(ps.producers, producerID)
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		if g.state != Dead && g.completeTxn(producerID, commit, markerOffset) {
			c.trackTxn(p, producerID, g.id)
		}
		g.mu.Unlock()
	}
}

// TxnOffsetCommit commits offsets into a transaction (versions 0-5; v3+
// carry the member's generation, member id and instance id). It validates
// like OffsetCommit: a generation, member id or instance id given must be
// the group's current member (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
// ILLEGAL_GENERATION); without them the commit is accepted whatever the
// group's state, as Kafka accepts it from older producers. The records
// are appended before it returns; reply is called once they are durable,
// possibly from another goroutine. The offsets stay pending until
// CompleteTxn.
func (c *Coordinator) TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, reply func(*kmsg.TxnOffsetCommitResponse)) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	all := func(code int16) {
		for _, rt := range req.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		reply(resp)
	}
	if !validGroupID(req.Group) {
		all(kerr.InvalidGroupID.Code)
		return
	}
	generation, memberID, instanceID := req.Generation, req.MemberID, req.InstanceID
	if req.Version < 3 {
		generation, memberID, instanceID = -1, "", nil
	}
	member := generation >= 0 || memberID != "" || instanceID != nil
	g, code := c.lookup(req.Group, false)
	if code == 0 && g == nil {
		if member {
			// A new group has no members.
			all(kerr.UnknownMemberID.Code)
			return
		}
		g, code = c.lookup(req.Group, true)
	}
	if code != 0 {
		all(code)
		return
	}
	g.mu.Lock()
	switch {
	case g.state == Dead:
		code = g.deadCode()
	case generation < 0 && g.state == Empty:
	case member:
		code = g.checkMember(memberID, instanceID, generation)
	}
	if code != 0 {
		g.mu.Unlock()
		all(code)
		return
	}
	now := time.Now()
	var recs []kv
	type accepted struct {
		tp tp
		oc offsetCommit
		sp *kmsg.TxnOffsetCommitResponseTopicPartition
	}
	var ok []accepted
	for _, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.TxnOffsetCommitResponseTopicPartition, len(rt.Partitions))
		exists := c.topicExists(rt.Topic)
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			oc, rec, code := c.commitEntry(g, rt.Topic, exists, rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, req.Version >= 2, now)
			if sp.ErrorCode = code; code == 0 {
				recs = append(recs, rec)
				ok = append(ok, accepted{tp{rt.Topic, rp.Partition}, oc, sp})
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(recs) == 0 {
		g.mu.Unlock()
		reply(resp)
		return
	}
	answer := func(code int16) {
		for _, a := range ok {
			a.sp.ErrorCode = code
		}
		reply(resp)
	}
	fail := func(err error) {
		c.log.Error("transactional offset commit failed", "group", req.Group, "producer", req.ProducerID, "err", err)
		answer(txnStoreErrorCode(err))
	}
	l, err := c.partition(g.partition)
	if err != nil {
		g.mu.Unlock()
		fail(fmt.Errorf("%w: %w", errNoPartition, err))
		return
	}
	res, err := l.Append(encodeTxnBatch(req.ProducerID, req.ProducerEpoch, recs, now))
	if err != nil {
		g.mu.Unlock()
		fail(err)
		return
	}
	last := res.LastOffset
	pend := g.txnOffsets[req.ProducerID]
	if pend == nil {
		pend = map[tp][]offsetCommit{}
		g.txnOffsets[req.ProducerID] = pend
	}
	for _, a := range ok {
		a.oc.logOffset = last
		pend[a.tp] = append(pend[a.tp], a.oc)
	}
	c.trackTxn(g.partition, req.ProducerID, g.id)
	// Dropping the group before the fsync answers at once
	// (NOT_COORDINATOR), as for OffsetCommit.
	ticket := g.park(answer)
	g.mu.Unlock()
	guard.Go(c.log, "txn offset commit durability wait", func() {
		err := c.waitDurable(l, last)
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.unpark(ticket) {
			return
		}
		// On an error the entries stay pending: the batch is in the log,
		// and the client, told to retry or abort, ends the transaction
		// with a marker that settles them.
		if err != nil {
			fail(err)
			return
		}
		reply(resp)
	}, func(v any) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.unpark(ticket) {
			fail(fmt.Errorf("panic: %v", v))
		}
	})
}

// txnStoreErrorCode maps a failed write or fsync of a transactional
// commit to the code the producer gets. A fenced producer epoch is the
// producer's to handle; a code the log reports as a *kerr.Error (the
// broker's transaction checks) passes through; a record list too large is
// INVALID_COMMIT_OFFSET_SIZE; a lost leadership NOT_COORDINATOR; any other
// failure COORDINATOR_NOT_AVAILABLE, as for OffsetCommit.
func txnStoreErrorCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, storage.ErrMessageTooLarge):
		return kerr.InvalidCommitOffsetSize.Code
	case errors.Is(err, storage.ErrNotLeader):
		return kerr.NotCoordinator.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}
