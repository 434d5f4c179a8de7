package cluster

// Kafka's replication system test modes against three real nodes: for the
// leader of a replicated partition and for the active controller, a clean
// shutdown (SIGTERM, the node stays down), a hard shutdown (SIGKILL, stays
// down), a clean bounce and a hard bounce (stopped and restarted, three
// times), while an idempotent acks=all producer writes. Each run checks
// that every acknowledged record is consumed afterwards (acknowledged
// minus consumed is empty), with no duplicates.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// replModeRecords is the number of acknowledged records each run needs.
const replModeRecords = 5000

func TestReplicationModes(t *testing.T) {
	c := newCluster(t, 3, "replica.lag.time.max.ms=5000")
	adm := kadm.NewClient(c.client(c.addrs()))
	for _, mode := range []string{"clean_shutdown", "hard_shutdown", "clean_bounce", "hard_bounce"} {
		for _, target := range []string{"leader", "controller"} {
			name := mode + "/" + target
			t.Run(name, func(t *testing.T) {
				runReplMode(t, c, adm, mode, target)
			})
			if t.Failed() {
				return
			}
		}
	}
}

func runReplMode(t *testing.T, c *cluster, adm *kadm.Client, mode, target string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := "repl-" + mode + "-" + target
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	waitFullISR(t, ctx, adm, topic, 3)

	p := c.client(c.addrs(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.ProducerLinger(time.Millisecond))
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		nAck  atomic.Int64
		nFail atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := strconv.Itoa(i)
			p.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}, func(_ *kgo.Record, err error) {
				if err != nil {
					nFail.Add(1)
					return
				}
				mu.Lock()
				acked[v] = true
				mu.Unlock()
				nAck.Add(1)
			})
			if i%200 == 199 {
				time.Sleep(5 * time.Millisecond) // keep the producer's buffer small
			}
		}
	}()
	waitCount := func(n int64) {
		t.Helper()
		for nAck.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("only %d records acknowledged (%d failed)", nAck.Load(), nFail.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCount(1000)

	victim := func() *node {
		if target == "controller" {
			nd, _ := c.activeController(20 * time.Second)
			return nd
		}
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return c.nodes[td[topic].Partitions[0].Leader-1]
	}
	stopNode := func(nd *node, clean bool) {
		if clean {
			nd.signal(syscall.SIGTERM)
			nd.mu.Lock()
			nd.killed = true
			done := nd.done
			nd.mu.Unlock()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("node %d did not stop within 30 s of SIGTERM", nd.id)
			}
			return
		}
		nd.kill()
	}
	clean := mode == "clean_shutdown" || mode == "clean_bounce"
	switch mode {
	case "clean_shutdown", "hard_shutdown":
		nd := victim()
		stopNode(nd, clean)
		waitCount(nAck.Load() + replModeRecords)
		close(stop)
		wg.Wait()
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		nd.restart()
	default:
		for i := 0; i < 3; i++ {
			nd := victim()
			stopNode(nd, clean)
			nd.restart()
			waitFullISR(t, ctx, adm, topic, 3)
			waitCount(nAck.Load() + 500)
		}
		waitCount(replModeRecords + 1000)
		close(stop)
		wg.Wait()
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Everything acknowledged is there, once.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		offsets[o.Partition] = kgo.NewOffset().AtStart()
		want[o.Partition] = o.Offset
	})
	cons := c.client(c.addrs(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	seen := map[string]int{}
	done := map[int32]bool{}
	for len(done) < len(want) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consuming: %d partitions done of %d", len(done), len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			if r.Offset+1 >= want[r.Partition] {
				done[r.Partition] = true
			}
		})
		for pt, end := range want {
			if end == 0 {
				done[pt] = true
			}
		}
	}
	lost, dup := 0, 0
	for v := range acked {
		if seen[v] == 0 {
			lost++
		}
	}
	for _, n := range seen {
		if n > 1 {
			dup++
		}
	}
	t.Logf("%s: acked %d, failed %d, consumed %d, lost %d, duplicated %d", mode+"/"+target,
		len(acked), nFail.Load(), len(seen), lost, dup)
	if len(acked) < replModeRecords {
		t.Errorf("only %d records acknowledged", len(acked))
	}
	if lost > 0 || dup > 0 {
		t.Fatalf("acknowledged records lost: %d, duplicated: %d", lost, dup)
	}
	c.checkAlive()
}

// waitFullISR waits until every partition of topic has a leader and an
// ISR of n.
func waitFullISR(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		td, err := adm.ListTopics(ctx, topic)
		if err == nil && len(td[topic].Partitions) > 0 {
			ok := true
			last = ""
			for _, p := range td[topic].Partitions.Sorted() {
				last += fmt.Sprintf(" %d:leader=%d,isr=%v", p.Partition, p.Leader, p.ISR)
				if p.Leader < 0 || len(p.ISR) != n {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: no full ISR within 60 s:%s", topic, last)
}
