package group

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/guard"
)

// State is a classic group's state, named as Kafka names it.
type State int8

// Kafka's group states.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	default:
		return "Dead"
	}
}

type tp struct {
	topic     string
	partition int32
}

type offsetCommit struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  time.Time
	// logOffset orders commits of one partition: a commit only replaces
	// the cached one if it was written after it.
	logOffset int64
}

type protocol struct {
	name     string
	metadata []byte
}

type member struct {
	id         string
	instanceID *string
	clientID   string
	clientHost string

	rebalanceTimeout time.Duration
	sessionTimeout   time.Duration
	protocolType     string
	protocols        []protocol
	assignment       []byte

	// joinReply is set while the member waits in JoinGroup.
	joinReply   func(*kmsg.JoinGroupResponse)
	joinVersion int16
	// syncReply is set while the member waits in SyncGroup.
	syncReply func(*kmsg.SyncGroupResponse)

	heartbeat *time.Timer
	isNew     bool
}

func (m *member) metadataFor(proto string) []byte {
	for _, p := range m.protocols {
		if p.name == proto {
			return p.metadata
		}
	}
	return nil
}

// sameProtocols reports whether a rejoin changes nothing.
func (m *member) sameProtocols(ps []protocol) bool {
	if len(ps) != len(m.protocols) {
		return false
	}
	for i := range ps {
		if ps[i].name != m.protocols[i].name || !bytes.Equal(ps[i].metadata, m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// Group is one consumer group. All fields are guarded by mu.
type Group struct {
	c         *Coordinator
	id        string
	partition int32 // of __consumer_offsets: PartitionFor(id)

	mu           sync.Mutex
	state        State
	stateTime    time.Time
	protocolType string // "" for groups that only commit offsets
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	joinOrder    []string // member ids, oldest first; the leader is chosen from here
	pending      map[string]*time.Timer
	static       map[string]string // group.instance.id → member id

	rebalanceTimer *time.Timer
	// initialDelay is true while an empty group waits
	// group.initial.rebalance.delay.ms for more members.
	initialDelay bool
	delayEnd     time.Time
	epoch        uint64 // bumped on every state change, to fence stale timers

	offsets map[tp]offsetCommit
	// txnOffsets are transactional commits written to the log whose
	// transaction has no marker yet, by producer id: invisible to
	// OffsetFetch until CompleteTxn commits them (txn.go).
	txnOffsets map[int64]map[tp][]offsetCommit

	// parked are answers waiting for an fsync (commits, a completed
	// sync), by ticket: drop answers them with an error at once.
	parked     map[uint64]func(code int16)
	nextTicket uint64
	// gone is set when the group is dropped from the coordinator
	// (UnloadPartition): the code every request still reaching this
	// Group object is answered (NOT_COORDINATOR). The group is Dead then.
	gone int16
}

func newGroup(c *Coordinator, id string) *Group {
	return &Group{
		c: c, id: id,
		partition:  PartitionFor(id, c.cfg.Partitions),
		state:      Empty,
		stateTime:  time.Now(),
		members:    map[string]*member{},
		pending:    map[string]*time.Timer{},
		static:     map[string]string{},
		offsets:    map[tp]offsetCommit{},
		txnOffsets: map[int64]map[tp][]offsetCommit{},
		parked:     map[uint64]func(int16){},
	}
}

// deadCode is the answer for a request that reaches a Dead group: the
// group was dropped (NOT_COORDINATOR), or deleted or expired concurrently
// (COORDINATOR_NOT_AVAILABLE: the client retries and finds a new group).
// Callers hold g.mu.
func (g *Group) deadCode() int16 {
	if g.gone != 0 {
		return g.gone
	}
	return kerr.CoordinatorNotAvailable.Code
}

// park registers fail to answer a reply waiting outside g.mu (for an
// fsync) if the group is dropped first. The waiter calls unpark under
// g.mu when it is done; false means fail was already called and the
// waiter must not answer. Callers hold g.mu.
func (g *Group) park(fail func(code int16)) uint64 {
	g.nextTicket++
	g.parked[g.nextTicket] = fail
	return g.nextTicket
}

func (g *Group) unpark(ticket uint64) bool {
	if _, ok := g.parked[ticket]; !ok {
		return false
	}
	delete(g.parked, ticket)
	return true
}

func (g *Group) setState(s State) {
	g.state = s
	g.stateTime = time.Now()
	g.epoch++
}

func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	u := hex.EncodeToString(b[:])
	return prefix + "-" + u[0:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
}

// JoinRequest is a JoinGroup request with its connection's identity.
type JoinRequest struct {
	Req        *kmsg.JoinGroupRequest
	ClientID   string
	ClientHost string
}

func joinError(req *kmsg.JoinGroupRequest, code int16, memberID string) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = code
	resp.Generation = -1
	resp.MemberID = memberID
	return resp
}

// maxString is the longest string an int16 length holds. The group's
// records in __consumer_offsets (GroupMetadataValue v3, OffsetCommitKey v1)
// and the answers to older clients (ListGroups v0-2, DescribeGroups v0-4)
// carry group ids, instance ids and protocol names that way; a longer one,
// which a flexible request can carry, would be written with a wrapped
// length and make those records and answers unreadable.
const maxString = math.MaxInt16

func fitsInt16(s string) bool { return len(s) <= maxString }

// validGroupID: not empty, and short enough for the group's records.
func validGroupID(id string) bool { return id != "" && fitsInt16(id) }

func protocolNamesFit(ps []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range ps {
		if !fitsInt16(p.Name) {
			return false
		}
	}
	return true
}

// JoinGroup handles a join; reply is called once, possibly much later
// (when the rebalance completes).
func (c *Coordinator) JoinGroup(jr JoinRequest, reply func(*kmsg.JoinGroupResponse)) {
	req := jr.Req
	if !validGroupID(req.Group) {
		reply(joinError(req, kerr.InvalidGroupID.Code, req.MemberID))
		return
	}
	// Not ours (or loading) comes before validating the request, as in
	// Kafka.
	if _, code := c.lookup(req.Group, false); code != 0 {
		reply(joinError(req, code, req.MemberID))
		return
	}
	switch {
	case time.Duration(req.SessionTimeoutMillis)*time.Millisecond < c.cfg.MinSessionTimeout,
		time.Duration(req.SessionTimeoutMillis)*time.Millisecond > c.cfg.MaxSessionTimeout:
		reply(joinError(req, kerr.InvalidSessionTimeout.Code, req.MemberID))
		return
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		reply(joinError(req, kerr.InconsistentGroupProtocol.Code, req.MemberID))
		return
	case !fitsInt16(req.ProtocolType) || req.InstanceID != nil && !fitsInt16(*req.InstanceID) || !protocolNamesFit(req.Protocols):
		reply(joinError(req, kerr.InvalidRequest.Code, req.MemberID))
		return
	}
	g, code := c.lookup(req.Group, req.MemberID == "")
	if code != 0 {
		reply(joinError(req, code, req.MemberID))
		return
	}
	if g == nil {
		reply(joinError(req, kerr.UnknownMemberID.Code, req.MemberID))
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.join(jr, reply)
}

func (g *Group) join(jr JoinRequest, reply func(*kmsg.JoinGroupResponse)) {
	req := jr.Req
	if g.state == Dead {
		reply(joinError(req, g.deadCode(), req.MemberID))
		return
	}
	protos := make([]protocol, len(req.Protocols))
	for i, p := range req.Protocols {
		protos[i] = protocol{p.Name, append([]byte(nil), p.Metadata...)}
	}
	if !g.supports(req.ProtocolType, protos) {
		reply(joinError(req, kerr.InconsistentGroupProtocol.Code, req.MemberID))
		return
	}
	rebalanceTimeout := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalanceTimeout <= 0 {
		rebalanceTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	}
	sessionTimeout := time.Duration(req.SessionTimeoutMillis) * time.Millisecond

	if req.MemberID == "" {
		// group.max.size: a new member (or a new static instance) would
		// grow the group; pending members count, as they will join.
		known := req.InstanceID != nil && g.members[g.static[*req.InstanceID]] != nil
		if !known && len(g.members)+len(g.pending) >= g.c.cfg.MaxSize {
			reply(joinError(req, kerr.GroupMaxSizeReached.Code, req.MemberID))
			return
		}
		if req.InstanceID != nil {
			g.joinStatic(jr, protos, rebalanceTimeout, sessionTimeout, reply)
			return
		}
		id := newMemberID(jr.ClientID)
		if req.Version >= 4 {
			// KIP-394: hand out the id and wait for the member to come
			// back with it, so a client that dies mid-join leaves no ghost.
			g.addPending(id, sessionTimeout)
			reply(joinError(req, kerr.MemberIDRequired.Code, id))
			return
		}
		g.addMember(jr, id, protos, rebalanceTimeout, sessionTimeout, reply)
		g.prepareRebalance("new member joined")
		return
	}

	// A known member id.
	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		g.addMember(jr, req.MemberID, protos, rebalanceTimeout, sessionTimeout, reply)
		g.prepareRebalance("pending member joined")
		return
	}
	m := g.members[req.MemberID]
	if m == nil {
		reply(joinError(req, kerr.UnknownMemberID.Code, req.MemberID))
		return
	}
	if req.InstanceID != nil && g.static[*req.InstanceID] != m.id {
		reply(joinError(req, kerr.FencedInstanceID.Code, req.MemberID))
		return
	}
	switch g.state {
	case PreparingRebalance:
		g.updateMember(m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
		g.tryCompleteJoin()
	case CompletingRebalance:
		if m.sameProtocols(protos) {
			// A retried join: the result it missed still stands.
			reply(g.joinResponse(req, m))
			g.resetHeartbeat(m)
			return
		}
		g.updateMember(m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
		g.prepareRebalance("member changed protocols")
	case Stable:
		if m.id == g.leader || !m.sameProtocols(protos) {
			g.updateMember(m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
			g.prepareRebalance("leader or changed member rejoined")
			return
		}
		reply(g.joinResponse(req, m))
		g.resetHeartbeat(m)
	case Empty:
		// Not possible: an empty group has no members.
		reply(joinError(req, kerr.UnknownMemberID.Code, req.MemberID))
	}
}

// joinStatic handles a static member (KIP-345) joining without a member id.
func (g *Group) joinStatic(jr JoinRequest, protos []protocol, rebalanceTimeout, sessionTimeout time.Duration, reply func(*kmsg.JoinGroupResponse)) {
	req := jr.Req
	iid := *req.InstanceID
	oldID, known := g.static[iid]
	newID := newMemberID(iid)
	if !known || g.members[oldID] == nil {
		g.addMember(jr, newID, protos, rebalanceTimeout, sessionTimeout, reply)
		g.prepareRebalance("new static member joined")
		return
	}
	old := g.members[oldID]
	// Fence the old incarnation.
	if old.joinReply != nil {
		old.joinReply(joinError(req, kerr.FencedInstanceID.Code, oldID))
		old.joinReply = nil
	}
	if old.syncReply != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = kerr.FencedInstanceID.Code
		old.syncReply(resp)
		old.syncReply = nil
	}
	if old.heartbeat != nil {
		old.heartbeat.Stop()
	}
	delete(g.members, oldID)
	m := *old
	m.id = newID
	m.heartbeat = nil
	g.members[newID] = &m
	for i, id := range g.joinOrder {
		if id == oldID {
			g.joinOrder[i] = newID
		}
	}
	g.static[iid] = newID
	wasLeader := g.leader == oldID
	if wasLeader {
		g.leader = newID
	}
	switch g.state {
	case Stable, CompletingRebalance:
		if !m.sameProtocols(protos) {
			g.updateMember(&m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
			g.prepareRebalance("static member changed protocols")
			return
		}
		m.clientID, m.clientHost = jr.ClientID, jr.ClientHost
		m.sessionTimeout, m.rebalanceTimeout = sessionTimeout, rebalanceTimeout
		// No rebalance: the member gets its current generation back; the
		// leader is told to skip assignment (v9) or gets the member list
		// to reassign the same way.
		resp := g.joinResponse(req, &m)
		if wasLeader {
			if req.Version >= 9 {
				resp.SkipAssignment = true
			}
			resp.Members = g.memberList()
		}
		g.resetHeartbeat(&m)
		if _, _, err := g.persistLocked(); err != nil {
			// The replacement is not stored: tell the new incarnation and
			// rebalance, so nobody acts on membership that a restart
			// would not remember.
			reply(joinError(req, storeErrorCode(err), newID))
			g.prepareRebalance("storing a static member replacement failed")
			return
		}
		reply(resp)
	case PreparingRebalance:
		g.updateMember(&m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
		g.tryCompleteJoin()
	default:
		g.updateMember(&m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
		g.prepareRebalance("static member joined")
	}
}

// supports reports whether a member with these protocols may join.
func (g *Group) supports(protocolType string, protos []protocol) bool {
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protos {
		if g.allSupport(p.name) {
			return true
		}
	}
	return false
}

func (g *Group) allSupport(name string) bool {
	for _, m := range g.members {
		if m.metadataFor(name) == nil && !hasProtocol(m, name) {
			return false
		}
	}
	return true
}

func hasProtocol(m *member, name string) bool {
	for _, p := range m.protocols {
		if p.name == name {
			return true
		}
	}
	return false
}

func (g *Group) addPending(id string, sessionTimeout time.Duration) {
	g.pending[id] = guard.AfterFunc(sessionTimeout, g.c.log, "group pending-member timer", func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			g.tryCompleteJoin()
		}
	})
}

func (g *Group) addMember(jr JoinRequest, id string, protos []protocol, rebalanceTimeout, sessionTimeout time.Duration, reply func(*kmsg.JoinGroupResponse)) {
	req := jr.Req
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	m := &member{id: id, isNew: true}
	if req.InstanceID != nil {
		iid := *req.InstanceID
		m.instanceID = &iid
		g.static[iid] = id
	}
	g.members[id] = m
	g.joinOrder = append(g.joinOrder, id)
	if g.leader == "" {
		g.leader = id
	}
	g.updateMember(m, jr, protos, rebalanceTimeout, sessionTimeout, reply)
}

func (g *Group) updateMember(m *member, jr JoinRequest, protos []protocol, rebalanceTimeout, sessionTimeout time.Duration, reply func(*kmsg.JoinGroupResponse)) {
	if m.joinReply != nil {
		// A second join while the first still waits: answer the first so
		// its connection's responses keep flowing; the second takes its
		// place in the rebalance.
		old := kmsg.NewPtrJoinGroupResponse()
		old.Version = m.joinVersion
		old.ErrorCode = kerr.RebalanceInProgress.Code
		old.Generation = -1
		old.MemberID = m.id
		m.joinReply(old)
	}
	m.clientID, m.clientHost = jr.ClientID, jr.ClientHost
	m.protocols = protos
	m.protocolType = jr.Req.ProtocolType
	m.rebalanceTimeout, m.sessionTimeout = rebalanceTimeout, sessionTimeout
	m.joinReply = reply
	m.joinVersion = jr.Req.Version
	g.resetHeartbeat(m)
}

func (g *Group) removeMember(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.heartbeat != nil {
		m.heartbeat.Stop()
	}
	delete(g.members, id)
	for i, mid := range g.joinOrder {
		if mid == id {
			g.joinOrder = append(g.joinOrder[:i], g.joinOrder[i+1:]...)
			break
		}
	}
	if m.instanceID != nil && g.static[*m.instanceID] == id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == id {
		g.leader = ""
		if len(g.joinOrder) > 0 {
			g.leader = g.joinOrder[0]
		}
	}
}

// prepareRebalance moves the group to PreparingRebalance and arms the
// timer that completes the join phase.
func (g *Group) prepareRebalance(reason string) {
	if g.state == CompletingRebalance {
		// Members waiting in SyncGroup must rejoin.
		for _, m := range g.members {
			if m.syncReply != nil {
				resp := kmsg.NewPtrSyncGroupResponse()
				resp.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncReply(resp)
				m.syncReply = nil
			}
		}
	}
	wasEmpty := g.state == Empty
	if g.state != PreparingRebalance {
		g.setState(PreparingRebalance)
		g.c.log.Debug("rebalance", "group", g.id, "reason", reason, "generation", g.generation, "members", len(g.members))
		if wasEmpty && g.c.cfg.InitialRebalanceDelay > 0 {
			g.initialDelay = true
			g.delayEnd = time.Now().Add(g.maxRebalanceTimeout())
			g.armRebalanceTimer(minDur(g.c.cfg.InitialRebalanceDelay, g.maxRebalanceTimeout()))
			return
		}
		g.initialDelay = false
		g.armRebalanceTimer(g.maxRebalanceTimeout())
	} else if g.initialDelay {
		// Another member arrived during the initial delay: wait one more
		// delay for stragglers, within the rebalance timeout.
		if rem := time.Until(g.delayEnd); rem > 0 {
			g.armRebalanceTimer(minDur(g.c.cfg.InitialRebalanceDelay, rem))
		}
		return
	}
	g.tryCompleteJoin()
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func (g *Group) maxRebalanceTimeout() time.Duration {
	var max time.Duration
	for _, m := range g.members {
		if m.rebalanceTimeout > max {
			max = m.rebalanceTimeout
		}
	}
	if max <= 0 {
		max = time.Second
	}
	return max
}

func (g *Group) armRebalanceTimer(d time.Duration) {
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
	}
	epoch := g.epoch
	g.rebalanceTimer = guard.AfterFunc(d, g.c.log, "group rebalance timer", func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.epoch != epoch || g.state != PreparingRebalance {
			return
		}
		if g.initialDelay {
			g.initialDelay = false
			// Continue as a normal join phase bounded by the rebalance
			// timeout that remains.
			if g.allJoined() {
				g.completeJoin()
				return
			}
			g.armRebalanceTimerAt(epoch, time.Until(g.delayEnd))
			return
		}
		g.completeJoin()
	})
}

func (g *Group) armRebalanceTimerAt(epoch uint64, d time.Duration) {
	if d < 0 {
		d = 0
	}
	g.rebalanceTimer = guard.AfterFunc(d, g.c.log, "group rebalance timer", func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.epoch == epoch && g.state == PreparingRebalance && !g.initialDelay {
			g.completeJoin()
		}
	})
}

func (g *Group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.joinReply == nil {
			return false
		}
	}
	return true
}

func (g *Group) tryCompleteJoin() {
	if g.state == PreparingRebalance && !g.initialDelay && g.allJoined() {
		g.completeJoin()
	}
}

// completeJoin ends the join phase: members that did not rejoin are
// dropped, the generation advances and every joined member is answered.
func (g *Group) completeJoin() {
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
	}
	for _, id := range append([]string(nil), g.joinOrder...) {
		if m := g.members[id]; m != nil && m.joinReply == nil {
			g.c.log.Debug("member did not rejoin in time", "group", g.id, "member", id)
			g.removeMember(id)
		}
	}
	for id, t := range g.pending {
		t.Stop()
		delete(g.pending, id)
	}
	g.generation++
	if len(g.members) == 0 {
		g.protocol = ""
		g.leader = ""
		g.setState(Empty)
		// Nobody is left to tell if this fails; persistLocked logs it, and
		// a restart then remembers the last stored generation instead.
		_, _, _ = g.persistLocked()
		return
	}
	g.protocol = g.selectProtocol()
	if g.members[g.leader] == nil {
		g.leader = g.joinOrder[0]
	}
	g.setState(CompletingRebalance)
	for _, m := range g.members {
		resp := g.joinResponse(nil, m)
		resp.Version = m.joinVersion
		if m.id == g.leader {
			resp.Members = g.memberList()
		}
		m.joinReply(resp)
		m.joinReply = nil
		m.isNew = false
		m.assignment = nil
		g.resetHeartbeat(m)
	}
	// Members that never send SyncGroup are dropped after the rebalance
	// timeout, as in Kafka (KIP-814's pending sync).
	epoch := g.epoch
	guard.AfterFunc(g.maxRebalanceTimeout(), g.c.log, "group pending-sync timer", func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.epoch != epoch || g.state != CompletingRebalance {
			return
		}
		for _, id := range append([]string(nil), g.joinOrder...) {
			if m := g.members[id]; m != nil && m.syncReply == nil {
				g.removeMember(id)
			}
		}
		g.prepareRebalance("members did not sync in time")
	})
}

// joinResponse is a successful join result for m (no member list).
func (g *Group) joinResponse(req *kmsg.JoinGroupRequest, m *member) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	if req != nil {
		resp.Version = req.Version
	}
	resp.Generation = g.generation
	pt, proto := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &proto
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	resp.Members = []kmsg.JoinGroupResponseMember{}
	return resp
}

func (g *Group) memberList() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.members))
	for _, id := range g.joinOrder {
		m := g.members[id]
		if m == nil {
			continue
		}
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = m.instanceID
		jm.ProtocolMetadata = m.metadataFor(g.protocol)
		out = append(out, jm)
	}
	return out
}

// selectProtocol picks, among the protocols every member supports, the
// one most members prefer (each votes for its first supported choice).
func (g *Group) selectProtocol() string {
	votes := map[string]int{}
	var order []string
	for _, id := range g.joinOrder {
		m := g.members[id]
		for _, p := range m.protocols {
			if g.allSupport(p.name) {
				if votes[p.name] == 0 {
					order = append(order, p.name)
				}
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, name := range order {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// resetHeartbeat restarts m's session timer.
func (g *Group) resetHeartbeat(m *member) {
	if m.heartbeat != nil {
		m.heartbeat.Stop()
	}
	id := m.id
	m.heartbeat = guard.AfterFunc(m.sessionTimeout, g.c.log, "group session timer", func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		cur := g.members[id]
		if cur != m {
			return
		}
		// A member parked in JoinGroup or SyncGroup is alive.
		if m.joinReply != nil || m.syncReply != nil {
			g.resetHeartbeat(m)
			return
		}
		g.c.log.Info("member session expired", "group", g.id, "member", id)
		g.removeMember(id)
		g.memberLeft("member session expired")
	})
}

// memberLeft reacts to a member being removed.
func (g *Group) memberLeft(reason string) {
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalance(reason)
	case PreparingRebalance:
		g.tryCompleteJoin()
		if len(g.members) == 0 && len(g.pending) == 0 && !g.initialDelay {
			g.completeJoin()
		}
	}
}

func (g *Group) shutdown() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
	}
	for _, t := range g.pending {
		t.Stop()
	}
	for _, m := range g.members {
		if m.heartbeat != nil {
			m.heartbeat.Stop()
		}
		if m.joinReply != nil {
			req := kmsg.NewPtrJoinGroupRequest()
			req.Version = m.joinVersion
			m.joinReply(joinError(req, kerr.CoordinatorNotAvailable.Code, m.id))
			m.joinReply = nil
		}
		if m.syncReply != nil {
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			m.syncReply(resp)
			m.syncReply = nil
		}
	}
	g.epoch++
}

// drop takes the group out of service for good (its partition was
// unloaded): every timer is stopped, every parked request is answered
// code, and the group becomes Dead with gone = code so that requests still
// holding this Group object get code too. Timers that already fired and
// wait for g.mu find the epoch moved on or their member gone. Callers hold
// g.mu.
func (g *Group) drop(code int16) {
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
	}
	for id, t := range g.pending {
		t.Stop()
		delete(g.pending, id)
	}
	for id, m := range g.members {
		if m.joinReply != nil {
			req := kmsg.NewPtrJoinGroupRequest()
			req.Version = m.joinVersion
			m.joinReply(joinError(req, code, m.id))
			m.joinReply = nil
		}
		if m.syncReply != nil {
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode = code
			m.syncReply(resp)
			m.syncReply = nil
		}
		g.removeMember(id)
	}
	for t, fail := range g.parked {
		delete(g.parked, t)
		fail(code)
	}
	g.initialDelay = false
	g.gone = code
	g.setState(Dead)
}
