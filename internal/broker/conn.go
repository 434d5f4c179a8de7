package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/wire"
)

// conn is one client connection. It has exactly one reader goroutine
// (serve) and one writer goroutine (writeLoop). The reader decodes requests
// and starts their handlers in arrival order; each request gets an inflight
// slot that the writer waits on in the same order, so responses go out in
// request order even when a handler finishes later (a long-poll Fetch, an
// acks=all Produce waiting for its fsync).
type conn struct {
	b    *Broker
	nc   net.Conn
	log  *slog.Logger
	host string // client address as Kafka shows it, e.g. /127.0.0.1
	// on is the kind of listener the connection came in on (onBroker or
	// onController), and listener its name (PLAINTEXT, CONTROLLER, ...):
	// Metadata answers with the brokers' endpoints of that name.
	on       uint8
	listener string

	queue chan *inflight // reader → writer, in request order

	// heldBack: transactional partitions whose batch failed its check with
	// a retriable code, holding back later batches of the same
	// transaction (verifyInOrder). Reader goroutine only.
	heldBack map[heldKey]heldBatch

	// ctx ends when the reader stops (peer gone, bad input, shutdown), so
	// parked long polls answer at once instead of outliving the socket.
	ctx    context.Context
	cancel context.CancelFunc

	// Unanswered requests: queued by the reader, retired by the writer
	// once their response is written or dropped. The reader stops reading
	// while either bound (maxPipelined, maxPipelinedBytes) is reached and
	// waits on answered, which the writer signals.
	pendingN     atomic.Int32
	pendingBytes atomic.Int64
	answered     chan struct{} // capacity 1: "something was answered"
	lastAnswer   atomic.Int64  // unix nanoseconds of the last response written

	// idle is connections.max.idle.ms; 0 disables it. The read deadline
	// carries it: armed when a frame starts, extended while requests are
	// in flight (see idleReader). dlMu orders that against stopReading,
	// whose deadline must win.
	idle     time.Duration
	dlMu     sync.Mutex
	stopping bool // Requires dlMu.
}

// inflight is one request awaiting its response.
type inflight struct {
	hdr  wire.RequestHeader
	done chan struct{}
	resp kmsg.Response // nil: send nothing (Produce acks=0)
	once sync.Once
	// release, if set before reply, runs once the response is encoded
	// (or dropped), to recycle buffers the response points into.
	release func()
	// size is the request frame's length, counted against the
	// connection's maxPipelinedBytes until the response is written.
	size int64
	// start is when the request's frame was read, for
	// kafka_network_requestmetrics_totaltimems and the slow request log.
	start time.Time
	// wait is how long the client asked the request to wait (a Fetch's
	// max_wait_ms): time the slow request log does not count, or every
	// idle consumer's long poll would be logged as slow.
	wait time.Duration
}

// reply completes the request. Only the first call counts.
func (f *inflight) reply(resp kmsg.Response) {
	f.once.Do(func() {
		f.resp = resp
		close(f.done)
	})
}

// maxPipelined bounds the requests read ahead of their responses. A client
// that sends faster than the broker answers is held back by TCP.
const maxPipelined = 64

// maxPipelinedBytes bounds the request bytes read ahead of their
// responses on one connection, so that one client cannot take the whole
// queued.max.request.bytes budget by pipelining. A single request of any
// size (up to socket.request.max.bytes) is always read.
const maxPipelinedBytes = 16 << 20

func newConn(b *Broker, nc net.Conn, listener string, on uint8) *conn {
	host := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ctx, cancel := context.WithCancel(b.ctx)
	return &conn{
		ctx:      ctx,
		cancel:   cancel,
		b:        b,
		nc:       nc,
		on:       on,
		listener: listener,
		log:      b.log.With("remote", nc.RemoteAddr().String()),
		host:     "/" + host,
		queue:    make(chan *inflight, maxPipelined),
		answered: make(chan struct{}, 1),
		idle:     time.Duration(max(b.cfg.ConnectionsMaxIdleMs, 0)) * time.Millisecond,
	}
}

// stopReading makes the reader return at its next read, for shutdown.
// Requests already read are still answered.
func (c *conn) stopReading() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.stopping = true
	_ = c.nc.SetReadDeadline(time.Now())
}

// armIdle starts the idle clock: the connection is closed if no complete
// request arrives within connections.max.idle.ms (unless one is in flight
// then; see idleReader).
func (c *conn) armIdle() {
	if c.idle <= 0 {
		return
	}
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if !c.stopping {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
	}
}

// errIdle ends a connection that stayed idle for connections.max.idle.ms.
var errIdle = errors.New("broker: connection idle longer than connections.max.idle.ms")

// idleReader is the socket as the reader sees it. When the idle deadline
// passes it decides: a connection with a request in flight (a long-poll
// Fetch) or answered within the idle time is not idle, and the deadline
// moves on; otherwise the read fails with errIdle. A shutdown deadline
// (stopReading) is passed through.
type idleReader struct{ c *conn }

func (r idleReader) Read(p []byte) (int, error) {
	for {
		n, err := r.c.nc.Read(p)
		if n > 0 || err == nil || !isTimeout(err) {
			return n, err
		}
		if ok, stopping := r.c.extendIdle(); stopping {
			return n, err
		} else if !ok {
			return n, errIdle
		}
	}
}

// extendIdle moves the idle deadline if the connection is not idle.
func (c *conn) extendIdle() (extended, stopping bool) {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.stopping || c.idle <= 0 {
		return false, c.stopping
	}
	now := time.Now()
	until := time.Unix(0, c.lastAnswer.Load()).Add(c.idle)
	if c.pendingN.Load() > 0 {
		until = now.Add(c.idle)
	}
	if !until.After(now) {
		return false, false
	}
	_ = c.nc.SetReadDeadline(until)
	return true, false
}

// enqueue hands a request to the writer, in arrival order.
func (c *conn) enqueue(inf *inflight) {
	c.pendingN.Add(1)
	c.pendingBytes.Add(inf.size)
	c.queue <- inf
}

// retire is the writer's last word on a request: it no longer counts
// against the pipelining bounds.
func (c *conn) retire(inf *inflight) {
	c.lastAnswer.Store(time.Now().UnixNano())
	c.pendingBytes.Add(-inf.size)
	c.pendingN.Add(-1)
	select {
	case c.answered <- struct{}{}:
	default:
	}
}

// waitPipeline holds the reader back while the connection has as many
// unanswered requests, or request bytes, as it may. It reports false if
// the connection is ending.
func (c *conn) waitPipeline() bool {
	for {
		n := c.pendingN.Load()
		if n == 0 || (n < maxPipelined && c.pendingBytes.Load() < maxPipelinedBytes) {
			return true
		}
		select {
		case <-c.answered:
		case <-c.ctx.Done():
			return false
		}
	}
}

func (c *conn) serve() {
	writerDone := make(chan struct{})
	guard.Go(c.log, "connection writer", func() {
		defer close(writerDone)
		c.writeLoop()
	}, func(any) { c.nc.Close() })
	c.lastAnswer.Store(time.Now().UnixNano())
	c.readLoop()
	c.cancel()
	close(c.queue)
	<-writerDone
	c.nc.Close()
}

// serves reports whether a request is worth decoding.
func (c *conn) serves(key, version int16) bool {
	a := lookupAPI(key, c.on)
	return a != nil && version >= a.min && version <= a.max
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(idleReader{c}, 32*1024)
	limit := c.b.cfg.SocketRequestMaxBytes
	budget := c.b.netLimits().budget
	recent := 0 // the largest frame read in full lately (see below)
	for {
		if !c.waitPipeline() {
			return
		}
		c.armIdle()
		// The frame's buffer grows as its bytes arrive, from the pools,
		// each growth charged to queued.max.request.bytes first. It may
		// start as large as the frames this peer sent in full lately: a
		// producer's requests are alike in size, and growing a 1 MiB
		// frame from 64 KiB copied a third of it again (6 % of the
		// broker's CPU under produce).
		var fbuf *[]byte
		fc := &frameCharge{budget: budget}
		frame, err := wire.ReadFrame(br, limit, recent, func(buf []byte, want, size int) ([]byte, error) {
			start := time.Now()
			if err := fc.grow(c.ctx, int64(want), int64(size)); err != nil {
				return nil, err
			}
			if time.Since(start) > time.Millisecond {
				// Waiting for the budget is the broker's doing, not
				// the client's: it does not count as idle time.
				c.armIdle()
			}
			nb := getBuf(want)
			*nb = append((*nb)[:0], buf...)
			if fbuf != nil {
				putBuf(fbuf)
			}
			fbuf = nb
			return *nb, nil
		})
		// drop gives the frame back when no handler gets it.
		drop := func() {
			if fbuf != nil {
				putBuf(fbuf)
			}
			fc.release()
			fc.handed()
		}
		if err != nil {
			drop()
			c.logReadError(err)
			return
		}
		// The largest lately: a larger frame sets it, and it shrinks by an
		// eighth with each frame, so sizes that vary a little never grow.
		recent = max(len(frame), recent-recent/8)
		hdr, req, err := wire.ParseRequest(frame, c.serves)
		if err != nil {
			drop()
			c.log.Warn("closing connection: bad request", "err", err, "api", kmsg.NameForKey(hdr.Key), "api_key", hdr.Key, "api_version", hdr.Version, "client_id", hdr.ClientID)
			return
		}
		a := lookupAPI(hdr.Key, c.on)
		inf := &inflight{hdr: hdr, done: make(chan struct{}), size: int64(len(frame)), start: time.Now()}
		switch {
		case hdr.Key == 18 && (req == nil || hdr.Version > a.max):
			// KIP-511: an ApiVersions version we do not serve gets a v0
			// answer with UNSUPPORTED_VERSION and our ranges.
			drop()
			c.enqueue(inf)
			inf.reply(apiVersionsUnsupported(c.on))
			continue
		case a == nil || hdr.Version < a.min || hdr.Version > a.max:
			drop()
			c.log.Warn("closing connection: unsupported api version", "api", kmsg.NameForKey(hdr.Key), "api_key", hdr.Key, "api_version", hdr.Version, "client_id", hdr.ClientID)
			return
		}
		// kmsg aliases the frame for []byte fields. Handlers of the
		// frameReusable APIs are done with the request when they return
		// (Produce has copied the records into the log), so the frame is
		// reused then; the others leave it to the garbage collector.
		//
		// Either way the queued.max.request.bytes charge is given back
		// when the handler returns, as Kafka releases a request's memory
		// pool bytes: a handler that parks (a JoinGroup waiting for its
		// rebalance, a long poll) must not hold the broker-wide budget
		// for minutes, or a few parked clients could stall every other
		// connection's reads. What parked requests keep is bounded per
		// connection by the pipelining bounds, which count until the
		// response is written.
		c.enqueue(inf)
		ok := c.dispatch(a, inf, req)
		if frameReusable[hdr.Key] && ok { // after a panic the buffer may still be referenced
			putBuf(fbuf)
		}
		fc.release()
		fc.handed()
		if !ok {
			return
		}
	}
}

// frameReusable lists the APIs whose handlers keep no reference into the
// request frame once they return.
var frameReusable = map[int16]bool{0: true, 1: true, 2: true, 3: true, 12: true, 18: true}

// dispatch runs the handler, turning a panic into a closed connection
// instead of a dead broker.
func (c *conn) dispatch(a *api, inf *inflight, req kmsg.Request) (ok bool) {
	defer guard.Recover(c.log, "handler "+kmsg.NameForKey(inf.hdr.Key), func(any) {
		// Complete the slot so the writer does not wait for it forever;
		// nothing is sent for it, and the reader closes the connection.
		inf.reply(nil)
		ok = false
	})
	a.handle(c, inf, req)
	return true
}

// goAsync runs fn in its own goroutine; a panic closes the connection
// and completes the slot, as in dispatch.
func (c *conn) goAsync(inf *inflight, fn func() kmsg.Response) {
	guard.Go(c.log, "handler "+kmsg.NameForKey(inf.hdr.Key), func() { inf.reply(fn()) }, func(any) {
		c.nc.Close()
		inf.reply(nil)
	})
}

func (c *conn) logReadError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), isTimeout(err), errors.Is(err, context.Canceled):
		c.log.Debug("connection closed", "err", err)
	case errors.Is(err, errIdle):
		c.log.Debug("closing idle connection", "idle", c.idle)
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Info("closing connection: truncated frame", "err", err)
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrFrameNegative), errors.Is(err, wire.ErrFrameTooSmall):
		c.log.Warn("closing connection: bad frame (not a Kafka client, TLS or HTTP on a PLAINTEXT port?)", "err", err)
	default:
		c.log.Info("closing connection", "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *conn) writeLoop() {
	bw := bufio.NewWriterSize(c.nc, 64*1024)
	bp := getBuf(0)
	defer func() { putBuf(bp) }()
	broken := false
	for inf := range c.queue {
		select {
		case <-inf.done:
		default:
			// Do not hold finished responses back while waiting for a
			// slow one (a long poll) behind them.
			if bw.Buffered() > 0 && !broken {
				if err := bw.Flush(); err != nil {
					broken = true
					c.nc.Close()
				}
			}
			<-inf.done
		}
		if broken || inf.resp == nil {
			if inf.release != nil {
				inf.release()
			}
			c.retire(inf)
			c.observe(inf)
			continue
		}
		var buf []byte
		var err error
		if sp, ok := inf.resp.(splicer); ok {
			// Records spliced from segment files: they stay referenced
			// until written, so release comes after.
			var pieces []responsePiece
			buf, pieces = sp.appendSpliced((*bp)[:0], inf.hdr.CorrelationID)
			err = c.writePieces(bw, pieces)
			if inf.release != nil {
				inf.release()
			}
		} else {
			buf = wire.AppendResponse((*bp)[:0], inf.hdr.CorrelationID, inf.resp)
			if inf.release != nil {
				inf.release()
			}
			_, err = bw.Write(buf)
		}
		c.retire(inf)
		c.observe(inf)
		if err != nil {
			c.log.Debug("write failed", "err", err)
			broken = true
			c.nc.Close()
			continue
		}
		// Flush when nothing else is ready, so pipelined responses share
		// one write(2).
		if len(c.queue) == 0 {
			if err := bw.Flush(); err != nil {
				broken = true
				c.nc.Close()
			}
		}
		if cap(buf) != cap(*bp) {
			*bp = buf // grew while encoding
		}
		if cap(buf) > 1<<20 && len(c.queue) == 0 {
			// Hand a large buffer back to the shared pool while this
			// connection is idle rather than pin it here.
			putBuf(bp)
			bp = getBuf(0)
		}
	}
	if !broken {
		_ = bw.Flush()
	}
}

// splicer is a response whose encoding leaves records in segment files,
// to be sent from there (fetch_encode.go).
type splicer interface {
	appendSpliced(dst []byte, corr int32) ([]byte, []responsePiece)
}

// writePieces writes a spliced response: bytes through bw, file ranges
// with sendfile after flushing bw (or copied through bw where sendfile
// cannot be used).
func (c *conn) writePieces(bw *bufio.Writer, pieces []responsePiece) error {
	for _, pc := range pieces {
		if pc.fr.Size == 0 {
			if _, err := bw.Write(pc.b); err != nil {
				return err
			}
			continue
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		handled, err := sendFileRange(c.nc, pc.fr)
		if handled {
			if err != nil {
				return err
			}
			c.b.metrics.sentFromFile.Add(uint64(pc.fr.Size))
			continue
		}
		c.b.metrics.copiedOut.Add(uint64(pc.fr.Size))
		tmp := getBuf(pc.fr.Size)
		b, err := pc.fr.AppendTo((*tmp)[:0])
		if err == nil {
			_, err = bw.Write(b)
		}
		if cap(b) > cap(*tmp) {
			*tmp = b[:0]
		}
		putBuf(tmp)
		if err != nil {
			return err
		}
	}
	return nil
}

// observe counts a finished request in the metrics and logs it if it was
// slow. Kafka's request log (kafka.request.logger) logs every request at
// DEBUG; Gregor logs those over gregor.request.log.slow.ms at INFO, and
// with the threshold at 0 every request at DEBUG.
func (c *conn) observe(inf *inflight) {
	took := time.Since(inf.start)
	c.b.metrics.answered(inf.hdr.Key, inf.hdr.Version, took)
	slow := c.b.cfg.RequestLogSlowMs
	switch {
	case slow < 0:
	case slow == 0:
		if c.log.Enabled(c.ctx, slog.LevelDebug) {
			c.logRequest(slog.LevelDebug, inf, took)
		}
	case took-inf.wait >= time.Duration(slow)*time.Millisecond:
		c.logRequest(slog.LevelInfo, inf, took)
	}
}

func (c *conn) logRequest(level slog.Level, inf *inflight, took time.Duration) {
	msg := "request"
	if level > slog.LevelDebug {
		msg = "slow request"
	}
	c.log.Log(context.Background(), level, msg, "api", kmsg.NameForKey(inf.hdr.Key), "api_version", inf.hdr.Version,
		"correlation_id", inf.hdr.CorrelationID, "client_id", inf.hdr.ClientID, "took_ms", float64(took.Microseconds())/1000,
		"request_bytes", inf.size)
}
