package gregor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor"
)

// newBroker starts an embedded broker in a temp dir and stops it when the
// test ends.
func newBroker(t *testing.T, props map[string]string) *gregor.Broker {
	t.Helper()
	return startIn(t, t.TempDir(), props)
}

func startIn(t *testing.T, dir string, props map[string]string) *gregor.Broker {
	t.Helper()
	b, err := gregor.Start(gregor.Options{Dir: dir, Properties: props})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newClient(t *testing.T, b *gregor.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctxT(t), partitions, 1, configs, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, resp.Err)
	}
}

// consumeAll reads n records from the start of topic.
func consumeAll(t *testing.T, b *gregor.Broker, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func topicID(t *testing.T, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	td, err := kadm.NewClient(cl).ListTopics(ctxT(t), topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("metadata for %s: %v", topic, err)
	}
	return td[topic].ID
}

func TestRoundTripEveryCodec(t *testing.T) {
	b := newBroker(t, nil)
	codecs := map[string]kgo.CompressionCodec{
		"none":   kgo.NoCompression(),
		"gzip":   kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(),
		"lz4":    kgo.Lz4Compression(),
		"zstd":   kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			cl := newClient(t, b, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
			const n = 200
			var want []*kgo.Record
			for i := 0; i < n; i++ {
				r := &kgo.Record{
					Key:     []byte(fmt.Sprintf("key-%d", i)),
					Value:   bytes.Repeat([]byte{byte('a' + i%26)}, 100+i),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}},
				}
				switch i % 10 {
				case 3:
					r.Key = nil
				case 7:
					r.Value = nil
				}
				want = append(want, r)
			}
			if err := cl.ProduceSync(ctxT(t), want...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			got := consumeAll(t, b, topic, n)
			if len(got) != n {
				t.Fatalf("got %d records, want %d", len(got), n)
			}
			for i, r := range got {
				w := want[i]
				if r.Offset != int64(i) {
					t.Errorf("record %d at offset %d", i, r.Offset)
				}
				if !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) {
					t.Errorf("record %d key %q, want %q", i, r.Key, w.Key)
				}
				if !bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) {
					t.Errorf("record %d value differs (nil %v, want nil %v)", i, r.Value == nil, w.Value == nil)
				}
				if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != fmt.Sprint(i) {
					t.Errorf("record %d headers %v", i, r.Headers)
				}
			}
		})
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := startIn(t, dir, map[string]string{"num.partitions": "3"})
	cl := newClient(t, b, kgo.DefaultProduceTopic("durable"), kgo.AllowAutoTopicCreation())
	var recs []*kgo.Record
	for i := 0; i < 300; i++ {
		recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprint(i))})
	}
	if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := startIn(t, dir, nil)
	got := consumeAll(t, b2, "durable", 300)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(seen) != 300 {
		t.Fatalf("after restart read %d distinct records, want 300", len(seen))
	}
	adm := kadm.NewClient(newClient(t, b2))
	td, err := adm.ListTopics(ctxT(t), "durable")
	if err != nil || len(td["durable"].Partitions) != 3 {
		t.Fatalf("topic after restart: %v %+v", err, td)
	}
}

func TestAdminTopicsAndConfigs(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	retention := "3600000"
	createTopic(t, cl, "admin-t", 2, map[string]*string{"retention.ms": &retention})

	// Creating it again fails the way Kafka fails.
	resp, err := adm.CreateTopic(ctx, 2, 1, nil, "admin-t")
	if !errors.Is(err, kerr.TopicAlreadyExists) || !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v %v", err, resp.Err)
	}
	// Replication factor 3 cannot be met by one broker.
	resp, err = adm.CreateTopic(ctx, 1, 3, nil, "admin-rf3")
	if !errors.Is(resp.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf=3 create: %v %v", err, resp.Err)
	}
	bad := "banana"
	resp, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &bad}, "admin-bad")
	if !errors.Is(resp.Err, kerr.InvalidConfig) {
		t.Fatalf("bad config create: %v %v", err, resp.Err)
	}

	rcs, err := adm.DescribeTopicConfigs(ctx, "admin-t")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("admin-t", nil)
	found := false
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			found = true
			if c.MaybeValue() != "3600000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Errorf("retention.ms = %q from %v", c.MaybeValue(), c.Source)
			}
		}
		if c.Key == "segment.bytes" && c.MaybeValue() != "1073741824" {
			t.Errorf("segment.bytes default = %q", c.MaybeValue())
		}
	}
	if !found {
		t.Fatal("retention.ms not described")
	}

	seg := "1048576"
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: &seg}}, "admin-t")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %+v", err, ar)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "admin-t")
	rc, _ = rcs.On("admin-t", nil)
	for _, c := range rc.Configs {
		if c.Key == "segment.bytes" && c.MaybeValue() != seg {
			t.Errorf("segment.bytes after alter = %q", c.MaybeValue())
		}
		if c.Key == "retention.ms" && c.MaybeValue() != "3600000" {
			t.Errorf("incremental alter lost retention.ms: %q", c.MaybeValue())
		}
	}

	if _, err := adm.CreatePartitions(ctx, 2, "admin-t"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "admin-t")
	if err != nil || len(td["admin-t"].Partitions) != 4 {
		t.Fatalf("after create partitions: %v %d", err, len(td["admin-t"].Partitions))
	}

	dr, err := adm.DeleteTopics(ctx, "admin-t")
	if err != nil || dr["admin-t"].Err != nil {
		t.Fatalf("delete: %v %+v", err, dr)
	}
	td, err = adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := td["admin-t"]; ok {
		t.Fatal("topic still listed after delete")
	}

	meta, err := adm.BrokerMetadata(ctx)
	if err != nil || meta.Cluster != b.ClusterID() || len(meta.Brokers) != 1 {
		t.Fatalf("cluster metadata %v %+v", err, meta)
	}
}

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b, kgo.DefaultProduceTopic("offsets"))
	createTopic(t, cl, "offsets", 1, nil)
	ctx := ctxT(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	end, err := adm.ListEndOffsets(ctx, "offsets")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := end.Lookup("offsets", 0); o.Offset != 10 {
		t.Fatalf("end offset %d, want 10", o.Offset)
	}
	at, err := adm.ListOffsetsAfterMilli(ctx, base.Add(4*time.Minute+time.Second).UnixMilli(), "offsets")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := at.Lookup("offsets", 0); o.Offset != 5 {
		t.Fatalf("offset by timestamp %d, want 5", o.Offset)
	}
	del, err := adm.DeleteRecords(ctx, kadm.Offsets{"offsets": {0: {At: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := del.Lookup("offsets", 0); d.Err != nil || d.LowWatermark != 4 {
		t.Fatalf("delete records: %+v", d)
	}
	start, err := adm.ListStartOffsets(ctx, "offsets")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := start.Lookup("offsets", 0); o.Offset != 4 {
		t.Fatalf("start offset %d after delete, want 4", o.Offset)
	}
	// Reading below the log start is out of range.
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 0, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = "offsets", topicID(t, cl, "offsets")
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = 1, 1<<20
	rt.Partitions = []kmsg.FetchRequestTopicPartition{rp}
	req.Topics = []kmsg.FetchRequestTopic{rt}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below log start: error %d, want OFFSET_OUT_OF_RANGE", code)
	}
}

func TestLongPollWakesOnAppend(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "poll", 1, nil)
	id := topicID(t, cl, "poll")
	done := make(chan time.Time, 1)
	go func() {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 20000, 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "poll", id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = []kmsg.FetchRequestTopicPartition{rp}
		req.Topics = []kmsg.FetchRequestTopic{rt}
		resp, err := req.RequestWith(context.Background(), cl)
		if err == nil && len(resp.Topics[0].Partitions[0].RecordBatches) > 0 {
			done <- time.Now()
		}
		close(done)
	}()
	time.Sleep(300 * time.Millisecond)
	produced := time.Now()
	if err := newClient(t, b).ProduceSync(ctxT(t), &kgo.Record{Topic: "poll", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got, ok := <-done
	if !ok {
		t.Fatal("long poll returned without the record")
	}
	// The poll would run 20 s without a wake-up.
	if waited := got.Sub(produced); waited > 10*time.Second {
		t.Fatalf("long poll answered %v after the append", waited)
	}
}

func TestIdempotentProducerConcurrent(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b, kgo.DefaultProduceTopic("idem"), kgo.RequiredAcks(kgo.AllISRAcks()))
	createTopic(t, cl, "idem", 4, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	offsets := map[[2]int64]bool{}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				r := &kgo.Record{Key: []byte(fmt.Sprint(g, i)), Value: []byte("v")}
				cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
						return
					}
					mu.Lock()
					k := [2]int64{int64(r.Partition), r.Offset}
					if offsets[k] {
						t.Errorf("offset %v acknowledged twice", k)
					}
					offsets[k] = true
					mu.Unlock()
				})
			}
		}(g)
	}
	wg.Wait()
	if err := cl.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if len(offsets) != 1000 {
		t.Fatalf("%d acknowledged offsets, want 1000", len(offsets))
	}
}

// TestBadInputKeepsServing sends what a confused or hostile peer might and
// checks that each such connection is closed while the broker keeps
// serving everyone else.
func TestBadInputKeepsServing(t *testing.T) {
	b := newBroker(t, map[string]string{"socket.request.max.bytes": "1048576"})
	good := newClient(t, b)
	createTopic(t, good, "still-ok", 1, nil)

	frame := func(body []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		return append(out, body...)
	}
	apiVersionsHeader := []byte{0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff}
	cases := map[string][]byte{
		"http":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"tls hello":     {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03},
		"too large":     binary.BigEndian.AppendUint32(nil, 2<<20),
		"negative":      {0xff, 0xff, 0xff, 0xfe},
		"truncated":     append(binary.BigEndian.AppendUint32(nil, 100), apiVersionsHeader...),
		"unknown key":   frame([]byte{0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff}),
		"short header":  frame([]byte{0, 3, 0}),
		"bad version":   frame([]byte{0, 3, 0x40, 0, 0, 0, 0, 1, 0xff, 0xff}),
		"hostile array": frame(append([]byte{0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff}, 0x7f, 0xff, 0xff, 0xff)),
		"produce v2":    frame([]byte{0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 0}),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(payload); err != nil {
				t.Fatal(err)
			}
			if name == "truncated" {
				nc.(*net.TCPConn).CloseWrite()
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, nc)
			if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("connection not closed by the broker: %v", err)
			}
			if n != 0 {
				t.Fatalf("broker answered %d bytes to garbage", n)
			}
			// The broker still serves a real client.
			if err := good.ProduceSync(ctxT(t), &kgo.Record{Topic: "still-ok", Value: []byte(name)}).FirstErr(); err != nil {
				t.Fatalf("broker stopped serving after %s: %v", name, err)
			}
		})
	}
}

func TestApiVersionsUnknownVersion(t *testing.T) {
	b := newBroker(t, nil)
	nc, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// ApiVersions v99, flexible header, with a client software name body.
	body := []byte{0, 18, 0, 99, 0, 0, 0, 7, 0, 1, 'x', 0, 2, 'g', 2, '1', 0}
	nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	nc.Write(body)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(nc, sz[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(nc, resp); err != nil {
		t.Fatal(err)
	}
	if corr := binary.BigEndian.Uint32(resp); corr != 7 {
		t.Fatalf("correlation id %d", corr)
	}
	av := kmsg.NewPtrApiVersionsResponse()
	av.Version = 0
	if err := av.ReadFrom(resp[4:]); err != nil {
		t.Fatal(err)
	}
	if av.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error code %d, want UNSUPPORTED_VERSION", av.ErrorCode)
	}
	for _, k := range av.ApiKeys {
		if k.ApiKey == 18 && k.MaxVersion == 4 {
			return
		}
	}
	t.Fatalf("ApiVersions range missing from %+v", av.ApiKeys)
}

func TestConsumerGroupSplitsAndCommits(t *testing.T) {
	dir := t.TempDir()
	props := map[string]string{"group.initial.rebalance.delay.ms": "0"}
	b := startIn(t, dir, props)
	cl := newClient(t, b, kgo.DefaultProduceTopic("grp"))
	createTopic(t, cl, "grp", 3, nil)
	const n = 300
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]int{}
	owners := map[int32]map[int]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for m := 0; m < 3; m++ {
		wg.Add(1)
		go func(m int) {
			defer wg.Done()
			c := newClient(t, b, kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("grp"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
			for ctx.Err() == nil {
				mu.Lock()
				done := len(seen) == n
				mu.Unlock()
				if done {
					return
				}
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				fs := c.PollFetches(pctx)
				pcancel()
				mu.Lock()
				for _, r := range fs.Records() {
					seen[string(r.Value)]++
					if owners[r.Partition] == nil {
						owners[r.Partition] = map[int]bool{}
					}
					owners[r.Partition][m] = true
				}
				mu.Unlock()
				if err := c.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("commit: %v", err)
				}
			}
		}(m)
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("group consumed %d distinct records, want %d", len(seen), n)
	}

	// The default cooperative-sticky balancer rebalances a second time
	// after revocations; the group must settle in Stable with all three.
	adm := kadm.NewClient(cl)
	var g kadm.DescribedGroup
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		described, err := adm.DescribeGroups(ctxT(t), "g1")
		if err != nil {
			t.Fatal(err)
		}
		if g = described["g1"]; g.State == "Stable" {
			break
		}
	}
	if g.State != "Stable" || g.Protocol != "cooperative-sticky" || len(g.Members) != 3 {
		t.Fatalf("group did not settle: state %s protocol %q members %d", g.State, g.Protocol, len(g.Members))
	}
	for _, m := range g.Members {
		if m.ClientHost != "/127.0.0.1" {
			t.Errorf("client host %q, want /127.0.0.1 as Kafka shows it", m.ClientHost)
		}
	}
	committed, err := adm.FetchOffsets(ctxT(t), "g1")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	committed.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("committed offsets sum to %d, want %d", total, n)
	}

	// Committed offsets survive a restart.
	b.Close()
	b2 := startIn(t, dir, props)
	adm2 := kadm.NewClient(newClient(t, b2))
	committed, err = adm2.FetchOffsets(ctxT(t), "g1")
	if err != nil {
		t.Fatal(err)
	}
	total = 0
	committed.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("after restart committed offsets sum to %d, want %d", total, n)
	}
	lag, err := adm2.Lag(ctxT(t), "g1")
	if err != nil {
		t.Fatal(err)
	}
	if l := lag["g1"].Lag.Total(); l != 0 {
		t.Fatalf("lag after consuming everything = %d", l)
	}
}

// rawBatch encodes one uncompressed v2 batch with the given values.
func rawBatch(values ...[]byte) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: v, Key: nil}
		body := r.AppendTo(nil)
		// AppendTo writes Length first; recompute it from the body.
		r.Length = int32(len(body) - 1)
		recs = append(recs, r.AppendTo(nil)...)
	}
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(len(values) - 1), FirstTimestamp: 1000, MaxTimestamp: 1000,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(values)), Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

func produceRaw(t *testing.T, cl *kgo.Client, topic string, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0]
}

func TestProduceValidation(t *testing.T) {
	b := newBroker(t, map[string]string{"message.max.bytes": "2000"})
	cl := newClient(t, b)
	createTopic(t, cl, "val", 1, nil)

	good := rawBatch([]byte("a"), []byte("b"))
	if p := produceRaw(t, cl, "val", good); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("good batch: error %d offset %d", p.ErrorCode, p.BaseOffset)
	}
	bad := rawBatch([]byte("c"))
	bad[len(bad)-1] ^= 0xff // flip a byte under the CRC
	if p := produceRaw(t, cl, "val", bad); p.ErrorCode != kerr.CorruptMessage.Code {
		t.Fatalf("bad CRC: error %d, want CORRUPT_MESSAGE", p.ErrorCode)
	}
	big := rawBatch(bytes.Repeat([]byte("x"), 3000))
	if p := produceRaw(t, cl, "val", big); p.ErrorCode != kerr.MessageTooLarge.Code {
		t.Fatalf("too large: error %d, want MESSAGE_TOO_LARGE", p.ErrorCode)
	}
	if p := produceRaw(t, cl, "val", good[:30]); p.ErrorCode != kerr.CorruptMessage.Code {
		t.Fatalf("truncated batch: error %d, want CORRUPT_MESSAGE", p.ErrorCode)
	}
	// Nothing of the rejected batches was stored.
	end, err := kadm.NewClient(cl).ListEndOffsets(ctxT(t), "val")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := end.Lookup("val", 0); o.Offset != 2 {
		t.Fatalf("end offset %d after rejected batches, want 2", o.Offset)
	}
}

// TestProduceValidationLargeFrames checks batches in a Produce request of
// almost 2 MiB, read in many pieces: a flipped byte deep inside a batch, or
// near its start or end, is refused with CORRUPT_MESSAGE, and the good
// batches beside them in the same request are stored intact.
func TestProduceValidationLargeFrames(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "big", 5, nil)

	batch := func(seed byte) []byte {
		vals := make([][]byte, 300)
		for i := range vals {
			vals[i] = bytes.Repeat([]byte{seed + byte(i)}, 1000+i)
		}
		return rawBatch(vals...)
	}
	good0, good1 := batch(1), batch(2)
	deep := batch(3)
	deep[len(deep)/2] ^= 0x10
	tail := batch(4)
	tail[len(tail)-3] ^= 0x01
	head := batch(5)
	head[100] ^= 0x80

	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "big"
	for i, recs := range [][]byte{good0, deep, tail, head, good1} {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = int32(i), recs
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	bad := kerr.CorruptMessage.Code
	want := []int16{0, bad, bad, bad, 0}
	for i, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != want[p.Partition] {
			t.Errorf("partition %d (%d): error %d, want %d", p.Partition, i, p.ErrorCode, want[p.Partition])
		}
	}
	end, err := kadm.NewClient(cl).ListEndOffsets(ctxT(t), "big")
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range []int64{300, 0, 0, 0, 300} {
		if o, _ := end.Lookup("big", int32(p)); o.Offset != w {
			t.Errorf("partition %d: end offset %d, want %d", p, o.Offset, w)
		}
	}
	got := consumeAll(t, b, "big", 600)
	for i, r := range got {
		seed := byte(1)
		if r.Partition == 4 {
			seed = 2
		}
		k := int(r.Offset)
		if want := bytes.Repeat([]byte{seed + byte(k)}, 1000+k); !bytes.Equal(r.Value, want) {
			t.Fatalf("record %d (partition %d offset %d): %d bytes, not as produced", i, r.Partition, k, len(r.Value))
		}
	}
}

// TestWriteTxnMarkersWithoutProducer: a WriteTxnMarkers for producer id
// -1 (or any negative id or epoch) names no transactional producer. It is
// refused for that partition with INVALID_PRODUCER_ID_MAPPING, and the
// partition goes on taking produce requests: this request once panicked
// while holding the partition's append lock and wedged it for good.
func TestWriteTxnMarkersWithoutProducer(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "victim", 2, nil)
	for _, m := range []struct {
		pid   int64
		epoch int16
	}{{-1, 0}, {-2, 0}, {5, -1}} {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		marker := kmsg.NewWriteTxnMarkersRequestMarker()
		marker.ProducerID, marker.ProducerEpoch, marker.Committed = m.pid, m.epoch, true
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "victim", []int32{0}
		marker.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{mt}
		req.Markers = []kmsg.WriteTxnMarkersRequestMarker{marker}
		resp, err := req.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Markers[0].Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidProducerIDMapping.Code {
			t.Errorf("marker for producer %d epoch %d: error %d, want INVALID_PRODUCER_ID_MAPPING", m.pid, m.epoch, code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: "victim", Partition: 0, Value: []byte("still here")}
	pcl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := pcl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatalf("produce after the markers: %v", err)
	}
	if got := consumeAll(t, b, "victim", 1); string(got[0].Value) != "still here" {
		t.Fatalf("consumed %q", got[0].Value)
	}
}

// TestOverlongNamesRefused: flexible requests can carry strings longer than
// the int16 length of the group and transaction records and of older
// clients' answers (ListGroups v0-2 wrapped a 40,000-byte group id into a
// negative length for every client). Group ids, protocol names, instance
// ids and transactional ids that long are refused instead.
func TestOverlongNamesRefused(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "t", 1, nil)
	ctx := ctxT(t)
	long := strings.Repeat("G", 40000)
	join := func(group, protocol string) int16 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = group, 30000, 30000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = protocol, []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
		req.Protocols = []kmsg.JoinGroupRequestProtocol{p}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ErrorCode
	}
	if code := join(long, "range"); code != kerr.InvalidGroupID.Code {
		t.Errorf("JoinGroup with a 40,000-byte group id: error %d, want INVALID_GROUP_ID", code)
	}
	if code := join("g", long); code != kerr.InvalidRequest.Code {
		t.Errorf("JoinGroup with a 40,000-byte protocol name: error %d, want INVALID_REQUEST", code)
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = long, -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "t"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Offset = 1
	ct.Partitions = []kmsg.OffsetCommitRequestTopicPartition{cp}
	commit.Topics = []kmsg.OffsetCommitRequestTopic{ct}
	cresp, err := commit.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := cresp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidGroupID.Code {
		t.Errorf("OffsetCommit for a 40,000-byte group id: error %d, want INVALID_GROUP_ID", code)
	}
	groups, err := kadm.NewClient(cl).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 0 {
		t.Errorf("%d groups after the refused requests, want none", len(groups))
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = &long, 60000
	// Find the coordinator for it first, as a client does.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorType = long, 1
	if _, err := fc.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	iresp, err := init.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if iresp.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("InitProducerId with a 40,000-byte transactional id: error %d, want INVALID_REQUEST", iresp.ErrorCode)
	}
}

func TestLogAppendTime(t *testing.T) {
	b := newBroker(t, nil)
	cl := newClient(t, b)
	lat := "LogAppendTime"
	createTopic(t, cl, "lat", 1, map[string]*string{"message.timestamp.type": &lat})
	before := time.Now().Add(-time.Second)
	p := produceRaw(t, cl, "lat", rawBatch([]byte("v")))
	if p.ErrorCode != 0 || p.LogAppendTime < before.UnixMilli() {
		t.Fatalf("produce: error %d log append time %d", p.ErrorCode, p.LogAppendTime)
	}
	got := consumeAll(t, b, "lat", 1)
	if got[0].Timestamp.UnixMilli() != p.LogAppendTime || got[0].Attrs.TimestampType() != 1 {
		t.Fatalf("consumed timestamp %v type %d, want broker time %d type 1",
			got[0].Timestamp.UnixMilli(), got[0].Attrs.TimestampType(), p.LogAppendTime)
	}
}

func TestDynamicBrokerConfigs(t *testing.T) {
	dir := t.TempDir()
	b := startIn(t, dir, nil)
	cl := newClient(t, b)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	createTopic(t, cl, "dyn", 1, nil)

	day := "86400000"
	res, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.ms", Value: &day}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter cluster default: %v %+v", err, res)
	}
	retentionOf := func(adm *kadm.Client) (string, kmsg.ConfigSource) {
		rcs, err := adm.DescribeTopicConfigs(ctxT(t), "dyn")
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := rcs.On("dyn", nil)
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" {
				return c.MaybeValue(), c.Source
			}
		}
		t.Fatal("retention.ms not described")
		return "", 0
	}
	if v, src := retentionOf(adm); v != day || src != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("topic retention.ms = %s from %v, want the dynamic cluster default", v, src)
	}
	// Static properties cannot change at run time.
	l := "PLAINTEXT://127.0.0.1:1"
	res, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "listeners", Value: &l}})
	if err == nil && res[0].Err == nil {
		t.Fatal("listeners changed at run time")
	}
	// The dynamic value survives a restart.
	cl.Close()
	b.Close()
	b2 := startIn(t, dir, nil)
	if v, _ := retentionOf(kadm.NewClient(newClient(t, b2))); v != day {
		t.Fatalf("after restart retention.ms = %s", v)
	}
}
