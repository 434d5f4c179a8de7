package faultnet

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stallWait is how long a read must see nothing for a link to count as
// stalled.
const stallWait = 300 * time.Millisecond

// echoServer echoes every connection until closed; it counts the
// connections it accepted.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(e.Close)
	return e
}

func (e *echoServer) Addr() string { return e.ln.Addr().String() }

func (e *echoServer) Close() {
	e.ln.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Listen("", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within wait.
func roundTrip(c net.Conn, msg string, wait time.Duration) error {
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo: got " + string(buf))
	}
	return nil
}

func mustRoundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := roundTrip(c, msg, 5*time.Second); err != nil {
		t.Fatalf("round trip %q: %v", msg, err)
	}
}

// mustStall checks that msg written on c comes back neither as data nor
// as an error: the read times out.
func mustStall(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	err := roundTrip(c, msg, stallWait)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("round trip %q on a stalled link: %v, want a timeout", msg, err)
	}
}

// mustBreak checks that a read on c ends in EOF or a reset, not a timeout.
func mustBreak(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 64))
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on a broken connection: %v, want EOF or ECONNRESET", err)
	}
}

// eventually retries cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPassThrough(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.Addr())
	c := dial(t, p.Addr())
	mustRoundTrip(t, c, "hello")
	mustRoundTrip(t, c, strings.Repeat("x", 200<<10)) // many chunks
	eventually(t, "the byte counters", func() bool {
		s := p.Stats()
		return s.Accepted == 1 && s.Open == 1 && s.ToTarget == 5+200<<10 && s.ToClient == 5+200<<10
	})
	// A half-close passes through: the echo server ends its side too.
	c.(*net.TCPConn).CloseWrite()
	mustBreak(t, c)
	eventually(t, "the connection to end", func() bool { return p.Stats().Open == 0 })
	if s := p.String(); s != "ok" {
		t.Errorf("String() = %q, want ok", s)
	}
}

func TestCutHeal(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.Addr())
	old := dial(t, p.Addr())
	mustRoundTrip(t, old, "before")

	p.Cut()
	mustStall(t, old, "during")
	held := dial(t, p.Addr()) // accepted by the proxy, never forwarded
	mustStall(t, held, "new")
	if n := e.accepted.Load(); n != 1 {
		t.Errorf("target accepted %d connections during the cut, want 1", n)
	}
	if s := p.String(); s != "cut" {
		t.Errorf("String() = %q, want cut", s)
	}

	p.Heal()
	mustBreak(t, old)
	mustBreak(t, held)
	mustRoundTrip(t, dial(t, p.Addr()), "after")
	if n := e.accepted.Load(); n != 2 {
		t.Errorf("target accepted %d connections, want 2", n)
	}
}

func TestReset(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.Addr())
	c1, c2 := dial(t, p.Addr()), dial(t, p.Addr())
	mustRoundTrip(t, c1, "a")
	mustRoundTrip(t, c2, "b")
	p.Reset()
	mustBreak(t, c1)
	mustBreak(t, c2)
	mustRoundTrip(t, dial(t, p.Addr()), "c")
	if s := p.Stats(); s.Accepted != 3 {
		t.Errorf("accepted %d, want 3", s.Accepted)
	}
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr)
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err != nil {
		// The reset can beat the end of the dial.
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial through a proxy to a dead target: %v", err)
		}
		return
	}
	defer c.Close()
	mustBreak(t, c)
}

func TestDelay(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.Addr())
	c := dial(t, p.Addr())
	mustRoundTrip(t, c, "warm")
	const d = 150 * time.Millisecond
	p.SetDelay(d)
	if s := p.String(); s != "delay 150ms" {
		t.Errorf("String() = %q", s)
	}
	start := time.Now()
	mustRoundTrip(t, c, "slow")
	if took := time.Since(start); took < 2*d {
		t.Errorf("round trip took %v, want at least %v (delayed each way)", took, 2*d)
	}
	// Order within the connection holds across many delayed chunks.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var want strings.Builder
	for i := range 20 {
		msg := strings.Repeat(string(rune('a'+i)), 1000)
		want.WriteString(msg)
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Error("delayed chunks came back out of order")
	}
	p.SetDelay(0)
	mustRoundTrip(t, c, "fast")
}

func TestDropAll(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.Addr())
	p.Seed(1)
	p.SetDropRate(1)
	c := dial(t, p.Addr())
	mustStall(t, c, "lost")
	if s := p.Stats(); s.ToTarget != 0 || s.ToClient != 0 {
		t.Errorf("forwarded %d/%d bytes at drop rate 1", s.ToTarget, s.ToClient)
	}
	p.SetDropRate(0)
	mustStall(t, c, "still lost") // the stalled link stays stalled
	mustRoundTrip(t, dial(t, p.Addr()), "fresh")
	p.Heal()
	mustBreak(t, c)
}

// TestDropSeeded checks that a seed fixes which chunk stalls the link.
func TestDropSeeded(t *testing.T) {
	e := newEcho(t)
	survived := func() int {
		p := newProxy(t, e.Addr())
		p.Seed(42)
		p.SetDropRate(0.1)
		c := dial(t, p.Addr())
		n := 0
		for ; n < 50; n++ {
			// One byte and a wait per round trip: one chunk each way.
			if err := roundTrip(c, "x", stallWait); err != nil {
				break
			}
		}
		return n
	}
	a, b := survived(), survived()
	t.Logf("round trips before the drop: %d", a)
	if a != b || a == 50 {
		t.Errorf("round trips before the drop: %d and %d, want equal and < 50", a, b)
	}
}

func TestNet(t *testing.T) {
	e := newEcho(t)
	n := NewNet()
	defer n.Close()
	for _, name := range []string{"1->2", "1->3", "2->1", "3->1", "client-1"} {
		if _, err := n.Add(name, e.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Add("1->2", e.Addr()); err == nil {
		t.Error("a second link named 1->2 was added")
	}
	if n.Link("nope") != nil || n.Link("1->2") == nil {
		t.Error("Link lookup")
	}
	if err := n.Isolate("1->*", "*->1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Isolate("4->*"); err == nil {
		t.Error("a pattern matching no link was accepted")
	}
	n.Link("client-1").SetDelay(10 * time.Millisecond)
	want := "1->2: cut; 1->3: cut; 2->1: cut; 3->1: cut; client-1: delay 10ms"
	if s := n.String(); s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	mustStall(t, dial(t, n.Link("2->1").Addr()), "x")
	mustRoundTrip(t, dial(t, n.Link("client-1").Addr()), "y")

	if err := n.Heal("2->1"); err != nil {
		t.Fatal(err)
	}
	mustRoundTrip(t, dial(t, n.Link("2->1").Addr()), "z")
	n.HealAll()
	if s := n.String(); s != "no faults" {
		t.Errorf("String() after HealAll = %q", s)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add("late", e.Addr()); err == nil {
		t.Error("Add after Close succeeded")
	}
}

// TestCloseLeavesNoGoroutines closes a proxy with connections in every
// state: forwarding, mid-delay, blackholed, held by a cut.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		e := newEcho(t)
		defer e.Close()
		p, err := Listen("", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		var clients []net.Conn
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		dialc := func() net.Conn {
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
			return c
		}
		mustRoundTrip(t, dialc(), "idle")
		p.SetDelay(time.Hour)
		io.WriteString(dialc(), "in the delay line")
		p.SetDelay(0)
		p.SetDropRate(1)
		mustStall(t, dialc(), "dropped")
		p.SetDropRate(0)
		p.Cut()
		held := dialc()
		eventually(t, "the held connection", func() bool { return p.Stats().Accepted == 4 })
		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			os.Stderr.Write(buf[:runtime.Stack(buf, true)])
			t.Fatal("Close did not return")
		}
		if err := p.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		mustBreak(t, held)
		if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			t.Error("dial after Close succeeded")
		}
	}()
	var after int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after <= before || time.Now().After(deadline) {
			break
		}
	}
	if after > before {
		buf := make([]byte, 1<<20)
		os.Stderr.Write(buf[:runtime.Stack(buf, true)])
		t.Fatalf("%d goroutines before, %d after Close", before, after)
	}
}
