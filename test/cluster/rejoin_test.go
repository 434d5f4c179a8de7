package cluster

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterBrokerKillRejoin kills a broker that is not the active
// controller with SIGKILL while it leads partitions holding acks=all
// records. Within the session timeout (plus a margin) the other nodes must
// stop listing it and show its partitions without a leader; once it is
// restarted it must be listed again, lead its partitions again, and every
// record must be read back, per partition, exactly.
func TestClusterBrokerKillRejoin(t *testing.T) {
	const (
		topic      = "rejoin"
		partitions = 6
		perPart    = 200
		margin     = 3 * time.Second
	)
	c := newCluster(t, 3)
	ctrl, _ := c.activeController(30 * time.Second)
	adm := kadm.NewClient(c.client(c.addrs()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}

	// Where the partitions are, as the controller's node sees them.
	var leaders map[int32]int32
	if err := eventually(10*time.Second, func() error {
		v, err := c.metadataFrom(ctrl.directClient(), topic)
		if err != nil {
			return err
		}
		tv := v.topics[topic]
		if tv.err != 0 || len(tv.leaders) != partitions {
			return fmt.Errorf("metadata of %s: %+v", topic, tv)
		}
		for p, l := range tv.leaders {
			if l < 0 {
				return fmt.Errorf("partition %d has no leader", p)
			}
		}
		leaders = tv.leaders
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	byBroker := map[int32][]int32{}
	for p, l := range leaders {
		byBroker[l] = append(byBroker[l], p)
	}
	t.Logf("partition leaders: %v (controller: node %d)", leaders, ctrl.id)
	var victim *node
	for _, nd := range c.others(ctrl) {
		if len(byBroker[nd.id]) > 0 && (victim == nil || len(byBroker[nd.id]) > len(byBroker[victim.id])) {
			victim = nd
		}
	}
	if victim == nil {
		t.Fatalf("no broker other than the controller (node %d) leads a partition of %s: %v", ctrl.id, topic, leaders)
	}
	victimParts := byBroker[victim.id]
	sort.Slice(victimParts, func(i, j int) bool { return victimParts[i] < victimParts[j] })

	// perPart records in every partition, acks=all, each at its expected
	// offset.
	prod := c.client(c.addrs(), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	value := func(p int32, i int) string { return fmt.Sprintf("p%d-%04d", p, i) }
	for i := 0; i < perPart; i += 50 {
		var recs []*kgo.Record
		for p := int32(0); p < partitions; p++ {
			for j := i; j < i+50; j++ {
				recs = append(recs, &kgo.Record{Partition: p, Value: []byte(value(p, j))})
			}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range recs {
			if want := fmt.Sprintf("p%d-%04d", r.Partition, r.Offset); string(r.Value) != want {
				t.Fatalf("record %s acknowledged at partition %d offset %d", r.Value, r.Partition, r.Offset)
			}
		}
	}

	// Kill it: the survivors must fence it and show its partitions
	// offline within the session timeout.
	killedAt := time.Now()
	victim.kill()
	t.Logf("killed node %d, leader of partitions %v", victim.id, victimParts)
	survivors := c.others(victim)
	fenced := func(nd *node) error {
		v, err := c.metadataFrom(nd.directClient(), topic)
		if err != nil {
			return err
		}
		if _, ok := v.brokers[victim.id]; ok {
			return fmt.Errorf("node %d still lists broker %d: %v", nd.id, victim.id, v.brokers)
		}
		tv := v.topics[topic]
		for p, want := range leaders {
			got, ok := tv.leaders[p]
			if !ok {
				return fmt.Errorf("node %d: partition %d missing: %+v", nd.id, p, tv)
			}
			if want == victim.id {
				want = -1
			}
			if got != want {
				return fmt.Errorf("node %d: partition %d led by %d, want %d", nd.id, p, got, want)
			}
		}
		return nil
	}
	for _, nd := range survivors {
		if err := eventually(sessionTimeout+margin-time.Since(killedAt), func() error { return fenced(nd) }); err != nil {
			t.Fatalf("%s after the kill (session timeout %s): %v", time.Since(killedAt).Round(time.Millisecond), sessionTimeout, err)
		}
	}
	t.Logf("node %d unlisted and its partitions offline on nodes %d and %d after %s (session timeout %s)",
		victim.id, survivors[0].id, survivors[1].id, time.Since(killedAt).Round(time.Millisecond), sessionTimeout)

	// Restart it: listed again, leading its partitions again.
	restartAt := time.Now()
	victim.restart()
	for _, nd := range c.nodes {
		if err := eventually(15*time.Second, func() error {
			v, err := c.metadataFrom(nd.directClient(), topic)
			if err != nil {
				return err
			}
			if v.brokers[victim.id] != victim.addr {
				return fmt.Errorf("node %d lists brokers %v, not %d at %s", nd.id, v.brokers, victim.id, victim.addr)
			}
			for p, want := range leaders {
				if got := v.topics[topic].leaders[p]; got != want {
					return fmt.Errorf("node %d: partition %d led by %d, want %d", nd.id, p, got, want)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("node %d listed and leading %v again on every node %s after its restart began",
		victim.id, victimParts, time.Since(restartAt).Round(time.Millisecond))

	// Every record, per partition, exactly.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != perPart {
			t.Errorf("partition %d: end offset %d (%v), want %d", o.Partition, o.Offset, o.Err, perPart)
		}
	})
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cons := c.client(c.addrs(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	got := map[int32][]string{}
	total := 0
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	for total < partitions*perPart && cctx.Err() == nil {
		fs := cons.PollFetches(cctx)
		fs.EachError(func(_ string, p int32, err error) {
			if cctx.Err() == nil {
				t.Logf("fetch partition %d: %v", p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			total++
		})
	}
	for p := int32(0); p < partitions; p++ {
		if len(got[p]) != perPart {
			t.Errorf("partition %d: %d records read back, want %d", p, len(got[p]), perPart)
		}
		for i, v := range got[p] {
			if v != value(p, i) {
				t.Errorf("partition %d offset %d: %q, want %q", p, i, v, value(p, i))
				break
			}
		}
	}
	c.checkAlive()
}
