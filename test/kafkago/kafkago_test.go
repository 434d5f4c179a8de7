package kafkago

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

func TestKafkaGoFetchAndReader(t *testing.T) {
	b, err := gregor.Start(gregor.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic, parts, per = "kgo-to-kafkago", 3, 20
	if res, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic); err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	for p := range int32(parts) {
		for i := range per {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("p%d-%d", p, i))}, nil)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Client.Fetch: one sessionless full fetch per partition.
	kc := &kafkago.Client{Addr: kafkago.TCP(b.Addr()), Timeout: 10 * time.Second}
	for p := range parts {
		res, err := kc.Fetch(ctx, &kafkago.FetchRequest{Topic: topic, Partition: p, Offset: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("partition %d: Client.Fetch: %v", p, err)
		}
		if res.Error != nil {
			t.Fatalf("partition %d: fetch error %v", p, res.Error)
		}
		if res.HighWatermark != per {
			t.Fatalf("partition %d: high watermark %d, want %d", p, res.HighWatermark, per)
		}
		n := 0
		for {
			r, err := res.Records.ReadRecord()
			if err != nil {
				break
			}
			if r.Offset != int64(n) {
				t.Fatalf("partition %d: offset %d, want %d", p, r.Offset, n)
			}
			n++
		}
		if n != per {
			t.Fatalf("partition %d: Client.Fetch read %d records, want %d", p, n, per)
		}
	}

	// Reader, partition by partition (no group).
	for p := range parts {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{b.Addr()}, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		for i := range per {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d: Reader after %d messages: %v", p, i, err)
			}
			if want := fmt.Sprintf("p%d-%d", p, i); string(m.Value) != want || m.Offset != int64(i) {
				t.Fatalf("partition %d: message %q at %d, want %q at %d", p, m.Value, m.Offset, want, i)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
