package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/metadata"
)

// assigned creates topic name with explicit replica lists.
func (h *harness) assigned(name string, assign ...[]int32) *metadata.TopicImage {
	h.t.Helper()
	res, err := h.c.CreateTopics(ctx, []TopicSpec{{Name: name, Assignments: assign}}, false)
	if err != nil || res[0].Err != nil {
		h.t.Fatalf("create %s: %v %v", name, err, res[0].Err)
	}
	return h.c.Image().Topic(name)
}

func (h *harness) part(topic string, p int32) *metadata.PartitionImage {
	return h.c.Image().Topic(topic).Partitions[p]
}

// alterISR is the leader's AlterPartition with a new ISR.
func (h *harness) alterISR(topic string, pi int32, isr ...int32) *metadata.PartitionImage {
	h.t.Helper()
	t := h.c.Image().Topic(topic)
	p := t.Partitions[pi]
	np, err := h.c.AlterPartition(ctx, p.Leader, h.ep[p.Leader], t.ID, pi, p.LeaderEpoch, p.PartitionEpoch, isr)
	if err != nil {
		h.t.Fatalf("AlterPartition %s-%d %v: %v", topic, pi, isr, err)
	}
	return np
}

func (h *harness) reassign(allowRF bool, rs ...Reassignment) []*Error {
	h.t.Helper()
	out, err := h.c.AlterPartitionReassignments(ctx, rs, allowRF)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func errCodeOf(e *Error) int16 {
	if e == nil {
		return 0
	}
	return e.Code
}

func TestReassignmentStartsAndCompletesOnISRChange(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 5; id++ {
		h.broker(id, "")
	}
	h.assigned("t", []int32{1, 2, 3})
	// Move 1,2,3 → 4,2,5: 4 and 5 are added, 1 and 3 removed; 1 leads.
	if res := h.reassign(true, Reassignment{Topic: "t", Partition: 0, Target: []int32{4, 2, 5}}); res[0] != nil {
		t.Fatal(res[0])
	}
	p := h.part("t", 0)
	if !slices.Equal(p.Replicas, []int32{4, 2, 5, 1, 3}) || !slices.Equal(p.Adding, []int32{4, 5}) || !slices.Equal(p.Removing, []int32{1, 3}) || p.Leader != 1 {
		t.Fatalf("started: %+v", p)
	}
	list, err := h.c.ListPartitionReassignments(nil)
	if err != nil || len(list) != 1 || list[0].Topic != "t" || !slices.Equal(list[0].Adding, []int32{4, 5}) {
		t.Fatalf("list: %+v %v", list, err)
	}
	if list, _ := h.c.ListPartitionReassignments([]TopicPartitions{{Topic: "t", Partitions: []int32{1}}, {Topic: "nope", Partitions: []int32{0}}}); len(list) != 0 {
		t.Fatalf("list of partitions not being reassigned: %+v", list)
	}
	// 4 catches up: not done yet.
	p = h.alterISR("t", 0, 1, 2, 3, 4)
	if !inProgress(p) || !slices.Equal(p.ISR, []int32{1, 2, 3, 4}) {
		t.Fatalf("after 4 joined: %+v", p)
	}
	// 5 catches up: the same change completes it, and 1 (removed) hands
	// leadership to the first target replica in sync.
	p = h.alterISR("t", 0, 1, 2, 3, 4, 5)
	if inProgress(p) || !slices.Equal(p.Replicas, []int32{4, 2, 5}) || !slices.Equal(p.ISR, []int32{2, 4, 5}) || p.Leader != 4 {
		t.Fatalf("completed: %+v", p)
	}
	if list, _ := h.c.ListPartitionReassignments(nil); len(list) != 0 {
		t.Fatalf("list after completion: %+v", list)
	}
}

func TestReassignmentCompletesAtOnceWhenNothingToAdd(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	h.assigned("t", []int32{1, 2, 3}, []int32{2, 3, 1})
	res := h.reassign(true,
		Reassignment{Topic: "t", Partition: 0, Target: []int32{2, 3}},    // shrink
		Reassignment{Topic: "t", Partition: 1, Target: []int32{1, 3, 2}}) // reorder
	if res[0] != nil || res[1] != nil {
		t.Fatal(res)
	}
	if p := h.part("t", 0); inProgress(p) || !slices.Equal(p.Replicas, []int32{2, 3}) || !slices.Equal(p.ISR, []int32{2, 3}) || p.Leader != 2 {
		t.Fatalf("shrunk: %+v", p)
	}
	if p := h.part("t", 1); inProgress(p) || !slices.Equal(p.Replicas, []int32{1, 3, 2}) || p.Leader != 2 {
		t.Fatalf("reordered (leader stays until a preferred election): %+v", p)
	}
	// The same target again changes nothing.
	before := h.c.Image().Offset
	if res := h.reassign(true, Reassignment{Topic: "t", Partition: 1, Target: []int32{1, 3, 2}}); res[0] != nil || h.c.Image().Offset != before {
		t.Fatalf("no-op reassignment: %v, offset %d → %d", res[0], before, h.c.Image().Offset)
	}
}

func TestReassignmentValidationAndCancel(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 4; id++ {
		h.broker(id, "")
	}
	h.assigned("t", []int32{1, 2})
	for _, c := range []struct {
		r       Reassignment
		allowRF bool
		want    int16
	}{
		{Reassignment{Topic: "nope", Partition: 0, Target: []int32{1}}, true, kerr.UnknownTopicOrPartition.Code},
		{Reassignment{Topic: "t", Partition: 7, Target: []int32{1}}, true, kerr.UnknownTopicOrPartition.Code},
		{Reassignment{Topic: "t", Partition: 0, Target: []int32{}}, true, kerr.InvalidReplicaAssignment.Code},
		{Reassignment{Topic: "t", Partition: 0, Target: []int32{3, 3}}, true, kerr.InvalidReplicaAssignment.Code},
		{Reassignment{Topic: "t", Partition: 0, Target: []int32{3, 9}}, true, kerr.InvalidReplicaAssignment.Code},
		{Reassignment{Topic: "t", Partition: 0, Target: []int32{3, 4, 1}}, false, kerr.InvalidReplicationFactor.Code},
		{Reassignment{Topic: "t", Partition: 0}, true, kerr.NoReassignmentInProgress.Code},
	} {
		if got := errCodeOf(h.reassign(c.allowRF, c.r)[0]); got != c.want {
			t.Errorf("%+v: code %d, want %d", c.r, got, c.want)
		}
	}
	if inProgress(h.part("t", 0)) {
		t.Fatal("a refused reassignment changed the partition")
	}
	// 1,2 → 3,4; 3 catches up; then cancel: back to 1,2 with 3 out of the ISR.
	if res := h.reassign(false, Reassignment{Topic: "t", Partition: 0, Target: []int32{3, 4}}); res[0] != nil {
		t.Fatal(res[0])
	}
	h.alterISR("t", 0, 1, 2, 3)
	if res := h.reassign(true, Reassignment{Topic: "t", Partition: 0}); res[0] != nil {
		t.Fatal(res[0])
	}
	p := h.part("t", 0)
	if inProgress(p) || !slices.Equal(p.Replicas, []int32{1, 2}) || !slices.Equal(p.ISR, []int32{1, 2}) || p.Leader != 1 {
		t.Fatalf("cancelled: %+v", p)
	}
}

func TestReassignmentMovesLeadershipOffRemovedReplicas(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	h.assigned("t", []int32{1, 2})
	// 1,2 → 2,3 while 1 leads: completion moves leadership to 2.
	h.reassign(true, Reassignment{Topic: "t", Partition: 0, Target: []int32{2, 3}})
	p := h.part("t", 0)
	if !slices.Equal(p.Adding, []int32{3}) || !slices.Equal(p.Removing, []int32{1}) {
		t.Fatalf("started: %+v", p)
	}
	h.alterISR("t", 0, 1, 2, 3)
	if p := h.part("t", 0); inProgress(p) || !slices.Equal(p.Replicas, []int32{2, 3}) || p.Leader != 2 {
		t.Fatalf("completed: %+v", p)
	}
	// Cancel of an unknown reassignment now refused.
	if got := errCodeOf(h.reassign(true, Reassignment{Topic: "t", Partition: 0})[0]); got != kerr.NoReassignmentInProgress.Code {
		t.Fatalf("cancel after completion: %d", got)
	}
	// 2,3 → 3,1 while 2 leads: completion elects 3, the target's first.
	h.reassign(true, Reassignment{Topic: "t", Partition: 0, Target: []int32{3, 1}})
	h.alterISR("t", 0, 2, 3) // nothing new
	p = h.part("t", 0)
	if !slices.Equal(p.Adding, []int32{1}) || p.Leader != 2 {
		t.Fatalf("second: %+v", p)
	}
	h.alterISR("t", 0, 2, 3, 1)
	if p := h.part("t", 0); inProgress(p) || !slices.Equal(p.Replicas, []int32{3, 1}) || !slices.Equal(p.ISR, []int32{3, 1}) || p.Leader != 3 {
		t.Fatalf("second completed: %+v", p)
	}
	// Fencing broker 3 (leader) of a partition moving 3,1 → 1,2 before 2
	// is in sync: leadership goes to 1, the reassignment stays.
	h.reassign(true, Reassignment{Topic: "t", Partition: 0, Target: []int32{1, 2}})
	h.clk.now = h.clk.now.Add(10 * time.Second)
	h.heartbeat(1, 2)
	if err := h.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	p = h.part("t", 0)
	if !h.c.Image().Broker(3).Fenced || p.Leader != 1 || !inProgress(p) || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("after fencing 3: %+v", p)
	}
	p = h.alterISR("t", 0, 1, 2)
	if inProgress(p) || !slices.Equal(p.Replicas, []int32{1, 2}) || p.Leader != 1 {
		t.Fatalf("third completed: %+v", p)
	}
}

func TestElectLeaders(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	h.assigned("t", []int32{1, 2}, []int32{2, 3}, []int32{3, 1})
	// Move leadership of t-0 off its preferred replica (controlled shutdown of 1).
	h.c.BrokerHeartbeat(ctx, Heartbeat{ID: 1, Epoch: h.ep[1], CaughtUp: h.c.Image().Offset, WantShutDown: true})
	h.broker(1, "")
	if p := h.part("t", 0); p.Leader != 2 {
		t.Fatalf("t-0 leader %d", p.Leader)
	}
	h.alterISR("t", 0, 2, 1)
	h.alterISR("t", 2, 3, 1)
	// Null partitions: only the partitions an election was needed for.
	res, err := h.c.ElectLeaders(ctx, ElectPreferredType, nil)
	if err != nil || len(res) != 1 || res[0].Topic != "t" || res[0].Partition != 0 || res[0].Err != nil {
		t.Fatalf("all partitions: %+v %v", res, err)
	}
	if p := h.part("t", 0); p.Leader != 1 {
		t.Fatalf("t-0 leader %d after election", p.Leader)
	}
	res, err = h.c.ElectLeaders(ctx, ElectPreferredType, []TopicPartitions{{Topic: "t", Partitions: []int32{0, 9}}, {Topic: "x", Partitions: []int32{0}}})
	if err != nil || len(res) != 3 || errCodeOf(res[0].Err) != kerr.ElectionNotNeeded.Code ||
		errCodeOf(res[1].Err) != kerr.UnknownTopicOrPartition.Code || errCodeOf(res[2].Err) != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("named: %+v %v", res, err)
	}
	// UNCLEAN: not needed while a leader exists; elects a live replica
	// (outside the ISR) once the partition has none.
	res, _ = h.c.ElectLeaders(ctx, ElectUncleanType, []TopicPartitions{{Topic: "t", Partitions: []int32{1}}})
	if errCodeOf(res[0].Err) != kerr.ElectionNotNeeded.Code {
		t.Fatalf("unclean with a leader: %+v", res)
	}
	h.alterISR("t", 1, 2) // 3 leaves t-1's ISR
	h.clk.now = h.clk.now.Add(10 * time.Second)
	h.heartbeat(1, 3)
	if err := h.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if p := h.part("t", 1); p.Leader != -1 {
		t.Fatalf("t-1 after 2 fenced: %+v", p)
	}
	res, _ = h.c.ElectLeaders(ctx, ElectPreferredType, []TopicPartitions{{Topic: "t", Partitions: []int32{1}}})
	if errCodeOf(res[0].Err) != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("preferred while 2 is fenced: %+v", res)
	}
	res, _ = h.c.ElectLeaders(ctx, ElectUncleanType, nil)
	if len(res) != 1 || res[0].Partition != 1 || res[0].Err != nil {
		t.Fatalf("unclean, all partitions: %+v", res)
	}
	if p := h.part("t", 1); p.Leader != 3 || !p.Unclean || !slices.Equal(p.ISR, []int32{3}) {
		t.Fatalf("t-1 after unclean election: %+v", p)
	}
}

func TestAutoLeaderRebalance(t *testing.T) {
	h := newHarness(t, Config{AutoLeaderRebalance: true, LeaderImbalanceCheckInterval: time.Minute, LeaderImbalancePerBrokerPercentage: 10})
	for id := int32(1); id <= 2; id++ {
		h.broker(id, "")
	}
	h.assigned("t", []int32{1, 2}, []int32{2, 1}, []int32{1, 2}, []int32{2, 1})
	h.c.BrokerHeartbeat(ctx, Heartbeat{ID: 1, Epoch: h.ep[1], CaughtUp: h.c.Image().Offset, WantShutDown: true})
	h.broker(1, "")
	for _, pi := range []int32{0, 2} {
		h.alterISR("t", pi, 2, 1)
	}
	tick := func() {
		h.heartbeat(1, 2)
		if err := h.c.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tick()
	if h.part("t", 0).Leader != 2 {
		t.Fatal("rebalanced before the interval")
	}
	h.clk.now = h.clk.now.Add(61 * time.Second)
	tick()
	for pi := int32(0); pi < 4; pi++ {
		if p := h.part("t", pi); p.Leader != p.Replicas[0] {
			t.Fatalf("t-%d leader %d after the rebalance", pi, p.Leader)
		}
	}
	// Below the percentage nothing moves: 1 of 12 partitions (8%) off.
	h2 := newHarness(t, Config{AutoLeaderRebalance: true, LeaderImbalanceCheckInterval: time.Minute, LeaderImbalancePerBrokerPercentage: 10})
	h2.broker(1, "")
	h2.broker(2, "")
	var assign [][]int32
	for i := 0; i < 12; i++ {
		assign = append(assign, []int32{1, 2})
	}
	h2.assigned("u", assign...)
	tp := h2.c.Image().Topic("u")
	two := int32(2)
	if _, err := h2.c.commit(ctx, []metadata.Record{metadata.PartitionChange{TopicID: tp.ID, Partition: 0, Leader: &two}}); err != nil {
		t.Fatal(err)
	}
	h2.clk.now = h2.clk.now.Add(61 * time.Second)
	h2.heartbeat(1, 2)
	if err := h2.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if l := h2.part("u", 0).Leader; l != 2 {
		t.Fatalf("rebalanced under the threshold: leader %d", l)
	}
}
