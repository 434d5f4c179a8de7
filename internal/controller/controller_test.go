package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/metadata"
)

// fakeQuorum commits at once, in order, to the state: the controller's
// logic without consensus.
type fakeQuorum struct {
	mu     sync.Mutex
	state  *metadata.State
	index  uint64
	leader atomic.Bool
}

func (q *fakeQuorum) Propose(_ context.Context, data []byte) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.index++
	return q.index, q.state.Apply(q.index, data)
}

func (q *fakeQuorum) IsLeader() bool { return q.leader.Load() }

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

type harness struct {
	t   *testing.T
	c   *Controller
	q   *fakeQuorum
	clk *clock
	ep  map[int32]int64
}

func newHarness(t *testing.T, cfg Config) *harness {
	st := metadata.NewState()
	q := &fakeQuorum{state: st}
	q.leader.Store(true)
	clk := &clock{now: time.Unix(1_000_000, 0)}
	cfg.Now = clk.Now
	return &harness{t: t, c: New(cfg, q, st), q: q, clk: clk, ep: map[int32]int64{}}
}

var ctx = context.Background()

// broker registers id in rack and makes it caught up (unfenced).
func (h *harness) broker(id int32, rack string) {
	h.t.Helper()
	ep, err := h.c.RegisterBroker(ctx, Registration{ID: id, Rack: rack, IncarnationID: metadata.UUID{byte(id)},
		Listeners: []metadata.Endpoint{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9090 + id}}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.ep[id] = ep
	res, err := h.c.BrokerHeartbeat(ctx, Heartbeat{ID: id, Epoch: ep, CaughtUp: h.c.Image().Offset})
	if err != nil || res.Fenced {
		h.t.Fatalf("broker %d still fenced after catching up: %+v %v", id, res, err)
	}
}

func (h *harness) heartbeat(ids ...int32) {
	h.t.Helper()
	for _, id := range ids {
		if _, err := h.c.BrokerHeartbeat(ctx, Heartbeat{ID: id, Epoch: h.ep[id], CaughtUp: h.c.Image().Offset}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) create(name string, n int32, rf int16, configs map[string]string) *metadata.TopicImage {
	h.t.Helper()
	res, err := h.c.CreateTopics(ctx, []TopicSpec{{Name: name, Partitions: n, ReplicationFactor: rf, Configs: configs}}, false)
	if err != nil || res[0].Err != nil {
		h.t.Fatalf("create %s: %v %v", name, err, res[0].Err)
	}
	return h.c.Image().Topic(name)
}

func code(err error) int16 {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

func TestRegistrationFencesUntilCaughtUp(t *testing.T) {
	h := newHarness(t, Config{})
	ep, err := h.c.RegisterBroker(ctx, Registration{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if b := h.c.Image().Broker(1); b == nil || !b.Fenced || b.Epoch != ep {
		t.Fatalf("a new registration must start fenced with its epoch: %+v", b)
	}
	res, _ := h.c.BrokerHeartbeat(ctx, Heartbeat{ID: 1, Epoch: ep, CaughtUp: uint64(ep) - 1})
	if !res.Fenced {
		t.Fatal("unfenced before catching up with its own registration")
	}
	res, _ = h.c.BrokerHeartbeat(ctx, Heartbeat{ID: 1, Epoch: ep, CaughtUp: uint64(ep)})
	if res.Fenced || h.c.Image().Broker(1).Fenced {
		t.Fatal("still fenced after catching up")
	}
	if _, err := h.c.BrokerHeartbeat(ctx, Heartbeat{ID: 1, Epoch: ep - 1}); code(err) != kerr.StaleBrokerEpoch.Code {
		t.Fatalf("stale epoch: %v", err)
	}
	// A second process with the same id while the first is alive.
	if _, err := h.c.RegisterBroker(ctx, Registration{ID: 1, IncarnationID: metadata.UUID{9}}); code(err) != kerr.DuplicateBrokerRegistration.Code {
		t.Fatalf("duplicate registration: %v", err)
	}
	h.q.leader.Store(false)
	if _, err := h.c.RegisterBroker(ctx, Registration{ID: 2}); code(err) != kerr.NotController.Code {
		t.Fatalf("on a non-leader: %v", err)
	}
}

func TestPlacementSpreadsLeadersAndRacks(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	tp := h.create("rf1", 6, 1, nil)
	leaders := map[int32]int{}
	for _, p := range tp.Partitions {
		leaders[p.Leader]++
	}
	if len(leaders) != 3 || leaders[1] != 2 || leaders[2] != 2 || leaders[3] != 2 {
		t.Fatalf("6 partitions over 3 brokers: leaders %v, want 2 each", leaders)
	}

	h = newHarness(t, Config{})
	racks := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
	for id := int32(1); id <= 6; id++ {
		h.broker(id, racks[id])
	}
	tp = h.create("rf3", 12, 3, nil)
	leaders = map[int32]int{}
	for i, p := range tp.Partitions {
		leaders[p.Leader]++
		seen := map[string]bool{}
		for _, r := range p.Replicas {
			seen[racks[r]] = true
		}
		if len(seen) != 3 || len(p.ISR) != 3 || p.Leader != p.Replicas[0] {
			t.Fatalf("partition %d: replicas %v (racks %v), isr %v, leader %d", i, p.Replicas, seen, p.ISR, p.Leader)
		}
	}
	for id := int32(1); id <= 6; id++ {
		if leaders[id] != 2 {
			t.Fatalf("12 partitions over 6 brokers: leaders %v, want 2 each", leaders)
		}
	}
	res, _ := h.c.CreateTopics(ctx, []TopicSpec{{Name: "rf7", Partitions: 1, ReplicationFactor: 7}}, false)
	if res[0].Err == nil || res[0].Err.Code != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("rf 7 on 6 brokers: %+v", res[0].Err)
	}
}

func TestCreateRules(t *testing.T) {
	h := newHarness(t, Config{MaxPartitionsPerRequest: 100, DefaultPartitions: 3})
	h.broker(1, "")
	h.create("a.b_c", 1, 1, nil)
	for _, tc := range []struct {
		spec TopicSpec
		want *kerr.Error
	}{
		{TopicSpec{Name: "a.b_c", Partitions: 1, ReplicationFactor: 1}, kerr.TopicAlreadyExists},
		{TopicSpec{Name: "a_b.c", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{TopicSpec{Name: "big", Partitions: 101, ReplicationFactor: 1}, kerr.PolicyViolation},
		{TopicSpec{Name: "zero", Partitions: 0, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{TopicSpec{Name: "badassign", Assignments: [][]int32{{1}, {2}}}, kerr.InvalidReplicaAssignment},
	} {
		res, _ := h.c.CreateTopics(ctx, []TopicSpec{tc.spec}, false)
		if res[0].Err == nil || res[0].Err.Code != tc.want.Code {
			t.Errorf("%s: got %+v, want %s", tc.spec.Name, res[0].Err, tc.want.Message)
		}
	}
	res, _ := h.c.CreateTopics(ctx, []TopicSpec{{Name: "dflt", Partitions: -1, ReplicationFactor: -1}}, true)
	if res[0].Err != nil || res[0].Partitions != 3 || h.c.Image().Topic("dflt") != nil {
		t.Fatalf("validate only with defaults: %+v", res[0])
	}
	if err := h.c.CreatePartitions(ctx, "a.b_c", 1, nil, false); code(err) != kerr.InvalidPartitions.Code {
		t.Fatalf("same partition count: %v", err)
	}
	if err := h.c.CreatePartitions(ctx, "a.b_c", 4, nil, false); err != nil || len(h.c.Image().Topic("a.b_c").Partitions) != 4 {
		t.Fatalf("grow to 4: %v", err)
	}
	if _, err := h.c.DeleteTopic(ctx, "a.b_c"); err != nil || h.c.Image().Topic("a.b_c") != nil {
		t.Fatalf("delete: %v", err)
	}
	h.create("a_b.c", 1, 1, nil) // no collision once the other is gone
}

// A broker that stops heartbeating is fenced after broker.session.timeout.ms:
// it leaves every ISR, leaders move to in-sync replicas, and a partition it
// was the only replica of goes offline (leader -1) keeping it in the ISR.
// When it comes back caught up, it is unfenced and leads its offline
// partitions again.
func TestSessionExpiryFencesAndElects(t *testing.T) {
	h := newHarness(t, Config{SessionTimeout: 9 * time.Second})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	rf3 := h.create("rf3", 3, 3, nil)
	rf1 := h.create("rf1", 3, 1, nil)
	h.clk.now = h.clk.now.Add(5 * time.Second)
	h.heartbeat(1, 3)
	h.c.Tick(ctx)
	if h.c.Image().Broker(2).Fenced {
		t.Fatal("fenced before the session timeout")
	}
	h.clk.now = h.clk.now.Add(5 * time.Second)
	h.heartbeat(1, 3)
	h.c.Tick(ctx)
	im := h.c.Image()
	if !im.Broker(2).Fenced {
		t.Fatal("not fenced after the session timeout")
	}
	for i, p := range im.Topic("rf3").Partitions {
		before := rf3.Partitions[i]
		if slices.Contains(p.ISR, 2) || p.Leader == 2 || p.Leader < 0 || !slices.Contains(p.ISR, p.Leader) {
			t.Fatalf("rf3-%d after fencing 2: leader %d isr %v", i, p.Leader, p.ISR)
		}
		if before.Leader == 2 && p.LeaderEpoch != before.LeaderEpoch+1 {
			t.Fatalf("rf3-%d: new leader without a new leader epoch", i)
		}
	}
	for i, p := range im.Topic("rf1").Partitions {
		if rf1.Partitions[i].Leader == 2 && (p.Leader != -1 || !slices.Equal(p.ISR, []int32{2})) {
			t.Fatalf("rf1-%d (only on 2): leader %d isr %v, want -1 and [2]", i, p.Leader, p.ISR)
		}
	}
	// Broker 2 comes back: re-registers, catches up, leads its offline partitions.
	h.broker(2, "")
	for i, p := range h.c.Image().Topic("rf1").Partitions {
		if rf1.Partitions[i].Leader == 2 && p.Leader != 2 {
			t.Fatalf("rf1-%d not led by 2 after it returned: %d", i, p.Leader)
		}
	}
}

func TestControlledShutdownMovesLeadership(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	h.create("t", 6, 3, nil)
	res, err := h.c.BrokerHeartbeat(ctx, Heartbeat{ID: 1, Epoch: h.ep[1], CaughtUp: h.c.Image().Offset, WantShutDown: true})
	if err != nil || !res.ShouldShutDown {
		t.Fatalf("controlled shutdown: %+v %v", res, err)
	}
	for i, p := range h.c.Image().Topic("t").Partitions {
		if p.Leader == 1 || slices.Contains(p.ISR, 1) {
			t.Fatalf("t-%d still has broker 1: leader %d isr %v", i, p.Leader, p.ISR)
		}
	}
	// Preferred election brings leadership back once 1 is in sync again.
	h.broker(1, "")
	tp := h.c.Image().Topic("t")
	for i, p := range tp.Partitions {
		if p.Replicas[0] != 1 {
			continue
		}
		if err := h.c.ElectPreferred(ctx, "t", int32(i)); code(err) != kerr.PreferredLeaderNotAvailable.Code {
			t.Fatalf("preferred leader not in the ISR: %v", err)
		}
		isr := append(slices.Clone(p.ISR), 1)
		if _, err := h.c.AlterPartition(ctx, p.Leader, h.ep[p.Leader], tp.ID, int32(i), p.LeaderEpoch, p.PartitionEpoch, isr); err != nil {
			t.Fatal(err)
		}
		if err := h.c.ElectPreferred(ctx, "t", int32(i)); err != nil {
			t.Fatal(err)
		}
		if l := h.c.Image().Topic("t").Partitions[i].Leader; l != 1 {
			t.Fatalf("t-%d leader %d after preferred election", i, l)
		}
		if err := h.c.ElectPreferred(ctx, "t", int32(i)); code(err) != kerr.ElectionNotNeeded.Code {
			t.Fatalf("second election: %v", err)
		}
		return
	}
	t.Fatal("no partition prefers broker 1")
}

func TestUncleanElectionOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		h := newHarness(t, Config{})
		h.broker(1, "")
		h.broker(2, "")
		cfg := map[string]string{}
		if enabled {
			cfg["unclean.leader.election.enable"] = "true"
		}
		tp, err := h.c.CreateTopics(ctx, []TopicSpec{{Name: "u", Assignments: [][]int32{{1, 2}}, Configs: cfg}}, false)
		if err != nil || tp[0].Err != nil {
			t.Fatal(err, tp[0].Err)
		}
		p := h.c.Image().Topic("u").Partitions[0]
		// The ISR shrinks to the leader alone, then the leader dies.
		if _, err := h.c.AlterPartition(ctx, 1, h.ep[1], tp[0].ID, 0, p.LeaderEpoch, p.PartitionEpoch, []int32{1}); err != nil {
			t.Fatal(err)
		}
		h.clk.now = h.clk.now.Add(10 * time.Second)
		h.heartbeat(2)
		h.c.Tick(ctx)
		p = h.c.Image().Topic("u").Partitions[0]
		switch {
		case !enabled && (p.Leader != -1 || p.Unclean):
			t.Fatalf("unclean election off: leader %d unclean %v", p.Leader, p.Unclean)
		case enabled && (p.Leader != 2 || !p.Unclean || !slices.Equal(p.ISR, []int32{2})):
			t.Fatalf("unclean election on: leader %d unclean %v isr %v", p.Leader, p.Unclean, p.ISR)
		}
	}
}

func TestAlterPartitionChecks(t *testing.T) {
	h := newHarness(t, Config{})
	for id := int32(1); id <= 3; id++ {
		h.broker(id, "")
	}
	res, _ := h.c.CreateTopics(ctx, []TopicSpec{{Name: "t", Assignments: [][]int32{{1, 2, 3}}}}, false)
	id := res[0].ID
	p := h.c.Image().Topic("t").Partitions[0]
	if _, err := h.c.AlterPartition(ctx, 2, h.ep[2], id, 0, p.LeaderEpoch, p.PartitionEpoch, []int32{2}); code(err) != kerr.NotLeaderForPartition.Code {
		t.Fatalf("from a follower: %v", err)
	}
	if _, err := h.c.AlterPartition(ctx, 1, h.ep[1], id, 0, p.LeaderEpoch, p.PartitionEpoch+1, []int32{1}); code(err) != kerr.InvalidUpdateVersion.Code {
		t.Fatalf("stale partition epoch: %v", err)
	}
	np, err := h.c.AlterPartition(ctx, 1, h.ep[1], id, 0, p.LeaderEpoch, p.PartitionEpoch, []int32{1, 3})
	if err != nil || !slices.Equal(np.ISR, []int32{1, 3}) || np.PartitionEpoch != p.PartitionEpoch+1 {
		t.Fatalf("shrink: %+v %v", np, err)
	}
	// A fenced broker cannot join.
	h.clk.now = h.clk.now.Add(10 * time.Second)
	h.heartbeat(1, 3)
	h.c.Tick(ctx)
	if _, err := h.c.AlterPartition(ctx, 1, h.ep[1], id, 0, np.LeaderEpoch, np.PartitionEpoch, []int32{1, 2, 3}); code(err) != kerr.IneligibleReplica.Code {
		t.Fatalf("fenced broker joining: %v", err)
	}
}

func TestProducerIDBlocksAreUnique(t *testing.T) {
	h := newHarness(t, Config{ProducerIDBlock: 1000})
	h.broker(1, "")
	h.broker(2, "")
	seen := map[int64]bool{}
	for i := 0; i < 5; i++ {
		for _, b := range []int32{1, 2} {
			first, n, err := h.c.AllocateProducerIDs(ctx, b, h.ep[b])
			if err != nil || n != 1000 || seen[first] || first%1000 != 0 {
				t.Fatalf("block %d for %d: %d+%d %v", i, b, first, n, err)
			}
			seen[first] = true
		}
	}
	if _, _, err := h.c.AllocateProducerIDs(ctx, 1, h.ep[1]-1); code(err) != kerr.StaleBrokerEpoch.Code {
		t.Fatalf("stale epoch: %v", err)
	}
}
