package quorum

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/gregorhq/gregor/internal/guard"
)

// Receiver is the node side of a transport.
type Receiver interface {
	// Step hands an incoming message to raft.
	Step(m *pb.Message)
	// ReportUnreachable tells raft a message to id was dropped.
	ReportUnreachable(id uint64)
	// ReportSnapshot tells raft whether a snapshot reached id.
	ReportSnapshot(id uint64, ok bool)
}

// Transport carries raft messages between voters. Send must not block on
// the network: raft tolerates lost, delayed and reordered messages, so a
// transport drops what it cannot deliver (and reports it) rather than
// stall the raft loop.
type Transport interface {
	Start(r Receiver) error
	Send(msgs []*pb.Message)
	Close() error
}

// Wire format between voters: the dialing side sends the 8-byte preamble
// "GRGRAFT1" and its node id (uint64), then frames of a uint32 length and a
// raftpb.Message. Each side dials the other: a connection carries messages
// in one direction only.
const preamble = "GRGRAFT1"

// maxFrame bounds one message (a snapshot of the metadata image is the
// largest). The controller listener must only be reachable by controllers.
const maxFrame = 256 << 20

// peerQueue bounds the messages waiting for one peer; beyond it messages
// are dropped, which raft recovers from.
const peerQueue = 4096

// TCPTransport sends each peer's messages over one TCP connection, dialing
// again with back-off when it breaks, and accepts peers' connections on ln.
type TCPTransport struct {
	id    uint64
	ln    net.Listener
	log   *slog.Logger
	peers map[uint64]*peer

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	recv   Receiver
	done   chan struct{}
}

type peer struct {
	id   uint64
	addr string
	q    chan *pb.Message
}

// NewTCPTransport makes a transport for node id; addrs maps every voter id
// (its own included, which is ignored) to host:port. ln receives the other
// voters' connections.
func NewTCPTransport(id uint64, addrs map[uint64]string, ln net.Listener, log *slog.Logger) *TCPTransport {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TCPTransport{id: id, ln: ln, log: log, peers: map[uint64]*peer{}, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	for pid, addr := range addrs {
		if pid != id {
			t.peers[pid] = &peer{id: pid, addr: addr, q: make(chan *pb.Message, peerQueue)}
		}
	}
	return t
}

// Start begins accepting and sending.
func (t *TCPTransport) Start(r Receiver) error {
	t.recv = r
	t.wg.Add(1)
	guard.Go(t.log, "quorum accept loop", func() { defer t.wg.Done(); t.accept() }, nil)
	for _, p := range t.peers {
		t.wg.Add(1)
		guard.Go(t.log, "quorum sender", func() { defer t.wg.Done(); t.sendLoop(p) }, nil)
	}
	return nil
}

// Send queues messages for their peers.
func (t *TCPTransport) Send(msgs []*pb.Message) {
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			continue
		}
		select {
		case p.q <- m:
		default:
			t.report(m, false)
		}
	}
}

func (t *TCPTransport) report(m *pb.Message, ok bool) {
	if m.GetType() == pb.MessageType_MsgSnap {
		t.recv.ReportSnapshot(m.GetTo(), ok)
	}
	if !ok {
		t.recv.ReportUnreachable(m.GetTo())
	}
}

func (t *TCPTransport) sendLoop(p *peer) {
	var (
		conn    net.Conn
		bw      *bufio.Writer
		backoff time.Duration
		retryAt time.Time
		buf     []byte
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		var m *pb.Message
		select {
		case m = <-p.q:
		case <-t.done:
			return
		}
		if conn == nil {
			if time.Now().Before(retryAt) {
				t.report(m, false)
				continue
			}
			c, err := net.DialTimeout("tcp", p.addr, time.Second)
			if err == nil {
				var hello [16]byte
				copy(hello[:], preamble)
				binary.BigEndian.PutUint64(hello[8:], t.id)
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Write(hello[:])
				if err != nil {
					c.Close()
				}
			}
			if err != nil {
				backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
				retryAt = time.Now().Add(backoff)
				t.log.Debug("controller unreachable", "peer", p.id, "addr", p.addr, "err", err, "retry_in", backoff)
				t.report(m, false)
				continue
			}
			backoff = 0
			conn, bw = c, bufio.NewWriterSize(c, 64<<10)
		}
		var err error
		buf, err = appendFrame(buf[:0], m)
		if err == nil {
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err = bw.Write(buf)
			// Flush when the queue is empty, so a burst shares a write.
			if err == nil && len(p.q) == 0 {
				err = bw.Flush()
			}
		}
		if err != nil {
			t.log.Debug("sending to controller failed", "peer", p.id, "err", err)
			conn.Close()
			conn = nil
			t.report(m, false)
			continue
		}
		if m.GetType() == pb.MessageType_MsgSnap {
			if err := bw.Flush(); err != nil {
				conn.Close()
				conn = nil
				t.report(m, false)
				continue
			}
			t.report(m, true)
		}
	}
}

func appendFrame(dst []byte, m *pb.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - 4
	if n > maxFrame {
		return dst[:start], fmt.Errorf("quorum: message of %d bytes exceeds %d", n, maxFrame)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

func (t *TCPTransport) accept() {
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Add(1)
		guard.Go(t.log, "quorum receiver", func() {
			defer t.wg.Done()
			t.receive(c)
		}, nil)
	}
}

// receive reads one peer's messages until the connection ends. Anything
// that is not a well-formed stream from a known voter closes it.
func (t *TCPTransport) receive(c net.Conn) {
	defer func() {
		c.Close()
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}()
	br := bufio.NewReaderSize(c, 64<<10)
	var hello [16]byte
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, hello[:]); err != nil || string(hello[:8]) != preamble {
		t.log.Warn("closing controller connection: not a Gregor controller", "remote", c.RemoteAddr().String())
		return
	}
	from := binary.BigEndian.Uint64(hello[8:])
	if t.peers[from] == nil {
		t.log.Warn("closing controller connection: unknown voter", "remote", c.RemoteAddr().String(), "node", from)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			t.log.Warn("closing controller connection: frame too large", "node", from, "bytes", n)
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(body, m); err != nil || m.GetFrom() != from || m.GetTo() != t.id {
			t.log.Warn("closing controller connection: bad message", "node", from, "err", err)
			return
		}
		t.recv.Step(m)
	}
}

// Close stops sending and receiving and waits for the goroutines.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	err := t.ln.Close()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

// IsPreamble reports whether the first bytes of a connection are a
// voter's hello, so a listener shared with Kafka clients (the controller
// listener) can hand the connection to the transport. A Kafka request
// cannot start this way: read as a frame size, "GRGR" is over 1 GiB.
func IsPreamble(b []byte) bool {
	return len(b) >= len(preamble) && string(b[:len(preamble)]) == preamble
}

// PreambleLen is how many bytes IsPreamble needs.
const PreambleLen = len(preamble)

// ConnListener is a net.Listener fed by hand: the controller listener
// accepts every connection, and passes the voters' ones on with Deliver.
type ConnListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewConnListener returns a listener reporting addr as its address.
func NewConnListener(addr net.Addr) *ConnListener {
	return &ConnListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Deliver hands a connection to whoever accepts; it closes the connection
// if the listener is closed.
func (l *ConnListener) Deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept implements net.Listener.
func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *ConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *ConnListener) Addr() net.Addr { return l.addr }

// LocalTransport is the transport of a quorum of one: there is nobody to
// send to.
type LocalTransport struct{}

func (LocalTransport) Start(Receiver) error { return nil }
func (LocalTransport) Send([]*pb.Message)   {}
func (LocalTransport) Close() error         { return nil }
