package hardening

// Connection and request-memory hardening, against the real binary:
// connection floods (max.connections and the file-descriptor reserve),
// per-IP limits, idle connections, decoder bombs, slowloris and many large
// produces at once. Figures are reported with t.Logf; the bounds asserted
// are the acceptance bounds, kept generous.

import (
	"bytes"
	"context"
	"crypto/rand"
	be "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/test/testenv"
)

// connFrame encodes a request the way a client does.
func connFrame(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("hardening")).AppendRequest(nil, req, corr)
}

// connReadResponse reads one response frame (after its size).
func connReadResponse(nc net.Conn) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(nc, sz[:]); err != nil {
		return nil, err
	}
	body := make([]byte, be.BigEndian.Uint32(sz[:]))
	_, err := io.ReadFull(nc, body)
	return body, err
}

// connPing sends ApiVersions v0 and waits for its answer: nil means the
// broker is serving this connection.
func connPing(nc net.Conn, corr int32) error {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(connFrame(kmsg.NewPtrApiVersionsRequest(), 0, corr)); err != nil {
		return err
	}
	_, err := connReadResponse(nc)
	return err
}

// connDialFrom opens a connection from a chosen local address ("" = any).
func connDialFrom(local, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return d.Dial("tcp", addr)
}

// connAlive checks that a fresh connection is served.
func connAlive(t *testing.T, addr string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("new connection: %v", err)
	}
	defer nc.Close()
	if err := connPing(nc, 1); err != nil {
		t.Fatalf("new connection not served: %v", err)
	}
}

// connRSS reads a process's VmRSS without a *testing.T, for samplers.
func connRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// connPeakRSS samples the broker's RSS every 10ms until stop is called,
// which returns the peak.
func connPeakRSS(s *server) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	pid := s.cmd.Process.Pid
	go func() {
		defer close(finished)
		for {
			if r := connRSS(pid); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// connClients is a producer and a consumer of one topic whose segments are
// small, so producing rolls segments (opens files) all the time.
type connClients struct {
	t        *testing.T
	topic    string
	prod     *kgo.Client
	cons     *kgo.Client
	produced int
	consumed int
}

func connNewClients(t *testing.T, addr, topic string) *connClients {
	t.Helper()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	seg := "16384"
	resp, err := kadm.NewClient(admin).CreateTopic(context.Background(), 1, 1, map[string]*string{"segment.bytes": &seg}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	// Long idle timeouts: the clients must keep the connections they
	// opened before a flood, as real long-lived clients do.
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ConnIdleTimeout(15*time.Minute), kgo.RecordDeliveryTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond), kgo.ConnIdleTimeout(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close(); cons.Close() })
	c := &connClients{t: t, topic: topic, prod: prod, cons: cons}
	c.roundTrip(5)
	return c
}

// roundTrip produces n 1 KiB records (acks=all) and consumes up to them.
func (c *connClients) roundTrip(n int) {
	c.t.Helper()
	for i := 0; i < n; i++ {
		val := make([]byte, 1024)
		_, _ = rand.Read(val) // incompressible: the producer compresses

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := c.prod.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr()
		cancel()
		if err != nil {
			c.t.Fatalf("produce %d: %v", c.produced, err)
		}
		c.produced++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for c.consumed < c.produced {
		fs := c.cons.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("consumed %d of %d records", c.consumed, c.produced)
		}
		fs.EachError(func(_ string, _ int32, err error) { c.t.Logf("fetch error: %v", err) })
		c.consumed += fs.NumRecords()
	}
}

// connSegments counts the .log segment files of the topic's partition 0.
func connSegments(s *server, topic string) int {
	m, _ := filepath.Glob(filepath.Join(s.dir, topic+"-0", "*.log"))
	return len(m)
}

// connFlood opens n connections (64 at a time) and sorts them into the
// ones the broker serves and the ones it refused. The served ones stay
// open until the returned close function is called.
func connFlood(t *testing.T, addr string, n int) (served int, refused int, closeAll func()) {
	t.Helper()
	var mu sync.Mutex
	var keep []net.Conn
	var dialErrs int
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				mu.Lock()
				dialErrs++
				mu.Unlock()
				return
			}
			err = connPing(nc, int32(i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused++
				nc.Close()
				return
			}
			served++
			keep = append(keep, nc)
		}(i)
	}
	wg.Wait()
	if dialErrs > 0 {
		t.Logf("%d dials failed", dialErrs)
	}
	return served, refused, func() {
		for _, nc := range keep {
			nc.Close()
		}
	}
}

// TestConnFlood: with max.connections=1000, a flood of 3,000 connections
// gets at most 1,000 served and the rest refused; a producer and a
// consumer connected before it (franz-go, and kafka-python as the user
// runs it) keep working during and after it,
// including produces that roll segments (open new files) while the flood
// holds its connections; refusals are logged a few times, not 2,000.
func TestConnFlood(t *testing.T) {
	s := newServer(t, "max.connections=1000")
	s.start()
	cl := connNewClients(t, s.addr, "flood")
	kp := startKafkaPython(t, s.addr, "flood-kafka-python")
	fdsBefore := s.fds()

	start := time.Now()
	served, refused, closeFlood := connFlood(t, s.addr, 3000)
	t.Logf("flood of 3000: %d served, %d refused in %v; broker fds %d before, %d during", served, refused, time.Since(start).Round(time.Millisecond), fdsBefore, s.fds())
	if served > 1000 || served < 900 {
		t.Errorf("%d flood connections served with max.connections=1000 (and a few client connections)", served)
	}
	if refused < 2000 {
		t.Errorf("only %d of 3000 connections refused", refused)
	}

	kp.round(20) // the user's client, connected before the flood
	segs := connSegments(s, "flood")
	cl.roundTrip(100) // 100 KiB into 16 KiB segments while the flood is on
	if after := connSegments(s, "flood"); after <= segs+3 {
		t.Errorf("segments %d → %d: producing did not roll segments during the flood", segs, after)
	} else {
		t.Logf("segments rolled during the flood: %d → %d", segs, after)
	}
	closeFlood()

	// The flood's slots come back: new connections are served again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.Dial("tcp", s.addr)
		if err == nil {
			err = connPing(nc, 1)
			nc.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections still refused 10s after the flood ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl.roundTrip(10)
	kp.round(20)
	if n := strings.Count(s.output(), "refusing connections"); n < 1 || n > 5 {
		t.Errorf("refusals logged %d times; want a few rate-limited lines", n)
	}
	s.stop()
}

// TestConnFloodFdReserve: with RLIMIT_NOFILE at 1200 and no
// max.connections, the fd budget caps connections (568 of 1200), so a
// flood of 1,500 connections never makes opening a segment fail: produce
// with segment rolls succeeds while the flood is on.
func TestConnFloodFdReserve(t *testing.T) {
	s := newServer(t)
	wrapper := filepath.Join(t.TempDir(), "gregor-nofile")
	script := fmt.Sprintf("#!/bin/sh\nexec prlimit --nofile=1200:1200 %s \"$@\"\n", s.bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/prlimit"); err != nil {
		t.Skip("prlimit not available")
	}
	s.bin = wrapper
	s.start()
	cl := connNewClients(t, s.addr, "reserve")

	served, refused, closeFlood := connFlood(t, s.addr, 1500)
	defer closeFlood()
	fds := s.fds()
	t.Logf("nofile 1200, flood of 1500: %d served, %d refused; broker fds %d", served, refused, fds)
	if served > 568 {
		t.Errorf("%d flood connections served; the fd budget for nofile=1200 allows 568", served)
	}
	segs := connSegments(s, "reserve")
	cl.roundTrip(100)
	if after := connSegments(s, "reserve"); after <= segs+3 {
		t.Errorf("segments %d → %d: no segment rolls during the flood", segs, after)
	}
	if out := s.output(); strings.Contains(out, "too many open files") && strings.Contains(out, "storage") {
		t.Errorf("storage hit EMFILE during the flood:\n%s", out)
	}
	closeFlood()
	s.stop()
}

// TestConnPerIPLimits: max.connections.per.ip and its overrides, matched on
// the peer address; the newest connection is refused, the older ones keep
// working; the built-in console's connections do not count.
func TestConnPerIPLimits(t *testing.T) {
	// The built-in console runs (its own listener address, so no other
	// broker holds it): its in-process connections take no slot.
	s := newServer(t, "max.connections.per.ip=3", "max.connections.per.ip.overrides=127.0.0.2:6",
		"gregor.http.listener="+testenv.FreeAddr(t))
	s.start()
	// The start banner is printed line by line: wait for its http line.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.output(), "http:") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(s.output(), "http:") {
		t.Fatalf("the HTTP listener (and console) did not start:\n%s", s.output())
	}
	// start's readiness probe connected from 127.0.0.1 and closed; the
	// broker gives its slot back when it reads the EOF, which takes a
	// moment.
	time.Sleep(300 * time.Millisecond)
	count := func(local string, n int) (served []net.Conn) {
		for i := 0; i < n; i++ {
			nc, err := connDialFrom(local, s.addr)
			if err != nil {
				t.Fatal(err)
			}
			if connPing(nc, int32(i)) == nil {
				served = append(served, nc)
			} else {
				nc.Close()
			}
		}
		return served
	}
	one := count("127.0.0.1", 5)
	two := count("127.0.0.2", 8)
	t.Logf("served: 127.0.0.1 %d of 5 (limit 3), 127.0.0.2 %d of 8 (override 6)", len(one), len(two))
	if len(one) != 3 || len(two) != 6 {
		t.Fatalf("served %d from 127.0.0.1 (want 3) and %d from 127.0.0.2 (want 6)", len(one), len(two))
	}
	for i, nc := range append(one, two...) {
		if err := connPing(nc, 100); err != nil {
			t.Fatalf("existing connection %d stopped working after refusals: %v", i, err)
		}
		nc.Close()
	}
	s.stop()
}

// TestConnIdleClosed: connections.max.idle.ms=2000 closes connections that
// sent nothing for 2s (and frees their fds), keeps one that sends a
// request every 500ms, and answers a long-poll Fetch that waits 4s.
func TestConnIdleClosed(t *testing.T) {
	s := newServer(t, "connections.max.idle.ms=2000")
	s.start()
	fdsBefore := s.fds()
	var idle []net.Conn
	for i := 0; i < 20; i++ {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if err := connPing(nc, 1); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
	}
	// A slowloris that never completes a frame is idle too.
	slow, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, _ = slow.Write([]byte{0, 0, 1, 0})

	active, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close()

	poll, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Close()
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 4000, 1, 1<<20
	pollStart := time.Now()
	if _, err := poll.Write(connFrame(fetch, 4, 1)); err != nil {
		t.Fatal(err)
	}
	pollDone := make(chan error, 1)
	go func() {
		_ = poll.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := connReadResponse(poll)
		pollDone <- err
	}()

	for i := 0; i < 8; i++ { // 4s
		time.Sleep(500 * time.Millisecond)
		if err := connPing(active, int32(i)); err != nil {
			t.Fatalf("active connection closed after %v: %v", time.Since(pollStart), err)
		}
	}
	for i, nc := range append(idle, slow) {
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("idle connection %d still open after 4s: read %v", i, err)
		}
	}
	if err := <-pollDone; err != nil {
		t.Fatalf("long-poll Fetch (4s) cut short: %v", err)
	}
	if waited := time.Since(pollStart); waited < 3500*time.Millisecond {
		t.Fatalf("long poll answered after %v, want ~4s", waited)
	}
	fdsAfter := s.fds()
	t.Logf("broker fds: %d before, %d after 21 idle connections were closed (2 live)", fdsBefore, fdsAfter)
	if fdsAfter > fdsBefore+4 {
		t.Errorf("fds %d → %d: idle connections not released", fdsBefore, fdsAfter)
	}
	s.stop()
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// connBomb sends one frame on a fresh connection and waits until the
// broker answers or closes it.
func connBomb(t *testing.T, addr string, frame []byte) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write(frame); err != nil && !isReset(err) {
		t.Fatalf("write: %v", err)
	}
	if _, err := connReadResponse(nc); err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("broker neither answered nor closed: %v", err)
	}
}

// withSize prefixes a body with its 4-byte size.
func withSize(body []byte) []byte {
	return append(be.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestConnDecoderBombs: frames whose counts claim far more than they hold
// each cost under 10ms of broker CPU and under 20 MB of RSS. Each bomb is
// sent 10 times (CPU time is counted in 10ms ticks) on fresh connections.
func TestConnDecoderBombs(t *testing.T) {
	s := newServer(t)
	s.start()

	// CreateTopics v4: header v1, then topics array length 10,000,000,
	// padded with zeros to 10 MB.
	create := be.BigEndian.AppendUint16(nil, 19)
	create = be.BigEndian.AppendUint16(create, 4)
	create = be.BigEndian.AppendUint32(create, 1)
	create = append(create, 0xff, 0xff) // null client id
	create = be.BigEndian.AppendUint32(create, 10_000_000)
	create = append(create, make([]byte, 10_000_000-len(create))...)

	// ApiVersions v3 (flexible, header v2) whose header claims n tagged
	// fields, followed by 64 KiB of one-byte "tags".
	tagBomb := func(n uint64) []byte {
		b := be.BigEndian.AppendUint16(nil, 18)
		b = be.BigEndian.AppendUint16(b, 3)
		b = be.BigEndian.AppendUint32(b, 1)
		b = append(b, 0xff, 0xff)
		b = be.AppendUvarint(b, n)
		return append(b, make([]byte, 64<<10)...)
	}
	// Metadata v12 whose body's tag section claims n fields.
	bodyTagBomb := func(n uint64) []byte {
		b := be.BigEndian.AppendUint16(nil, 3)
		b = be.BigEndian.AppendUint16(b, 12)
		b = be.BigEndian.AppendUint32(b, 1)
		b = append(b, 0xff, 0xff, 0) // null client id, no header tags
		b = append(b, 0, 1, 0)       // null topics, auto create, no authorized ops
		b = be.AppendUvarint(b, n)
		return append(b, make([]byte, 64<<10)...)
	}
	bombs := []struct {
		name  string
		frame []byte
	}{
		{"CreateTopics 10MB claiming 10M topics", withSize(create)},
		{"header claiming 2^32-1 tagged fields", withSize(tagBomb(1<<32 - 1))},
		{"header claiming 2^26 tagged fields", withSize(tagBomb(1 << 26))},
		{"Metadata body claiming 2^32-1 tagged fields", withSize(bodyTagBomb(1<<32 - 1))},
		{"Metadata body claiming 2^26 tagged fields", withSize(bodyTagBomb(1 << 26))},
	}
	rounds := 10
	if r, _ := strconv.Atoi(os.Getenv("CONN_BOMB_ROUNDS")); r > 0 {
		rounds = r
	}
	for _, bomb := range bombs {
		rss0, cpu0 := s.rss(), s.cpu()
		for i := 0; i < rounds; i++ {
			connBomb(t, s.addr, bomb.frame)
		}
		rss1, cpu := s.rss(), (s.cpu()-cpu0)/time.Duration(rounds)
		t.Logf("%s: %v CPU each, RSS %s → %s", bomb.name, cpu, mib(rss0), mib(rss1))
		if cpu >= 10*time.Millisecond {
			t.Errorf("%s cost %v of CPU each", bomb.name, cpu)
		}
		if rss1-rss0 >= 20<<20 {
			t.Errorf("%s grew RSS by %s", bomb.name, mib(rss1-rss0))
		}
	}
	connAlive(t, s.addr)
	s.stop()
}

// TestConnSlowloris: 50 connections each announcing a 100 MiB frame and
// then sending one byte a second add under 50 MB of RSS, and everyone
// else is served meanwhile.
func TestConnSlowloris(t *testing.T) {
	s := newServer(t)
	s.start()
	connAlive(t, s.addr)
	rss0 := s.rss()
	var conns []net.Conn
	for i := 0; i < 50; i++ {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write(be.BigEndian.AppendUint32(nil, 100<<20)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	for sec := 0; sec < 8; sec++ {
		for _, nc := range conns {
			if _, err := nc.Write([]byte{0}); err != nil {
				t.Fatalf("slowloris connection closed early: %v", err)
			}
		}
		time.Sleep(time.Second)
	}
	rss1 := s.rss()
	t.Logf("50 slowloris connections (100 MiB announced, 1 byte/s for 8s): RSS %s → %s", mib(rss0), mib(rss1))
	if rss1-rss0 >= 50<<20 {
		t.Errorf("slowloris grew RSS by %s", mib(rss1-rss0))
	}
	connAlive(t, s.addr)
	cl := connNewClients(t, s.addr, "slow")
	cl.roundTrip(5)
	s.stop()
}

// TestConnStalledBigFramesDoNotStallOthers: four connections each announce a
// 100 MiB frame, send part of it and stop, holding the whole request
// budget (queued.max.request.bytes, 16 MiB here). The broker must go on
// serving everyone else's small requests: a new connection's ApiVersions
// and Metadata, and an existing client's produce and fetch. Before the
// budget kept a reserve for small frames, every other client waited until
// the stalled connections went idle (connections.max.idle.ms, 10 min).
func TestConnStalledBigFramesDoNotStallOthers(t *testing.T) {
	s := newServer(t, "queued.max.request.bytes=16777216")
	s.start()
	cl := connNewClients(t, s.addr, "stall")
	cl.roundTrip(3)
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		hdr := be.BigEndian.AppendUint32(nil, 100<<20)
		hdr = append(hdr, 0, 3, 0, 1, 0, 0, 0, 1, 0, 1, 'x') // a Metadata v1 header
		// The broker stops reading once the budget is gone: the rest of
		// a write may never be taken.
		_ = nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := nc.Write(append(hdr, make([]byte, 5<<20)...)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	time.Sleep(time.Second) // the broker reads what was sent and grows the buffers
	start := time.Now()
	connAlive(t, s.addr) // ApiVersions and Metadata on a new connection
	cl.roundTrip(3)      // produce and consume on the existing clients
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("small requests took %v beside the stalled frames", d)
	}
	for _, nc := range conns {
		nc.Close()
	}
	s.stop()
}

// TestConnBigProduces: ten 50 MiB produce requests sent at once, as fast
// as the broker reads them. They may be refused (MESSAGE_TOO_LARGE), but
// each gets an answer, the broker's RSS stays bounded by the request
// budget (queued.max.request.bytes) plus one frame and slack, and the
// broker serves normal clients afterwards. Run with the default budget
// (256 MiB) and with 64 MiB.
func TestConnBigProduces(t *testing.T) {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "big"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = bytes.Repeat([]byte{1}, 50<<20)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := connFrame(req, 7, 1)

	for _, budget := range []int64{256 << 20, 64 << 20} {
		t.Run(fmt.Sprintf("budget=%dMiB", budget>>20), func(t *testing.T) {
			s := newServer(t, fmt.Sprintf("queued.max.request.bytes=%d", budget))
			s.start()
			cl := connNewClients(t, s.addr, "big")
			rss0 := s.rss()
			stop := connPeakRSS(s)
			start := time.Now()
			var wg sync.WaitGroup
			var answered, closed atomic.Int32
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					nc, err := net.Dial("tcp", s.addr)
					if err != nil {
						t.Error(err)
						return
					}
					defer nc.Close()
					_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
					if _, err := nc.Write(frame); err != nil {
						closed.Add(1)
						return
					}
					if _, err := connReadResponse(nc); err != nil {
						closed.Add(1)
						return
					}
					answered.Add(1)
				}()
			}
			wg.Wait()
			took := time.Since(start)
			peak := stop()
			rss1 := s.rss()
			t.Logf("ten 50 MiB produces, budget %d MiB: %d answered, %d closed in %v; RSS %s before, peak %s, %s after",
				budget>>20, answered.Load(), closed.Load(), took.Round(time.Millisecond), mib(rss0), mib(peak), mib(rss1))
			if answered.Load() != 10 {
				t.Errorf("%d of 10 large produces answered", answered.Load())
			}
			// Live frame bytes are at most the budget plus the frame
			// being read with the grow token (a 64 MiB size class for
			// 50 MiB) plus the buffers the pools retain (32 MiB); Go's
			// collector lets the heap reach twice the live heap
			// (GOGC=100) before it collects; 96 MiB for the rest. With no
			// budget, ten frames are 640 MiB live (measured: ~690 MiB RSS).
			if bound := 2*(budget+(64<<20)+(32<<20)) + 96<<20; peak-rss0 > bound {
				t.Errorf("RSS grew by %s during the large produces; bound %s", mib(peak-rss0), mib(bound))
			}
			cl.roundTrip(5)
			s.stop()
			if os.Getenv("CONN_GCTRACE") != "" {
				t.Logf("%s", s.output())
			}
		})
	}
}

// TestConnDenseCreateTopics: a 10 MB CreateTopics v4 frame that really
// holds 625,000 (empty-named) topics, unlike the bombs above whose counts
// lie. It decodes (kmsg: ~50 ms, ~47 MiB), so its cost is the handler's;
// the test asserts the broker answers or closes and then serves others,
// and reports CPU and RSS. The bound on it is the per-request partition
// cap (gregor.max.partitions.per.request) applied before per-topic work.
func TestConnDenseCreateTopics(t *testing.T) {
	s := newServer(t)
	s.start()
	create := be.BigEndian.AppendUint16(nil, 19)
	create = be.BigEndian.AppendUint16(create, 4)
	create = be.BigEndian.AppendUint32(create, 1)
	create = append(create, 0xff, 0xff)
	n := (10_000_000 - 32) / 16
	create = be.BigEndian.AppendUint32(create, uint32(n))
	for i := 0; i < n; i++ {
		// name "", 1 partition, replication 1, no assignments, no configs
		create = append(create, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	create = append(create, 0, 0, 0x75, 0x30, 0) // timeout 30s, validate_only false
	rss0, cpu0 := s.rss(), s.cpu()
	connBomb(t, s.addr, withSize(create))
	t.Logf("dense CreateTopics, %d topics in %d bytes: %v CPU, RSS %s → %s", n, len(create), s.cpu()-cpu0, mib(rss0), mib(s.rss()))
	connAlive(t, s.addr)
	s.stop()
}
