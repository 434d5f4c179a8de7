package gregor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

// partitionState is what Metadata says of partition 0 of a topic.
func partitionState(ctx context.Context, adm *kadm.Client, topic string) (leader int32, isr []int32, err error) {
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return -1, nil, err
	}
	p, ok := td[topic].Partitions[0]
	if !ok {
		return -1, nil, fmt.Errorf("no partition 0")
	}
	isr = slices.Clone(p.ISR)
	slices.Sort(isr)
	return p.Leader, isr, nil
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func produceN(ctx context.Context, cl *kgo.Client, topic string, from, n int) error {
	var first error
	for i := from; i < from+n; i++ {
		r := &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && first == nil {
				first = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return first
}

func consumeValues(t *testing.T, addrs []string, topic string, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", len(got), want)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// Replication factor 3, min.insync.replicas 2: acks=all survives the
// leader stopping, is refused with NOT_ENOUGH_REPLICAS when two of three
// brokers are gone, and resumes without a client restart when one returns.
func TestReplicationAcksAllAcrossBrokerLoss(t *testing.T) {
	c, err := gregor.StartCluster(gregor.ClusterOptions{Dir: t.TempDir(), Properties: map[string]string{
		"replica.lag.time.max.ms": "3000",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	addrs := c.Addrs()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &minISR}, "r3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a full ISR", 20*time.Second, func() bool {
		_, isr, err := partitionState(ctx, adm, "r3")
		return err == nil && len(isr) == 3
	})

	p, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(20*time.Second), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := produceN(ctx, p, "r3", 0, 500); err != nil {
		t.Fatal(err)
	}
	leader, _, _ := partitionState(ctx, adm, "r3")
	t.Logf("leader %d; stopping it", leader)
	if err := c.Stop(int(leader)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new leader", 20*time.Second, func() bool {
		l, _, err := partitionState(ctx, adm, "r3")
		return err == nil && l >= 0 && l != leader
	})
	if err := produceN(ctx, p, "r3", 500, 500); err != nil {
		t.Fatal(err)
	}
	got := consumeValues(t, addrs, "r3", 1000)
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, v)
		}
	}
	// ListOffsets gives each offset's leader epoch (KIP-320): the end is
	// in the new leader's epoch, the start in the first one. A consumer
	// validating its position with a wrong epoch would see a truncation.
	md, err := adm.Metadata(ctx, "r3")
	if err != nil {
		t.Fatal(err)
	}
	epoch := md.Topics["r3"].Partitions[0].LeaderEpoch
	ends, err := adm.ListEndOffsets(ctx, "r3")
	if err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, "r3")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := ends.Lookup("r3", 0); e.LeaderEpoch != epoch || epoch < 1 {
		t.Errorf("ListOffsets latest: epoch %d, the leader's is %d", e.LeaderEpoch, epoch)
	}
	if s, _ := starts.Lookup("r3", 0); s.LeaderEpoch != 0 {
		t.Errorf("ListOffsets earliest: epoch %d, want 0 (offset 0 was written in the first epoch)", s.LeaderEpoch)
	}

	// Two of three gone: the ISR is the leader alone, below min.insync.
	second, _, _ := partitionState(ctx, adm, "r3")
	t.Logf("stopping the second leader %d", second)
	if err := c.Stop(int(second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an ISR of one", 30*time.Second, func() bool {
		l, isr, err := partitionState(ctx, adm, "r3")
		return err == nil && l >= 0 && len(isr) == 1
	})
	short, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(1), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	err = produceN(ctx, short, "r3", 1000, 1)
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("produce with the ISR below min.insync.replicas: %v", err)
	}

	// One returns: it catches up, joins the ISR, and the same producer
	// goes on.
	if err := c.Start(int(leader)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an ISR of two", 30*time.Second, func() bool {
		_, isr, err := partitionState(ctx, adm, "r3")
		return err == nil && len(isr) == 2
	})
	if err := produceN(ctx, p, "r3", 1000, 500); err != nil {
		t.Fatal(err)
	}
	got = consumeValues(t, addrs, "r3", 1500)
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, v)
		}
	}
}
