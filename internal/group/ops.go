package group

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/storage"
)

// checkMember validates a member of the current generation, as SyncGroup,
// Heartbeat and OffsetCommit do. Callers hold g.mu.
func (g *Group) checkMember(memberID string, instanceID *string, generation int32) int16 {
	if instanceID != nil {
		if cur, ok := g.static[*instanceID]; ok && cur != memberID {
			return kerr.FencedInstanceID.Code
		}
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// SyncGroup handles a sync; reply may be called later, when the leader's
// assignment arrives.
func (c *Coordinator) SyncGroup(req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
	fail := func(code int16) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		reply(resp)
	}
	g, code := c.lookup(req.Group, false)
	if code != 0 {
		fail(code)
		return
	}
	if g == nil {
		fail(kerr.UnknownMemberID.Code)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == Dead {
		fail(g.deadCode())
		return
	}
	if code := g.checkMember(req.MemberID, req.InstanceID, req.Generation); code != 0 {
		fail(code)
		return
	}
	if req.Version >= 5 && ((req.ProtocolType != nil && *req.ProtocolType != g.protocolType) ||
		(req.Protocol != nil && *req.Protocol != g.protocol)) {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		fail(kerr.RebalanceInProgress.Code)
	case CompletingRebalance:
		m.syncReply = reply
		g.resetHeartbeat(m)
		if m.id != g.leader {
			return
		}
		for _, a := range req.GroupAssignment {
			if am := g.members[a.MemberID]; am != nil {
				am.assignment = append([]byte(nil), a.MemberAssignment...)
			}
		}
		for _, om := range g.members {
			if om.assignment == nil {
				om.assignment = []byte{}
			}
		}
		l, last, err := g.persistLocked()
		if err != nil {
			// Kafka answers every waiting member with the error and
			// rebalances again: an assignment that is not stored must not
			// be acted on.
			code := storeErrorCode(err)
			for _, om := range g.members {
				om.assignment = nil
				if om.syncReply != nil {
					resp := kmsg.NewPtrSyncGroupResponse()
					resp.ErrorCode = code
					om.syncReply(resp)
					om.syncReply = nil
				}
			}
			g.prepareRebalance("storing the group assignment failed")
			return
		}
		g.setState(Stable)
		// The members waiting now are answered once the assignment is
		// durable, as acks=all would have it in Kafka.
		type parked struct {
			reply func(*kmsg.SyncGroupResponse)
			resp  *kmsg.SyncGroupResponse
		}
		var waiting []parked
		for _, om := range g.members {
			if om.syncReply != nil {
				waiting = append(waiting, parked{om.syncReply, g.syncResponse(om)})
				om.syncReply = nil
			}
		}
		answer := func(code int16) {
			for _, p := range waiting {
				if code != 0 {
					p.resp = kmsg.NewPtrSyncGroupResponse()
					p.resp.ErrorCode = code
				}
				p.reply(p.resp)
			}
		}
		if !c.cfg.Durable {
			answer(0)
			return
		}
		// Dropping the group meanwhile answers them at once.
		ticket := g.park(answer)
		finish := func(code int16) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.unpark(ticket) {
				answer(code)
			}
		}
		guard.Go(c.log, "group sync durability wait", func() {
			var code int16
			if err := c.waitDurable(l, last); err != nil {
				c.log.Error("group assignment not durable", "group", g.id, "err", err)
				code = kerr.CoordinatorNotAvailable.Code
			}
			finish(code)
		}, func(any) { finish(kerr.CoordinatorNotAvailable.Code) })
	case Stable:
		reply(g.syncResponse(m))
		g.resetHeartbeat(m)
	default:
		fail(kerr.UnknownMemberID.Code)
	}
}

func (g *Group) syncResponse(m *member) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	pt, proto := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &proto
	resp.MemberAssignment = m.assignment
	return resp
}

// Heartbeat handles a heartbeat.
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	g, code := c.lookup(req.Group, false)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if g == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == Dead {
		resp.ErrorCode = g.deadCode()
		return resp
	}
	if code := g.checkMember(req.MemberID, req.InstanceID, req.Generation); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	g.resetHeartbeat(g.members[req.MemberID])
	if g.state == PreparingRebalance {
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	}
	return resp
}

// LeaveGroup handles single (v0-2) and batched (v3+) leaves.
func (c *Coordinator) LeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	g, code := c.lookup(req.Group, false)
	if code != 0 {
		// Group-level error: no member results (v3+), as Kafka answers.
		resp.ErrorCode = code
		return resp
	}
	leaving := req.Members
	if req.Version < 3 {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = req.MemberID
		leaving = []kmsg.LeaveGroupRequestMember{lm}
	}
	if g == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		if req.Version >= 3 {
			resp.ErrorCode = 0
			for _, lm := range leaving {
				rm := kmsg.NewLeaveGroupResponseMember()
				rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
				rm.ErrorCode = kerr.UnknownMemberID.Code
				resp.Members = append(resp.Members, rm)
			}
		}
		return resp
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone != 0 {
		resp.ErrorCode = g.gone
		return resp
	}
	removed := 0
	for _, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
		id := lm.MemberID
		if lm.InstanceID != nil {
			cur, ok := g.static[*lm.InstanceID]
			switch {
			case !ok:
				rm.ErrorCode = kerr.UnknownMemberID.Code
			case id != "" && id != cur:
				rm.ErrorCode = kerr.FencedInstanceID.Code
			default:
				id = cur
			}
		}
		if rm.ErrorCode == 0 {
			if _, ok := g.pending[id]; ok {
				g.pending[id].Stop()
				delete(g.pending, id)
				removed++
			} else if m := g.members[id]; m == nil {
				rm.ErrorCode = kerr.UnknownMemberID.Code
			} else {
				if m.joinReply != nil {
					m.joinReply(joinError(kmsg.NewPtrJoinGroupRequest(), kerr.UnknownMemberID.Code, id))
					m.joinReply = nil
				}
				g.removeMember(id)
				removed++
			}
		}
		resp.Members = append(resp.Members, rm)
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	if removed > 0 {
		g.memberLeft("member left")
	}
	return resp
}

// OffsetCommit commits offsets. The records are appended before it
// returns; reply is called once they are durable, possibly from another
// goroutine.
func (c *Coordinator) OffsetCommit(req *kmsg.OffsetCommitRequest, reply func(*kmsg.OffsetCommitResponse)) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	all := func(code int16) {
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
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
	g, code := c.lookup(req.Group, false)
	if code == 0 && g == nil {
		if req.Generation >= 0 {
			all(kerr.IllegalGeneration.Code)
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
	case req.Generation < 0 && g.state == Empty:
		// A group that only commits (assign() consumers, tools).
	default:
		code = g.checkMember(req.MemberID, req.InstanceID, req.Generation)
		if code == 0 && g.state == CompletingRebalance {
			code = kerr.RebalanceInProgress.Code
		}
		if code == 0 {
			g.resetHeartbeat(g.members[req.MemberID])
		}
	}
	if code != 0 {
		g.mu.Unlock()
		all(code)
		return
	}
	now := time.Now()
	var recs []kv
	type pending struct {
		tp tp
		oc offsetCommit
		sp *kmsg.OffsetCommitResponseTopicPartition
	}
	var accepted []pending
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(rt.Partitions))
		exists := c.topicExists(rt.Topic)
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			oc, rec, code := c.commitEntry(g, rt.Topic, exists, rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, req.Version >= 6, now)
			if sp.ErrorCode = code; code == 0 {
				recs = append(recs, rec)
				accepted = append(accepted, pending{tp{rt.Topic, rp.Partition}, oc, sp})
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
		for _, p := range accepted {
			p.sp.ErrorCode = code
		}
		reply(resp)
	}
	fail := func(err error) {
		c.log.Error("offset commit write failed", "group", req.Group, "err", err)
		answer(kerr.CoordinatorNotAvailable.Code)
	}
	l, last, err := c.write(g.id, recs)
	if err != nil {
		g.mu.Unlock()
		fail(err)
		return
	}
	// Dropping the group before the fsync answers the commit at once
	// (NOT_COORDINATOR: the client retries with the new coordinator).
	ticket := g.park(answer)
	g.mu.Unlock()
	// The append happened in request order; only the wait for the fsync
	// runs concurrently with the connection's next requests.
	guard.Go(c.log, "offset commit durability wait", func() {
		err := c.waitDurable(l, last)
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.unpark(ticket) {
			return
		}
		if err != nil {
			fail(err)
			return
		}
		for _, p := range accepted {
			p.oc.logOffset = last
			if cur, ok := g.offsets[p.tp]; !ok || cur.logOffset <= last {
				g.offsets[p.tp] = p.oc
			}
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

// FetchedOffset is one committed offset for OffsetFetch.
type FetchedOffset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	Found       bool
	// ErrorCode is UNSTABLE_OFFSET_COMMIT (FetchOffsetsRequireStable
	// only) for a partition with transactional offsets waiting for their
	// marker; Offset is -1 then.
	ErrorCode int16
}

// CommittedOffsets is FetchOffsets without the error: a group that is not
// served here has no offsets (for metrics; OffsetFetch uses FetchOffsets).
func (c *Coordinator) CommittedOffsets(group string, topics map[string][]int32) map[string]map[int32]FetchedOffset {
	out, code := c.FetchOffsets(group, topics)
	if code != 0 {
		return map[string]map[int32]FetchedOffset{}
	}
	return out
}

// FetchOffsets returns the committed offsets of a group, for the given
// topics (nil = every committed partition), or, with a nil map, the error
// code of a group that is not served here: NOT_COORDINATOR, or
// COORDINATOR_LOAD_IN_PROGRESS while its partition loads.
func (c *Coordinator) FetchOffsets(group string, topics map[string][]int32) (map[string]map[int32]FetchedOffset, int16) {
	return c.fetchOffsets(group, topics, false)
}

// FetchOffsetsRequireStable is FetchOffsets for OffsetFetch v7+ with
// RequireStable (KIP-447): a partition with pending transactional offsets
// (of any producer) answers UNSTABLE_OFFSET_COMMIT in its ErrorCode, so
// that a consumer taking over never starts from an offset a transaction
// in flight is about to replace. With topics nil, only partitions with a
// committed offset are listed, as in Kafka.
func (c *Coordinator) FetchOffsetsRequireStable(group string, topics map[string][]int32) (map[string]map[int32]FetchedOffset, int16) {
	return c.fetchOffsets(group, topics, true)
}

func (c *Coordinator) fetchOffsets(group string, topics map[string][]int32, requireStable bool) (map[string]map[int32]FetchedOffset, int16) {
	unstable := FetchedOffset{Offset: -1, LeaderEpoch: -1, ErrorCode: kerr.UnstableOffsetCommit.Code}
	g, code := c.lookup(group, false)
	if code != 0 {
		return nil, code
	}
	out := map[string]map[int32]FetchedOffset{}
	if g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.gone != 0 {
			return nil, g.gone
		}
	}
	if topics == nil {
		if g == nil {
			return out, 0
		}
		for k, oc := range g.offsets {
			if out[k.topic] == nil {
				out[k.topic] = map[int32]FetchedOffset{}
			}
			if requireStable && g.hasTxnOffset(k) {
				out[k.topic][k.partition] = unstable
				continue
			}
			out[k.topic][k.partition] = FetchedOffset{Offset: oc.offset, LeaderEpoch: oc.leaderEpoch, Metadata: oc.metadata, Found: true}
		}
		return out, 0
	}
	for t, ps := range topics {
		out[t] = map[int32]FetchedOffset{}
		for _, p := range ps {
			fo := FetchedOffset{Offset: -1, LeaderEpoch: -1}
			if g != nil {
				if requireStable && g.hasTxnOffset(tp{t, p}) {
					fo = unstable
				} else if oc, ok := g.offsets[tp{t, p}]; ok {
					fo = FetchedOffset{Offset: oc.offset, LeaderEpoch: oc.leaderEpoch, Metadata: oc.metadata, Found: true}
				}
			}
			out[t][p] = fo
		}
	}
	return out, 0
}

// GroupSummary describes a group for DescribeGroups and ListGroups.
type GroupSummary struct {
	ID string
	// ErrorCode is set (and nothing else but ID) when the group is not
	// served here: NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
	ErrorCode    int16
	State        string
	ProtocolType string
	Protocol     string
	Members      []MemberSummary
}

// MemberSummary describes a member.
type MemberSummary struct {
	MemberID, ClientID, ClientHost string
	InstanceID                     *string
	Metadata, Assignment           []byte
}

// Describe returns a group's summary; an unknown group is Dead, as Kafka
// reports it. A group not served here has only ErrorCode set.
func (c *Coordinator) Describe(id string) GroupSummary {
	g, code := c.lookup(id, false)
	if code != 0 {
		return GroupSummary{ID: id, ErrorCode: code}
	}
	if g == nil {
		return GroupSummary{ID: id, State: Dead.String()}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone != 0 {
		return GroupSummary{ID: id, ErrorCode: g.gone}
	}
	s := GroupSummary{ID: id, State: g.state.String(), ProtocolType: g.protocolType}
	if g.state == Stable {
		s.Protocol = g.protocol
	}
	for _, mid := range g.joinOrder {
		m := g.members[mid]
		if m == nil {
			continue
		}
		ms := MemberSummary{MemberID: m.id, ClientID: m.clientID, ClientHost: m.clientHost, InstanceID: m.instanceID}
		if g.state == Stable {
			ms.Metadata = m.metadataFor(g.protocol)
			ms.Assignment = m.assignment
		}
		s.Members = append(s.Members, ms)
	}
	return s
}

// List returns the id, protocol type and state of every group of the
// loaded partitions (Loading tells whether some are still loading).
func (c *Coordinator) List() []GroupSummary {
	var out []GroupSummary
	for _, g := range c.sortedGroups() {
		g.mu.Lock()
		if g.state != Dead {
			out = append(out, GroupSummary{ID: g.id, State: g.state.String(), ProtocolType: g.protocolType})
		}
		g.mu.Unlock()
	}
	return out
}

// Errors of DeleteGroups and DeleteOffsets.
var (
	ErrGroupNotFound = errors.New("group: not found")
	ErrNotEmpty      = errors.New("group: not empty")
	ErrSubscribed    = errors.New("group: subscribed to topic")
)

// DeleteGroup deletes an empty group and its offsets. A group not served
// here is a *kerr.Error (kerr.NotCoordinator, kerr.CoordinatorLoadInProgress).
func (c *Coordinator) DeleteGroup(id string) error {
	g, code := c.lookup(id, false)
	if code != 0 {
		return kerr.ErrorForCode(code)
	}
	if g == nil {
		return ErrGroupNotFound
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.gone != 0:
		return kerr.ErrorForCode(g.gone)
	case g.state == Dead:
		return ErrGroupNotFound
	case g.state == Empty:
	default:
		return ErrNotEmpty
	}
	// Offsets of transactions in flight go too (the group tombstone
	// drops them on replay as well); their markers find nothing.
	recs := []kv{{groupKey(g.id), nil}}
	for k := range g.offsets {
		recs = append(recs, kv{offsetKey(g.id, k.topic, k.partition), nil})
	}
	l, last, err := c.write(g.id, recs)
	if err == nil {
		err = c.waitDurable(l, last)
	}
	if err != nil {
		return err
	}
	g.offsets = map[tp]offsetCommit{}
	g.txnOffsets = map[int64]map[tp][]offsetCommit{}
	g.setState(Dead)
	c.remove(g)
	return nil
}

// DeleteOffsets removes committed offsets of a group (OffsetDelete). It
// returns, per partition, ErrSubscribed where the group still consumes the
// topic. A group not served here is a *kerr.Error, as for DeleteGroup.
func (c *Coordinator) DeleteOffsets(id string, topics map[string][]int32, subscribed func(protocolType string, metadata []byte) []string) (map[string]map[int32]error, error) {
	g, code := c.lookup(id, false)
	if code != 0 {
		return nil, kerr.ErrorForCode(code)
	}
	if g == nil {
		return nil, ErrGroupNotFound
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone != 0 {
		return nil, kerr.ErrorForCode(g.gone)
	}
	if g.state == Dead {
		return nil, ErrGroupNotFound
	}
	subs := map[string]bool{}
	if g.state != Empty {
		for _, m := range g.members {
			for _, t := range subscribed(g.protocolType, m.metadataFor(g.protocol)) {
				subs[t] = true
			}
		}
	}
	out := map[string]map[int32]error{}
	var recs []kv
	var del []tp
	for t, ps := range topics {
		out[t] = map[int32]error{}
		for _, p := range ps {
			if subs[t] {
				out[t][p] = ErrSubscribed
				continue
			}
			out[t][p] = nil
			// Pending transactional offsets of the partition go too, as
			// the tombstone drops them on replay.
			if _, ok := g.offsets[tp{t, p}]; ok || g.hasTxnOffset(tp{t, p}) {
				recs = append(recs, kv{offsetKey(g.id, t, p), nil})
				del = append(del, tp{t, p})
			}
		}
	}
	if len(recs) > 0 {
		l, last, err := c.write(g.id, recs)
		if err == nil {
			err = c.waitDurable(l, last)
		}
		if err != nil {
			return nil, err
		}
		for _, k := range del {
			delete(g.offsets, k)
			g.dropTxnOffsets(k)
		}
	}
	return out, nil
}

// persistLocked writes the group's metadata record and returns where it
// landed, so the caller can wait for it to be durable. Requires g.mu.
// Membership is advisory after a crash (members rejoin), so this write is
// not waited on; offsets are.
func (g *Group) persistLocked() (Log, int64, error) {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, id := range g.joinOrder {
		m := g.members[id]
		if m == nil {
			continue
		}
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.InstanceID, vm.ClientID, vm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadataFor(g.protocol)
		if vm.Subscription == nil {
			vm.Subscription = []byte{}
		}
		vm.Assignment = m.assignment
		if vm.Assignment == nil {
			vm.Assignment = []byte{}
		}
		v.Members = append(v.Members, vm)
	}
	l, last, err := g.c.write(g.id, []kv{{groupKey(g.id), v.AppendTo(nil)}})
	if err != nil {
		g.c.log.Error("writing group metadata failed", "group", g.id, "err", err)
	}
	return l, last, err
}

// storeErrorCode maps a failed write of group metadata to what Kafka's
// coordinator answers: a record too large for __consumer_offsets is the
// group's own fault and unexpected (UNKNOWN_SERVER_ERROR); a log that is
// gone or failed means the coordinator cannot serve now
// (COORDINATOR_NOT_AVAILABLE, which clients retry).
func storeErrorCode(err error) int16 {
	switch {
	case errors.Is(err, storage.ErrMessageTooLarge):
		return kerr.UnknownServerError.Code
	case errors.Is(err, storage.ErrStorageFailed), errors.Is(err, storage.ErrClosed), errors.Is(err, errNoPartition):
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.UnknownServerError.Code
}

// restore rebuilds a group from its metadata record. Members come back
// with fresh session timers: those still alive keep heartbeating with the
// same member id and generation; the rest expire and trigger a rebalance.
func (g *Group) restore(value []byte, now time.Time) error {
	v := kmsg.NewGroupMetadataValue()
	if err := v.ReadFrom(value); err != nil {
		return err
	}
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	if v.CurrentStateTimestamp > 0 {
		g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, vm := range v.Members {
		m := &member{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []protocol{{g.protocol, vm.Subscription}},
			assignment:       vm.Assignment,
		}
		if m.sessionTimeout <= 0 {
			m.sessionTimeout = g.c.cfg.MinSessionTimeout
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		g.members[m.id] = m
		g.joinOrder = append(g.joinOrder, m.id)
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
		g.resetHeartbeat(m)
	}
	if len(g.members) > 0 && g.protocol != "" {
		g.state = Stable
	} else {
		g.state = Empty
	}
	return nil
}

// expireOffsets applies offsets.retention.minutes to one group.
func (g *Group) expireOffsets(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != Empty { // Dead and dropped groups too
		return
	}
	ret := g.c.cfg.OffsetsRetention
	var recs []kv
	var del []tp
	for k, oc := range g.offsets {
		if g.hasTxnOffset(k) {
			// A transaction in flight is about to commit it; its
			// tombstone would also drop the pending offset on replay.
			continue
		}
		var expired bool
		if g.protocolType != "" {
			expired = now.Sub(g.stateTime) >= ret
		} else {
			expired = now.Sub(oc.commitTime) >= ret
		}
		if expired {
			recs = append(recs, kv{offsetKey(g.id, k.topic, k.partition), nil})
			del = append(del, k)
		}
	}
	dead := len(del) == len(g.offsets) && len(g.members) == 0 && len(g.txnOffsets) == 0
	if dead {
		recs = append(recs, kv{groupKey(g.id), nil})
	}
	if len(recs) == 0 {
		return
	}
	if _, _, err := g.c.write(g.id, recs); err != nil {
		g.c.log.Error("expiring offsets failed", "group", g.id, "err", err)
		return
	}
	for _, k := range del {
		delete(g.offsets, k)
	}
	g.c.log.Info("expired offsets", "group", g.id, "partitions", len(del))
	if dead {
		g.setState(Dead)
		g.c.remove(g)
	}
}

// commitEntry checks one partition's offset commit (OffsetCommit and
// TxnOffsetCommit alike) and builds its record, or returns the partition's
// error code. withEpoch: the request version carries the leader epoch.
func (c *Coordinator) commitEntry(g *Group, topic string, exists bool, partition int32, offset int64, leaderEpoch int32,
	metadata *string, withEpoch bool, now time.Time) (offsetCommit, kv, int16) {
	meta := ""
	if metadata != nil {
		meta = *metadata
	}
	switch {
	case !exists:
		return offsetCommit{}, kv{}, kerr.UnknownTopicOrPartition.Code
	case len(meta) > c.cfg.MaxMetadataBytes || !fitsInt16(meta):
		return offsetCommit{}, kv{}, kerr.OffsetMetadataTooLarge.Code
	}
	oc := offsetCommit{offset: offset, leaderEpoch: leaderEpoch, metadata: meta, commitTime: now}
	if !withEpoch {
		oc.leaderEpoch = -1
	}
	return oc, kv{offsetKey(g.id, topic, partition), offsetValue(oc)}, 0
}
