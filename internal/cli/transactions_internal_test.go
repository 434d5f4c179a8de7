package cli

// The transactions tool's tables, from canned broker answers, against
// testdata/kafka44_transactions.golden: the real output of Kafka 4.4.0's
// kafka-transactions.sh (bench/kafka/kafka.sh, one combined node) for the
// state the answers below reproduce: four finished transactions, two
// producers on tx1-0 whose transactions ended, nothing on tx1-1, and no
// hanging transaction. The golden is Kafka's and is never rewritten.
//
// Rows Kafka could not show on that node (an open transaction's partitions,
// a hanging transaction) are checked against hand-made tables below.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func cannedListed(coordinator int32, id string, pid int64, state string) listedTxn {
	t := kmsg.NewListTransactionsResponseTransactionState()
	t.TransactionalID, t.ProducerID, t.TransactionState = id, pid, state
	return listedTxn{coordinator, t}
}

func cannedProducer(pid int64, epoch, coordEpoch, seq int32, ts, start int64) kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	p := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
	p.ProducerID, p.ProducerEpoch, p.CoordinatorEpoch = pid, epoch, coordEpoch
	p.LastSequence, p.LastTimestamp, p.CurrentTxnStartOffset = seq, ts, start
	return p
}

func TestTransactionsTablesMatchKafka(t *testing.T) {
	var out bytes.Buffer
	cmd := func(args string) {
		out.WriteString("$ kafka-transactions.sh --bootstrap-server <BROKER> " + args + "\n")
	}

	cmd("list")
	printTable(&out, listTxnHeaders, listTxnRows([]listedTxn{
		cannedListed(1, "gperf", 2, "CompleteCommit"),
		cannedListed(1, "performance-producer-hCl3IJrqt0zPRqPMnr2fnw", 3, "CompleteCommit"),
		cannedListed(1, "longtx2", 1, "CompleteCommit"),
		cannedListed(1, "longtx", 0, "CompleteAbort"),
	}))

	cmd("describe --transactional-id gperf")
	d := kadm.DescribedTransaction{Coordinator: 1, TxnID: "gperf", State: "CompleteCommit", TimeoutMillis: 40000,
		StartTimestamp: 1795996768488, ProducerID: 2, ProducerEpoch: 4}
	printTable(&out, describeTxnHeaders, [][]string{describeTxnRow(d, time.UnixMilli(1795996768488+26828))})

	cmd("describe-producers --topic tx1 --partition 0")
	printTable(&out, describeProducersHeaders, producerRows([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer{
		cannedProducer(0, 1, 0, -1, 1795996676913, -1),
		cannedProducer(1, 1, 0, -1, 1795996723725, -1),
	}))

	cmd("describe-producers --topic tx1 --partition 1")
	printTable(&out, describeProducersHeaders, producerRows(nil))

	cmd("find-hanging --topic tx1")
	printTable(&out, findHangingHeaders, hangingRows(nil, time.Now()))

	want, err := os.ReadFile(filepath.Join("testdata", "kafka44_transactions.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("tables differ from Kafka 4.4's output:\n got:\n%s\nwant:\n%s", got, want)
	}
}

// TestTransactionsTablesOpen covers what the Kafka reference could not: a
// live transaction's start time, duration and partitions (Kafka printed
// exactly this row for a producer-perf-test transaction on tx1-0, apart
// from the duration, which is the clock's), an open transaction's start
// offset and a never-set coordinator epoch, a hanging transaction's
// minutes, and unknown states.
func TestTransactionsTablesOpen(t *testing.T) {
	var out bytes.Buffer
	var ts kadm.TopicsSet
	ts.Add("tx1", 1, 0)
	ts.Add("a", 3)
	d := kadm.DescribedTransaction{Coordinator: 1, TxnID: "longtx", State: "Ongoing", TimeoutMillis: 60000,
		StartTimestamp: 1795996609004, ProducerID: 0, ProducerEpoch: 0, Topics: ts}
	printTable(&out, describeTxnHeaders, [][]string{describeTxnRow(d, time.UnixMilli(1795996609004+12845))})
	d = kadm.DescribedTransaction{Coordinator: 2, TxnID: "idle", State: "SomethingNew", TimeoutMillis: 60000, StartTimestamp: -1, ProducerID: 7}
	printTable(&out, describeTxnHeaders, [][]string{describeTxnRow(d, time.Now())})
	printTable(&out, describeProducersHeaders, producerRows([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer{
		cannedProducer(0, 0, -1, 28, 1795996622493, 0),
	}))
	now := time.UnixMilli(1795996622493 + 20*60000 + 59999)
	printTable(&out, findHangingHeaders, hangingRows([]openTxn{
		{"tx1", 1, cannedProducer(9, 3, 5, 100, 1795996622493, 1234)},
		{"tx1", 0, cannedProducer(9, 3, -1, 7, 1795996622493, 17)},
	}, now))
	printTable(&out, listTxnHeaders, listTxnRows([]listedTxn{
		cannedListed(3, "c", 30, "Ongoing"), cannedListed(1, "b", 10, "Empty"), cannedListed(1, "a", 11, "PrepareEpochFence"),
	}))
	want := strings.Join([]string{
		"CoordinatorId\tTransactionalId\tProducerId\tProducerEpoch\tTransactionState\tTransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTransactionDurationMs\tTopicPartitions\t",
		"1            \tlongtx         \t0         \t0            \tOngoing         \t60000               \t1795996609004                \t12845                \ta-3,tx1-0,tx1-1\t",
		"CoordinatorId\tTransactionalId\tProducerId\tProducerEpoch\tTransactionState\tTransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTransactionDurationMs\tTopicPartitions\t",
		"2            \tidle           \t7         \t0            \tUnknown         \t60000               \tNone                         \tNone                 \t               \t",
		"ProducerId\tProducerEpoch\tLatestCoordinatorEpoch\tLastSequence\tLastTimestamp\tCurrentTransactionStartOffset\t",
		"0         \t0            \t-1                    \t28          \t1795996622493\t0                            \t",
		"Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\tLastTimestamp\tDuration(min)\t",
		"tx1  \t0        \t9         \t3            \t-1              \t17         \t1795996622493\t20           \t",
		"tx1  \t1        \t9         \t3            \t5               \t1234       \t1795996622493\t20           \t",
		"TransactionalId\tCoordinator\tProducerId\tTransactionState \t",
		"b              \t1          \t10        \tEmpty            \t",
		"a              \t1          \t11        \tPrepareEpochFence\t",
		"c              \t3          \t30        \tOngoing          \t",
	}, "\n") + "\n"
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestTransactionsHanging(t *testing.T) {
	var ts kadm.TopicsSet
	ts.Add("t", 0)
	open := []openTxn{
		{"t", 0, cannedProducer(1, 0, 0, 0, 0, 5)}, // its transaction still holds t-0: not hanging
		{"t", 1, cannedProducer(1, 0, 0, 0, 0, 6)}, // t-1 is no longer in it: hanging
		{"t", 0, cannedProducer(2, 0, 0, 0, 0, 7)}, // no transactional id: hanging
		{"t", 0, cannedProducer(3, 0, 0, 0, 0, 8)}, // its id is not described: hanging
	}
	idOf := map[int64]string{1: "one", 3: "three"}
	described := map[string]kadm.DescribedTransaction{"one": {TxnID: "one", Topics: ts}}
	got := hangingOnly(open, idOf, described)
	var starts []int64
	for _, o := range got {
		starts = append(starts, o.CurrentTxnStartOffset)
	}
	if len(starts) != 3 || starts[0] != 6 || starts[1] != 7 || starts[2] != 8 {
		t.Fatalf("hanging start offsets %v, want [6 7 8]", starts)
	}
}

func TestAbortSpecString(t *testing.T) {
	s := abortSpec{topic: "t", partition: 2, producerID: 9, producerEpoch: 1, coordinatorEpoch: 0}
	if got, want := s.String(), "AbortTransactionSpec(topicPartition=t-2, producerId=9, producerEpoch=1, coordinatorEpoch=0)"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}
