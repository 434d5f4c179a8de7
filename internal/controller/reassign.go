package controller

// Partition reassignment (KIP-455) and leader elections on request
// (KIP-460) or by the periodic preferred-leader rebalance.
//
// A reassignment of a partition from its current replicas C to a target T
// is recorded as one PartitionChange: Replicas become T followed by the
// members of C that are not in T, Adding = T − C and Removing = C − T.
// While it is in progress the partition has every replica of both sets;
// the adding ones catch up and their leader adds them to the ISR
// (AlterPartition). The change that puts the last adding replica in the
// ISR also completes the reassignment, in the same record: Replicas = T,
// Adding and Removing cleared, the removing replicas out of the ISR, and a
// leader from T if the old one was being removed (completeIfDone, applied
// to every ISR change the controller makes). Cancelling reverts to C: the
// merged replicas minus the adding ones, the same out of the ISR.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/metadata"
)

// Reassignment is one partition of an AlterPartitionReassignments
// request: Target nil cancels the partition's reassignment.
type Reassignment struct {
	Topic     string
	Partition int32
	Target    []int32
}

// inProgress reports whether a partition is being reassigned.
func inProgress(p *metadata.PartitionImage) bool {
	return len(p.Adding) > 0 || len(p.Removing) > 0
}

func without(s []int32, drop []int32) []int32 {
	out := make([]int32, 0, len(s))
	for _, r := range s {
		if !slices.Contains(drop, r) {
			out = append(out, r)
		}
	}
	return out
}

func emptyList() *[]int32 { e := []int32{}; return &e }

// AlterPartitionReassignments starts or cancels reassignments, one result
// per entry (nil: accepted). All accepted entries commit as one batch.
// allowRFChange false (AlterPartitionReassignments v1) refuses targets
// whose size differs from the partition's replication factor.
func (c *Controller) AlterPartitionReassignments(ctx context.Context, reqs []Reassignment, allowRFChange bool) ([]*Error, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return nil, err
	}
	im := c.state.Image()
	out := make([]*Error, len(reqs))
	var recs []metadata.Record
	type tp struct {
		t string
		p int32
	}
	seen := map[tp]bool{}
	for i, r := range reqs {
		if seen[tp{r.Topic, r.Partition}] {
			out[i] = refuse(kerr.InvalidRequest, "Partition %s-%d appears more than once in the request.", r.Topic, r.Partition)
			continue
		}
		seen[tp{r.Topic, r.Partition}] = true
		ch, err := c.reassignOne(im, r, allowRFChange)
		if err != nil {
			out[i] = err
			continue
		}
		if ch != nil {
			recs = append(recs, *ch)
			if r.Target == nil {
				c.log.Info("cancelled partition reassignment", "topic", r.Topic, "partition", r.Partition, "replicas", ch.Replicas)
			} else {
				c.log.Info("started partition reassignment", "topic", r.Topic, "partition", r.Partition, "target", r.Target, "replicas", ch.Replicas)
			}
		}
	}
	if _, err := c.commit(ctx, recs); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Controller) reassignOne(im *metadata.Image, r Reassignment, allowRFChange bool) (*metadata.PartitionChange, *Error) {
	t := im.Topic(r.Topic)
	if t == nil || r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
		return nil, refuse(kerr.UnknownTopicOrPartition, "Unable to find partition %s-%d.", r.Topic, r.Partition)
	}
	p := t.Partitions[r.Partition]
	if r.Target == nil {
		return c.cancelOne(im, t, r.Partition, p)
	}
	if len(r.Target) == 0 {
		return nil, refuse(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
	}
	for i, b := range r.Target {
		if slices.Contains(r.Target[:i], b) {
			return nil, refuse(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", b)
		}
		if b < 0 || im.Broker(b) == nil {
			return nil, refuse(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", b)
		}
	}
	if rf := len(p.Replicas) - len(p.Adding); !allowRFChange && len(r.Target) != rf {
		return nil, refuse(kerr.InvalidReplicationFactor, "The replication factor is changed from %d to %d, but changing the replication factor is not allowed by this request.", rf, len(r.Target))
	}
	// The current replicas are the partition's whole replica list, so a new
	// reassignment over one in progress starts from the merged list (as
	// KRaft does): replicas still being added that the new target drops
	// become removing ones.
	cur := p.Replicas
	merged := append(slices.Clone(r.Target), without(cur, r.Target)...)
	adding := without(r.Target, cur)
	removing := without(cur, r.Target)
	ch := metadata.PartitionChange{TopicID: t.ID, Partition: r.Partition}
	next := *p
	next.Replicas, next.Adding, next.Removing = merged, adding, removing
	if !slices.Equal(merged, p.Replicas) {
		ch.Replicas = merged
	}
	if !slices.Equal(adding, p.Adding) {
		ch.Adding = &adding
	}
	if !slices.Equal(removing, p.Removing) {
		ch.Removing = &removing
	}
	c.completeIfDone(im, t, &next, &ch, nil)
	if ch.Replicas == nil && ch.Adding == nil && ch.Removing == nil && ch.ISR == nil && ch.Leader == nil {
		return nil, nil // already so
	}
	return &ch, nil
}

// cancelOne reverts a reassignment in progress to the original replicas.
func (c *Controller) cancelOne(im *metadata.Image, t *metadata.TopicImage, pi int32, p *metadata.PartitionImage) (*metadata.PartitionChange, *Error) {
	if !inProgress(p) {
		return nil, refuse(kerr.NoReassignmentInProgress, "No partition reassignment is in progress for the topic partition %s-%d.", t.Name, pi)
	}
	replicas := without(p.Replicas, p.Adding)
	isr := without(p.ISR, p.Adding)
	ch := metadata.PartitionChange{TopicID: t.ID, Partition: pi, Replicas: replicas, Adding: emptyList(), Removing: emptyList()}
	reverted := *p
	reverted.Replicas, reverted.Adding, reverted.Removing = replicas, nil, nil
	if len(isr) == 0 {
		// Only replicas being added were in sync: the original ones can
		// lead only uncleanly.
		if !c.uncleanAllowed(im, t.Name) {
			return nil, refuse(kerr.IneligibleReplica, "An unclean leader election would be required to cancel the reassignment of %s-%d, and unclean leader election is not enabled for the topic.", t.Name, pi)
		}
		leader, _ := c.elect(im, t, &reverted, nil, nil)
		if leader < 0 {
			return nil, refuse(kerr.IneligibleReplica, "None of the original replicas of %s-%d is available to lead.", t.Name, pi)
		}
		setLeader(&ch, leader, true)
		return &ch, nil
	}
	if !slices.Equal(isr, p.ISR) {
		ch.ISR = isr
	}
	if !slices.Contains(replicas, p.Leader) || !slices.Contains(isr, p.Leader) {
		leader, unclean := c.elect(im, t, &reverted, isr, nil)
		setLeader(&ch, leader, unclean)
	}
	return &ch, nil
}

// completeIfDone completes the reassignment of partition p (its image
// with the change ch applied, as far as Replicas/Adding/Removing go) if
// ch leaves every adding replica in the ISR and some non-removing replica
// in it: Replicas become the target, Adding and Removing empty, the
// removing replicas leave the ISR, and the leader moves into the target
// if it was being removed. unavailable lists brokers that cannot lead.
// KRaft's PartitionChangeBuilder does the same on every change it builds.
func (c *Controller) completeIfDone(im *metadata.Image, t *metadata.TopicImage, p *metadata.PartitionImage, ch *metadata.PartitionChange, unavailable map[int32]bool) {
	if !inProgress(p) {
		return
	}
	isr := p.ISR
	if ch.ISR != nil {
		isr = ch.ISR
	}
	for _, r := range p.Adding {
		if !slices.Contains(isr, r) {
			return
		}
	}
	target := without(p.Replicas, p.Removing)
	newISR := without(isr, p.Removing)
	if len(target) == 0 || len(newISR) == 0 {
		return
	}
	ch.Replicas, ch.Adding, ch.Removing = target, emptyList(), emptyList()
	if !slices.Equal(newISR, isr) || ch.ISR != nil {
		ch.ISR = newISR
	}
	leader := p.Leader
	if ch.Leader != nil {
		leader = *ch.Leader
	}
	if !slices.Contains(target, leader) || !slices.Contains(newISR, leader) {
		done := *p
		done.Replicas, done.Adding, done.Removing = target, nil, nil
		l, unclean := c.elect(im, t, &done, newISR, unavailable)
		// Unclean cannot happen with a non-empty ISR of target replicas
		// unless they are all unavailable; then elect says -1 or unclean.
		setLeader(ch, l, unclean)
	}
	c.log.Info("completed partition reassignment", "topic", t.Name, "partition", ch.Partition, "replicas", target)
}

// PartitionReassignment is a reassignment in progress.
type PartitionReassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
	Adding    []int32
	Removing  []int32
}

// TopicPartitions names partitions of one topic.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

// ListPartitionReassignments lists the reassignments in progress: of every
// partition (parts nil) or of the named ones; unknown topics and
// partitions, and partitions not being reassigned, are left out.
func (c *Controller) ListPartitionReassignments(parts []TopicPartitions) ([]PartitionReassignment, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return nil, err
	}
	im := c.state.Image()
	var out []PartitionReassignment
	add := func(t *metadata.TopicImage, pi int32) {
		if pi < 0 || int(pi) >= len(t.Partitions) {
			return
		}
		p := t.Partitions[pi]
		if inProgress(p) {
			out = append(out, PartitionReassignment{Topic: t.Name, Partition: pi, Replicas: slices.Clone(p.Replicas),
				Adding: slices.Clone(p.Adding), Removing: slices.Clone(p.Removing)})
		}
	}
	if parts == nil {
		for _, t := range im.Topics() {
			for pi := range t.Partitions {
				add(t, int32(pi))
			}
		}
		return out, nil
	}
	for _, tp := range parts {
		if t := im.Topic(tp.Topic); t != nil {
			for _, pi := range tp.Partitions {
				add(t, pi)
			}
		}
	}
	return out, nil
}

// Election types of ElectLeaders (v1+).
const (
	ElectPreferredType int8 = 0
	ElectUncleanType   int8 = 1
)

// ElectionResult is one partition's outcome (Err nil: elected).
type ElectionResult struct {
	Topic     string
	Partition int32
	Err       *Error
}

// ElectLeaders runs preferred or unclean elections. With parts nil it
// considers every partition and reports only those where an election was
// needed (as KRaft does); otherwise one result per named partition. The
// elections commit as one batch.
func (c *Controller) ElectLeaders(ctx context.Context, typ int8, parts []TopicPartitions) ([]ElectionResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return nil, err
	}
	if typ != ElectPreferredType && typ != ElectUncleanType {
		return nil, refuse(kerr.InvalidRequest, "Unknown election type %d", typ)
	}
	im := c.state.Image()
	var out []ElectionResult
	var recs []metadata.Record
	one := func(topic string, pi int32, all bool) {
		ch, err := c.electOne(im, typ, topic, pi)
		if all && err != nil && err.Code == kerr.ElectionNotNeeded.Code {
			return
		}
		out = append(out, ElectionResult{Topic: topic, Partition: pi, Err: err})
		if ch != nil {
			recs = append(recs, *ch)
		}
	}
	if parts == nil {
		for _, t := range im.Topics() {
			for pi := range t.Partitions {
				one(t.Name, int32(pi), true)
			}
		}
	} else {
		for _, tp := range parts {
			for _, pi := range tp.Partitions {
				one(tp.Topic, pi, false)
			}
		}
	}
	if _, err := c.commit(ctx, recs); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Controller) electOne(im *metadata.Image, typ int8, topic string, pi int32) (*metadata.PartitionChange, *Error) {
	t := im.Topic(topic)
	if t == nil {
		return nil, refuse(kerr.UnknownTopicOrPartition, "No such topic as %s", topic)
	}
	if pi < 0 || int(pi) >= len(t.Partitions) {
		return nil, refuse(kerr.UnknownTopicOrPartition, "No such partition as %s-%d", topic, pi)
	}
	p := t.Partitions[pi]
	live := func(r int32) bool {
		b := im.Broker(r)
		return b != nil && !b.Fenced && !b.InControlledShutdown
	}
	ch := metadata.PartitionChange{TopicID: t.ID, Partition: pi}
	if typ == ElectPreferredType {
		pref := p.Replicas[0]
		if p.Leader == pref {
			return nil, refuse(kerr.ElectionNotNeeded, "Leader election not needed for topic partition.")
		}
		if !slices.Contains(p.ISR, pref) || !live(pref) {
			return nil, refuse(kerr.PreferredLeaderNotAvailable, "Failed to elect leader for partition %s-%d under strategy PreferredReplicaPartitionLeaderElectionStrategy", topic, pi)
		}
		ch.Leader = &pref
		return &ch, nil
	}
	if p.Leader >= 0 {
		return nil, refuse(kerr.ElectionNotNeeded, "Leader election not needed for topic partition.")
	}
	leader, unclean := int32(-1), false
	for _, r := range p.Replicas {
		if slices.Contains(p.ISR, r) && live(r) {
			leader = r
			break
		}
	}
	if leader < 0 {
		for _, r := range p.Replicas {
			if live(r) {
				leader, unclean = r, true
				c.log.Warn("unclean leader election on request: data may be lost", "topic", topic, "partition", pi, "leader", r)
				break
			}
		}
	}
	if leader < 0 {
		return nil, refuse(kerr.EligibleLeadersNotAvailable, "Failed to elect leader for partition %s-%d under strategy UncleanLeaderElectionStrategy", topic, pi)
	}
	setLeader(&ch, leader, unclean)
	if unclean {
		next := *p
		c.completeIfDone(im, t, &next, &ch, nil)
	}
	return &ch, nil
}

// ElectPreferred moves leadership of a partition back to its preferred
// replica (the first in its assignment) when that replica is in the ISR
// and live. It reports ELECTION_NOT_NEEDED when it already leads and
// PREFERRED_LEADER_NOT_AVAILABLE when it cannot.
func (c *Controller) ElectPreferred(ctx context.Context, topic string, partition int32) error {
	res, err := c.ElectLeaders(ctx, ElectPreferredType, []TopicPartitions{{Topic: topic, Partitions: []int32{partition}}})
	if err != nil {
		return err
	}
	if e := res[0].Err; e != nil {
		return e
	}
	return nil
}

// rebalanceBatch bounds one batch of the periodic rebalance.
const rebalanceBatch = 1000

// rebalance is auto.leader.rebalance.enable's periodic check: for each
// broker, the share of the partitions it is preferred leader of (first
// replica) that it does not lead; where that share is above
// leader.imbalance.per.broker.percentage, leadership of those partitions
// moves back to it wherever it is live and in sync. Partitions being
// reassigned are left alone. Requires c.mu.
func (c *Controller) rebalance(ctx context.Context, now time.Time) error {
	if !c.cfg.AutoLeaderRebalance || now.Before(c.nextRebalance) {
		return nil
	}
	c.nextRebalance = now.Add(c.cfg.LeaderImbalanceCheckInterval)
	im := c.state.Image()
	type stat struct{ preferred, notLed int }
	stats := map[int32]*stat{}
	for _, t := range im.Topics() {
		for _, p := range t.Partitions {
			pref := p.Replicas[0]
			s := stats[pref]
			if s == nil {
				s = &stat{}
				stats[pref] = s
			}
			s.preferred++
			if p.Leader != pref {
				s.notLed++
			}
		}
	}
	var recs []metadata.Record
	moved := 0
	for _, t := range im.Topics() {
		for pi, p := range t.Partitions {
			pref := p.Replicas[0]
			s := stats[pref]
			if p.Leader == pref || inProgress(p) || s.notLed*100 <= s.preferred*c.cfg.LeaderImbalancePerBrokerPercentage {
				continue
			}
			b := im.Broker(pref)
			if b == nil || b.Fenced || b.InControlledShutdown || !slices.Contains(p.ISR, pref) {
				continue
			}
			recs = append(recs, metadata.PartitionChange{TopicID: t.ID, Partition: int32(pi), Leader: &pref})
			moved++
			if len(recs) == rebalanceBatch {
				if _, err := c.commit(ctx, recs); err != nil {
					return err
				}
				recs = recs[:0]
			}
		}
	}
	if moved > 0 {
		c.log.Info("preferred leader rebalance", "partitions", moved)
	}
	_, err := c.commit(ctx, recs)
	return err
}
