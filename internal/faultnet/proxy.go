package faultnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize bounds one read, so one forwarded chunk; queueLen bounds the
// chunks in flight per direction (the delay line).
const (
	chunkSize = 32 << 10
	queueLen  = 64
)

// dialTimeout bounds the dial of the target for one accepted connection.
const dialTimeout = 2 * time.Second

// Stats are a proxy's counters since it started.
type Stats struct {
	Accepted int64 // connections accepted
	Open     int64 // connections open now (forwarding, or held by a fault)
	ToTarget int64 // bytes written to the target
	ToClient int64 // bytes written back to the clients
}

// Proxy forwards every connection accepted on its address to a target
// address, with faults injected on demand. Its methods are safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	ctx    context.Context // cancelled by Close: ends pending dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	delay    atomic.Int64 // time.Duration
	accepted atomic.Int64
	toTarget atomic.Int64
	toClient atomic.Int64

	mu     sync.Mutex
	cut    bool
	drop   float64
	rng    *rand.Rand
	conns  map[*conn]struct{}
	closed bool
}

// conn is one accepted connection and its connection to the target.
type conn struct {
	client    net.Conn
	server    net.Conn      // nil until dialled; set under Proxy.mu
	stall     chan struct{} // closed when blackholed
	done      chan struct{} // closed when torn down
	stallOnce sync.Once
	doneOnce  sync.Once
	finished  atomic.Int32 // directions that ended
}

func (c *conn) stalled() bool {
	select {
	case <-c.stall:
		return true
	default:
		return false
	}
}

// blackhole stops the connection passing bytes; its sockets stay open.
func (c *conn) blackhole() { c.stallOnce.Do(func() { close(c.stall) }) }

// Listen starts a proxy listening on listen ("" means 127.0.0.1:0) that
// forwards to target. The target need not be up yet: it is dialled per
// accepted connection, and a failed dial resets that connection.
func Listen(listen, target string) (*Proxy, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultnet: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln: ln, target: target, ctx: ctx, cancel: cancel,
		rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		conns: map[*conn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close closes the listener and every connection, and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.takeConns(func(*conn) bool { return true })
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, c := range conns {
		c.teardown(false)
	}
	p.wg.Wait()
	return err
}

// Cut partitions the link: open connections stop passing bytes both ways
// but stay open, so their peers see timeouts, not errors; connections
// accepted from now on are held the same way and never reach the target.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.blackhole()
	}
}

// Heal ends a Cut: new connections are forwarded again, and every
// blackholed connection (by Cut or by the drop rate) is reset, as a healed
// network answers a dead TCP connection, so the peers reconnect. The delay
// and the drop rate are left as they are.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	conns := p.takeConns((*conn).stalled)
	p.mu.Unlock()
	for _, c := range conns {
		c.teardown(true)
	}
}

// Reset resets every open connection at once (RST to both ends); the proxy
// keeps accepting.
func (p *Proxy) Reset() {
	p.mu.Lock()
	conns := p.takeConns(func(*conn) bool { return true })
	p.mu.Unlock()
	for _, c := range conns {
		c.teardown(true)
	}
}

// SetDelay delays each chunk read from now on by d before it is written
// on, in order within each connection: latency, not a bandwidth limit.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(max(d, 0))) }

// SetDropRate blackholes a connection, as Cut does to all, with
// probability rate for each chunk it forwards (TCP has no partial loss: a
// lost link stalls the stream). 0 turns it off; 1 stalls every connection
// at its first byte.
func (p *Proxy) SetDropRate(rate float64) {
	p.mu.Lock()
	p.drop = min(max(rate, 0), 1)
	p.mu.Unlock()
}

// Seed makes the drop decisions from now on a function of seed.
func (p *Proxy) Seed(seed uint64) {
	p.mu.Lock()
	p.rng = rand.New(rand.NewPCG(seed, seed))
	p.mu.Unlock()
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := int64(len(p.conns))
	p.mu.Unlock()
	return Stats{Accepted: p.accepted.Load(), Open: open, ToTarget: p.toTarget.Load(), ToClient: p.toClient.Load()}
}

// String describes the proxy's faults: "ok", or e.g. "cut", "delay 50ms",
// "drop 0.10", joined by ", ".
func (p *Proxy) String() string {
	p.mu.Lock()
	cut, drop := p.cut, p.drop
	p.mu.Unlock()
	var f []string
	if cut {
		f = append(f, "cut")
	}
	if d := time.Duration(p.delay.Load()); d > 0 {
		f = append(f, "delay "+d.String())
	}
	if drop > 0 {
		f = append(f, fmt.Sprintf("drop %.2f", drop))
	}
	if len(f) == 0 {
		return "ok"
	}
	return strings.Join(f, ", ")
}

// takeConns removes and returns the connections matching match; p.mu is held.
func (p *Proxy) takeConns(match func(*conn) bool) []*conn {
	var out []*conn
	for c := range p.conns {
		if match(c) {
			delete(p.conns, c)
			out = append(out, c)
		}
	}
	return out
}

// dropNow draws whether to drop a chunk.
func (p *Proxy) dropNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drop > 0 && p.rng.Float64() < p.drop
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: back off
			continue
		}
		p.accepted.Add(1)
		c := &conn{client: nc, stall: make(chan struct{}), done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			return
		}
		p.conns[c] = struct{}{}
		if p.cut {
			// Held: never dialled, nothing read, until Heal or Close.
			c.blackhole()
			p.mu.Unlock()
			continue
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.dial(c)
	}
}

// dial connects c to the target and starts forwarding both ways.
func (p *Proxy) dial(c *conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	sc, err := d.DialContext(p.ctx, "tcp", p.target)
	p.mu.Lock()
	_, live := p.conns[c]
	if err != nil || !live {
		if live {
			delete(p.conns, c)
		}
		p.mu.Unlock()
		if sc != nil {
			sc.Close()
		}
		c.teardown(true) // as a refused connection would
		return
	}
	c.server = sc
	p.wg.Add(4)
	p.mu.Unlock()
	up, down := make(chan chunk, queueLen), make(chan chunk, queueLen)
	go p.read(c, c.client, up)
	go p.write(c, c.server, up, &p.toTarget)
	go p.read(c, c.server, down)
	go p.write(c, c.client, down, &p.toClient)
}

// chunk is one read in the delay line, to be written at due.
type chunk struct {
	due  time.Time
	data []byte
}

// read passes what src sends to the delay line out, each chunk stamped
// with the time it is due.
func (p *Proxy) read(c *conn, src net.Conn, out chan<- chunk) {
	defer p.wg.Done()
	buf := make([]byte, chunkSize)
	for {
		if c.stalled() {
			<-c.done
			return
		}
		n, err := src.Read(buf)
		if c.stalled() {
			<-c.done // a lost link passes neither data nor FIN
			return
		}
		if n > 0 {
			if p.dropNow() {
				c.blackhole()
				continue
			}
			ch := chunk{time.Now().Add(time.Duration(p.delay.Load())), append([]byte(nil), buf[:n]...)}
			select {
			case out <- ch:
			case <-c.stall:
				<-c.done
				return
			case <-c.done:
				return
			}
		}
		if err != nil {
			close(out) // the writer passes on EOF, or tears down
			if !errors.Is(err, io.EOF) {
				p.end(c, true)
			}
			return
		}
	}
}

// write passes chunks to dst when they are due. At the end of the stream
// it half-closes dst; the connection is torn down when both directions
// have ended.
func (p *Proxy) write(c *conn, dst net.Conn, in <-chan chunk, count *atomic.Int64) {
	defer p.wg.Done()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-in:
		case <-c.stall:
			<-c.done
			return
		case <-c.done:
			return
		}
		if !ok {
			if tc, isTCP := dst.(*net.TCPConn); isTCP {
				tc.CloseWrite()
			}
			if c.finished.Add(1) == 2 {
				p.end(c, false)
			}
			return
		}
		if wait := time.Until(ch.due); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-c.stall:
				<-c.done
				return
			case <-c.done:
				return
			}
		}
		if c.stalled() {
			<-c.done
			return
		}
		n, err := dst.Write(ch.data)
		count.Add(int64(n))
		if err != nil {
			p.end(c, true)
			return
		}
	}
}

// end removes c from the proxy and tears it down (unless Heal, Reset or
// Close already took it).
func (p *Proxy) end(c *conn, rst bool) {
	p.mu.Lock()
	_, live := p.conns[c]
	delete(p.conns, c)
	p.mu.Unlock()
	if live {
		c.teardown(rst)
	}
}

// teardown closes both sockets, with an RST when rst is set.
func (c *conn) teardown(rst bool) {
	c.doneOnce.Do(func() {
		close(c.done)
		for _, nc := range []net.Conn{c.client, c.server} {
			if nc == nil {
				continue
			}
			if tc, ok := nc.(*net.TCPConn); ok && rst {
				tc.SetLinger(0)
			}
			nc.Close()
		}
	})
}
