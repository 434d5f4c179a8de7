package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/storage"
)

// fetchTestBroker starts an in-process broker on a free loopback port with
// the given server properties and closes it when the test ends.
func fetchTestBroker(t testing.TB, props ...string) *Broker {
	t.Helper()
	ld := config.NewLoader()
	ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	ld.Set("advertised.listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	ld.Set("log.dirs", t.TempDir(), config.SourceFlag)
	for i := 0; i+1 < len(props); i += 2 {
		ld.Set(props[i], props[i+1], config.SourceFlag)
	}
	cfg, err := ld.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func fetchTestClient(t testing.TB, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.AdvertisedAddr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func fetchTestCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fetchCreateTopic(t testing.TB, cl *kgo.Client, name string, partitions int32) {
	t.Helper()
	res, err := kadm.NewClient(cl).CreateTopic(fetchTestCtx(t), partitions, 1, nil, name)
	if err != nil || res.Err != nil {
		t.Fatalf("create %s: %v %v", name, err, res.Err)
	}
}

// rawFetch sends one Fetch straight to the broker, as a client would.
func rawFetch(t *testing.T, cl *kgo.Client, req *kmsg.FetchRequest) *kmsg.FetchResponse {
	t.Helper()
	resp, err := cl.SeedBrokers()[0].Request(fetchTestCtx(t), req)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return resp.(*kmsg.FetchResponse)
}

// fetchReq builds a Fetch of parts of topic from offset 0, with the topic
// named and identified, since the client picks the version.
func fetchReq(b *Broker, topic string, parts []int32, maxWaitMs, minBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, minBytes, math.MaxInt32
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	if t := b.catalog.get(topic); t != nil {
		rt.TopicID = t.ID
	}
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, 0, math.MaxInt32
		rp.CurrentLeaderEpoch, rp.LastFetchedEpoch, rp.LogStartOffset = -1, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func produceN(t *testing.T, cl *kgo.Client, topic string, partition int32, n, size int) {
	t.Helper()
	val := make([]byte, size)
	rand.Read(val) // incompressible, so sizes on the wire are what they seem
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: partition, Value: val, Key: []byte(strconv.Itoa(i))}
		if err := cl.ProduceSync(fetchTestCtx(t), r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// A Fetch asking for 2 GiB, listing one partition 25 times, gets one
// answer for that partition holding at most fetch.max.bytes.
func TestFetchCappedAndDuplicatesCollapsed(t *testing.T) {
	const capBytes = 1 << 20
	b := fetchTestBroker(t, "fetch.max.bytes", strconv.Itoa(capBytes))
	cl := fetchTestClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(200<<10))
	fetchCreateTopic(t, cl, "big", 1)
	produceN(t, cl, "big", 0, 40, 100<<10) // ~4 MiB, 100 KiB batches

	parts := make([]int32, 25)
	resp := rawFetch(t, cl, fetchReq(b, "big", parts, 0, 1))
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("want one topic with one partition, got %d topics, %d partitions", len(resp.Topics), len(resp.Topics[0].Partitions))
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	if n := len(p.RecordBatches); n > capBytes {
		t.Fatalf("response holds %d bytes of records, fetch.max.bytes is %d", n, capBytes)
	}
	if n := len(p.RecordBatches); n < capBytes/2 {
		t.Fatalf("response holds only %d bytes; expected close to %d", n, capBytes)
	}

	// Two partitions, each listed twice: each answered once, in order.
	fetchCreateTopic(t, cl, "two", 2)
	produceN(t, cl, "two", 1, 3, 10)
	resp = rawFetch(t, cl, fetchReq(b, "two", []int32{1, 0, 1, 0}, 0, 1))
	ps := resp.Topics[0].Partitions
	if len(resp.Topics) != 1 || len(ps) != 2 || ps[0].Partition != 1 || ps[1].Partition != 0 || ps[0].HighWatermark != 3 {
		t.Fatalf("duplicates: %+v", ps)
	}
}

// 20 long polls over 200 partitions park without a goroutine per
// partition, and one produce wakes them with its record.
func TestFetchLongPollParksWithoutGoroutinePerPartition(t *testing.T) {
	b := fetchTestBroker(t)
	cl := fetchTestClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const parts, polls = 200, 20
	fetchCreateTopic(t, cl, "wide", parts)
	all := make([]int32, parts)
	for i := range all {
		all[i] = int32(i)
	}
	base := runtime.NumGoroutine()

	var wg sync.WaitGroup
	got := make(chan *kmsg.FetchResponse, polls)
	pollers := make([]*kgo.Client, polls)
	for i := range pollers {
		pollers[i] = fetchTestClient(t, b)
		if err := pollers[i].Ping(fetchTestCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for i := range polls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got <- rawFetch(t, pollers[i], fetchReq(b, "wide", all, 20000, 1))
		}()
	}
	time.Sleep(500 * time.Millisecond) // let them park
	during := runtime.NumGoroutine()
	// Each poll costs a few goroutines (the test's, the client's and one
	// broker goroutine); one per partition would be 4000 more.
	if extra := during - base; extra > polls*10 {
		t.Fatalf("%d goroutines for %d long polls over %d partitions", extra, polls, parts)
	}
	produceN(t, cl, "wide", 137, 1, 10)
	wg.Wait()
	if time.Since(start) > 10*time.Second {
		t.Fatalf("long polls were not woken by the produce")
	}
	close(got)
	for resp := range got {
		n := 0
		for _, p := range resp.Topics[0].Partitions {
			if len(p.RecordBatches) > 0 {
				n++
				if p.Partition != 137 {
					t.Fatalf("records from partition %d", p.Partition)
				}
			}
		}
		if n != 1 {
			t.Fatalf("woken fetch has records from %d partitions", n)
		}
	}
}

// With durability=fsync, acks=1 records become visible (to Fetch and
// ListOffsets) after the fsync the append triggers, not at flush.ms.
func TestAcksOneVisibleAfterPromptFsync(t *testing.T) {
	b := fetchTestBroker(t)
	cl := fetchTestClient(t, b, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetchCreateTopic(t, cl, "acks1", 1)
	start := time.Now()
	produceN(t, cl, "acks1", 0, 5, 10)
	l := b.store.Get("acks1", 0)
	for l.HighWatermark() < 5 && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	if hw, rp := l.HighWatermark(), l.RecoveryPoint(); hw != 5 || rp < 5 {
		t.Fatalf("HW %d, recovery point %d after 5 acks=1 records", hw, rp)
	}
	resp := rawFetch(t, cl, fetchReq(b, "acks1", []int32{0}, 0, 1))
	if p := resp.Topics[0].Partitions[0]; p.HighWatermark != 5 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch: HW %d, %d bytes", p.HighWatermark, len(p.RecordBatches))
	}
	offs, err := kadm.NewClient(cl).ListEndOffsets(fetchTestCtx(t), "acks1")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("acks1", 0); o.Offset != 5 {
		t.Fatalf("ListOffsets latest %d, want 5", o.Offset)
	}
}

// With gregor.durability=os the high watermark is the log end: an acks=1
// record is visible as soon as it is acknowledged, as in Kafka.
func TestDurabilityOSHighWatermarkIsLogEnd(t *testing.T) {
	b := fetchTestBroker(t, "gregor.durability", "os")
	cl := fetchTestClient(t, b, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetchCreateTopic(t, cl, "os", 1)
	produceN(t, cl, "os", 0, 3, 10)
	if l := b.store.Get("os", 0); l.HighWatermark() != 3 {
		t.Fatalf("HW %d right after 3 acknowledged records, want 3", l.HighWatermark())
	}
	resp := rawFetch(t, cl, fetchReq(b, "os", []int32{0}, 0, 1))
	if p := resp.Topics[0].Partitions[0]; p.HighWatermark != 3 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch: HW %d, %d bytes", p.HighWatermark, len(p.RecordBatches))
	}
}

// An I/O failure takes the log dir offline: every API reports
// KAFKA_STORAGE_ERROR for its partitions, Failed() fires, and Close is
// clean but leaves no clean-shutdown marker.
func TestLogDirFailureReportedAndBrokerCloses(t *testing.T) {
	b := fetchTestBroker(t)
	cl := fetchTestClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(0),
		kgo.RequestRetries(0))
	fetchCreateTopic(t, cl, "disk", 2)
	produceN(t, cl, "disk", 0, 3, 10)
	select {
	case <-b.Failed():
		t.Fatal("Failed() closed before any failure")
	default:
	}

	// A long poll parked on the partition is answered at once.
	polled := make(chan *kmsg.FetchResponse, 1)
	go func() {
		req := fetchReq(b, "disk", []int32{1}, 20000, 1)
		resp, err := cl.SeedBrokers()[0].Request(context.Background(), req)
		if err == nil {
			polled <- resp.(*kmsg.FetchResponse)
		}
		close(polled)
	}()
	time.Sleep(200 * time.Millisecond)
	b.store.Fail(errors.New("injected EIO"))
	select {
	case <-b.Failed():
	case <-time.After(time.Second):
		t.Fatal("Failed() not closed")
	}
	if !errors.Is(b.LogDirFailure(), storage.ErrStorageFailed) {
		t.Fatalf("LogDirFailure: %v", b.LogDirFailure())
	}
	select {
	case resp := <-polled:
		if resp == nil || resp.Topics[0].Partitions[0].ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("parked fetch: %+v", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked fetch not answered after the failure")
	}

	ctx := fetchTestCtx(t)
	mreq := kmsg.NewPtrMetadataRequest()
	name := "disk"
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &name
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range mresp.Topics[0].Partitions {
		if p.ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("metadata partition %d: error %d", p.Partition, p.ErrorCode)
		}
	}
	fresp := rawFetch(t, cl, fetchReq(b, "disk", []int32{0}, 0, 1))
	if p := fresp.Topics[0].Partitions[0]; p.ErrorCode != kerr.KafkaStorageError.Code || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch from offline dir: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "disk"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := cl.SeedBrokers()[0].Request(ctx, lreq)
	if err != nil {
		t.Fatal(err)
	}
	if p := lresp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("list offsets: error %d", p.ErrorCode)
	}
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "disk", Partition: 0, Value: []byte("x")}).FirstErr()
	if err == nil {
		t.Fatal("produce to an offline log dir succeeded")
	}

	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs after a log dir failure")
	}
	if _, err := os.Stat(filepath.Join(b.DataDir(), ".kafka_cleanshutdown")); err == nil {
		t.Fatal("clean-shutdown marker written for a failed log dir")
	}
}

// A client that produces with acks=1 and then asks for the end offset sees
// its records, as in Kafka, although they become visible only after their
// fsync: ListOffsets latest waits for that round.
func TestListOffsetsLatestAfterAcksOne(t *testing.T) {
	b := fetchTestBroker(t)
	cl := fetchTestClient(t, b, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetchCreateTopic(t, cl, "ryw", 1)
	adm := kadm.NewClient(cl)
	var want int64
	for round := range 20 {
		var rs []*kgo.Record
		for range 200 {
			rs = append(rs, &kgo.Record{Topic: "ryw", Value: make([]byte, 100)})
		}
		if err := cl.ProduceSync(fetchTestCtx(t), rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want += int64(len(rs))
		offs, err := adm.ListEndOffsets(fetchTestCtx(t), "ryw")
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := offs.Lookup("ryw", 0); o.Offset != want {
			t.Fatalf("round %d: end offset %d right after %d acks=1 records were acknowledged", round, o.Offset, want)
		}
	}
}
