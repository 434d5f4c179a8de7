package broker

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnTestBatch is a one-record transactional v2 batch of producer pid at
// epoch, sequence 0 (a new epoch starts its sequences over).
func txnTestBatch(pid int64, epoch int16, value string) []byte {
	return txnTestBatchSeq(pid, epoch, 0, value)
}

// txnTestBatchSeq is txnTestBatch at sequence seq.
func txnTestBatchSeq(pid int64, epoch int16, seq int32, value string) []byte {
	rec := kmsg.Record{Value: []byte(value)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{Magic: 2, Attributes: 0x10, NumRecords: 1, Records: rec.AppendTo(nil),
		FirstTimestamp: now, MaxTimestamp: now, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// TestProduceAfterEndTxnRetriesConcurrentTransactions: a transactions v2
// producer starts its next transaction as soon as EndTxn answers, while
// the coordinator is still writing the previous one's markers
// (PrepareCommit), so the implicit add of its first Produce meets
// CONCURRENT_TRANSACTIONS. The leader retries that add for up to
// add.partitions.to.txn.retry.backoff.max.ms, as Kafka 4 does
// (KAFKA-18654), instead of answering NOT_ENOUGH_REPLICAS, which franz-go
// retries only after a metadata refresh: one transaction per 5 s.
func TestProduceAfterEndTxnRetriesConcurrentTransactions(t *testing.T) {
	// A long retry window: the test must not depend on how fast this
	// machine writes the markers.
	b := netStartBroker(t, "add.partitions.to.txn.retry.backoff.max.ms=20000")
	ctx, cl, id, pid, epoch := txnTestProducer(t, b, "txn-verify-retry")
	const topic = "txn-verify-retry"
	leader := cl.Broker(int(b.cfg.NodeID))
	for i := 0; i < 5; i++ {
		pr := kmsg.NewPtrProduceRequest()
		pr.Version = 12 // transactions v2: the Produce adds the partition
		pr.TransactionID, pr.Acks, pr.TimeoutMillis = &id, -1, 30000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = topic
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Partition, pp.Records = 0, txnTestBatch(pid, epoch, "v")
		pt.Partitions = append(pt.Partitions, pp)
		pr.Topics = append(pr.Topics, pt)
		kresp, err := leader.Request(ctx, pr)
		if err != nil {
			t.Fatal(err)
		}
		if code := kresp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("transaction %d: Produce right after the previous EndTxn: %v", i, kerr.ErrorForCode(code))
		}

		et := kmsg.NewPtrEndTxnRequest()
		et.Version = 5
		et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = id, pid, epoch, true
		kresp, err = leader.Request(ctx, et)
		if err != nil {
			t.Fatal(err)
		}
		etResp := kresp.(*kmsg.EndTxnResponse)
		if etResp.ErrorCode != 0 {
			t.Fatalf("transaction %d: EndTxn: %v", i, kerr.ErrorForCode(etResp.ErrorCode))
		}
		pid, epoch = etResp.ProducerID, etResp.ProducerEpoch
	}
}

// txnTestProducer creates a one-partition topic named name on b and a
// transactional producer id (also name) for it: the context of the test,
// a client of b, and the id, producer id and epoch.
func txnTestProducer(t *testing.T, b *Broker, name string) (context.Context, *kgo.Client, string, int64, int16) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)

	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	ct.Topics = append(ct.Topics, rt)
	ctResp, err := ct.RequestWith(ctx, cl)
	if err != nil || ctResp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreateTopics: %v %v", err, ctResp)
	}

	id := name
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.TransactionalID, ip.TransactionTimeoutMillis = &id, 60000
	var ipResp *kmsg.InitProducerIDResponse
	for {
		if ipResp, err = ip.RequestWith(ctx, cl); err != nil {
			t.Fatal(err)
		}
		if e := kerr.ErrorForCode(ipResp.ErrorCode); e == nil || !kerr.IsRetriable(e) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the coordinator is loading
	}
	if ipResp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ipResp.ErrorCode))
	}
	return ctx, cl, id, ipResp.ProducerID, ipResp.ProducerEpoch
}

// A transactional batch whose check fails with a retriable code (the
// coordinator still writing the previous transaction's markers past the
// retry window) will be sent again by the producer; the batch pipelined
// behind it on the same connection must not be appended first, or the
// epoch would start at the wrong sequence: franz-go fails its transaction
// on that OUT_OF_ORDER_SEQUENCE_NUMBER. It gets the same retriable code
// until the first batch comes again; then both go in, in order.
func TestProduceHoldsBackBatchesBehindAFailedTxnCheck(t *testing.T) {
	b := netNewBroker(t, "add.partitions.to.txn.retry.backoff.max.ms=0")
	var checks atomic.Int32
	b.verifyProduce = func(ctx context.Context, transactionalID string, pid int64, epoch int16, topic string, p int32, add bool) int16 {
		if checks.Add(1) == 1 {
			return kerr.ConcurrentTransactions.Code // the previous transaction's markers
		}
		return b.verifyProduceTxn(ctx, transactionalID, pid, epoch, topic, p, add)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const topic = "txn-held-back"
	ctx, cl, id, pid, epoch := txnTestProducer(t, b, topic)

	leader := cl.Broker(int(b.cfg.NodeID))
	produce := func(seq int32) int16 {
		t.Helper()
		pr := kmsg.NewPtrProduceRequest()
		pr.Version = 12
		pr.TransactionID, pr.Acks, pr.TimeoutMillis = &id, -1, 30000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = topic
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Partition, pp.Records = 0, txnTestBatchSeq(pid, epoch, seq, "v")
		pt.Partitions = append(pt.Partitions, pp)
		pr.Topics = append(pr.Topics, pt)
		kresp, err := leader.Request(ctx, pr)
		if err != nil {
			t.Fatal(err)
		}
		return kresp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	for i, step := range []struct {
		seq  int32
		want int16
	}{
		{0, kerr.NotEnoughReplicas.Code}, // the check meets CONCURRENT_TRANSACTIONS
		{1, kerr.NotEnoughReplicas.Code}, // held back, although a check would pass now
		{0, 0},                           // the first batch again
		{1, 0},
	} {
		if got := produce(step.seq); got != step.want {
			t.Fatalf("step %d, sequence %d: %v, want %v", i, step.seq, kerr.ErrorForCode(got), kerr.ErrorForCode(step.want))
		}
	}
	if n := checks.Load(); n != 2 {
		t.Fatalf("%d checks, want 2 (the held-back batch is not checked)", n)
	}
}
