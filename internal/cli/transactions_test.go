package cli_test

// gregor transactions, producer-perf-test's transactions and
// console-consumer --isolation-level against the in-process broker. The
// tests that need a transaction coordinator skip only while the broker
// answers a transactional InitProducerId with UNSUPPORTED_VERSION.

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

// openTxn begins a transaction, writes values to topic partition p and
// leaves it open; the client is returned to end it.
func openTxn(t *testing.T, b *gregor.Broker, id, topic string, p int32, values ...string) *kgo.Client {
	t.Helper()
	cl := newClient(t, b, kgo.TransactionalID(id), kgo.TransactionTimeout(time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("transactional produce: %v", err)
		}
	}
	return cl
}

func TestTransactionsFlags(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	s.run("transactions", "describe")
	s.run("transactions", "describe-producers", "--topic", "t")
	s.run("transactions", "describe-producers", "--topic", "t", "--partition", "x")
	s.run("transactions", "abort", "--topic", "t", "--partition", "0")
	s.run("transactions", "abort", "--topic", "t", "--partition", "0", "--producer-id", "5")
	s.run("transactions", "abort", "--topic", "t", "--partition", "0", "--producer-id", "5", "--producer-epoch", "1")
	s.run("transactions", "abort", "--topic", "t", "--partition", "0", "--producer-id", "5", "--producer-epoch", "70000", "--coordinator-epoch", "0")
	s.run("transactions", "find-hanging")
	s.run("transactions", "find-hanging", "--partition", "0", "--broker-id", "1")
	s.run("transactions", "list", "--duration-filter", "soon")
	s.run("transactions", "forceTerminateTransaction")
	s.run("transactions", "nosuch")
	s.run("perf", "--topic", "perf", "--num-records", "10", "--record-size", "10", "--throughput", "-1", "--transaction-duration-ms", "0")
	s.run("perf", "--topic", "perf", "--num-records", "10", "--record-size", "10", "--throughput", "-1", "--producer-props", "transactional.id=tx", "acks=1")
	s.run("perf", "--topic", "perf", "--num-records", "10", "--record-size", "10", "--throughput", "-1", "--producer-props", "transactional.id=tx", "enable.idempotence=false")
	s.run("consume", "--topic", "t", "--isolation-level", "read_most")
	s.run("consume", "--topic", "t", "--consumer-property", "isolation.level=sometimes")
	s.golden("transactions_flags")

	// The connection flags work before and after the subcommand, as in
	// Kafka, where they must come first.
	for _, args := range [][]string{
		{"transactions", "--bootstrap-server", b.Addr(), "find-hanging", "--topic", "nosuch-" + strconv.Itoa(1)},
		{"transactions", "find-hanging", "--topic", "nosuch-1", "--bootstrap-server", b.Addr()},
	} {
		r := runCLI(t, context.Background(), "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "nosuch-1") {
			t.Errorf("%v: exit %d, stderr %q: want the unknown topic reported", args, r.code, r.stderr)
		}
	}
}

// TestTransactionsLive: list and describe show a live transaction,
// describe-producers its start offset, find-hanging nothing (its
// coordinator will finish it), and the consumers' isolation levels see it
// or not; after the commit read_committed sees it.
func TestTransactionsLive(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "tx", "--partitions", "2"))
	produce(t, b, "tx", 0, "before")
	cl := openTxn(t, b, "live-txn", "tx", 0, "in-txn-1", "in-txn-2")

	r := s.run("transactions", "list")
	mustOK(t, r)
	if !hasRow(r.stdout, "live-txn", "1", "Ongoing") {
		t.Errorf("list does not show the live transaction:\n%s", r.stdout)
	}
	r = s.run("transactions", "describe", "--transactional-id", "live-txn")
	mustOK(t, r)
	if !hasRow(r.stdout, "1", "live-txn", "Ongoing", "60000", "tx-0") {
		t.Errorf("describe does not show the live transaction on tx-0:\n%s", r.stdout)
	}
	r = s.run("transactions", "describe-producers", "--topic", "tx", "--partition", "0")
	mustOK(t, r)
	if lines := splitLines(r.stdout); len(lines) < 2 || !strings.HasSuffix(strings.TrimRight(lines[len(lines)-1], " \t"), "\t1") {
		t.Errorf("describe-producers: want a producer whose transaction starts at offset 1:\n%s", r.stdout)
	}
	r = s.run("transactions", "find-hanging", "--topic", "tx", "--max-transaction-timeout", "0")
	mustOK(t, r)
	if n := len(splitLines(r.stdout)); n != 1 {
		t.Errorf("find-hanging: a live transaction is not hanging:\n%s", r.stdout)
	}

	uncommitted := s.run("consume", "--topic", "tx", "--from-beginning", "--timeout-ms", "2000", "--isolation-level", "read_uncommitted")
	committed := s.run("consume", "--topic", "tx", "--from-beginning", "--timeout-ms", "2000", "--isolation-level", "read_committed")
	if uncommitted.stdout != "before\nin-txn-1\nin-txn-2\n" || committed.stdout != "before\n" {
		t.Errorf("open transaction: read_uncommitted printed %q, read_committed %q", uncommitted.stdout, committed.stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "consumer.properties")
	if err := os.WriteFile(cfg, []byte("isolation.level=read_committed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, how := range [][]string{{"--isolation-level", "read_committed"}, {"--consumer-property", "isolation.level=read_committed"}, {"--consumer.config", cfg}} {
		r := s.run(append([]string{"consume", "--topic", "tx", "--from-beginning", "--timeout-ms", "3000"}, how...)...)
		if r.stdout != "before\nin-txn-1\nin-txn-2\n" {
			t.Errorf("committed transaction, %v: printed %q", how, r.stdout)
		}
	}
	r = s.run("transactions", "describe", "--transactional-id", "live-txn")
	if !hasRow(r.stdout, "live-txn", "CompleteCommit") {
		t.Errorf("describe after the commit:\n%s", r.stdout)
	}
}

// TestTransactionsAbort: abort by start offset refuses an offset where no
// transaction starts, then ends the open one (as for a hanging transaction,
// whose producer is gone), so describe-producers no longer shows it open
// and read_committed consumers see the records before it only.
func TestTransactionsAbort(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "tx", "--partitions", "1"))
	produce(t, b, "tx", 0, "a", "b")
	openTxn(t, b, "to-abort", "tx", 0, "c")

	s.run("transactions", "abort", "--topic", "tx", "--partition", "0", "--start-offset", "1")
	r := s.run("transactions", "describe-producers", "--topic", "tx", "--partition", "0")
	mustOK(t, r)
	lines := splitLines(r.stdout)
	if len(lines) < 2 || !strings.HasSuffix(strings.TrimRight(lines[len(lines)-1], " \t"), "\t2") {
		t.Fatalf("want a transaction starting at offset 2:\n%s", r.stdout)
	}
	mustOK(t, s.run("transactions", "abort", "--topic", "tx", "--partition", "0", "--start-offset", "2"))
	r = s.run("transactions", "describe-producers", "--topic", "tx", "--partition", "0")
	if strings.Contains(r.stdout, "\t2 ") || strings.HasSuffix(strings.TrimRight(r.stdout, " \t\n"), "\t2") {
		t.Errorf("the transaction at offset 2 is still open:\n%s", r.stdout)
	}
	committed := s.run("consume", "--topic", "tx", "--from-beginning", "--timeout-ms", "2000", "--isolation-level", "read_committed")
	if committed.stdout != "a\nb\n" {
		t.Errorf("read_committed after the abort printed %q, want a and b", committed.stdout)
	}
	r = s.run("transactions", "find-hanging", "--topic", "tx", "--max-transaction-timeout", "0")
	mustOK(t, r)
	if n := len(splitLines(r.stdout)); n != 1 {
		t.Errorf("find-hanging after the abort:\n%s", r.stdout)
	}
}

// TestProducerPerfTransactions: every record lands in a committed
// transaction, so a read_committed consumer sees them all.
func TestProducerPerfTransactions(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "perf", "--partitions", "1"))
	mustOK(t, s.run("perf", "--topic", "perf", "--num-records", "500", "--record-size", "10", "--throughput", "1000",
		"--transactional-id", "perf-tx", "--transaction-duration-ms", "100"))
	// EndTxn is answered once PrepareCommit is durable; the markers
	// and CompleteCommit follow, as in Kafka.
	var r result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = s.run("transactions", "describe", "--transactional-id", "perf-tx"); hasRow(r.stdout, "perf-tx", "CompleteCommit") {
			break
		}
	}
	if !hasRow(r.stdout, "perf-tx", "CompleteCommit") {
		t.Errorf("describe after the perf test:\n%s", r.stdout)
	}
	mustOK(t, s.run("perf", "--topic", "perf", "--num-records", "100", "--record-size", "10", "--throughput", "-1",
		"--producer-props", "transactional.id=perf-tx-2", "bootstrap.servers="+b.Addr()))
	c := s.run("consume", "--topic", "perf", "--from-beginning", "--timeout-ms", "3000", "--isolation-level", "read_committed")
	if n := len(splitLines(c.stdout)); n != 600 {
		t.Errorf("read_committed sees %d records, want 600", n)
	}
}

// hasRow reports whether a table line holds all the cells.
func hasRow(table string, cells ...string) bool {
	for _, line := range splitLines(table) {
		var have []string
		for _, c := range strings.Split(line, "\t") {
			have = append(have, strings.TrimSpace(c))
		}
		all := true
		for _, want := range cells {
			found := false
			for _, h := range have {
				found = found || h == want
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}
