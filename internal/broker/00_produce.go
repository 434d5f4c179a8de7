package broker

// Produce (key 0), versions 3-12; advertised as 0-12.
//
// Kafka 4 removed Produce v0-2 (KIP-896) but still advertises minimum 0,
// because librdkafka turns compression off when a broker's minimum Produce
// version is above 0. We do the same: v0-2 requests close the connection.
//
// Each partition's records must be exactly one v2 batch with base offset 0
// and no control bit (INVALID_RECORD otherwise, as in Kafka). Its CRC and
// every record in it (decompressed if needed) are checked, then it is
// appended by storage.Log.Append, which assigns offsets in place and keeps
// the bytes as sent. Appends run on the connection's reader goroutine, so
// batches of one connection reach the log in the order they were sent —
// the idempotent producer's sequence checks depend on that.
//
// Acknowledgement:
//   - acks=0: no response at all.
//   - acks=1: once the leader wrote the batches to the OS.
//   - acks=-1 (all): on a partition with one replica, with
//     gregor.durability=fsync (default), after the partition is fsynced;
//     concurrent requests share fsyncs (group commit in storage); with
//     durability=os, like acks=1, which is what a single-node Kafka does
//     with its default flush settings. On a replicated partition, once the
//     high watermark passed the records: every ISR member has them (with
//     durability=fsync, on disk; replication.go), and an ISR smaller than
//     min.insync.replicas is refused before appending with
//     NOT_ENOUGH_REPLICAS. Leadership lost while waiting answers
//     NOT_LEADER_OR_FOLLOWER; the records may or may not survive.
//
// A partition that waits longer than the request's timeout for its fsync
// gets REQUEST_TIMED_OUT: the data is in the log but not known durable.
//
// Transactional batches: the first batch of a producer's transaction on a
// partition is checked with the transaction coordinator first (KIP-890
// verification, txn.go verifyTxn): the partition must be in the ongoing
// transaction (added by AddPartitionsToTxn), or with Produce v12+
// (transactions v2) is added by the check. A refused check answers the
// coordinator's code (INVALID_TXN_STATE, PRODUCER_FENCED, ...), retriable
// coordinator errors as NOT_ENOUGH_REPLICAS, as Kafka does. The add of a
// v12+ request is retried for up to add.partitions.to.txn.retry.backoff.max.ms
// (100 ms) while the coordinator answers CONCURRENT_TRANSACTIONS (the
// previous transaction's markers are still being written), as Kafka 4
// does. The check runs on the reader goroutine, so the connection's order
// is kept. When the check fails with a retriable code, the producer will
// send that batch again, so a later batch of the same transaction on the
// same partition and connection, pipelined behind it, gets the same code
// without a check (conn.heldBack): appended first, it would start the
// epoch at the wrong sequence (OUT_OF_ORDER_SEQUENCE_NUMBER, which fails a
// franz-go transaction), as when the previous transaction's markers take
// longer than the retry window.
//
// Compacted topics (cleanup.policy containing compact): a batch with any
// record whose key is null is refused whole with INVALID_RECORD, with one
// record error per keyless record, as Kafka's LogValidator does; compressed
// batches are decompressed to read the keys while Append validates them
// (storage.KeylessError). Followers copy what the leader accepted.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

func init() {
	a := registerRaw(0, 3, 12, handleProduce)
	a.advMin = 0
}

// durableWait is a partition whose acks=all answer waits for an fsync.
type durableWait struct {
	log  *storage.Log
	res  storage.AppendResult
	resp *kmsg.ProduceResponseTopicPartition
}

func handleProduce(c *conn, inf *inflight, kreq kmsg.Request) {
	b := c.b
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	acksOK := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	var waits []durableWait
	resp.Topics = make([]kmsg.ProduceResponseTopic, 0, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		t := b.catalog.get(rt.Topic)
		var msgs, bytes uint64
		failed := false
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := &st.Partitions[j]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			if !acksOK {
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
			}
			var l *storage.Log
			if t != nil {
				l = b.store.Get(rt.Topic, rp.Partition)
			}
			if t == nil || t.partition(rp.Partition) == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			if l == nil || !b.leads(t, rp.Partition) {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				if leader, epoch, ep, ok := b.leaderHint(t, rp.Partition, c.listener); ok {
					sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = leader, epoch
					addProduceBroker(resp, leader, ep)
				}
				continue
			}
			if err := l.Offline(); err != nil {
				// Recovery found records missing; appending would hide it.
				sp.ErrorCode = kerr.KafkaStorageError.Code
				msg := err.Error()
				sp.ErrorMessage = &msg
				continue
			}
			if t.Internal {
				// Only the group coordinator writes __consumer_offsets.
				sp.ErrorCode = kerr.InvalidTopicException.Code
				continue
			}
			if len(rp.Records) == 0 {
				sp.ErrorCode = kerr.CorruptMessage.Code
				continue
			}
			if req.Acks == -1 {
				if r := b.replicas.get(rt.Topic, rp.Partition); r != nil {
					if under, n, minISR := r.underMinISR(); under {
						sp.ErrorCode = kerr.NotEnoughReplicas.Code
						msg := fmt.Sprintf("The size of the current ISR %d is insufficient to satisfy the min.isr requirement of %d for partition %s-%d", n, minISR, rt.Topic, rp.Partition)
						sp.ErrorMessage = &msg
						continue
					}
				}
			}
			if pid, epoch, ok := transactional(rp.Records); ok && !l.TxnOpen(pid, epoch) {
				code := kerr.InvalidTxnState.Code // a transactional batch needs a transactional id
				if req.TransactionID != nil {
					code = c.verifyInOrder(*req.TransactionID, pid, epoch, rt.Topic, rp.Partition, rp.Records, req.Version >= 12)
				}
				if code != 0 {
					sp.ErrorCode = code
					continue
				}
			}
			err := storage.CheckProducerBatch(rp.Records)
			var res storage.AppendResult
			if err == nil {
				res, err = l.Append(rp.Records)
			}
			if ke := (*storage.KeylessError)(nil); errors.As(err, &ke) {
				refuseKeyless(sp, rt.Topic, rp.Partition, ke.Positions)
				continue
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				msg := err.Error()
				sp.ErrorMessage = &msg
				if sp.ErrorCode == kerr.KafkaStorageError.Code {
					c.log.Error("append failed", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				continue
			}
			if !res.Duplicate {
				msgs += uint64(res.LastOffset - res.BaseOffset + 1)
				bytes += uint64(len(rp.Records))
			}
			sp.BaseOffset = res.BaseOffset
			sp.LogAppendTime = res.LogAppendTime
			sp.LogStartOffset = res.LogStartOffset
			if req.Acks == -1 && (res.Replicated || b.cfg.Durability == config.DurabilityFsync) {
				waits = append(waits, durableWait{l, res, sp})
			}
		}
		if t != nil {
			// Counted when appended, as Kafka counts MessagesInPerSec.
			for j := range st.Partitions {
				failed = failed || st.Partitions[j].ErrorCode != 0
			}
			b.metrics.produced(b.metrics.topic(t.Name), msgs, bytes, failed)
		}
		resp.Topics = append(resp.Topics, st)
	}

	if req.Acks == 0 {
		inf.reply(nil)
		return
	}
	if len(waits) == 0 {
		inf.reply(resp)
		return
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c.goAsync(inf, func() kmsg.Response {
		// Not tied to the broker context: a graceful shutdown flushes the
		// logs, so these waits still end with the truth.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		durable := b.cfg.Durability == config.DurabilityFsync
		for _, w := range waits {
			if code := waitAcked(ctx, w.log, w.res, durable); code != 0 {
				if code == kerr.KafkaStorageError.Code {
					c.log.Error("fsync failed", "topic", w.log.Topic(), "partition", w.log.Partition())
				}
				w.resp.ErrorCode = code
				w.resp.BaseOffset = -1
			}
		}
		return resp
	})
}

// refuseKeyless answers a batch with records without a key, sent to a
// compacted topic: the cleaner keeps the latest record per key, so a
// keyless record could never be cleaned. Kafka refuses the whole batch with
// INVALID_RECORD and one record error per keyless record (its index in the
// batch); the record errors and, for Produce v8+, the message carry
// Kafka's wording.
func refuseKeyless(sp *kmsg.ProduceResponseTopicPartition, topic string, partition int32, keyless []int32) {
	msg := fmt.Sprintf("Compacted topic cannot accept message without key in topic partition %s-%d", topic, partition)
	sp.ErrorCode = kerr.InvalidRecord.Code
	sp.ErrorRecords = make([]kmsg.ProduceResponseTopicPartitionErrorRecord, len(keyless))
	for i, idx := range keyless {
		er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		er.RelativeOffset = idx
		er.ErrorMessage = &msg
		sp.ErrorRecords[i] = er
	}
	summary := msg
	if len(keyless) > 1 {
		summary = fmt.Sprintf("%s (%d records without a key)", msg, len(keyless))
	}
	sp.ErrorMessage = &summary
}

// addProduceBroker adds a leader's endpoint to a Produce response's
// KIP-951 hints, once.
func addProduceBroker(resp *kmsg.ProduceResponse, id int32, ep metadata.Endpoint) {
	for _, br := range resp.Brokers {
		if br.NodeID == id {
			return
		}
	}
	br := kmsg.NewProduceResponseBroker()
	br.NodeID, br.Host, br.Port = id, ep.Host, ep.Port
	resp.Brokers = append(resp.Brokers, br)
}
