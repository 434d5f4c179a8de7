package gregor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor"
)

// Three nodes in one process: partitions spread over the brokers, clients
// that know one broker reach every partition, groups are coordinated by
// different brokers, and the cluster keeps taking admin requests when the
// active controller stops and when it returns.
func TestEmbeddedCluster(t *testing.T) {
	c, err := gregor.StartCluster(gregor.ClusterOptions{Dir: t.TempDir(), Properties: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addrs := c.Addrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) != 3 {
		t.Fatalf("brokers: %v %v", brokers, err)
	}
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, "six"); err != nil {
		t.Fatal(err)
	}
	// Each broker publishes the topic when it has applied it: Metadata
	// from another broker may lag a moment, as in Kafka.
	leaders := map[int32]int{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		td, err := adm.ListTopics(ctx, "six")
		if err != nil {
			t.Fatal(err)
		}
		clear(leaders)
		for _, p := range td["six"].Partitions {
			if p.Leader >= 0 {
				leaders[p.Leader]++
			}
		}
		if len(td["six"].Partitions) == 6 && len(leaders) == 3 {
			break
		}
	}
	if len(leaders) != 3 {
		t.Fatalf("6 partitions led by %v, want all 3 brokers", leaders)
	}

	// Produce to every partition through a client seeded with one broker,
	// consume it all back in a group.
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs[2]), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := map[string]bool{}
	for i := 0; i < 60; i++ {
		v := fmt.Sprintf("v%d", i)
		want[v] = true
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "six", Partition: int32(i % 6), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]), kgo.ConsumeTopics("six"), kgo.ConsumerGroup("g-six"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	for len(want) > 0 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { delete(want, string(r.Value)) })
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	if len(want) > 0 {
		t.Fatalf("%d records not consumed", len(want))
	}
	// Coordinators: many groups spread over the brokers.
	coords := map[int32]bool{}
	for i := 0; i < 12; i++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = fmt.Sprintf("group-%d", i)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("FindCoordinator: %v %v", err, resp)
		}
		coords[resp.NodeID] = true
	}
	if len(coords) < 2 {
		t.Errorf("12 groups all coordinated by %v", coords)
	}

	// Stop the active controller: another voter takes over.
	ctl := c.Controller()
	if ctl == 0 {
		t.Fatal("no active controller")
	}
	start := time.Now()
	if err := c.Stop(int(ctl)); err != nil {
		t.Fatal(err)
	}
	other := addrs[int(ctl)%3]
	cl2, err := kgo.NewClient(kgo.SeedBrokers(other))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	adm2 := kadm.NewClient(cl2)
	for {
		r, err := adm2.CreateTopic(ctx, 1, 1, nil, "after-stop")
		if err == nil && r.Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no create after the controller stopped: %v %v", err, r.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("controller %d stopped; next create after %v", ctl, time.Since(start).Round(time.Millisecond))
	if now := c.Controller(); now == ctl || now == 0 {
		t.Errorf("active controller after stopping %d: %d", ctl, now)
	}
	if err := c.Start(int(ctl)); err != nil {
		t.Fatal(err)
	}
	// The returning node has everything committed meanwhile.
	back, err := kgo.NewClient(kgo.SeedBrokers(addrs[ctl-1]))
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	name := "after-stop"
	rt.Topic = &name
	req.Topics = append(req.Topics, rt)
	resp, err := back.Broker(int(ctl)).RetriableRequest(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.(*kmsg.MetadataResponse); len(m.Topics) != 1 || m.Topics[0].ErrorCode != 0 || len(m.Brokers) != 3 {
		t.Fatalf("restarted node's metadata: %+v", m)
	}
}
