package cluster

// Transactions across the death of their coordinator, with the criteria of
// Kafka's transactions_test: a franz-go read-process-write pipeline
// (GroupTransactSession: input consumed in a group, each record copied to
// output, offsets committed in the transaction) runs while the node
// leading the transactional id's __transaction_state partition is killed
// with SIGKILL mid-stream and later restarted. A read_committed consumer
// reads output throughout. Afterwards output, read read_committed from the
// start, holds every input record exactly once, and so did the concurrent
// consumer.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestTransactionsSurviveCoordinatorDeath(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl := c.client(c.addrs(), kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(cl)
	const in, out, records = "txn-in", "txn-out", 4000
	if _, err := adm.CreateTopics(ctx, 3, 3, nil, in, out); err != nil {
		t.Fatal(err)
	}
	waitFullISR(t, ctx, adm, in, 3)
	waitFullISR(t, ctx, adm, out, 3)
	for i := 0; i < records; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: in, Value: []byte(fmt.Sprintf("r%05d", i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// The concurrent read_committed consumer.
	var mu sync.Mutex
	concurrent := map[string]int{}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watcher := c.client(c.addrs(), kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var watchDone sync.WaitGroup
	watchDone.Add(1)
	go func() {
		defer watchDone.Done()
		for watchCtx.Err() == nil {
			fs := watcher.PollFetches(watchCtx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { concurrent[string(r.Value)]++ })
			mu.Unlock()
		}
	}()

	const txnID = "etl-txn"
	var copied, commits, aborts int
	killed := false
	var victim *node
	newSession := func() *kgo.GroupTransactSession {
		s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.addrs()...), kgo.TransactionalID(txnID),
			kgo.TransactionTimeout(20*time.Second), kgo.ConsumerGroup("etl"), kgo.ConsumeTopics(in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(10*time.Second),
			kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
			kgo.FetchMaxPartitionBytes(16<<10))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sess := newSession()
	defer func() { sess.Close() }()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("pipeline stalled: %d copied in %d commits, %d aborts", copied, commits, aborts)
		}
		if copied > 0 && committedLag(ctx, adm, in) == 0 {
			break
		}
		// At most 100 records per transaction, so there are many, and
		// some are open when the coordinator dies.
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := sess.PollRecords(pctx, 100)
		pcancel()
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		if err := sess.Begin(); err != nil {
			t.Logf("begin: %v; new session", err)
			sess.Close()
			sess = newSession()
			continue
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sess.Produce(ctx, &kgo.Record{Topic: out, Value: r.Value}, nil)
		})
		if !killed && copied >= records/3 {
			// Mid-transaction: its records are produced, EndTxn not sent.
			if err := sess.Client().Flush(ctx); err != nil {
				t.Logf("flush: %v", err)
			}
			coord := findTxnCoordinator(t, ctx, cl, txnID)
			victim = c.nodes[coord-1]
			t.Logf("killing node %d, the transaction coordinator, in a transaction of %d records after %d copied", coord, n, copied)
			victim.kill()
			killed = true
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		switch {
		case err != nil:
			aborts++
			t.Logf("end: %v", err)
		case committed:
			commits++
			copied += n
		default:
			aborts++
		}
		if killed && victim != nil && copied >= 2*records/3 {
			victim.restart()
			victim = nil
		}
	}
	if victim != nil {
		victim.restart()
	}

	// Everything in output, read_committed from the start.
	final := map[string]int{}
	rc := c.client(c.addrs(), kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for readDeadline := time.Now().Add(60 * time.Second); len(final) < records && time.Now().Before(readDeadline); {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := rc.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) { final[string(r.Value)]++ })
	}
	// Let the watcher catch up, then stop it.
	for catchUp := time.Now().Add(30 * time.Second); time.Now().Before(catchUp); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := len(concurrent)
		mu.Unlock()
		if n >= records {
			break
		}
	}
	stopWatch()
	watchDone.Wait()

	check := func(name string, seen map[string]int) {
		t.Helper()
		missing, dups := 0, 0
		for i := 0; i < records; i++ {
			switch n := seen[fmt.Sprintf("r%05d", i)]; {
			case n == 0:
				missing++
			case n > 1:
				dups++
			}
		}
		if missing > 0 || dups > 0 || len(seen) != records {
			t.Errorf("%s: %d distinct of %d, %d missing, %d duplicated", name, len(seen), records, missing, dups)
		}
	}
	check("output read_committed", final)
	mu.Lock()
	check("concurrent read_committed consumer", concurrent)
	mu.Unlock()
	t.Logf("%d input records copied exactly once in %d committed transactions (%d aborted) across the coordinator's kill",
		records, commits, aborts)
	c.checkAlive()
}

// findTxnCoordinator asks FindCoordinator for a transactional id's coordinator.
func findTxnCoordinator(t *testing.T, ctx context.Context, cl *kgo.Client, id string) int32 {
	t.Helper()
	for ctx.Err() == nil {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorType = id, 1
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			return resp.NodeID
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("no transaction coordinator")
	return -1
}

// committedLag is how many input records the etl group has not committed,
// -1 if it cannot tell.
func committedLag(ctx context.Context, adm *kadm.Client, topic string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, "etl")
	if err != nil {
		return -1
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := offs.Lookup(topic, o.Partition)
		if !ok {
			lag += o.Offset
			return
		}
		lag += o.Offset - c.At
	})
	return lag
}
