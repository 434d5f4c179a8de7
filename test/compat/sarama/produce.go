package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// rec is one record as produced; nil key/value/header value means null.
type rec struct {
	partition int32
	key       []byte
	value     []byte
	headers   []sarama.RecordHeader
	ts        time.Time
}

func (r rec) message(topic string) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Partition: r.partition, Timestamp: r.ts}
	if r.key != nil {
		m.Key = sarama.ByteEncoder(r.key)
	}
	if r.value != nil {
		m.Value = sarama.ByteEncoder(r.value)
	}
	m.Headers = r.headers
	return m
}

// codecRecords: partition 0 gets the edge cases (null key, empty key and
// value, a tombstone, binary bytes, repeated header keys, null and empty
// header values, a 200 KB compressible value); partition 1 gets 20 plain
// records, each with one header.
func codecRecords() []rec {
	base := time.Now().Truncate(time.Millisecond).Add(-time.Minute)
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	big := []byte(strings.Repeat("gregor sarama compat 0123456789 ", 200*1024/32))
	rs := []rec{
		{0, []byte("k0"), []byte("v0"), []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("a")}, {Key: []byte("h"), Value: []byte("b")}}, base},
		{0, nil, []byte("null key"), nil, base.Add(1 * time.Millisecond)},
		{0, []byte{}, []byte{}, nil, base.Add(2 * time.Millisecond)},
		{0, []byte("tombstone"), nil, nil, base.Add(3 * time.Millisecond)},
		{0, []byte("bin"), bin, []sarama.RecordHeader{{Key: []byte("null"), Value: nil}, {Key: []byte("empty"), Value: []byte{}}, {Key: []byte("bin"), Value: bin[:16]}}, base.Add(4 * time.Millisecond)},
		{0, []byte("big"), big, nil, base.Add(5 * time.Millisecond)},
		{0, nil, nil, []sarama.RecordHeader{{Key: []byte("only"), Value: []byte("headers")}}, base.Add(6 * time.Millisecond)},
	}
	for i := 0; i < 20; i++ {
		rs = append(rs, rec{1, []byte(fmt.Sprintf("p1-%02d", i)), []byte(fmt.Sprintf("value %d %s", i, strings.Repeat("x", i))),
			[]sarama.RecordHeader{{Key: []byte("i"), Value: []byte(fmt.Sprint(i))}}, base.Add(time.Duration(10+i) * time.Millisecond)})
	}
	return rs
}

var codecs = []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
	sarama.CompressionLZ4, sarama.CompressionZSTD}

func (p *profile) produceChecks() {
	for _, codec := range codecs {
		p.check("produce_consume_codec_"+codec.String(), func() {
			t := p.topic("codec-" + codec.String())
			p.createTopic(t, 2)
			cfg := p.config()
			cfg.Producer.Compression = codec
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			client := p.client(cfg)
			defer client.Close()
			prod, err := sarama.NewSyncProducerFromClient(client)
			must(err, "NewSyncProducer")
			defer prod.Close()

			rs := codecRecords()
			msgs := make([]*sarama.ProducerMessage, len(rs))
			for i, r := range rs {
				msgs[i] = r.message(t)
			}
			must(prod.SendMessages(msgs), "SendMessages")
			next := map[int32]int64{}
			for i, m := range msgs {
				expect(m.Partition == rs[i].partition, "message %d: partition %d, want %d", i, m.Partition, rs[i].partition)
				expect(m.Offset == next[m.Partition], "message %d: partition %d offset %d, want %d (contiguous in send order)",
					i, m.Partition, m.Offset, next[m.Partition])
				next[m.Partition]++
			}

			for part := int32(0); part < 2; part++ {
				var want []rec
				for _, r := range rs {
					if r.partition == part {
						want = append(want, r)
					}
				}
				got := consumePartition(client, t, part, len(want))
				for i, m := range got {
					expect(m.Offset == int64(i), "partition %d record %d: offset %d", part, i, m.Offset)
					compareRecord(fmt.Sprintf("partition %d offset %d", part, i), m, want[i])
				}
				// The batches on the wire carry the producer's codec.
				for _, b := range fetchBatches(client, t, part, int64(len(want))) {
					expect(b.Codec == codec, "partition %d batch at offset %d: codec %v, want %v", part, b.FirstOffset, b.Codec, codec)
					expect(b.Version == 2 && !b.LogAppendTime, "partition %d batch at %d: magic %d logAppendTime %v",
						part, b.FirstOffset, b.Version, b.LogAppendTime)
				}
			}
		})
	}
}

// idempotentCheck: 300 records over 3 partitions through an idempotent
// AsyncProducer in ten waves of 30, each acknowledged before the next is
// sent, so every partition gets at least ten batches: offsets contiguous per
// partition in send order, every batch carries the same producer id and
// sequences without gaps, every value read back in order.
func (p *profile) idempotentCheck() {
	p.check("idempotent_producer_offsets_contiguous", func() {
		t := p.topic("idempotent")
		p.createTopic(t, 3)
		cfg := p.config()
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Retry.Max = 5
		cfg.Producer.Return.Errors = true
		if !cfg.Version.IsAtLeast(sarama.V0_11_0_0) {
			cfg.Version = sarama.V0_11_0_0
		}
		client := p.client(cfg)
		defer client.Close()
		prod, err := sarama.NewAsyncProducerFromClient(client)
		must(err, "NewAsyncProducer (idempotent)")
		defer prod.Close()

		const n, wave = 300, 30
		offsets := make([]int64, n)
		deadline := time.After(20 * time.Second)
		for start := 0; start < n; start += wave {
			for i := start; i < start+wave; i++ {
				prod.Input() <- &sarama.ProducerMessage{Topic: t, Partition: int32(i % 3), Metadata: i,
					Key: sarama.StringEncoder(fmt.Sprintf("idem-%03d", i)), Value: sarama.StringEncoder(fmt.Sprintf("value-%03d", i))}
			}
			for got := 0; got < wave; got++ {
				select {
				case m := <-prod.Successes():
					offsets[m.Metadata.(int)] = m.Offset
				case e := <-prod.Errors():
					failf("produce error in the wave from record %d: %v", start, e)
				case <-deadline:
					failf("only %d of %d acknowledged after 20s", start+got, n)
				}
			}
		}
		for i := 0; i < n; i++ {
			expect(offsets[i] == int64(i/3), "record %d (partition %d): offset %d, want %d", i, i%3, offsets[i], i/3)
		}
		pid := int64(-1)
		for part := int32(0); part < 3; part++ {
			batches := fetchBatches(client, t, part, n/3)
			expect(len(batches) >= n/wave, "partition %d: %d batch(es), want at least one per wave (%d)", part, len(batches), n/wave)
			var seq int32
			var off int64
			for _, b := range batches {
				if pid < 0 {
					pid = b.ProducerID
				}
				expect(b.ProducerID >= 0 && b.ProducerID == pid, "partition %d batch at %d: producer id %d (first batch had %d)",
					part, b.FirstOffset, b.ProducerID, pid)
				expect(b.ProducerEpoch >= 0, "partition %d batch at %d: producer epoch %d", part, b.FirstOffset, b.ProducerEpoch)
				expect(b.FirstOffset == off && b.FirstSequence == seq, "partition %d: batch at offset %d sequence %d, want offset %d sequence %d",
					part, b.FirstOffset, b.FirstSequence, off, seq)
				seq += int32(len(b.Records))
				off += int64(len(b.Records))
			}
			for i, m := range consumePartition(client, t, part, n/3) {
				want := fmt.Sprintf("value-%03d", i*3+int(part))
				expect(string(m.Value) == want, "partition %d offset %d: value %q, want %q", part, m.Offset, m.Value, want)
			}
		}
	})
}

// cutBatchesCheck: a fetch limit that falls inside a batch. The broker
// fills the limit and cuts the last batch, as Kafka does; sarama drops the
// partial batch and fetches it again. 300 records of about 500 bytes in
// sends of 10 (batches of about 5 KB), read with 8,000-byte fetches: every
// record once, in order.
func (p *profile) cutBatchesCheck() {
	p.check("consume_with_fetch_limits_inside_batches", func() {
		t := p.topic("cut-batches")
		p.createTopic(t, 1)
		cfg := p.config()
		cfg.Consumer.Fetch.Default, cfg.Consumer.Fetch.Max = 8000, 8000
		client := p.client(cfg)
		defer client.Close()
		prod, err := sarama.NewSyncProducerFromClient(client)
		must(err, "NewSyncProducer")
		defer prod.Close()
		const n = 300
		for s := 0; s < n; s += 10 {
			var msgs []*sarama.ProducerMessage
			for i := s; i < s+10; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: t, Partition: 0,
					Value: sarama.StringEncoder(fmt.Sprintf("%03d:%s", i, strings.Repeat("x", 500)))})
			}
			must(prod.SendMessages(msgs), "SendMessages")
		}
		for i, m := range consumePartition(client, t, 0, n) {
			want := fmt.Sprintf("%03d:", i)
			expect(m.Offset == int64(i) && strings.HasPrefix(string(m.Value), want),
				"record %d: offset %d value %.4q, want offset %d value %q...", i, m.Offset, m.Value, i, want)
		}
	})
}

// consumePartition reads n records of a partition from OffsetOldest with a
// partition consumer, then checks nothing more is there.
func consumePartition(client sarama.Client, topic string, part int32, n int) []*sarama.ConsumerMessage {
	c, err := sarama.NewConsumerFromClient(client)
	must(err, "NewConsumer")
	defer c.Close()
	pc, err := c.ConsumePartition(topic, part, sarama.OffsetOldest)
	must(err, fmt.Sprintf("ConsumePartition %s/%d", topic, part))
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	timeout := time.After(15 * time.Second)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case e := <-pc.Errors():
			failf("consume %s/%d after %d records: %v", topic, part, len(got), e)
		case <-timeout:
			failf("consume %s/%d: %d of %d records after 15s (high watermark %d)", topic, part, len(got), n, pc.HighWaterMarkOffset())
		}
	}
	select {
	case m := <-pc.Messages():
		failf("consume %s/%d: unexpected record at offset %d after the %d produced", topic, part, m.Offset, n)
	case <-time.After(300 * time.Millisecond):
	}
	expect(pc.HighWaterMarkOffset() == int64(n), "%s/%d high watermark %d, want %d", topic, part, pc.HighWaterMarkOffset(), n)
	return got
}

func compareRecord(where string, m *sarama.ConsumerMessage, want rec) {
	sameBytes(where+" key", m.Key, want.key)
	sameBytes(where+" value", m.Value, want.value)
	expect(m.Timestamp.Equal(want.ts), "%s timestamp: got %v, want %v", where, m.Timestamp, want.ts)
	expect(len(m.Headers) == len(want.headers), "%s: %d headers, want %d", where, len(m.Headers), len(want.headers))
	for i, h := range m.Headers {
		sameBytes(fmt.Sprintf("%s header %d key", where, i), h.Key, want.headers[i].Key)
		sameBytes(fmt.Sprintf("%s header %d (%s) value", where, i, want.headers[i].Key), h.Value, want.headers[i].Value)
	}
}

// sameBytes tells null from empty.
func sameBytes(what string, got, want []byte) {
	switch {
	case want == nil:
		expect(got == nil, "%s: got %q, want null", what, short(got))
	case got == nil:
		expect(false, "%s: got null, want %q", what, short(want))
	default:
		expect(bytes.Equal(got, want), "%s: got %q (%d bytes), want %q (%d bytes)", what, short(got), len(got), short(want), len(want))
	}
}

func short(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// fetchBatches reads a partition's record batches with raw Fetch requests
// (v11) up to offset end, so checks can look at what the producer's codec,
// producer id and sequences became on the broker.
func fetchBatches(client sarama.Client, topic string, part int32, end int64) []*sarama.RecordBatch {
	leader, err := client.Leader(topic, part)
	must(err, "Leader")
	var out []*sarama.RecordBatch
	var next int64
	for tries := 0; next < end; tries++ {
		expect(tries < 20, "raw fetch %s/%d stuck at offset %d of %d", topic, part, next, end)
		req := &sarama.FetchRequest{Version: 11, MaxWaitTime: 500, MinBytes: 1, MaxBytes: 4 << 20, Isolation: sarama.ReadUncommitted}
		req.AddBlock(topic, part, next, 4<<20, -1)
		resp, err := leader.Fetch(req)
		must(err, "raw Fetch")
		blk := resp.GetBlock(topic, part)
		expect(blk != nil, "raw fetch: no block for %s/%d", topic, part)
		expect(blk.Err == sarama.ErrNoError, "raw fetch %s/%d at %d: %v", topic, part, next, blk.Err)
		for _, rs := range blk.RecordsSet {
			b := rs.RecordBatch
			expect(b != nil, "raw fetch %s/%d: a legacy message set, want record batches", topic, part)
			if b.PartialTrailingRecord || b.LastOffsetDelta < 0 {
				continue
			}
			if b.FirstOffset+int64(b.LastOffsetDelta) < next {
				continue // a batch the broker may return again from its start
			}
			expect(b.FirstOffset == next, "raw fetch %s/%d: batch at %d, want %d", topic, part, b.FirstOffset, next)
			expect(len(b.Records) == int(b.LastOffsetDelta)+1, "batch at %d: %d records, last offset delta %d",
				b.FirstOffset, len(b.Records), b.LastOffsetDelta)
			out = append(out, b)
			next = b.FirstOffset + int64(b.LastOffsetDelta) + 1
		}
	}
	return out
}
