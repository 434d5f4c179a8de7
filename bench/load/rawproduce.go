package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawProduceVersion is the Produce version the raw producer speaks: the
// newest before flexible encoding, served by every broker this harness
// compares (Kafka 4 serves 3 and up).
const rawProduceVersion = 8

// produceRaw produces like produce, with the cheapest client possible, so
// that the broker, not the client, is the bottleneck: the record batches
// are built once, before the clock starts, and every request sends the same
// bytes again, so the client's work per request is a correlation ID, and
// for an idempotent producer each batch's sequence number and CRC. Each of
// -producers has its own connection to each leader, up to -max-inflight
// requests in flight on it (5 when idempotent), each request carrying one
// batch of -batch-bytes for every partition that broker leads. Records are
// -record-size bytes of random data, no key, no compression. Ack latency
// is per request, from its write to its answer.
func produceRaw(ctx context.Context, c config) (*result, error) {
	switch {
	case c.compression != "none":
		return nil, errors.New("-mode produce-raw sends uncompressed batches: -compression must be none")
	case c.acks != "1" && c.acks != "all":
		return nil, errors.New("-mode produce-raw needs -acks 1 or all")
	case c.rate > 0:
		return nil, errors.New("-mode produce-raw has no -rate")
	}
	if _, err := ensureTopic(ctx, c, true); err != nil {
		return nil, err
	}
	cls, err := clients(ctx, c, 1)
	if err != nil {
		return nil, err
	}
	defer closeAll(cls)
	leaders, err := leaderAddrs(ctx, kadm.NewClient(cls[0]), c.topic)
	if err != nil {
		return nil, err
	}
	acks := int16(1)
	idempotent := c.acks == "all" && c.idempotent
	if c.acks == "all" {
		acks = -1
	}
	inflight := c.maxInflight
	if idempotent {
		inflight = 5 // Kafka's limit for an idempotent producer
	}
	pl := newPayloads(c.recordSize, c.batchBytes)
	perBatch := max(1, c.batchBytes/(c.recordSize+16))

	// One worker per producer and leader; the records are split evenly.
	type job struct {
		addr  string
		parts []int32
	}
	var jobs []job
	for range c.producers {
		for _, l := range leaders {
			jobs = append(jobs, job{l.addr, l.parts})
		}
	}
	ws := make([]*rawProducer, len(jobs))
	for i, j := range jobs {
		w := &rawProducer{topic: c.topic, parts: j.parts, acks: acks, perBatch: perBatch, inflight: inflight,
			limit: share(c.records, i, len(jobs)), h: new(hist)}
		w.value = func(k int) []byte { return pl.value(i*len(j.parts)*perBatch + k) }
		if idempotent {
			req := kmsg.NewPtrInitProducerIDRequest()
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := req.RequestWith(ictx, cls[0])
			cancel()
			if err == nil {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			if err != nil {
				return nil, fmt.Errorf("init producer id: %w", err)
			}
			w.pid, w.epoch, w.seqs = resp.ProducerID, resp.ProducerEpoch, make([]int32, len(j.parts))
		} else {
			w.pid, w.epoch = -1, -1
		}
		if err := w.setup(); err != nil {
			return nil, err
		}
		if err := w.dial(ctx, j.addr); err != nil {
			return nil, err
		}
		defer w.conn.Close()
		ws[i] = w
	}
	settings := []kv{{"acks", c.acks}, {"producers", strconv.Itoa(c.producers)}, {"record_size", strconv.Itoa(c.recordSize)},
		{"batch_bytes", strconv.Itoa(c.batchBytes)}, {"records_per_batch", strconv.Itoa(perBatch)},
		{"compression", "none"}, {"max_inflight", strconv.Itoa(inflight)}, {"idempotent", strconv.FormatBool(idempotent)},
		{"client", "raw"}}

	m, err := startMeter(c.brokerPIDs)
	if err != nil {
		return nil, err
	}
	var deadline time.Time
	if c.duration > 0 {
		deadline = m.start.Add(c.duration)
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(ws))
	)
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.run(ctx, deadline, c.drain)
		}()
	}
	wg.Wait()
	r, err := m.finish(errs...)
	if err != nil {
		return nil, err
	}
	r.lat, r.settings = new(hist), settings
	for _, w := range ws {
		r.records += w.acked.Load()
		r.lat.merge(w.h)
	}
	r.bytes = r.records * int64(c.recordSize)
	return r, nil
}

// leader is a broker's address and the partitions of the topic it leads.
type leader struct {
	addr  string
	parts []int32
}

// leaderAddrs groups topic's partitions by leader, in partition order.
func leaderAddrs(ctx context.Context, adm *kadm.Client, topic string) ([]leader, error) {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	md, err := adm.Metadata(mctx, topic)
	cancel()
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("metadata for %s: %v", topic, td.Err)
	}
	addrs := map[int32]string{}
	for _, b := range md.Brokers {
		addrs[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	var out []leader
	at := map[int32]int{}
	for _, p := range td.Partitions.Sorted() {
		a, ok := addrs[p.Leader]
		if !ok {
			return nil, fmt.Errorf("metadata for %s: leader %d of partition %d is not among the brokers", topic, p.Leader, p.Partition)
		}
		i, seen := at[p.Leader]
		if !seen {
			i = len(out)
			at[p.Leader] = i
			out = append(out, leader{addr: a})
		}
		out[i].parts = append(out[i].parts, p.Partition)
	}
	return out, nil
}

// rawProducer is one connection of the raw producer.
type rawProducer struct {
	topic    string
	parts    []int32
	acks     int16
	perBatch int
	inflight int
	limit    int64 // records to send; -1: until the deadline
	value    func(k int) []byte
	pid      int64
	epoch    int16
	seqs     []int32 // next sequence per partition (idempotent)

	req  *rawRequest // a full request
	tail *rawRequest // the last, shorter request of a record limit, or nil

	conn  net.Conn
	acked atomic.Int64
	h     *hist
}

// rawRequest is an encoded Produce request, and where each partition's
// batch sits in it.
type rawRequest struct {
	b       []byte
	batches []int // offset of parts[i]'s batch in b
	counts  []int // records in parts[i]'s batch
	records int64
}

func (w *rawProducer) dial(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	w.conn = conn
	return err
}

// build encodes a request with counts[i] records for parts[i] (0: none).
func (w *rawProducer) build(counts []int) (*rawRequest, error) {
	ts := time.Now().UnixMilli()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = rawProduceVersion, w.acks, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = w.topic
	var batches [][]byte
	k := 0
	for i, n := range counts {
		if n == 0 {
			continue
		}
		var recs []byte
		for j := range n {
			r := kmsg.Record{OffsetDelta: int32(j), Value: w.value(k)}
			k++
			r.Length = int32(len(r.AppendTo(nil)) - 1) // everything after a one-byte Length of 0
			recs = r.AppendTo(recs)
		}
		rb := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(n - 1),
			FirstTimestamp: ts, MaxTimestamp: ts, ProducerID: w.pid, ProducerEpoch: w.epoch, FirstSequence: -1,
			NumRecords: int32(n), Records: recs}
		b := rb.AppendTo(nil)
		binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32c))
		batches = append(batches, b)
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = w.parts[i], b
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	out := &rawRequest{b: kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench-load-raw")).AppendRequest(nil, req, 0),
		counts: counts}
	// The batches appear in the request in order, byte for byte.
	at, bi := 0, 0
	for _, n := range counts {
		out.records += int64(n)
		if n == 0 {
			out.batches = append(out.batches, -1)
			continue
		}
		j := bytes.Index(out.b[at:], batches[bi])
		if j < 0 {
			return nil, errors.New("produce-raw: a batch is missing from its encoded request")
		}
		out.batches = append(out.batches, at+j)
		at += j + len(batches[bi])
		bi++
	}
	return out, nil
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// prepare readies r to be sent as request corr: its correlation ID, and
// for an idempotent producer each batch's first sequence and CRC.
func (w *rawProducer) prepare(r *rawRequest, corr int32) {
	binary.BigEndian.PutUint32(r.b[8:], uint32(corr)) // size, key, version, then the correlation ID
	if w.seqs == nil {
		return
	}
	for i, off := range r.batches {
		if off < 0 {
			continue
		}
		b := r.b[off : off+12+int(binary.BigEndian.Uint32(r.b[off+8:]))]
		binary.BigEndian.PutUint32(b[53:], uint32(w.seqs[i]))
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32c))
		w.seqs[i] += int32(r.counts[i])
	}
}

// setup builds the requests: full ones, and for a record limit that they
// do not divide, a shorter last one.
func (w *rawProducer) setup() error {
	full := make([]int, len(w.parts))
	for i := range full {
		full[i] = w.perBatch
	}
	var err error
	if w.req, err = w.build(full); err != nil {
		return err
	}
	if w.limit >= 0 {
		if rest := w.limit % w.req.records; rest > 0 {
			counts := make([]int, len(w.parts))
			for i := range counts {
				counts[i] = int(rest) / len(counts)
				if int64(i) < rest%int64(len(counts)) {
					counts[i]++
				}
			}
			if w.tail, err = w.build(counts); err != nil {
				return err
			}
		}
	}
	return nil
}

// sent is a request in flight.
type sent struct {
	corr    int32
	at      time.Time
	records int64
}

// run sends requests until limit records or the deadline, keeping up to
// inflight unanswered, then waits at most drain for the last answers.
func (w *rawProducer) run(ctx context.Context, deadline time.Time, drain time.Duration) error {
	req, tail := w.req, w.tail
	slots := make(chan struct{}, w.inflight) // one per request in flight
	queue := make(chan sent, w.inflight)
	readErr := make(chan error, 1)
	go func() { readErr <- w.readAnswers(queue, slots) }()
	var sendErr error
	var left int64 = w.limit
	for corr := int32(1); left != 0; corr++ {
		r := req
		if left > 0 && left < req.records {
			r = tail
		}
		if !deadline.IsZero() && time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		w.prepare(r, corr)
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			readErr <- err
			sendErr = fmt.Errorf("reading answers: %w", err)
		}
		if sendErr != nil {
			break
		}
		queue <- sent{corr: corr, at: time.Now(), records: r.records}
		if _, err := w.conn.Write(r.b); err != nil {
			sendErr = err
			break
		}
		if left > 0 {
			left -= r.records
		}
	}
	close(queue)
	w.conn.SetReadDeadline(time.Now().Add(drain))
	err := <-readErr
	if sendErr != nil {
		return sendErr
	}
	return err
}

// readAnswers reads the answer to each request in queue, in order, into
// one buffer, counts the records of those without errors, and frees a slot
// for each.
func (w *rawProducer) readAnswers(queue <-chan sent, slots <-chan struct{}) error {
	var buf []byte
	for s := range queue {
		b, err := readAnswer(w.conn, &buf, s.corr)
		if err != nil {
			return fmt.Errorf("produce, %d requests unanswered: %w", len(queue)+1, err)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = rawProduceVersion
		if err := resp.ReadFrom(b); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("produce %s[%d]: %w", t.Topic, p.Partition, err)
				}
			}
		}
		w.h.record(time.Since(s.at))
		w.acked.Add(s.records)
		<-slots
	}
	return nil
}
