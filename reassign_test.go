package gregor_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor"
)

// ElectLeaders and the partition reassignment APIs in a three-node
// cluster, sent to a node that is not the active controller (so they are
// forwarded): a partition with records moves to another broker (its new
// replica catches up, joins the ISR, and the reassignment completes), and
// a preferred election moves leadership back to the first replica.
func TestClusterElectLeadersAndReassignments(t *testing.T) {
	c, err := gregor.StartCluster(gregor.ClusterOptions{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var other int32
	for deadline := time.Now().Add(10 * time.Second); other == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ctl := c.Controller(); ctl != 0 {
			other = ctl%3 + 1
		}
	}
	if other == 0 {
		t.Fatal("no active controller")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()[other-1]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "r"); err != nil {
		t.Fatal(err)
	}
	var replicas []int32
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		td, err := adm.ListTopics(ctx, "r")
		if err == nil && len(td["r"].Partitions) == 3 && td["r"].Partitions[0].Leader >= 0 {
			replicas = td["r"].Partitions[0].Replicas
			break
		}
	}
	if len(replicas) != 1 {
		t.Fatalf("r-0 replicas %v", replicas)
	}
	x := replicas[0]
	y := x%3 + 1
	to := cl.Broker(int(other))

	elect := func(typ int8, topics map[string][]int32) *kmsg.ElectLeadersResponse {
		t.Helper()
		req := kmsg.NewPtrElectLeadersRequest()
		req.ElectionType = typ
		if topics != nil {
			req.Topics = []kmsg.ElectLeadersRequestTopic{}
		}
		for topic, ps := range topics {
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic, rt.Partitions = topic, ps
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, to)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("ElectLeaders: top-level error %d", resp.ErrorCode)
		}
		return resp
	}
	codes := func(resp *kmsg.ElectLeadersResponse) map[int32]int16 {
		out := map[int32]int16{}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				out[p.Partition] = p.ErrorCode
			}
		}
		return out
	}
	alter := func(p int32, target []int32) int16 {
		t.Helper()
		req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		rt.Topic = "r"
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = p, target
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, to)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("AlterPartitionReassignments: %v %+v", err, resp)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	list := func() []kmsg.ListPartitionReassignmentsResponseTopicPartition {
		t.Helper()
		resp, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx, to)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("ListPartitionReassignments: %v %+v", err, resp)
		}
		var out []kmsg.ListPartitionReassignmentsResponseTopicPartition
		for _, rt := range resp.Topics {
			out = append(out, rt.Partitions...)
		}
		return out
	}

	// Every partition is led by its preferred replica: nothing to report
	// for all partitions, ELECTION_NOT_NEEDED for a named one.
	if resp := elect(0, nil); len(resp.Topics) != 0 {
		t.Fatalf("preferred election of all partitions: %+v", resp.Topics)
	}
	if got := codes(elect(0, map[string][]int32{"r": {0, 7}})); got[0] != kerr.ElectionNotNeeded.Code || got[7] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("named preferred election: %v", got)
	}
	if got := codes(elect(1, map[string][]int32{"r": {1}})); got[1] != kerr.ElectionNotNeeded.Code {
		t.Fatalf("unclean election with a leader: %v", got)
	}

	// Records to move along.
	pcl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	for i := 0; i < 100; i++ {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: "r", Partition: 0, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if code := alter(0, []int32{9}); code != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("unregistered broker: %d", code)
	}
	waitReplicas := func(want []int32, leader int32) {
		t.Helper()
		var last kadm.PartitionDetail
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			td, err := adm.ListTopics(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if last = td["r"].Partitions[0]; slices.Equal(last.Replicas, want) && last.Leader == leader && len(list()) == 0 {
				return
			}
		}
		t.Fatalf("r-0 in Metadata: %+v, want replicas %v led by %d", last, want, leader)
	}
	// Move r-0 from x to y: y catches up, and the reassignment completes.
	if code := alter(0, []int32{y}); code != 0 {
		t.Fatalf("reassign: %d", code)
	}
	waitReplicas([]int32{y}, y)
	t.Logf("moved to %d", y)
	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"r": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []byte
	t.Logf("consuming")
	for len(got) < 100 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r.Value[0]) })
	}
	for i, v := range got {
		if int(v) != i {
			t.Fatalf("record %d after the move is %d", i, v)
		}
	}
	// Widen it to [x y]: y keeps leading; x is preferred, and a preferred
	// election moves leadership there.
	if code := alter(0, []int32{x, y}); code != 0 {
		t.Fatalf("reassign: %d", code)
	}
	waitReplicas([]int32{x, y}, y)
	t.Logf("widened to %d,%d", x, y)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, isr, _ := partitionState(ctx, adm, "r")
		if len(isr) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ISR %v", isr)
		}
	}
	if got := codes(elect(0, map[string][]int32{"r": {0}})); got[0] != 0 {
		t.Fatalf("preferred election: %v", got)
	}
	waitReplicas([]int32{x, y}, x)
	// Nothing in progress: nothing to cancel.
	if code := alter(0, nil); code != kerr.NoReassignmentInProgress.Code {
		t.Fatalf("cancel without a reassignment: %d", code)
	}
}

// testLogger writes the nodes' logs to $GREGOR_TEST_LOG if set.
func testLogger(t *testing.T) *slog.Logger {
	path := os.Getenv("GREGOR_TEST_LOG")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A reassignment under kafka-reassign-partitions.sh's throttles (KIP-73):
// the new replica catches up at about the throttled rate, not at once.
func TestReassignmentThrottled(t *testing.T) {
	c, err := gregor.StartCluster(gregor.ClusterOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "th"); err != nil {
		t.Fatal(err)
	}
	var x int32 = -1
	for deadline := time.Now().Add(10 * time.Second); x < 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if td, err := adm.ListTopics(ctx, "th"); err == nil && len(td["th"].Partitions) == 1 {
			x = td["th"].Partitions[0].Leader
		}
	}
	y := x%3 + 1
	value := make([]byte, 10<<10)
	for i := 0; i < 150; i++ { // 1.5 MB
		cl.Produce(ctx, &kgo.Record{Topic: "th", Partition: 0, Value: value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const rate = "300000"
	set := func(name, v string) *string { return &v }
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "leader.replication.throttled.rate", Value: set("", rate)}}, x); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "follower.replication.throttled.rate", Value: set("", rate)}}, y); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "leader.replication.throttled.replicas", Value: set("", fmt.Sprintf("0:%d", x))},
		{Name: "follower.replication.throttled.replicas", Value: set("", fmt.Sprintf("0:%d", y))},
	}, "th"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // every broker has published the configs
	start := time.Now()
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = "th"
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, []int32{x, y}
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("reassign: %v %+v", err, resp)
	}
	for {
		td, err := adm.ListTopics(ctx, "th")
		if err == nil && len(td["th"].Partitions[0].ISR) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the new replica never joined the ISR")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("1.5 MB moved at a %s B/s throttle in %s", rate, took.Round(time.Millisecond))
	// 1.5 MB at 300 kB/s: about 5 s; the first second's burst makes it
	// a little less. Unthrottled it takes well under a second.
	if took < 3*time.Second {
		t.Fatalf("the throttled replica caught up in %s", took)
	}
}
