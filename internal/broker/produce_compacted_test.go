package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A compacted topic refuses a batch holding any record without a key, as
// Kafka does, whether the batch is compressed or not, and stores nothing
// of it; keyed records go in, and a delete-policy topic still takes
// keyless ones. A topic altered to compact starts refusing them.
func TestProduceKeylessToCompactedTopic(t *testing.T) {
	b := netStartBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()),
		kgo.ProducerBatchCompression(kgo.GzipCompression()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "d"); err != nil {
		t.Fatal(err)
	}
	end := func(topic string) int64 {
		t.Helper()
		offs, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, 0)
		return o.Offset
	}

	// One gzip batch of a keyed and a keyless record: both refused.
	res := cl.ProduceSync(ctx,
		&kgo.Record{Topic: "c", Key: []byte("k1"), Value: []byte("v1")},
		&kgo.Record{Topic: "c", Value: []byte("no key")})
	for _, r := range res {
		if !errors.Is(r.Err, kerr.InvalidRecord) {
			t.Fatalf("record %q: %v, want INVALID_RECORD", r.Record.Value, r.Err)
		}
	}
	if o := end("c"); o != 0 {
		t.Fatalf("end offset %d after a refused batch, want 0", o)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "c", Key: []byte("k1"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatalf("keyed record: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "d", Value: []byte("no key")}).FirstErr(); err != nil {
		t.Fatalf("keyless record to a delete-policy topic: %v", err)
	}

	// The raw answer: Kafka's code, message and record error.
	produceRaw := func(topic string) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = testBatch(t, "no key") // a null key
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	p := produceRaw("c")
	want := "Compacted topic cannot accept message without key in topic partition c-0"
	if p.ErrorCode != kerr.InvalidRecord.Code || p.ErrorMessage == nil || *p.ErrorMessage != want {
		t.Fatalf("raw produce: code %d message %v, want INVALID_RECORD %q", p.ErrorCode, p.ErrorMessage, want)
	}
	if len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != 0 || p.ErrorRecords[0].ErrorMessage == nil || *p.ErrorRecords[0].ErrorMessage != want {
		t.Fatalf("record errors %+v, want one at index 0", p.ErrorRecords)
	}
	if o := end("c"); o != 1 {
		t.Fatalf("end offset %d, want 1 (the keyed record only)", o)
	}

	// cleanup.policy altered to compact,delete: keyless records are refused from then on.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact,delete")}}, "d"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := produceRaw("d")
		if p.ErrorCode == kerr.InvalidRecord.Code && p.ErrorMessage != nil && strings.HasSuffix(*p.ErrorMessage, "partition d-0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after altering d to compact,delete: code %d, want INVALID_RECORD", p.ErrorCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
