package gregor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A transaction left open past its timeout is aborted by the coordinator:
// read_committed consumers move past it, and the producer that opened it
// is fenced when it comes back (a zombie).
func TestTransactionTimeoutAbortsAndFencesTheZombie(t *testing.T) {
	b := newBroker(t, map[string]string{
		"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "txn-timeout"
	plain := newClient(t, b, kgo.DefaultProduceTopic(topic))
	if _, err := kadm.NewClient(plain).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	zombie := newClient(t, b, kgo.TransactionalID("slow"), kgo.TransactionTimeout(time.Second),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("never committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Records after the open transaction are held back from read_committed
	// until it ends.
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rc := newClient(t, b, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	start := time.Now()
	var got []string
	for len(got) == 0 {
		fs := rc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("read_committed never moved past the timed-out transaction")
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 1 || got[0] != "after" {
		t.Fatalf("read_committed saw %q, want only the record after the aborted transaction", got)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("the open transaction was skipped after %v, before its 1 s timeout", waited)
	}

	// The zombie's commit is refused: the coordinator bumped its epoch.
	err := zombie.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.TransactionAbortable) {
		t.Fatalf("the zombie's commit: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	t.Logf("zombie commit refused with %v", err)
}
