package broker

// The broker's side of transactions (KIP-98, KIP-890): the transaction
// coordinator (internal/txn) owns the __transaction_state partitions this
// broker leads, the way the group coordinator owns __consumer_offsets
// ones; partition leaders write the COMMIT/ABORT markers the coordinator
// asks for (locally, or with WriteTxnMarkers to the leader), and check
// with the coordinator that a transactional batch's partition is in its
// producer's transaction before appending it (KIP-890 verification; with
// transactions v2, Produce v12+ adds the partition implicitly).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
	"github.com/gregorhq/gregor/internal/txn"
)

// txnConfig is the coordinator's configuration from Kafka's properties.
func (b *Broker) txnConfig(offsetsPartitions int32) txn.Config {
	cfg := txn.DefaultConfig()
	ms := func(name string, def time.Duration) time.Duration {
		return time.Duration(b.rawInt(name, def.Milliseconds())) * time.Millisecond
	}
	cfg.Partitions = int32(b.rawInt("transaction.state.log.num.partitions", int64(cfg.Partitions)))
	cfg.OffsetsPartitions = offsetsPartitions
	cfg.MaxTimeout = ms("transaction.max.timeout.ms", cfg.MaxTimeout)
	cfg.IDExpiration = ms("transactional.id.expiration.ms", cfg.IDExpiration)
	cfg.AbortInterval = ms("transaction.abort.timed.out.transaction.cleanup.interval.ms", cfg.AbortInterval)
	cfg.ExpireInterval = ms("transaction.remove.expired.transaction.cleanup.interval.ms", cfg.ExpireInterval)
	cfg.TransactionVersion = transactionVersion
	return cfg
}

// addPartitionsRetry is how a partition leader retries the implicit add of
// a transactions v2 Produce that the coordinator answered
// CONCURRENT_TRANSACTIONS (Kafka 4.0, KAFKA-18654): every backoff
// (add.partitions.to.txn.retry.backoff.ms, 20 ms) until max
// (add.partitions.to.txn.retry.backoff.max.ms, 100 ms) has passed since the
// first attempt.
type addPartitionsRetry struct {
	backoff, max time.Duration
}

func (b *Broker) addPartitionsRetryConfig() addPartitionsRetry {
	ms := func(name string, def int64) time.Duration {
		return time.Duration(max(b.rawInt(name, def), 0)) * time.Millisecond
	}
	return addPartitionsRetry{
		backoff: max(ms("add.partitions.to.txn.retry.backoff.ms", 20), time.Millisecond),
		max:     ms("add.partitions.to.txn.retry.backoff.max.ms", 100),
	}
}

// txnTopic returns __transaction_state, creating it on first use with
// Kafka's settings: compacted, 100 MiB segments,
// transaction.state.log.replication.factor (3) replicas capped by the
// cluster's size, min.insync.replicas from transaction.state.log.min.isr.
func (b *Broker) txnTopic(ctx context.Context) (*topic, error) {
	if t := b.catalog.get(txn.TopicName); t != nil {
		return t, nil
	}
	rf := max(min(b.rawInt("transaction.state.log.replication.factor", 3), int64(len(b.voterIDs))), 1)
	minISR := max(min(b.rawInt("transaction.state.log.min.isr", 2), rf), 1)
	t, err := b.createTopicInternal(ctx, controller.TopicSpec{Name: txn.TopicName, Partitions: b.txnCfg.Partitions,
		ReplicationFactor: int16(rf), Configs: map[string]string{
			"cleanup.policy":      "compact",
			"segment.bytes":       "104857600",
			"compression.type":    "uncompressed",
			"min.insync.replicas": strconv.FormatInt(minISR, 10),
		}})
	if err != nil {
		b.log.Warn("creating __transaction_state failed", "err", err)
		return nil, err
	}
	return t, nil
}

// txnPartition is the coordinator's view of one __transaction_state
// partition: written only while this broker leads it, acknowledged once
// committed, loaded from everything this replica has.
func (b *Broker) txnPartition(p int32) (txn.Log, error) {
	if _, err := b.txnTopic(b.ctx); err != nil {
		return nil, err
	}
	l := b.store.Get(txn.TopicName, p)
	if l == nil {
		return nil, storage.ErrClosed
	}
	return b.groupLog(l), nil
}

// syncTxnCoordinator makes the transaction coordinator own exactly the
// __transaction_state partitions this broker leads in im, with the
// partition's leader epoch as coordinator epoch.
func (b *Broker) syncTxnCoordinator(im *metadata.Image) {
	want := map[int32]int32{}
	if t := im.Topic(txn.TopicName); t != nil {
		for p, pi := range t.Partitions {
			if pi.Leader == b.cfg.NodeID {
				want[int32(p)] = pi.LeaderEpoch
			}
		}
	}
	for _, p := range b.txns.Owned() {
		if _, ok := want[p]; !ok {
			b.txns.UnloadPartition(p)
		}
	}
	for _, p := range sortedPartitions(want) {
		var l txn.Log
		if sl := b.store.Get(txn.TopicName, p); sl != nil {
			l = b.groupLog(sl)
		}
		if err := b.txns.LoadPartition(p, l, want[p]); err != nil {
			b.log.Error("loading transactions of a __transaction_state partition failed", "partition", p, "err", err)
		}
	}
}

// txnCoordinatorOf returns the broker leading transactionalID's
// __transaction_state partition, -1 if none (or the topic does not exist).
func (b *Broker) txnCoordinatorOf(transactionalID string) int32 {
	t := b.catalog.get(txn.TopicName)
	if t == nil {
		return -1
	}
	return t.leaderOf(txn.PartitionFor(transactionalID, t.Partitions))
}

// peers holds one franz-go client per other broker, on its inter-broker
// listener: the way markers and transaction verifications travel.
type peers struct {
	b   *Broker
	mu  sync.Mutex
	cls map[int32]*peerClient
}

type peerClient struct {
	addr string
	cl   *kgo.Client
}

func (p *peers) request(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	b := p.b
	br := b.catalog.currentImage().Broker(id)
	if br == nil {
		return nil, fmt.Errorf("broker %d is not registered", id)
	}
	ep, ok := endpointOf(br, b.cfg.InterBrokerListenerName)
	if !ok {
		ep, ok = endpointOf(br, "")
	}
	if !ok {
		return nil, fmt.Errorf("broker %d has no endpoint", id)
	}
	addr := net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port)))
	p.mu.Lock()
	if p.cls == nil {
		p.cls = map[int32]*peerClient{}
	}
	pc := p.cls[id]
	if pc != nil && pc.addr != addr {
		pc.cl.Close()
		pc = nil
	}
	if pc == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
			kgo.ClientID("gregor-broker-"+strconv.Itoa(int(b.cfg.NodeID))),
			kgo.DialTimeout(2*time.Second), kgo.RequestRetries(0),
			kgo.RequestTimeoutOverhead(5*time.Second), kgo.ConnIdleTimeout(time.Minute),
			kgo.MetadataMinAge(time.Hour), kgo.MetadataMaxAge(time.Hour))
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		pc = &peerClient{addr: addr, cl: cl}
		p.cls[id] = pc
	}
	p.mu.Unlock()
	return pc.cl.SeedBrokers()[0].Request(ctx, req)
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.cls {
		pc.cl.Close()
	}
	p.cls = nil
}

// markerWriter carries out the coordinator's markers (txn.MarkerWriter).
type markerWriter struct{ b *Broker }

// WriteMarkers writes m's marker to each partition: at this broker when it
// leads the partition, else with WriteTxnMarkers at its leader. A
// partition that no longer exists needs no marker. Any other failure is
// returned for the coordinator to retry.
func (w markerWriter) WriteMarkers(ctx context.Context, m txn.Markers) error {
	b := w.b
	byLeader := map[int32][]txn.TopicPartition{}
	for _, tp := range m.Partitions {
		t := b.catalog.get(tp.Topic)
		if t == nil || t.partition(tp.Partition) == nil {
			continue // deleted: nothing to mark
		}
		byLeader[t.leaderOf(tp.Partition)] = append(byLeader[t.leaderOf(tp.Partition)], tp)
	}
	var errs []error
	for leader, tps := range byLeader {
		switch {
		case leader < 0:
			errs = append(errs, fmt.Errorf("%s-%d has no leader", tps[0].Topic, tps[0].Partition))
		case leader == b.cfg.NodeID:
			for _, tp := range tps {
				if code := b.writeMarker(ctx, tp.Topic, tp.Partition, m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch); code != 0 {
					errs = append(errs, fmt.Errorf("marker for %s-%d: %s", tp.Topic, tp.Partition, kerr.ErrorForCode(code)))
				}
			}
		default:
			req := kmsg.NewPtrWriteTxnMarkersRequest()
			rm := kmsg.NewWriteTxnMarkersRequestMarker()
			rm.ProducerID, rm.ProducerEpoch, rm.Committed = m.ProducerID, m.ProducerEpoch, m.Commit
			rm.CoordinatorEpoch, rm.TransactionVersion = m.CoordinatorEpoch, m.TransactionVersion
			byTopic := map[string]int{}
			for _, tp := range tps {
				i, ok := byTopic[tp.Topic]
				if !ok {
					i = len(rm.Topics)
					byTopic[tp.Topic] = i
					rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
					rt.Topic = tp.Topic
					rm.Topics = append(rm.Topics, rt)
				}
				rm.Topics[i].Partitions = append(rm.Topics[i].Partitions, tp.Partition)
			}
			req.Markers = append(req.Markers, rm)
			kresp, err := b.peers.request(ctx, leader, req)
			if err != nil {
				errs = append(errs, fmt.Errorf("markers at broker %d: %w", leader, err))
				continue
			}
			for _, r := range kresp.(*kmsg.WriteTxnMarkersResponse).Markers {
				for _, rt := range r.Topics {
					for _, rp := range rt.Partitions {
						if rp.ErrorCode != 0 && rp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
							errs = append(errs, fmt.Errorf("marker for %s-%d at broker %d: %s", rt.Topic, rp.Partition, leader, kerr.ErrorForCode(rp.ErrorCode)))
						}
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// writeMarker appends one marker to a partition led here and waits until
// it is committed (acks=all). A marker in __consumer_offsets then makes
// the producer's transactional offsets visible or drops them.
func (b *Broker) writeMarker(ctx context.Context, topicName string, p int32, pid int64, epoch int16, commit bool, coordEpoch int32) int16 {
	t := b.catalog.get(topicName)
	if t == nil || t.partition(p) == nil {
		return kerr.UnknownTopicOrPartition.Code
	}
	l := b.store.Get(topicName, p)
	if l == nil || !b.leads(t, p) {
		return kerr.NotLeaderForPartition.Code
	}
	if l.Offline() != nil {
		return kerr.KafkaStorageError.Code
	}
	res, err := l.AppendMarker(pid, epoch, commit, coordEpoch)
	if err != nil {
		if code := errCode(err); code != kerr.KafkaStorageError.Code || errors.Is(err, storage.ErrStorageFailed) {
			return code
		}
		b.log.Error("writing a transaction marker failed", "topic", topicName, "partition", p, "err", err)
		return kerr.KafkaStorageError.Code
	}
	if code := waitAcked(ctx, l, res, b.cfg.Durability == config.DurabilityFsync); code != 0 {
		return code
	}
	if topicName == group.TopicName {
		b.groups.CompleteTxn(p, pid, commit, res.BaseOffset)
	}
	return 0
}

// verifyTxn asks transactionalID's coordinator whether topic-partition is
// in producer pid's ongoing transaction (KIP-890 part 1), or, with add
// (transactions v2: Produce v12+, TxnOffsetCommit v5+), adds it. The code
// is the coordinator's answer for the partition.
func (b *Broker) verifyTxn(ctx context.Context, transactionalID string, pid int64, epoch int16, topicName string, p int32, add bool) int16 {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 5
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = transactionalID, pid, epoch, !add
	rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	rt.Topic, rt.Partitions = topicName, []int32{p}
	tx.Topics = append(tx.Topics, rt)
	req.Transactions = append(req.Transactions, tx)

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resp *kmsg.AddPartitionsToTxnResponse
	switch coord := b.txnCoordinatorOf(transactionalID); {
	case coord < 0:
		return kerr.CoordinatorNotAvailable.Code
	case coord == b.cfg.NodeID:
		resp = b.txns.AddPartitionsToTxn(ctx, req)
	default:
		kresp, err := b.peers.request(ctx, coord, req)
		if err != nil {
			return kerr.CoordinatorNotAvailable.Code
		}
		resp = kresp.(*kmsg.AddPartitionsToTxnResponse)
	}
	if resp.ErrorCode != 0 {
		return resp.ErrorCode
	}
	for _, tr := range resp.Transactions {
		for _, rt := range tr.Topics {
			for _, rp := range rt.Partitions {
				if rt.Topic == topicName && rp.Partition == p {
					return rp.ErrorCode
				}
			}
		}
	}
	return kerr.UnknownServerError.Code
}

// verifyProduceTxn is verifyTxn for a Produce's transactional batch (and a
// TxnOffsetCommit's offsets, the same for v5+). With
// add (transactions v2), CONCURRENT_TRANSACTIONS is retried here, as Kafka
// 4 does (KAFKA-18654): it is what the coordinator answers while the
// producer's previous transaction is still writing its markers, which is
// the normal case for the first batch after EndTxn, since a v2 producer
// starts its next transaction as soon as EndTxn answers. Handed to the
// client, it becomes NOT_ENOUGH_REPLICAS, which franz-go retries only
// after a metadata refresh (5 s by default): one transaction per refresh.
func (b *Broker) verifyProduceTxn(ctx context.Context, transactionalID string, pid int64, epoch int16, topicName string, p int32, add bool) int16 {
	start := time.Now()
	for {
		code := b.verifyTxn(ctx, transactionalID, pid, epoch, topicName, p, add)
		if code != kerr.ConcurrentTransactions.Code || !add || time.Since(start) >= b.addRetry.max {
			return code
		}
		t := time.NewTimer(b.addRetry.backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return code
		case <-t.C:
		}
	}
}

// heldKey is a partition of a producer's transaction whose first batch on
// a connection failed its check with a retriable code (conn.heldBack).
type heldKey struct {
	topic string
	p     int32
	pid   int64
	epoch int16
}

// maxHeldBack bounds conn.heldBack: past it the map is cleared, which
// only gives up the ordering guard for those partitions.
const maxHeldBack = 1024

// verifyInOrder is verifyProduceTxn for a batch of a Produce on c, mapped
// to the producer's code (produceVerifyCode), keeping the producer's order:
// a batch behind one of the same transaction and partition that failed
// the check with a retriable code on this connection gets that code too,
// unchecked, until the failed batch (its sequence or an earlier one)
// comes again. Runs on c's reader goroutine.
func (c *conn) verifyInOrder(transactionalID string, pid int64, epoch int16, topicName string, p int32, records []byte, add bool) int16 {
	k := heldKey{topicName, p, pid, epoch}
	seq := int32(binary.BigEndian.Uint32(records[53:]))
	if held, ok := c.heldBack[k]; ok {
		if seq > held.seq {
			return held.code
		}
		delete(c.heldBack, k) // the failed batch again: check it
	}
	code := produceVerifyCode(c.b.verifyProduce(c.ctx, transactionalID, pid, epoch, topicName, p, add))
	if code == kerr.NotEnoughReplicas.Code { // a retriable failure: the client sends it again
		if c.heldBack == nil || len(c.heldBack) >= maxHeldBack {
			c.heldBack = map[heldKey]heldBatch{}
		}
		c.heldBack[k] = heldBatch{seq: seq, code: code}
	}
	return code
}

// heldBatch is the first sequence and the code of a batch that failed its
// check (conn.heldBack).
type heldBatch struct {
	seq  int32
	code int16
}

// produceVerifyCode maps a verification failure to what a producer gets,
// as Kafka does: retriable coordinator errors become NOT_ENOUGH_REPLICAS,
// which every client retries (the Java client at once; franz-go after a
// metadata refresh, hence verifyProduceTxn's retry).
func produceVerifyCode(code int16) int16 {
	switch code {
	case kerr.ConcurrentTransactions.Code, kerr.NetworkException.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code:
		return kerr.NotEnoughReplicas.Code
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// transactional reports the producer id and epoch of a transactional
// batch (ok false for any other).
func transactional(records []byte) (pid int64, epoch int16, ok bool) {
	if len(records) < 61 || records[22]&0x10 == 0 {
		return 0, 0, false
	}
	pid = int64(uint64(records[43])<<56 | uint64(records[44])<<48 | uint64(records[45])<<40 | uint64(records[46])<<32 |
		uint64(records[47])<<24 | uint64(records[48])<<16 | uint64(records[49])<<8 | uint64(records[50]))
	epoch = int16(uint16(records[51])<<8 | uint16(records[52]))
	return pid, epoch, pid >= 0
}
