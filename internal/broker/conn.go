package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

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

	queue chan *inflight // reader → writer, in request order

	// ctx ends when the reader stops (peer gone, bad input, shutdown), so
	// parked long polls answer at once instead of outliving the socket.
	ctx    context.Context
	cancel context.CancelFunc

	stopOnce sync.Once
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

func newConn(b *Broker, nc net.Conn) *conn {
	host := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ctx, cancel := context.WithCancel(b.ctx)
	return &conn{
		ctx:    ctx,
		cancel: cancel,
		b:      b,
		nc:     nc,
		log:    b.log.With("remote", nc.RemoteAddr().String()),
		host:   "/" + host,
		queue:  make(chan *inflight, maxPipelined),
	}
}

// stopReading makes the reader return at its next read, for shutdown.
// Requests already read are still answered.
func (c *conn) stopReading() {
	c.stopOnce.Do(func() { _ = c.nc.SetReadDeadline(time.Now()) })
}

func (c *conn) serve() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	c.cancel()
	close(c.queue)
	<-writerDone
	c.nc.Close()
}

// serves reports whether a request is worth decoding.
func serves(key, version int16) bool {
	a := lookupAPI(key)
	return a != nil && version >= a.min && version <= a.max
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 32*1024)
	max := c.b.cfg.SocketRequestMaxBytes
	for {
		var fbuf *[]byte
		frame, err := wire.ReadFrame(br, max, func(n int) []byte {
			fbuf = getBuf(n)
			return *fbuf
		})
		if err != nil {
			if fbuf != nil {
				putBuf(fbuf)
			}
			c.logReadError(err)
			return
		}
		hdr, req, err := wire.ParseRequest(frame, serves)
		if err != nil {
			c.log.Warn("closing connection: bad request", "err", err, "api", kmsg.NameForKey(hdr.Key), "api_key", hdr.Key, "api_version", hdr.Version, "client_id", hdr.ClientID)
			return
		}
		a := lookupAPI(hdr.Key)
		inf := &inflight{hdr: hdr, done: make(chan struct{})}
		switch {
		case hdr.Key == 18 && (req == nil || hdr.Version > a.max):
			// KIP-511: an ApiVersions version we do not serve gets a v0
			// answer with UNSUPPORTED_VERSION and our ranges.
			c.queue <- inf
			inf.reply(apiVersionsUnsupported())
			continue
		case a == nil || hdr.Version < a.min || hdr.Version > a.max:
			c.log.Warn("closing connection: unsupported api version", "api", kmsg.NameForKey(hdr.Key), "api_key", hdr.Key, "api_version", hdr.Version, "client_id", hdr.ClientID)
			return
		}
		c.queue <- inf
		if !c.dispatch(a, inf, req) {
			return
		}
		// kmsg aliases the frame for []byte fields. Handlers of these APIs
		// are done with the request when they return (Produce has copied
		// the records into the log), so the frame can be reused; the
		// others keep it until the garbage collector takes it.
		if frameReusable[hdr.Key] {
			putBuf(fbuf)
		}
	}
}

// frameReusable lists the APIs whose handlers keep no reference into the
// request frame once they return.
var frameReusable = map[int16]bool{0: true, 1: true, 2: true, 3: true, 12: true, 18: true}

// dispatch runs the handler, turning a panic into a closed connection
// instead of a dead broker.
func (c *conn) dispatch(a *api, inf *inflight, req kmsg.Request) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panic; closing connection", "api", kmsg.NameForKey(inf.hdr.Key), "panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	a.handle(c, inf, req)
	return true
}

// goAsync runs fn in its own goroutine with the same panic protection.
func (c *conn) goAsync(inf *inflight, fn func() kmsg.Response) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("handler panic; closing connection", "api", kmsg.NameForKey(inf.hdr.Key), "panic", r, "stack", string(debug.Stack()))
				c.nc.Close()
				inf.reply(nil)
			}
		}()
		inf.reply(fn())
	}()
}

func (c *conn) logReadError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), isTimeout(err):
		c.log.Debug("connection closed", "err", err)
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
			continue
		}
		buf := wire.AppendResponse((*bp)[:0], inf.hdr.CorrelationID, inf.resp)
		if inf.release != nil {
			inf.release()
		}
		if _, err := bw.Write(buf); err != nil {
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
