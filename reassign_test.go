package gregor_test

import (
	"context"
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
// forwarded). Topics have one replica until replication lands, so a
// reassignment that adds a broker stays in progress; the elections that
// move leadership are covered by the controller's unit tests.
func TestClusterElectLeadersAndReassignments(t *testing.T) {
	c, err := gregor.StartCluster(gregor.ClusterOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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

	// Reassign r-0 from [x] to [y x]: y is added and stays so (no
	// replication yet); y is now the preferred leader but not in sync.
	if code := alter(0, []int32{9}); code != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("unregistered broker: %d", code)
	}
	if code := alter(0, []int32{y, x}); code != 0 {
		t.Fatalf("reassign: %d", code)
	}
	ls := list()
	if len(ls) != 1 || ls[0].Partition != 0 || !slices.Equal(ls[0].Replicas, []int32{y, x}) || !slices.Equal(ls[0].AddingReplicas, []int32{y}) || len(ls[0].RemovingReplicas) != 0 {
		t.Fatalf("list: %+v", ls)
	}
	if got := codes(elect(0, map[string][]int32{"r": {0}})); got[0] != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("preferred election with the new replica out of sync: %v", got)
	}
	waitReplicas := func(want []int32) {
		t.Helper()
		var last kadm.PartitionDetail
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			td, err := adm.ListTopics(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if last = td["r"].Partitions[0]; slices.Equal(last.Replicas, want) && last.Leader == x {
				return
			}
		}
		t.Fatalf("r-0 in Metadata: %+v, want replicas %v led by %d", last, want, x)
	}
	waitReplicas([]int32{y, x})
	// Cancel it: back to [x]; cancelling again has nothing to cancel.
	if code := alter(0, nil); code != 0 {
		t.Fatalf("cancel: %d", code)
	}
	if ls := list(); len(ls) != 0 {
		t.Fatalf("list after cancel: %+v", ls)
	}
	if code := alter(0, nil); code != kerr.NoReassignmentInProgress.Code {
		t.Fatalf("second cancel: %d", code)
	}
	waitReplicas([]int32{x})
}
