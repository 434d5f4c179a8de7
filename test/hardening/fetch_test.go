package hardening

// Fetch path hardening against the real binary: the fetch.max.bytes cap,
// duplicate partitions, pipelined fetches to a client that never reads, and
// long polls over many partitions. Figures are logged (go test -v) for the
// report; the bounds asserted are the acceptance bounds.

import (
	"context"
	"crypto/rand"
	be "encoding/binary"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/test/testenv"
)

// fetchGoroutines reads the goroutine count from the broker's pprof.
func fetchGoroutines(t *testing.T, dbg string) int {
	t.Helper()
	resp, err := http.Get("http://" + dbg + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// First line: "goroutine profile: total N"
	line, _, _ := strings.Cut(string(body), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile: %q", line)
	}
	return n
}

func fetchClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func fetchCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fetchFill writes about total bytes of incompressible records to
// partition 0 of topic, in ~1 MB batches.
func fetchFill(t *testing.T, cl *kgo.Client, topic string, total int) {
	t.Helper()
	ctx := fetchCtx(t)
	const size = 100 << 10
	for sent := 0; sent < total; {
		var rs []*kgo.Record
		for i := 0; i < 60 && sent < total; i++ {
			v := make([]byte, size)
			rand.Read(v)
			rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Value: v})
			sent += size
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
}

// fetchFrame encodes a Fetch v11 (topics by name, non-flexible) listing
// each of parts of topic, from offset, as a size-prefixed request frame.
func fetchFrame(corr int32, topic string, parts []int32, offset int64, maxWaitMs, minBytes int32) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, minBytes, math.MaxInt32
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offset, math.MaxInt32
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	// Request header v1: key, version, correlation id, client id.
	body := be.BigEndian.AppendUint16(nil, uint16(req.Key()))
	body = be.BigEndian.AppendUint16(body, uint16(req.Version))
	body = be.BigEndian.AppendUint32(body, uint32(corr))
	body = be.BigEndian.AppendUint16(body, 5)
	body = append(body, "probe"...)
	body = req.AppendTo(body)
	return append(be.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// fetchRead reads one response frame and decodes it as Fetch v11.
func fetchRead(t *testing.T, c net.Conn) *kmsg.FetchResponse {
	t.Helper()
	var hdr [8]byte // size, correlation id (response header v0)
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, be.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}

// Acceptance: a Fetch listing one partition 25 times with max_bytes
// 2^31-1 returns at most fetch.max.bytes; six of them pipelined on a
// connection that never reads keep the broker under 300 MB above idle,
// and the memory is given back after the connection closes.
func TestFetchHardeningCapAndPipelined(t *testing.T) {
	const capBytes = 16 << 20
	s := newServer(t, "fetch.max.bytes="+strconv.Itoa(capBytes))
	dbg := testenv.FreeAddr(t)
	s.start("--debug-addr", dbg)
	defer s.stop()
	cl := fetchClient(t, s.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if _, err := kadm.NewClient(cl).CreateTopic(fetchCtx(t), 1, 1, nil, "fill"); err != nil {
		t.Fatal(err)
	}
	fetchFill(t, cl, "fill", capBytes*3/2) // 24 MiB: more than one response can hold
	parts := make([]int32, 25)

	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(fetchFrame(1, "fill", parts, 0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	resp := fetchRead(t, c)
	c.Close()
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("partition listed 25 times: %d topics, %d partitions in the answer", len(resp.Topics), len(resp.Topics[0].Partitions))
	}
	got := len(resp.Topics[0].Partitions[0].RecordBatches)
	t.Logf("one fetch of 25 x the same partition, max_bytes 2^31-1: %s of records (fetch.max.bytes %s)", mib(int64(got)), mib(capBytes))
	if got > capBytes || got < capBytes/2 {
		t.Fatalf("fetch returned %d bytes of records; want close to, at most, %d", got, capBytes)
	}

	time.Sleep(time.Second)
	idle := s.rss()
	slow, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	slow.(*net.TCPConn).SetReadBuffer(4 << 10)
	for i := range 6 {
		if _, err := slow.Write(fetchFrame(int32(10+i), "fill", parts, 0, 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var peak int64
	for range 30 { // 3 s: the broker reads, fills and blocks writing
		peak = max(peak, s.rss())
		time.Sleep(100 * time.Millisecond)
	}
	slow.Close()
	t.Logf("six pipelined fetches, never read: RSS idle %s, peak %s (+%s)", mib(idle), mib(peak), mib(peak-idle))
	if peak-idle > 300<<20 {
		t.Fatalf("RSS grew by %s with six pipelined fetches; bound is 300 MB", mib(peak-idle))
	}
	// After the close the buffers are garbage, but an idle Go process
	// collects only every 2 minutes and pooled buffers survive two
	// collections (measured: RSS stays at the peak for minutes). Ask for
	// the collections through pprof, as traffic would trigger them; the
	// runtime then hands the pages back on its own.
	time.Sleep(500 * time.Millisecond)
	for range 2 {
		resp, err := http.Get("http://" + dbg + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var after int64
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		after = s.rss()
		if after-idle < (peak-idle)/2 || after-idle < 32<<20 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("after close: RSS %s (+%s over idle)", mib(after), mib(after-idle))
	if after-idle >= (peak-idle)/2 && after-idle >= 32<<20 {
		t.Fatalf("RSS stayed at %s after the connection closed (idle %s, peak %s)", mib(after), mib(idle), mib(peak))
	}
	// The broker still serves.
	if err := cl.ProduceSync(fetchCtx(t), &kgo.Record{Topic: "fill", Partition: 0, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// Measurement: 100 long-poll Fetches over 1,000 partitions park without a
// goroutine per partition; produce latency and RSS under that load.
func TestFetchHardeningLongPolls(t *testing.T) {
	const parts, conns, perConn = 1000, 10, 10
	dbg := testenv.FreeAddr(t)
	s := newServer(t)
	s.start("--debug-addr", dbg)
	defer s.stop()
	cl := fetchClient(t, s.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if _, err := kadm.NewClient(cl).CreateTopic(fetchCtx(t), parts, 1, nil, "wide"); err != nil {
		t.Fatal(err)
	}
	all := make([]int32, parts)
	for i := range all {
		all[i] = int32(i)
	}
	// Warm up the producer connection and measure idle produce latency.
	lat := func(n int) []time.Duration {
		var ds []time.Duration
		for i := range n {
			st := time.Now()
			r := &kgo.Record{Topic: "wide", Partition: int32(i * 37 % parts), Value: []byte("v")}
			if err := cl.ProduceSync(fetchCtx(t), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(st))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds
	}
	quiet := lat(50)
	baseG, baseRSS := fetchGoroutines(t, dbg), s.rss()

	// min_bytes 64 MiB: the polls stay parked through the produces below,
	// each produce waking them and making them re-read one partition.
	var cs []net.Conn
	for i := range conns {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		for j := range perConn {
			if _, err := c.Write(fetchFrame(int32(i*perConn+j), "wide", all, 0, 30000, 64<<20)); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	time.Sleep(2 * time.Second)
	parkedG, parkedRSS := fetchGoroutines(t, dbg), s.rss()
	cpu0 := s.cpu()
	loaded := lat(50)
	cpu := s.cpu() - cpu0
	t.Logf("goroutines: %d idle, %d with %d long polls x %d partitions parked", baseG, parkedG, conns*perConn, parts)
	t.Logf("RSS: %s idle, %s with the polls parked", mib(baseRSS), mib(parkedRSS))
	t.Logf("acks=all produce latency p50/p99: %v/%v idle, %v/%v with the polls parked (broker CPU for 50 produces: %v)",
		quiet[len(quiet)/2], quiet[len(quiet)*99/100], loaded[len(loaded)/2], loaded[len(loaded)*99/100], cpu)
	if parkedG-baseG > 10*conns*perConn {
		t.Fatalf("%d goroutines for %d parked long polls", parkedG-baseG, conns*perConn)
	}
}
