package broker

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnTestBatch is a one-record transactional v2 batch of producer pid at
// epoch, sequence 0 (a new epoch starts its sequences over).
func txnTestBatch(pid int64, epoch int16, value string) []byte {
	rec := kmsg.Record{Value: []byte(value)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{Magic: 2, Attributes: 0x10, NumRecords: 1, Records: rec.AppendTo(nil),
		FirstTimestamp: now, MaxTimestamp: now, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: 0}
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const topic = "txn-verify-retry"
	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	ct.Topics = append(ct.Topics, rt)
	ctResp, err := ct.RequestWith(ctx, cl)
	if err != nil || ctResp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreateTopics: %v %v", err, ctResp)
	}

	id := "txn-verify-retry"
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
	pid, epoch := ipResp.ProducerID, ipResp.ProducerEpoch

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
