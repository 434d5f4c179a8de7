// Package controller is the cluster's control plane: the decisions KRaft's
// active controller makes (broker registration and fencing, replica
// placement, leader election, topic and config changes, producer-id
// blocks), each validated against the current metadata image and committed
// as one batch of records through the metadata quorum.
//
// Every voter runs a Controller; only the one whose node leads the quorum
// decides (the others answer NOT_CONTROLLER). Decisions are serialized by
// one mutex and each waits until its batch is applied, so the next decision
// validates against an image that includes it.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/metadata"
)

// Quorum is what the controller needs of the metadata quorum.
type Quorum interface {
	// Propose commits data and waits until it is applied locally.
	Propose(ctx context.Context, data []byte) (uint64, error)
	// IsLeader reports whether this node leads the quorum now and has
	// applied everything committed before its term (quorum.Status's
	// LeaderReady), so decisions validate against a current image.
	IsLeader() bool
}

// Config are the controller's settings (Kafka property in comments).
type Config struct {
	NodeID int32
	// SessionTimeout is broker.session.timeout.ms (9 s): a broker with no
	// heartbeat for this long is fenced.
	SessionTimeout time.Duration
	// DefaultPartitions and DefaultReplicationFactor are num.partitions and
	// default.replication.factor, used when a request says -1.
	DefaultPartitions        int32
	DefaultReplicationFactor int16
	// MaxPartitionsPerRequest bounds one CreateTopics or CreatePartitions
	// request (KRaft's fixed 10,000).
	MaxPartitionsPerRequest int32
	// ProducerIDBlock is how many producer ids one allocation hands out.
	ProducerIDBlock int64
	// UncleanElection is unclean.leader.election.enable's cluster default;
	// a topic config overrides it.
	UncleanElection bool
	// AutoLeaderRebalance is auto.leader.rebalance.enable: every
	// LeaderImbalanceCheckInterval (leader.imbalance.check.interval.seconds,
	// 300 s) leadership moves back to preferred replicas of brokers whose
	// share of such partitions led by others is above
	// LeaderImbalancePerBrokerPercentage (leader.imbalance.per.broker.percentage, 10).
	AutoLeaderRebalance                bool
	LeaderImbalanceCheckInterval       time.Duration
	LeaderImbalancePerBrokerPercentage int
	Logger                             *slog.Logger
	Now                                func() time.Time
}

// Error is a decision refused with a Kafka error code and message.
type Error struct {
	Code    int16
	Message string
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	if k := kerr.ErrorForCode(e.Code); k != nil {
		return k.Error()
	}
	return fmt.Sprintf("error code %d", e.Code)
}

func refuse(k *kerr.Error, format string, args ...any) *Error {
	return &Error{Code: k.Code, Message: fmt.Sprintf(format, args...)}
}

// ErrNotController is returned on a voter that does not lead the quorum.
var ErrNotController = &Error{Code: kerr.NotController.Code, Message: "this node is not the active controller"}

// Controller makes the cluster's metadata decisions.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	q     Quorum
	state *metadata.State

	mu sync.Mutex // serializes decisions
	// lastSeen is each broker's last heartbeat, as this node saw it. Soft
	// state: a new active controller starts every broker's session afresh.
	lastSeen map[int32]time.Time
	// heard marks brokers this controller had a heartbeat from in its
	// current leadership (lastSeen is also set when leadership starts).
	heard map[int32]bool
	// caughtUp is the metadata offset each broker last said it had
	// published (its heartbeats), for WaitCaughtUp.
	caughtUp   map[int32]uint64
	wasLeader  bool
	fenceCheck time.Time
	// nextRebalance is when the next preferred-leader rebalance check is
	// due (a new leadership waits a whole interval first).
	nextRebalance time.Time
}

// New makes a controller over a quorum and the state it applies to.
func New(cfg Config, q Quorum, state *metadata.State) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 9 * time.Second
	}
	if cfg.MaxPartitionsPerRequest <= 0 {
		cfg.MaxPartitionsPerRequest = 10_000
	}
	if cfg.ProducerIDBlock <= 0 {
		cfg.ProducerIDBlock = 1000
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultReplicationFactor <= 0 {
		cfg.DefaultReplicationFactor = 1
	}
	if cfg.LeaderImbalanceCheckInterval <= 0 {
		cfg.LeaderImbalanceCheckInterval = 300 * time.Second
	}
	if cfg.LeaderImbalancePerBrokerPercentage < 0 {
		cfg.LeaderImbalancePerBrokerPercentage = 10
	}
	return &Controller{cfg: cfg, log: cfg.Logger, q: q, state: state, lastSeen: map[int32]time.Time{}, heard: map[int32]bool{}, caughtUp: map[int32]uint64{}}
}

// Image is the metadata as this controller last applied it.
func (c *Controller) Image() *metadata.Image { return c.state.Image() }

// commit proposes records as one batch. Requires c.mu.
func (c *Controller) commit(ctx context.Context, recs []metadata.Record) (uint64, error) {
	if len(recs) == 0 {
		return c.state.Image().Offset, nil
	}
	data, err := metadata.EncodeBatch(recs)
	if err != nil {
		return 0, err
	}
	return c.q.Propose(ctx, data)
}

// lead checks leadership and, on a new term of leadership, restarts every
// broker's session: heartbeats went to the previous leader. Requires c.mu.
func (c *Controller) lead() error {
	if !c.q.IsLeader() {
		c.wasLeader = false
		return ErrNotController
	}
	if !c.wasLeader {
		c.wasLeader = true
		now := c.cfg.Now()
		clear(c.lastSeen)
		clear(c.heard)
		for _, b := range c.state.Image().Brokers() {
			c.lastSeen[b.ID] = now
		}
		c.nextRebalance = now.Add(c.cfg.LeaderImbalanceCheckInterval)
	}
	return nil
}

// Registration is a BrokerRegistration request.
type Registration struct {
	ID            int32
	IncarnationID metadata.UUID
	Listeners     []metadata.Endpoint
	Rack          string
}

// RegisterBroker registers a broker (fenced until it catches up) and
// returns its new epoch, which is the offset of the registration.
func (c *Controller) RegisterBroker(ctx context.Context, r Registration) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return 0, err
	}
	im := c.state.Image()
	if old := im.Broker(r.ID); old != nil && old.IncarnationID != r.IncarnationID && !old.Fenced &&
		c.heard[r.ID] && c.cfg.Now().Sub(c.lastSeen[r.ID]) < c.cfg.SessionTimeout {
		// Another live process claims this id (as in Kafka, a restarted
		// broker waits out its old session; a controller that has not
		// heard from the old incarnation lets the new one in).
		return 0, refuse(kerr.DuplicateBrokerRegistration, "another broker is registered with node.id %d", r.ID)
	}
	// The epoch must be known before the record is written: use the next
	// offset, which the quorum hands out in order (this node is the only
	// proposer while it leads, and decisions are serialized).
	epoch := int64(im.Offset) + 1
	recs := []metadata.Record{metadata.RegisterBroker{ID: r.ID, Epoch: epoch, IncarnationID: r.IncarnationID,
		Listeners: r.Listeners, Rack: r.Rack, Fenced: true}}
	// A re-registration replaces the old incarnation: it leaves every ISR
	// it was in, like a fenced broker.
	if old := im.Broker(r.ID); old != nil && !old.Fenced {
		recs = append(recs, c.removeFromPartitions(im, r.ID, nil)...)
	}
	off, err := c.commit(ctx, recs)
	if err != nil {
		return 0, err
	}
	if int64(off) != epoch {
		// An entry from an earlier term slipped in between: register again
		// with an epoch that matches, so epochs stay offsets.
		epoch = int64(off)
		if _, err := c.commit(ctx, []metadata.Record{metadata.RegisterBroker{ID: r.ID, Epoch: epoch,
			IncarnationID: r.IncarnationID, Listeners: r.Listeners, Rack: r.Rack, Fenced: true}}); err != nil {
			return 0, err
		}
	}
	c.lastSeen[r.ID] = c.cfg.Now()
	c.heard[r.ID] = false
	c.log.Info("broker registered", "broker", r.ID, "epoch", epoch, "rack", r.Rack)
	return epoch, nil
}

// Heartbeat is a BrokerHeartbeat request.
type Heartbeat struct {
	ID    int32
	Epoch int64
	// CaughtUp is the metadata offset the broker has applied.
	CaughtUp     uint64
	WantFence    bool
	WantShutDown bool
}

// HeartbeatResult is the answer to a heartbeat.
type HeartbeatResult struct {
	Fenced         bool
	ShouldShutDown bool
}

// BrokerHeartbeat records a heartbeat, unfences a caught-up broker, and
// runs a controlled shutdown: leadership moves away from a broker that
// wants to shut down, and it is told to go once it leads nothing.
func (c *Controller) BrokerHeartbeat(ctx context.Context, h Heartbeat) (HeartbeatResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return HeartbeatResult{}, err
	}
	im := c.state.Image()
	b := im.Broker(h.ID)
	if b == nil || b.Epoch != h.Epoch {
		return HeartbeatResult{}, refuse(kerr.StaleBrokerEpoch, "broker %d epoch %d is not the registered one", h.ID, h.Epoch)
	}
	c.lastSeen[h.ID] = c.cfg.Now()
	c.heard[h.ID] = true
	c.caughtUp[h.ID] = max(c.caughtUp[h.ID], h.CaughtUp)
	var recs []metadata.Record
	switch {
	case h.WantShutDown:
		if !b.InControlledShutdown {
			yes := true
			recs = append(recs, metadata.BrokerChange{ID: b.ID, Epoch: b.Epoch, InControlledShutdown: &yes})
		}
		recs = append(recs, c.removeFromPartitions(im, b.ID, nil)...)
	case b.Fenced && !h.WantFence && h.CaughtUp >= uint64(b.Epoch):
		no := false
		recs = append(recs, metadata.BrokerChange{ID: b.ID, Epoch: b.Epoch, Fenced: &no})
		recs = append(recs, c.electOffline(im, b.ID)...)
	case !b.Fenced && h.WantFence:
		recs = append(recs, c.fence(im, b)...)
	}
	if _, err := c.commit(ctx, recs); err != nil {
		return HeartbeatResult{}, err
	}
	im = c.state.Image()
	b = im.Broker(h.ID)
	res := HeartbeatResult{Fenced: b == nil || b.Fenced}
	if h.WantShutDown {
		res.ShouldShutDown = !leadsAny(im, h.ID)
	}
	return res, nil
}

// WaitCaughtUp waits until every responsive broker (unfenced, heard from
// in this leadership within the last fresh) has reported in a heartbeat
// that it published offset, or ctx ends, and reports whether they all
// did. Admin requests wait for it before they are answered, so a client's
// next request sees its change on whichever broker it asks; a broker that
// went quiet (killed, cut off) is not waited for.
func (c *Controller) WaitCaughtUp(ctx context.Context, offset uint64, fresh time.Duration) bool {
	for {
		c.mu.Lock()
		behind := false
		now := c.cfg.Now()
		for _, b := range c.state.Image().Brokers() {
			if !b.Fenced && c.heard[b.ID] && now.Sub(c.lastSeen[b.ID]) < fresh && c.caughtUp[b.ID] < offset {
				behind = true
				break
			}
		}
		c.mu.Unlock()
		if !behind {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func leadsAny(im *metadata.Image, id int32) bool {
	for _, t := range im.Topics() {
		for _, p := range t.Partitions {
			if p.Leader == id {
				return true
			}
		}
	}
	return false
}

// Tick fences brokers whose session expired and runs the periodic
// preferred-leader rebalance when it is due. The server calls it
// periodically on every voter; it does nothing where this node does not
// lead.
func (c *Controller) Tick(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return nil
	}
	im := c.state.Image()
	now := c.cfg.Now()
	var recs []metadata.Record
	for _, b := range im.Brokers() {
		seen, ok := c.lastSeen[b.ID]
		if !ok {
			c.lastSeen[b.ID] = now
			continue
		}
		if !b.Fenced && now.Sub(seen) >= c.cfg.SessionTimeout {
			c.log.Warn("fencing broker: no heartbeat within broker.session.timeout.ms", "broker", b.ID, "last_heartbeat", seen)
			recs = append(recs, c.fence(im, b)...)
			// Apply batch by batch: several fenced brokers interact
			// through the partitions they share.
			if _, err := c.commit(ctx, recs); err != nil {
				return err
			}
			recs = recs[:0]
			im = c.state.Image()
		}
	}
	return c.rebalance(ctx, now)
}

// fence fences a broker and takes it out of every ISR and leadership.
func (c *Controller) fence(im *metadata.Image, b *metadata.Broker) []metadata.Record {
	yes := true
	recs := []metadata.Record{metadata.BrokerChange{ID: b.ID, Epoch: b.Epoch, Fenced: &yes}}
	return append(recs, c.removeFromPartitions(im, b.ID, map[int32]bool{b.ID: true})...)
}

// removeFromPartitions takes broker id out of every ISR (except where it is
// the last member, which Kafka keeps so the last known-good replica is
// remembered) and elects new leaders where it led. unavailable lists
// brokers that cannot lead (being fenced in the same batch).
func (c *Controller) removeFromPartitions(im *metadata.Image, id int32, unavailable map[int32]bool) []metadata.Record {
	if unavailable == nil {
		unavailable = map[int32]bool{}
	}
	unavailable[id] = true
	var recs []metadata.Record
	for _, t := range im.Topics() {
		for pi, p := range t.Partitions {
			inISR := slices.Contains(p.ISR, id)
			if !inISR && p.Leader != id {
				continue
			}
			isr := p.ISR
			if inISR && len(p.ISR) > 1 {
				isr = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			}
			ch := metadata.PartitionChange{TopicID: t.ID, Partition: int32(pi), ISR: isr}
			if p.Leader == id {
				leader, unclean := c.elect(im, t, p, isr, unavailable)
				setLeader(&ch, leader, unclean)
			}
			c.completeIfDone(im, t, p, &ch, unavailable)
			recs = append(recs, ch)
		}
	}
	return recs
}

// setLeader makes the change elect leader; an unclean election leaves the
// new leader alone in the ISR and marks the partition (Kafka's
// LeaderRecoveryState RECOVERING).
func setLeader(ch *metadata.PartitionChange, leader int32, unclean bool) {
	ch.Leader = &leader
	if unclean {
		ch.ISR = []int32{leader}
		u := true
		ch.Unclean = &u
	}
}

// electOffline elects leaders for leaderless partitions that broker id
// (just unfenced) can now lead.
func (c *Controller) electOffline(im *metadata.Image, id int32) []metadata.Record {
	var recs []metadata.Record
	for _, t := range im.Topics() {
		for pi, p := range t.Partitions {
			if p.Leader >= 0 || !slices.Contains(p.Replicas, id) {
				continue
			}
			leader, unclean := c.elect(im, t, p, p.ISR, map[int32]bool{})
			if leader < 0 && slices.Contains(p.ISR, id) {
				leader = id
			}
			if leader < 0 {
				continue
			}
			ch := metadata.PartitionChange{TopicID: t.ID, Partition: int32(pi)}
			setLeader(&ch, leader, unclean)
			c.completeIfDone(im, t, p, &ch, nil)
			recs = append(recs, ch)
		}
	}
	return recs
}

// elect picks a leader: the first replica (in assignment order, so the
// preferred leader wins when it can) that is in the ISR, unfenced and not
// shutting down. With no such replica, an unclean election (if the topic
// or cluster allows it) takes the first live replica; otherwise -1.
func (c *Controller) elect(im *metadata.Image, t *metadata.TopicImage, p *metadata.PartitionImage, isr []int32, unavailable map[int32]bool) (leader int32, unclean bool) {
	live := func(r int32) bool {
		b := im.Broker(r)
		return b != nil && !b.Fenced && !b.InControlledShutdown && !unavailable[r]
	}
	for _, r := range p.Replicas {
		if slices.Contains(isr, r) && live(r) {
			return r, false
		}
	}
	if c.uncleanAllowed(im, t.Name) {
		for _, r := range p.Replicas {
			if live(r) {
				c.log.Warn("unclean leader election: data may be lost", "topic", t.Name, "leader", r)
				return r, true
			}
		}
	}
	return -1, false
}

func (c *Controller) uncleanAllowed(im *metadata.Image, topic string) bool {
	if v, ok := im.Configs(metadata.ResourceTopic, topic)["unclean.leader.election.enable"]; ok {
		return v == "true"
	}
	if v, ok := im.Configs(metadata.ResourceBroker, "")["unclean.leader.election.enable"]; ok {
		return v == "true"
	}
	return c.cfg.UncleanElection
}

// TopicSpec is one topic of a CreateTopics request.
type TopicSpec struct {
	Name              string
	Partitions        int32     // -1: num.partitions
	ReplicationFactor int16     // -1: default.replication.factor
	Assignments       [][]int32 // explicit replicas per partition, or nil
	Configs           map[string]string
}

// CreateResult is one topic's outcome.
type CreateResult struct {
	Name              string
	ID                metadata.UUID
	Partitions        int32
	ReplicationFactor int16
	Err               *Error
}

// CreateTopics creates topics. Each topic is its own batch, so one bad
// topic does not fail the others; validateOnly checks without creating.
// Name and config validation is the caller's (the broker's topic rules);
// this checks what needs the image: existence, collisions, brokers.
func (c *Controller) CreateTopics(ctx context.Context, specs []TopicSpec, validateOnly bool) ([]CreateResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return nil, err
	}
	total := int64(0)
	for _, s := range specs {
		n := int64(s.Partitions)
		if s.Assignments != nil {
			n = int64(len(s.Assignments))
		}
		if n < 0 {
			n = int64(c.cfg.DefaultPartitions)
		}
		total += n
	}
	out := make([]CreateResult, len(specs))
	if total > int64(c.cfg.MaxPartitionsPerRequest) {
		for i, s := range specs {
			out[i] = CreateResult{Name: s.Name, Err: refuse(kerr.PolicyViolation,
				"Excessively large number of partitions per request: %d > %d", total, c.cfg.MaxPartitionsPerRequest)}
		}
		return out, nil
	}
	for i, s := range specs {
		out[i] = c.createOne(ctx, s, validateOnly)
	}
	return out, nil
}

func (c *Controller) createOne(ctx context.Context, s TopicSpec, validateOnly bool) CreateResult {
	res := CreateResult{Name: s.Name}
	im := c.state.Image()
	if im.Topic(s.Name) != nil {
		res.Err = refuse(kerr.TopicAlreadyExists, "Topic '%s' already exists.", s.Name)
		return res
	}
	for _, t := range im.Topics() {
		if collides(t.Name, s.Name) {
			res.Err = refuse(kerr.InvalidTopicException, "Topic '%s' collides with existing topic: %s", s.Name, t.Name)
			return res
		}
	}
	assign := s.Assignments
	if assign == nil {
		n, rf := s.Partitions, s.ReplicationFactor
		if n == -1 {
			n = c.cfg.DefaultPartitions
		}
		if rf == -1 {
			rf = c.cfg.DefaultReplicationFactor
		}
		if n <= 0 {
			res.Err = refuse(kerr.InvalidPartitions, "Number of partitions was set to an invalid non-positive value.")
			return res
		}
		if rf <= 0 {
			res.Err = refuse(kerr.InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.")
			return res
		}
		var err *Error
		if assign, err = place(im, 0, n, rf); err != nil {
			res.Err = err
			return res
		}
	} else if err := checkAssignments(im, assign); err != nil {
		res.Err = err
		return res
	}
	res.Partitions, res.ReplicationFactor = int32(len(assign)), int16(len(assign[0]))
	if validateOnly {
		return res
	}
	id := metadata.NewUUID()
	for im.TopicByID(id) != nil {
		id = metadata.NewUUID()
	}
	res.ID = id
	recs := []metadata.Record{metadata.Topic{Name: s.Name, ID: id}}
	for p, replicas := range assign {
		recs = append(recs, newPartition(im, id, int32(p), replicas))
	}
	names := make([]string, 0, len(s.Configs))
	for k := range s.Configs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := s.Configs[k]
		recs = append(recs, metadata.Config{ResourceType: metadata.ResourceTopic, ResourceName: s.Name, Name: k, Value: &v})
	}
	if _, err := c.commit(ctx, recs); err != nil {
		res.Err = &Error{Code: kerr.RequestTimedOut.Code, Message: err.Error()}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			res.Err = refuse(kerr.RequestTimedOut, "creating topic %s: %v", s.Name, err)
		}
		return res
	}
	c.log.Info("created topic", "topic", s.Name, "id", id, "partitions", len(assign), "replication_factor", len(assign[0]))
	return res
}

// newPartition is a new partition's record: every live replica in the
// ISR, the first live one leading.
func newPartition(im *metadata.Image, id metadata.UUID, p int32, replicas []int32) metadata.Partition {
	var isr []int32
	for _, r := range replicas {
		if b := im.Broker(r); b != nil && !b.Fenced {
			isr = append(isr, r)
		}
	}
	leader := int32(-1)
	if len(isr) > 0 {
		leader = isr[0]
	} else {
		isr = []int32{replicas[0]}
	}
	return metadata.Partition{TopicID: id, Partition: p, Replicas: replicas, ISR: isr, Leader: leader}
}

// collides reports names that differ only in '.' versus '_', which Kafka
// refuses because they clash in metric names.
func collides(a, b string) bool {
	if a == b || len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '.' {
			x = '_'
		}
		if y == '.' {
			y = '_'
		}
		if x != y {
			return false
		}
	}
	return true
}

func checkAssignments(im *metadata.Image, assign [][]int32) *Error {
	if len(assign) == 0 {
		return refuse(kerr.InvalidReplicaAssignment, "No partitions were specified.")
	}
	rf := len(assign[0])
	for p, rs := range assign {
		if len(rs) == 0 || len(rs) != rf {
			return refuse(kerr.InvalidReplicaAssignment, "The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).", len(rs), rf)
		}
		seen := map[int32]bool{}
		for _, r := range rs {
			if seen[r] {
				return refuse(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", r)
			}
			seen[r] = true
			if im.Broker(r) == nil {
				return refuse(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", r)
			}
		}
		_ = p
	}
	return nil
}
