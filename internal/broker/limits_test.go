package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
)

// netStartBroker starts an in-process broker on 127.0.0.1:0 with extra
// "key=value" properties.
func netStartBroker(t *testing.T, props ...string) *Broker {
	t.Helper()
	b := netNewBroker(t, props...)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// netNewBroker is netStartBroker's broker before Start.
func netNewBroker(t *testing.T, props ...string) *Broker {
	t.Helper()
	ld := config.NewLoader()
	ld.Set("log.dirs", t.TempDir(), config.SourceFlag)
	ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	for _, p := range props {
		for i := 0; i < len(p); i++ {
			if p[i] == '=' {
				ld.Set(p[:i], p[i+1:], config.SourceFlag)
				break
			}
		}
	}
	cfg, err := ld.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// netRoundTrip sends an ApiVersions request on nc and reads the answer's
// correlation id; it fails if the broker closed the connection.
func netRoundTrip(nc net.Conn, corr int32) error {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("t")).AppendRequest(nil, req, corr)
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(frame); err != nil {
		return err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:])-4)
	_, err := io.ReadFull(nc, body)
	return err
}

func TestFdBudget(t *testing.T) {
	for _, tt := range []struct{ nofile, conns, logs int }{
		{1024, 480, 480},
		{4096, 2016, 2016},
		{20000, 9968, 9968},
		{1 << 20, 524256, 524256},
		{0, 0, 0},
	} {
		conns, logs := fdBudget(tt.nofile)
		if conns != tt.conns || logs != tt.logs {
			t.Errorf("fdBudget(%d) = %d, %d; want %d, %d", tt.nofile, conns, logs, tt.conns, tt.logs)
		}
	}
	// Whatever the limit, connections and logs together stay inside it
	// and both get something.
	for nofile := 1; nofile < 100000; nofile += 37 {
		conns, logs := fdBudget(nofile)
		if conns < 1 || logs < 1 || (nofile > fdOverhead && conns+logs+fdOverhead > nofile) {
			t.Fatalf("fdBudget(%d) = %d, %d", nofile, conns, logs)
		}
	}
}

func TestAdmitLimits(t *testing.T) {
	l := &netLimits{maxConns: 5, perIP: 2, override: map[string]int{"10.0.0.9": 3, "10.0.0.8": 0}, byIP: map[string]int{}}
	admit := func(ip string) bool { ok, _, _ := l.admit(ip); return ok }
	if !admit("10.0.0.1") || !admit("10.0.0.1") || admit("10.0.0.1") {
		t.Fatal("max.connections.per.ip=2 not enforced")
	}
	if !admit("10.0.0.9") || !admit("10.0.0.9") || !admit("10.0.0.9") {
		t.Fatal("override of 3 not honoured")
	}
	if admit("10.0.0.8") {
		t.Fatal("override of 0 admitted a connection")
	}
	if admit("10.0.0.2") {
		t.Fatal("max.connections=5 not enforced")
	}
	l.leave("10.0.0.1")
	if !admit("10.0.0.2") {
		t.Fatal("a slot freed by leave was not reused")
	}
}

// TestReqBudgetNoDeadlock reads many frames larger than a small budget at
// once, growing each in steps as ReadFrame does. Every frame must get
// through (no deadlock among partial frames) and the budget must never be
// overdrawn by more than one frame.
func TestReqBudgetNoDeadlock(t *testing.T) {
	const limit, frame = 1 << 20, 700 << 10
	b := newReqBudget(limit)
	var peak atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				fc := &frameCharge{budget: b}
				for _, want := range []int64{64 << 10, 256 << 10, frame} {
					if err := fc.grow(ctx, want, frame); err != nil {
						t.Error(err)
						return
					}
					if u := b.inUse(); u > peak.Load() {
						peak.Store(u)
					}
					time.Sleep(10 * time.Microsecond) // the rest of the bytes arriving
				}
				fc.release()
				fc.handed()
			}
		}()
	}
	wg.Wait()
	if b.inUse() != 0 {
		t.Fatalf("%d bytes still charged after every frame was released", b.inUse())
	}
	t.Logf("peak charge %d with limit %d and frames of %d", peak.Load(), limit, frame)
	if peak.Load() > limit+frame {
		t.Fatalf("budget overdrawn to %d (limit %d, one frame %d)", peak.Load(), limit, frame)
	}
}

// TestReqBudgetWaitsAndServesHuge: a frame larger than the whole budget is
// served when it is alone, and a new frame waits until bytes come back.
func TestReqBudgetWaitsAndServesHuge(t *testing.T) {
	b := newReqBudget(1 << 20)
	huge := &frameCharge{budget: b}
	for _, want := range []int64{64 << 10, 4 << 20} {
		if err := huge.grow(context.Background(), want, 4<<20); err != nil {
			t.Fatal(err)
		}
	}
	huge.handed()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	next := &frameCharge{budget: b}
	if err := next.grow(ctx, 64<<10, 1<<20); err == nil {
		t.Fatal("a new frame was charged while the budget was overdrawn")
	}
	got := make(chan error, 1)
	go func() { got <- next.grow(context.Background(), 64<<10, 1<<20) }()
	time.Sleep(20 * time.Millisecond)
	huge.release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting frame was not woken when the budget freed")
	}
}

// TestReqBudgetReserveForSmallFrames: large frames that hold the whole
// budget do not stop small frames, which draw on the reserve (a quarter of
// the limit); once the reserve is used up too, a small frame waits until
// bytes come back.
func TestReqBudgetReserveForSmallFrames(t *testing.T) {
	const limit = 1 << 20
	b := newReqBudget(limit)
	big := &frameCharge{budget: b}
	for _, want := range []int64{64 << 10, 256 << 10, limit} {
		if err := big.grow(context.Background(), want, 100<<20); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := (&frameCharge{budget: b}).grow(ctx, 64<<10, 2<<20); err == nil {
		t.Fatal("a large frame was charged beside a full budget")
	}
	var small []*frameCharge
	for i := 0; i < limit/4/(16<<10); i++ {
		fc := &frameCharge{budget: b}
		if err := fc.grow(ctx, 16<<10, 16<<10); err != nil {
			t.Fatalf("small frame %d beside a full budget: %v", i, err)
		}
		small = append(small, fc)
	}
	late := &frameCharge{budget: b}
	if err := late.grow(ctx, 16<<10, 16<<10); err == nil {
		t.Fatal("a small frame was charged beyond the reserve")
	}
	got := make(chan error, 1)
	go func() { got <- late.grow(context.Background(), 16<<10, 16<<10) }()
	time.Sleep(20 * time.Millisecond)
	small[0].release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting small frame was not woken when the reserve freed")
	}
	late.release()
	for _, fc := range small[1:] {
		fc.release()
	}
	big.release()
	big.handed()
	if u := b.inUse(); u != 0 {
		t.Fatalf("%d bytes still charged after every frame was released", u)
	}
}

// TestHandlerPanicClosesOnlyThatConnection: a panicking handler closes
// its connection (the client sees EOF, not a hang) and the broker serves
// other connections.
func TestHandlerPanicClosesOnlyThatConnection(t *testing.T) {
	b := netStartBroker(t)
	a := lookupAPI(3, onBroker)
	orig := a.handle
	a.handle = func(*conn, *inflight, kmsg.Request) { panic("test panic") }
	t.Cleanup(func() { a.handle = orig })

	nc, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	frame := kmsg.NewRequestFormatter().AppendRequest(nil, req, 7)
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after a handler panic the client read %v, want EOF", err)
	}
	other, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := netRoundTrip(other, 1); err != nil {
		t.Fatalf("another connection after the panic: %v", err)
	}
}

// TestIdleConnectionClosed: connections.max.idle.ms closes a connection
// with nothing to do, keeps one that talks, and keeps one whose long-poll
// Fetch outlasts the idle time.
func TestIdleConnectionClosed(t *testing.T) {
	b := netStartBroker(t, "connections.max.idle.ms=300")
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	idle, busy := dial(), dial()
	if err := netRoundTrip(idle, 1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		time.Sleep(100 * time.Millisecond)
		if err := netRoundTrip(busy, int32(i)); err != nil {
			t.Fatalf("a connection sending a request every 100ms was closed: %v", err)
		}
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}

	// A Fetch that waits 1.5 s (five idle periods) for data that never
	// comes is not idle: its answer arrives.
	poll := dial()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 4
	req.MaxWaitMillis = 1500
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	frame := kmsg.NewRequestFormatter().AppendRequest(nil, req, 9)
	start := time.Now()
	_ = poll.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := poll.Write(frame); err != nil {
		t.Fatal(err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(poll, hdr[:]); err != nil {
		t.Fatalf("long poll cut by the idle timeout: %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("long poll answered after %v; expected it to wait ~1.5s", waited)
	}
}

// TestPipelineByteBound: a client that pipelines 1 MiB requests whose
// handlers do not answer gets at most maxPipelinedBytes (plus the one
// request always allowed) read ahead; once they are answered, the rest
// are read and answered in order.
func TestPipelineByteBound(t *testing.T) {
	b := netStartBroker(t)
	a := lookupAPI(3, onBroker)
	orig := a.handle
	var started atomic.Int32
	release := make(chan struct{})
	a.handle = func(c *conn, inf *inflight, req kmsg.Request) {
		started.Add(1)
		go func() {
			<-release
			orig(c, inf, req)
		}()
	}
	t.Cleanup(func() { a.handle = orig })

	nc, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Metadata v1 with a topic list of ~1 MiB (names the broker will
	// report as unknown).
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	for i := 0; i < 1<<20/256; i++ {
		name := fmt.Sprintf("%0250d", i)
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = &name
		req.Topics = append(req.Topics, mt)
	}
	const n = 40
	go func() {
		for i := int32(0); i < n; i++ {
			if _, err := nc.Write(kmsg.NewRequestFormatter().AppendRequest(nil, req, i)); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // let the reader take what it may
	got := started.Load()
	t.Logf("%d of %d pipelined 1 MiB requests read while none was answered", got, n)
	if got < 2 || int64(got) > maxPipelinedBytes/(1<<20)+1 {
		t.Fatalf("%d requests of 1 MiB read ahead; bound is %d bytes", got, maxPipelinedBytes)
	}
	close(release)
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := int32(0); i < n; i++ {
		body, err := connResponse(nc)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if corr := int32(binary.BigEndian.Uint32(body)); corr != i {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
	}
}

func connResponse(nc net.Conn) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(nc, sz[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(sz[:]))
	_, err := io.ReadFull(nc, body)
	return body, err
}

// TestParkedRequestsDoNotHoldTheBudget: JoinGroups that park for their
// rebalance (here a 5 s initial delay) give their queued.max.request.bytes
// back when the handler returns, as Kafka releases request memory: with a
// 1 MiB budget, four parked 512 KiB joins must not stall another client.
func TestParkedRequestsDoNotHoldTheBudget(t *testing.T) {
	b := netStartBroker(t, "queued.max.request.bytes=1048576", "group.initial.rebalance.delay.ms=5000")
	addr := b.Addr().String()
	for i := 0; i < 4; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 3 // no KIP-394 round trip: the join parks at once
		req.Group = "parked"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", make([]byte, 512<<10)
		req.Protocols = []kmsg.JoinGroupRequestProtocol{p}
		frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("parker")).AppendRequest(nil, req, 1)
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the joins are read and parked
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	if err := netRoundTrip(nc, 7); err != nil {
		t.Fatalf("another client was not served while joins were parked: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("another client waited %v behind parked joins", d)
	}
}
