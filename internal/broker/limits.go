package broker

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gregorhq/gregor/internal/wire"
)

// This file holds the limits that keep one client, or many, from wedging
// or exhausting the broker through its connections:
//
//   - max.connections, max.connections.per.ip and its overrides, checked
//     right after accept (the newest connection is the one refused);
//   - the file-descriptor budget, which caps connections so that they can
//     never take the descriptors the partition logs need;
//   - queued.max.request.bytes, a broker-wide budget of request bytes read
//     but not yet handled.
//
// connections.max.idle.ms and the per-connection pipelining bounds live in
// conn.go, with the reader they steer.

// fdOverhead is what the process needs besides connections and segment
// files: stdio, listeners, the poller, the lock file, and the short-lived
// descriptors of atomic file writes and directory fsyncs.
const fdOverhead = 64

// fdBudget splits the process's file-descriptor limit (RLIMIT_NOFILE, after
// Go raised the soft limit to the hard one at start-up) between client
// connections and the partition logs: each gets half of what is left after
// fdOverhead. A broker's partitions need descriptors as much as its clients
// do (one per open segment), and neither side can be allowed to starve the
// other. Examples:
//
//	nofile      maxConns  forLogs
//	1024             480      480
//	4096            2016     2016
//	20000           9968     9968
//	1048576       524256   524256
//
// A connection flood therefore runs into maxConns (and is refused right
// after accept) long before it can make opening a segment fail with
// EMFILE, and the broker-wide partition cap (partition_limits.go) keeps
// the partitions inside forLogs. nofile <= 0 means unknown: no cap on
// either.
func fdBudget(nofile int) (maxConns, forLogs int) {
	if nofile <= 0 {
		return 0, 0
	}
	avail := max(nofile-fdOverhead, 2)
	forLogs = avail / 2
	return avail - forLogs, forLogs
}

// netLimits is the broker's connection bookkeeping. mu is a leaf lock.
type netLimits struct {
	log *slog.Logger

	maxConns int            // effective: the smaller of max.connections and the fd budget
	perIP    int            // max.connections.per.ip
	override map[string]int // max.connections.per.ip.overrides, keyed by canonical IP text
	nofile   int            // RLIMIT_NOFILE seen at start; 0 if unknown
	forLogs  int            // descriptors kept for the logs (fdBudget)

	budget *reqBudget // queued.max.request.bytes

	mu    sync.Mutex
	total int
	byIP  map[string]int

	refusals logLimiter
}

func newNetLimits(b *Broker) *netLimits {
	cfg := b.cfg
	l := &netLimits{
		log:      b.log,
		maxConns: cfg.MaxConnections,
		perIP:    cfg.MaxConnectionsPerIP,
		override: map[string]int{},
		nofile:   nofileLimit(),
		budget:   newReqBudget(cfg.QueuedMaxRequestBytes),
		byIP:     map[string]int{},
	}
	fdConns, forLogs := fdBudget(l.nofile)
	l.forLogs = forLogs
	if fdConns > 0 && (l.maxConns <= 0 || fdConns < l.maxConns) {
		l.maxConns = fdConns
	}
	// Kafka matches overrides by host name or address; an address match
	// is what a broker that does no reverse lookups can do.
	for host, n := range cfg.MaxConnectionsPerIPOv {
		if ip := net.ParseIP(host); ip != nil {
			host = ip.String()
		}
		l.override[host] = n
	}
	return l
}

// netLimits returns the broker's connection limits, set up on first use
// (Start, or a test serving a connection without listeners).
func (b *Broker) netLimits() *netLimits {
	b.netOnce.Do(func() { b.net = newNetLimits(b) })
	return b.net
}

// ipOf is the canonical text of a peer's address, the per-IP key.
func ipOf(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// admit counts a new connection from ip, or refuses it when a limit is
// reached; a refused connection is not counted. Every admitted connection
// must be given back with leave.
func (l *netLimits) admit(ip string) (ok bool, why string, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxConns > 0 && l.total >= l.maxConns {
		return false, "max.connections", l.maxConns
	}
	perIP, ov := l.override[ip]
	if !ov {
		perIP = l.perIP
	}
	if (perIP > 0 || ov) && l.byIP[ip] >= perIP {
		return false, "max.connections.per.ip", perIP
	}
	l.total++
	l.byIP[ip]++
	return true, "", 0
}

func (l *netLimits) leave(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// refused logs a refused connection, at most once per logEvery so that a
// flood does not become a flood of log lines; the line says how many were
// refused since the last one.
func (l *netLimits) refused(ip, why string, limit int) {
	if n, ok := l.refusals.allow(time.Now()); ok {
		l.log.Warn("refusing connections over a limit", "remote_ip", ip, "limit", why, "value", limit, "refused_since_last_log", n)
	}
}

// logEvery is the rate at which repeated warnings are logged.
const logEvery = 10 * time.Second

// logLimiter lets one event in per logEvery and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many events (this one
// included) happened since the last one logged.
func (r *logLimiter) allow(now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suppressed++
	if !r.last.IsZero() && now.Sub(r.last) < logEvery {
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}

// reqBudget is queued.max.request.bytes: the request bytes the broker has
// read but not yet finished handling, across all connections. A frame is
// charged as its buffer grows (wire.Grow) and released when its handler
// is done with it, so the bytes held by request frames stay near limit.
//
// Deadlock freedom. A reader waits on the budget in one of two places:
//
//  1. acquire, at the start of a frame, when it holds no bytes of a
//     partly read frame. What it waits for are frames being handled, and
//     handlers never wait for a connection to read more, so they finish.
//  2. growing a partly read frame: tryAcquire, else wait for the grow
//     token. The token's holder reads the rest of its frame without
//     waiting on the budget again (force), runs its handler, and hands
//     the token on when the handler returns (or its peer goes away).
//     Readers waiting for the token hold partial frames, but the token
//     holder never waits for them.
//
// The price is that the budget can be overdrawn by the token holder's
// frame, at most socket.request.max.bytes, plus frames read with the
// token whose handlers park them after returning (JoinGroup, SyncGroup:
// small frames, released when they answer). A single frame larger than
// the whole budget is still served: acquire lets a frame start whenever
// nothing is charged, and its growth goes through the token.
//
// Small frames (at most smallFrame bytes, read in one chunk) have a reserve
// of their own, a quarter of the limit, that large frames never touch.
// Without it, a few connections that announce 100 MiB frames, send part
// of each and stop held the whole budget (each buffer grows ahead of its
// bytes), and every other client's next request, an ApiVersions or a
// heartbeat, waited for them until connections.max.idle.ms. Metadata,
// heartbeats, commits, fetch requests and small produces are small frames:
// they go on while large frames wait. A small frame is charged to the
// limit while it fits there, to the reserve otherwise.
type reqBudget struct {
	limit   int64 // <= 0: unbounded, like Kafka's -1
	reserve int64 // for small frames only

	mu       sync.Mutex
	used     int64
	reserved int64         // charged to the reserve
	changed  chan struct{} // closed and replaced when used or reserved drops

	token chan struct{} // holds one value while no reader has the grow token
}

// smallFrame is the largest frame that may draw on the budget's reserve:
// wire.FirstChunk, so that such a frame is charged once, whole.
const smallFrame = wire.FirstChunk

func newReqBudget(limit int64) *reqBudget {
	b := &reqBudget{limit: limit, reserve: limit / 4, changed: make(chan struct{}), token: make(chan struct{}, 1)}
	b.token <- struct{}{}
	return b
}

// acquireSmall charges a whole small frame of n bytes: to the limit if it
// fits there, else to the reserve, else it waits. It reports whether the
// bytes went to the reserve; it fails only when ctx ends.
func (b *reqBudget) acquireSmall(ctx context.Context, n int64) (bool, error) {
	if b.unbounded() {
		return false, nil
	}
	for {
		b.mu.Lock()
		switch {
		case b.used == 0 || b.used+n <= b.limit:
			b.used += n
			b.mu.Unlock()
			return false, nil
		case b.reserved+n <= b.reserve:
			b.reserved += n
			b.mu.Unlock()
			return true, nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (b *reqBudget) unbounded() bool { return b.limit <= 0 }

// acquire charges n bytes, waiting while they do not fit. Bytes fit when
// used+n <= limit, or when nothing is charged at all (a frame larger than
// the budget may proceed alone). It fails only when ctx ends.
func (b *reqBudget) acquire(ctx context.Context, n int64) error {
	if b.unbounded() {
		return nil
	}
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryAcquire charges n bytes if they fit now.
func (b *reqBudget) tryAcquire(n int64) bool {
	if b.unbounded() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.limit {
		b.used += n
		return true
	}
	return false
}

// force charges n bytes whether or not they fit. Only the grow token's
// holder calls it.
func (b *reqBudget) force(n int64) {
	if b.unbounded() {
		return
	}
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// give gives back used bytes charged to the limit and reserved bytes
// charged to the reserve, and wakes the waiters.
func (b *reqBudget) give(used, reserved int64) {
	if b.unbounded() || used == 0 && reserved == 0 {
		return
	}
	b.mu.Lock()
	b.used -= used
	b.reserved -= reserved
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// inUse is the bytes charged now, the reserve's included.
func (b *reqBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used + b.reserved
}

// takeToken waits for the grow token; see the type's comment.
func (b *reqBudget) takeToken(ctx context.Context) error {
	select {
	case <-b.token:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *reqBudget) giveToken() { b.token <- struct{}{} }

// frameCharge tracks one frame's claim on the budget. The reader owns it
// (grow, handed) until the frame is handed over; release is then called
// once, by the reader or, for frames a handler keeps, by inflight.reply.
type frameCharge struct {
	budget   *reqBudget
	charged  int64
	reserved int64 // a small frame charged to the reserve
	token    bool
}

// grow charges the frame, size bytes in all, up to want bytes. The first
// charge of a frame may wait for the budget; later ones wait, if at all,
// only for the grow token (see reqBudget). A small frame is charged whole
// at once and may draw on the reserve.
func (f *frameCharge) grow(ctx context.Context, want, size int64) error {
	if f.charged == 0 && f.reserved == 0 && size <= smallFrame {
		res, err := f.budget.acquireSmall(ctx, size)
		if err != nil {
			return err
		}
		if res {
			f.reserved = size
		} else {
			f.charged = size
		}
		return nil
	}
	n := want - f.charged - f.reserved
	if n <= 0 {
		return nil
	}
	switch {
	case f.charged == 0:
		if err := f.budget.acquire(ctx, n); err != nil {
			return err
		}
	case f.token:
		f.budget.force(n)
	case f.budget.tryAcquire(n):
	default:
		if err := f.budget.takeToken(ctx); err != nil {
			return err
		}
		f.token = true
		f.budget.force(n)
	}
	f.charged += n
	return nil
}

// handed is called by the reader once the frame's handler has returned
// (or the frame is dropped): the grow token, if held, goes to the next
// reader. The charge stays until release.
func (f *frameCharge) handed() {
	if f.token {
		f.token = false
		f.budget.giveToken()
	}
}

// release gives the frame's bytes back to the budget.
func (f *frameCharge) release() {
	f.budget.give(f.charged, f.reserved)
	f.charged, f.reserved = 0, 0
}
