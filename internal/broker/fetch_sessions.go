package broker

// Incremental fetch sessions (KIP-227): the broker's session cache.
//
// A session remembers, per partition, what the client last asked (fetch
// offset, partition_max_bytes, current leader epoch, last fetched epoch,
// the fetcher's log start) and what the broker last answered (high
// watermark, last stable offset, log start). An incremental Fetch names
// only what changed for the client; the broker fetches every partition of
// the session and answers only those whose answer changed (01_fetch.go,
// fetch.finishSession).
//
// The cache is the broker's, not a connection's: a client may use its
// session from any connection. It holds at most
// max.incremental.fetch.session.cache.slots sessions and at most
// maxSessionPartitions partitions over all of them. Eviction follows
// Kafka's FetchSessionCache: when a new session finds the cache full, it
// may replace
//  1. the least recently used session, if that one has been idle for more
//     than fetchSessionEvictAfter (Kafka's 2 minutes);
//  2. otherwise the least valuable evictable session, valued by (follower
//     over consumer, then more partitions, then higher id), if the new
//     session is worth more. A session is evictable by a follower's new
//     session if it is a consumer's or older than fetchSessionEvictAfter
//     at its last use, by a consumer's only if older than that.
//
// Otherwise no session is created and the full fetch is answered with
// session id 0, so the client goes on with full fetches.
//
// Simplifications against Kafka: one cache, not shards; finding the least
// valuable evictable session scans the cache (only when it is full and
// nothing is stale, on a full fetch asking for a session); the bound on
// cached partitions is Gregor's (Kafka has none): a full fetch that would
// exceed it gets no session, an incremental fetch that would exceed it
// closes its session and is answered FETCH_SESSION_ID_NOT_FOUND, so the
// client starts over with a full fetch.
//
// A consumer's session is tracked: it watches the logs of its partitions
// for as long as it lives (storage.Log.Watch, each cached partition its own
// Waker), and a log's wake marks its partition dirty. An incremental fetch
// of a tracked session reads only the partitions that may answer something
// new: those marked since they were last read, those its request lists,
// those that answered an error or have records below the bound the client
// has not asked for yet; and all of them after a metadata change, a change
// of the broker's serving state or of the isolation level. A long poll
// parks on the session, not on every log, and reads what wakes it. So a
// consumer of 1,000 partitions of which one is active costs the broker
// about what a consumer of one does. A follower's session is not tracked:
// every fetch of a follower reports its progress on every partition (the
// ISR and the high watermark follow it), so all of them are read.
//
// Locks: fetchSessionCache.mu, then fetchSession.mu, then
// fetchSession.watchMu, then a log's notify lock (Watch, Unwatch, and the
// Wake calls it makes), then fetchSession.wmu. None is held while reading a
// log or waiting.

import (
	"container/list"
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

const (
	// fetchSessionEvictAfter is Kafka's
	// min.incremental.fetch.session.eviction.ms default.
	fetchSessionEvictAfter = 2 * time.Minute
	// maxSessionPartitions bounds the partitions cached over all sessions
	// (about 200 bytes each, with the index).
	maxSessionPartitions = 1_000_000

	// Kafka's FetchMetadata: session id 0 is no session; epoch 0 asks for
	// a new session, -1 for none.
	initialSessionEpoch = 0
	finalSessionEpoch   = -1
)

// nextSessionEpoch is the epoch that follows e (after MaxInt32 comes 1).
func nextSessionEpoch(e int32) int32 {
	switch {
	case e < 0:
		return finalSessionEpoch
	case e == math.MaxInt32:
		return 1
	}
	return e + 1
}

// sessionKey identifies a partition of a session: by topic id in a session
// of v13+ fetches, else by topic name.
type sessionKey struct {
	topic string
	id    [16]byte
	p     int32
}

// sessionPart is one cached partition of a session.
type sessionPart struct {
	key sessionKey
	// What the client asked, updated by each request that lists it.
	offset           int64
	fetcherLogStart  int64
	maxBytes         int32
	leaderEpoch      int32
	lastFetchedEpoch int32
	// What was last answered: a partition is answered again only when one
	// of these changed, it has records or an error. hw is -1 after an
	// error, so the partition is answered when the error clears.
	hw, lso, logStart int64
	// rotate marks the partition to move to the end of the session
	// (answerIncremental, under the session's mu).
	rotate bool

	// s is the session; dirty (tracked sessions) marks the partition to
	// read at the next fetch of the session, or now if one is parked.
	s     *fetchSession
	dirty atomic.Bool
}

// Wake implements storage.Waker for a tracked session's partition: its
// log's high watermark or log start may have moved, or the log closed or
// failed. It runs under the log's notify lock.
func (sp *sessionPart) Wake(*storage.Log) {
	sp.dirty.Store(true)
	sp.s.signal()
}

func (sp *sessionPart) setRequest(rp *kmsg.FetchRequestTopicPartition) {
	sp.offset, sp.fetcherLogStart, sp.maxBytes = rp.FetchOffset, rp.LogStartOffset, rp.PartitionMaxBytes
	sp.leaderEpoch, sp.lastFetchedEpoch = rp.CurrentLeaderEpoch, rp.LastFetchedEpoch
}

// request is the cached request of the partition, as a client would list it.
func (sp *sessionPart) request() kmsg.FetchRequestTopicPartition {
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.LogStartOffset, rp.PartitionMaxBytes = sp.key.p, sp.offset, sp.fetcherLogStart, sp.maxBytes
	rp.CurrentLeaderEpoch, rp.LastFetchedEpoch = sp.leaderEpoch, sp.lastFetchedEpoch
	return rp
}

// changed reports whether an answer must be sent for the partition, and
// remembers what it sends.
func (sp *sessionPart) changed(r *kmsg.FetchResponseTopicPartition) bool {
	send := len(r.RecordBatches) > 0 || r.ErrorCode != 0 ||
		r.PreferredReadReplica >= 0 || r.DivergingEpoch.Epoch >= 0 ||
		sp.hw != r.HighWatermark || sp.lso != r.LastStableOffset || sp.logStart != r.LogStartOffset
	sp.hw, sp.lso, sp.logStart = r.HighWatermark, r.LastStableOffset, r.LogStartOffset
	if r.ErrorCode != 0 {
		sp.hw = -1
	}
	return send
}

// fetchSession is one client's (or follower's) session.
type fetchSession struct {
	id         int32
	privileged bool // a follower's
	usesIDs    bool // made by a v13+ fetch: partitions keyed by topic id
	created    time.Time

	// Under fetchSessionCache.mu.
	lastUsed time.Time
	lru      *list.Element
	size     int // partitions at the last touch, counted in the cache's total
	// Evictable by a follower's new session, by anyone's (Kafka's
	// evictableByPrivileged and evictableByAll), as of the last touch.
	evictPriv, evictAll bool

	mu    sync.Mutex
	epoch int32          // mu; the epoch the next request must carry
	parts []*sessionPart // mu; in fetch order
	index map[sessionKey]*sessionPart

	// tracked: a consumer's session, which reads only what changed (see
	// the top of the file). state (mu) is what its partitions were last
	// all read under.
	tracked bool
	state   sessionState

	// watchMu guards watched, the log each partition of a tracked session
	// watches, and unwatched, set when the session is gone.
	watchMu   sync.Mutex
	watched   map[*sessionPart]*storage.Log
	unwatched bool

	// wmu guards waiters, the parked fetches of the session (normally one).
	wmu     sync.Mutex
	waiters []chan struct{}
}

// sessionState is what a tracked session's cached answers depend on
// besides its logs: when it changes, every partition is read again.
type sessionState struct {
	metadata  uint64 // the catalog's image offset: leaders, epochs, topics
	serving   bool
	isolation int8
}

// signal wakes the session's parked fetches.
func (s *fetchSession) signal() {
	s.wmu.Lock()
	for _, ch := range s.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.wmu.Unlock()
}

// park registers ch to be signalled when a partition of the session is
// marked; the returned func unregisters it.
func (s *fetchSession) park(ch chan struct{}) func() {
	s.wmu.Lock()
	s.waiters = append(s.waiters, ch)
	s.wmu.Unlock()
	return func() {
		s.wmu.Lock()
		for i, w := range s.waiters {
			if w == ch {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				break
			}
		}
		s.wmu.Unlock()
	}
}

// watch makes sp watch l (nil: nothing) instead of what it watched, and
// reports whether that changed to a log: the caller must then compare the
// log with what it read, as a wake before the watch is lost.
func (s *fetchSession) watch(sp *sessionPart, l *storage.Log) bool {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	old := s.watched[sp]
	if s.unwatched || old == l {
		return false
	}
	if old != nil {
		old.Unwatch(sp)
		delete(s.watched, sp)
	}
	if l == nil {
		return false
	}
	if s.watched == nil {
		s.watched = map[*sessionPart]*storage.Log{}
	}
	l.Watch(sp)
	s.watched[sp] = l
	return true
}

// unwatchAll stops every watch of the session, for good.
func (s *fetchSession) unwatchAll() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.unwatched = true
	for sp, l := range s.watched {
		l.Unwatch(sp)
	}
	s.watched = nil
}

// fetchSessionCache is the broker's sessions (Broker.fetchSessions).
type fetchSessionCache struct {
	slots      int
	evictAfter time.Duration
	maxParts   int
	now        func() time.Time // time.Now; tests move it

	mu         sync.Mutex
	sessions   map[int32]*fetchSession
	lru        list.List // of *fetchSession, least recently used first
	partitions int       // sum of the sessions' size
	evictions  uint64
}

func newFetchSessionCache(slots int) *fetchSessionCache {
	return &fetchSessionCache{slots: slots, evictAfter: fetchSessionEvictAfter, maxParts: maxSessionPartitions,
		now: time.Now, sessions: map[int32]*fetchSession{}}
}

// len is the number of sessions cached.
func (c *fetchSessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// stats is the sessions and partitions cached, and the evictions so far
// (the FetchSessionCache metrics).
func (c *fetchSessionCache) stats() (sessions, partitions int, evictions uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions), c.partitions, c.evictions
}

// remove closes session id, if there is one.
func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sessions[id]; s != nil {
		c.removeLocked(s)
	}
}

func (c *fetchSessionCache) removeLocked(s *fetchSession) {
	if c.sessions[s.id] != s {
		return
	}
	delete(c.sessions, s.id)
	c.lru.Remove(s.lru)
	c.partitions -= s.size
	s.unwatchAll()
}

// touchLocked marks s used now, with n partitions (s.mu held too).
func (c *fetchSessionCache) touchLocked(s *fetchSession, now time.Time, n int) {
	s.lastUsed = now
	if s.lru == nil {
		s.lru = c.lru.PushBack(s)
	} else {
		c.lru.MoveToBack(s.lru)
	}
	c.partitions += n - s.size
	s.size = n
	old := now.Sub(s.created) > c.evictAfter
	s.evictPriv = !s.privileged || old
	s.evictAll = old
}

// create adds a session of n partitions, made by build, if the cache has
// room or can make some, and returns it, or nil. A consumer's session
// (not privileged) is tracked, in state.
func (c *fetchSessionCache) create(privileged, usesIDs bool, n int, state sessionState, build func() []*sessionPart) *fetchSession {
	if c.slots <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partitions+n > c.maxParts {
		return nil
	}
	now := c.now()
	if len(c.sessions) >= c.slots && !c.tryEvictLocked(privileged, n, now) {
		return nil
	}
	parts := build()
	s := &fetchSession{id: c.newIDLocked(), privileged: privileged, usesIDs: usesIDs, created: now,
		epoch: nextSessionEpoch(initialSessionEpoch), parts: parts, index: make(map[sessionKey]*sessionPart, len(parts)),
		tracked: !privileged, state: state}
	for _, sp := range parts {
		s.index[sp.key] = sp
		sp.s = s
	}
	c.sessions[s.id] = s
	c.touchLocked(s, now, len(parts))
	return s
}

func (c *fetchSessionCache) newIDLocked() int32 {
	for {
		id := rand.Int32N(math.MaxInt32-1) + 1
		if c.sessions[id] == nil {
			return id
		}
	}
}

// tryEvictLocked makes room for a new session of size partitions, as
// Kafka's FetchSessionCache.tryEvict does, and reports whether it did.
func (c *fetchSessionCache) tryEvictLocked(privileged bool, size int, now time.Time) bool {
	front := c.lru.Front()
	if front == nil {
		return false
	}
	if s := front.Value.(*fetchSession); now.Sub(s.lastUsed) > c.evictAfter {
		c.removeLocked(s)
		c.evictions++
		return true
	}
	var victim *fetchSession
	for _, s := range c.sessions {
		if privileged && !s.evictPriv || !privileged && !s.evictAll {
			continue
		}
		if victim == nil || lessValuable(s.privileged, s.size, s.id, victim.privileged, victim.size, victim.id) {
			victim = s
		}
	}
	// The new session (id 0) must be worth at least the victim: it is
	// never, when both are of the same kind and size.
	if victim == nil || lessValuable(privileged, size, 0, victim.privileged, victim.size, victim.id) {
		return false
	}
	c.removeLocked(victim)
	c.evictions++
	return true
}

// lessValuable orders sessions for eviction: consumers before followers,
// then fewer partitions first, then lower id.
func lessValuable(aPriv bool, aSize int, aID int32, bPriv bool, bSize int, bID int32) bool {
	if aPriv != bPriv {
		return !aPriv
	}
	if aSize != bSize {
		return aSize < bSize
	}
	return aID < bID
}

// sessionKeyOf is the key of a partition listed under rt by a request of
// the given version.
func sessionKeyOf(version int16, topic string, id [16]byte, p int32) sessionKey {
	if version >= 13 {
		return sessionKey{id: id, p: p}
	}
	return sessionKey{topic: topic, p: p}
}

// incremental applies an incremental Fetch (session id and epoch > 0) to
// its session: the partitions it lists are added or updated, the forgotten
// ones removed, and the epoch moves on. It returns the session and the
// partitions to fetch (a copy, in the session's order) as request topics,
// with the cached parts in the same order; or a session error code; or,
// when no partition is left, closes the session and returns neither (a
// sessionless fetch of what the request lists, as in Kafka). A tracked
// session fetches only its dirty partitions, or all of them when state is
// not what they were last read in.
func (c *fetchSessionCache) incremental(req *kmsg.FetchRequest, state sessionState) (s *fetchSession, topics []kmsg.FetchRequestTopic, parts []*sessionPart, code int16) {
	c.mu.Lock()
	s = c.sessions[req.SessionID]
	if s == nil {
		c.mu.Unlock()
		return nil, nil, nil, kerr.FetchSessionIDNotFound.Code
	}
	s.mu.Lock()
	code, open := c.updateLocked(s, req)
	c.mu.Unlock()
	defer s.mu.Unlock()
	if code != 0 || !open {
		return nil, nil, nil, code
	}
	// The copy is made under the session's lock only: the cache's is not
	// needed, and a request that overtakes this one fails its epoch check.
	switch {
	case !s.tracked:
		parts = append([]*sessionPart(nil), s.parts...)
	case s.state != state:
		s.state = state
		parts = append([]*sessionPart(nil), s.parts...)
		for _, sp := range parts {
			sp.dirty.Store(false)
		}
	default:
		parts = s.takeDirtyLocked(nil)
	}
	return s, requestTopics(parts), parts, 0
}

// takeDirtyLocked appends to parts the session's partitions marked dirty,
// in the session's order, and unmarks them (s.mu held).
func (s *fetchSession) takeDirtyLocked(parts []*sessionPart) []*sessionPart {
	for _, sp := range s.parts {
		if sp.dirty.Load() {
			sp.dirty.Store(false)
			parts = append(parts, sp)
		}
	}
	return parts
}

// requestTopics lists parts as request topics, one per run of partitions
// of a topic.
func requestTopics(parts []*sessionPart) []kmsg.FetchRequestTopic {
	var topics []kmsg.FetchRequestTopic
	rps := make([]kmsg.FetchRequestTopicPartition, len(parts))
	for i, sp := range parts {
		rps[i] = sp.request()
		if i == 0 || sp.key.topic != parts[i-1].key.topic || sp.key.id != parts[i-1].key.id {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = sp.key.topic, sp.key.id
			topics = append(topics, rt)
		}
		rt := &topics[len(topics)-1]
		rt.Partitions = rps[i-len(rt.Partitions) : i+1 : i+1]
	}
	return topics
}

// updateLocked checks and applies an incremental request to s (both locks
// held) and reports whether s is still open.
func (c *fetchSessionCache) updateLocked(s *fetchSession, req *kmsg.FetchRequest) (code int16, open bool) {
	switch {
	case s.epoch != req.SessionEpoch:
		return kerr.InvalidFetchSessionEpoch.Code, false
	case s.usesIDs != (req.Version >= 13):
		return kerr.FetchSessionTopicIDError.Code, false
	}
	added := 0
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			if s.index[sessionKeyOf(req.Version, rt.Topic, rt.TopicID, rt.Partitions[j].Partition)] == nil {
				added++
			}
		}
	}
	if c.partitions+added > c.maxParts {
		c.removeLocked(s)
		return kerr.FetchSessionIDNotFound.Code, false
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			k := sessionKeyOf(req.Version, rt.Topic, rt.TopicID, rp.Partition)
			sp := s.index[k]
			if sp == nil {
				sp = &sessionPart{key: k, hw: -1, lso: -1, logStart: -1, s: s}
				s.index[k] = sp
				s.parts = append(s.parts, sp)
			}
			sp.setRequest(rp)
			sp.dirty.Store(true)
		}
	}
	forgot := false
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			k := sessionKeyOf(req.Version, ft.Topic, ft.TopicID, p)
			if sp := s.index[k]; sp != nil {
				delete(s.index, k)
				s.watch(sp, nil)
				forgot = true
			}
		}
	}
	if forgot {
		kept := s.parts[:0]
		for _, sp := range s.parts {
			if s.index[sp.key] == sp {
				kept = append(kept, sp)
			}
		}
		clear(s.parts[len(kept):])
		s.parts = kept
	}
	if len(s.parts) == 0 {
		c.removeLocked(s)
		return 0, false
	}
	c.touchLocked(s, c.now(), len(s.parts))
	s.epoch = nextSessionEpoch(s.epoch)
	return 0, true
}

// fetchSessionMode is what a Fetch does with sessions.
type fetchSessionMode uint8

const (
	sessionless        fetchSessionMode = iota // answered with session id 0
	sessionNew                                 // a full fetch that asks for a session
	sessionIncremental                         // an incremental fetch of a session
)

// openFetch prepares the fetch of req, as Kafka's FetchManager.newContext
// reads its session id and epoch, or returns a session error:
//   - epoch -1 (and any fetch before v7): a sessionless full fetch;
//   - epoch 0: a full fetch that asks for a new session;
//   - either with a session id closes that session first;
//   - any other epoch: an incremental fetch of the session, which must
//     exist (FETCH_SESSION_ID_NOT_FOUND, also for id 0), expect that epoch
//     (INVALID_FETCH_SESSION_EPOCH) and use topic ids as the request does
//     (FETCH_SESSION_TOPIC_ID_ERROR); if it forgets every partition, the
//     session is closed and the fetch is sessionless.
func openFetch(b *Broker, ctx context.Context, req *kmsg.FetchRequest, listener string) (*fetch, int16) {
	id, epoch := req.SessionID, req.SessionEpoch
	if req.Version < 7 {
		id, epoch = 0, finalSessionEpoch
	}
	mode, topics := sessionless, req.Topics
	var (
		s     *fetchSession
		parts []*sessionPart
	)
	switch epoch {
	case initialSessionEpoch, finalSessionEpoch:
		if id != 0 {
			b.fetchSessions.remove(id)
		}
		if epoch == initialSessionEpoch {
			mode = sessionNew
		}
	default:
		var code int16
		s, topics, parts, code = b.fetchSessions.incremental(req, b.sessionState(req))
		switch {
		case code != 0:
			return nil, code
		case s == nil: // every partition forgotten
			topics = req.Topics
		default:
			mode = sessionIncremental
		}
	}
	f := newFetch(b, ctx, req, listener, topics, mode == sessionIncremental)
	f.sessionMode, f.session, f.sessionParts, f.sessionEpoch = mode, s, parts, nextSessionEpoch(epoch)
	return f, 0
}

// sessionState is the state a tracked session's answers to req depend on
// besides its logs.
func (b *Broker) sessionState(req *kmsg.FetchRequest) sessionState {
	return sessionState{metadata: b.catalog.offset(), serving: b.serving(), isolation: req.IsolationLevel}
}

// finishSession makes the final response a session's: for a full fetch,
// it creates the session (if the cache takes it) of the answered
// partitions; for an incremental one, it keeps only the partitions whose
// answer changed and remembers what they are told.
func (f *fetch) finishSession() {
	switch f.sessionMode {
	case sessionNew:
		s := f.b.fetchSessions.create(f.replicaID >= 0, f.req.Version >= 13, len(f.parts), f.b.sessionState(f.req), f.newSessionParts)
		if s == nil {
			return
		}
		f.resp.SessionID = s.id
		if s.tracked {
			s.mu.Lock()
			for i, sp := range s.parts {
				f.track(sp, i)
			}
			s.mu.Unlock()
		}
	case sessionIncremental:
		f.answerIncremental()
	}
}

// newSessionParts caches every partition of a full fetch's answer.
func (f *fetch) newSessionParts() []*sessionPart {
	store := make([]sessionPart, len(f.parts))
	out := make([]*sessionPart, len(f.parts))
	for i := range f.parts {
		p := &f.parts[i]
		st := &f.resp.Topics[p.ti]
		r := &st.Partitions[p.pi]
		sp := &store[i]
		sp.key = sessionKeyOf(f.req.Version, st.Topic, st.TopicID, r.Partition)
		sp.setRequest(&p.rp)
		sp.changed(r)
		out[i] = sp
	}
	return out
}

// track keeps a tracked session's partition sp, read as f.parts[i], on the
// log it was read from, and leaves it marked when the next fetch must read
// it whatever happens to the log: it answered an error (or has no log
// here), or the client has not yet asked for all its records, or the log
// moved before the watch began (s.mu held).
func (f *fetch) track(sp *sessionPart, i int) {
	p := &f.parts[i]
	newWatch := sp.s.watch(sp, p.l)
	r := &f.resp.Topics[p.ti].Partitions[p.pi]
	if p.l == nil || r.ErrorCode != 0 || p.offset < p.hw || newWatch && p.bound() != p.hw {
		sp.dirty.Store(true)
	}
}

func (f *fetch) answerIncremental() {
	s := f.session
	s.mu.Lock()
	defer s.mu.Unlock()
	f.resp.SessionID = s.id
	if s.epoch != f.sessionEpoch {
		// Another request of the session got in between (a duplicate):
		// this one is answered with nothing, as in Kafka. What it read
		// is read again by the next.
		f.resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
		f.resp.Topics = f.resp.Topics[:0]
		for _, sp := range f.sessionParts {
			sp.dirty.Store(true)
		}
		return
	}
	if s.tracked {
		for i, sp := range f.sessionParts {
			if s.index[sp.key] == sp {
				f.track(sp, i)
			}
		}
	}
	keep := make([]int, len(f.resp.Topics)) // partitions kept per topic
	withRecords := 0
	for i := range f.parts {
		p := &f.parts[i]
		ps := f.resp.Topics[p.ti].Partitions
		r := &ps[p.pi]
		sp := f.sessionParts[i]
		if !sp.changed(r) {
			continue
		}
		if len(r.RecordBatches) > 0 && s.index[sp.key] == sp {
			sp.rotate = true
			withRecords++
		}
		ps[keep[p.ti]] = *r // keep[ti] <= pi: compacts forward
		keep[p.ti]++
	}
	n := 0
	for ti := range f.resp.Topics {
		t := &f.resp.Topics[ti]
		t.Partitions = t.Partitions[:keep[ti]]
		if keep[ti] > 0 {
			f.resp.Topics[n] = *t
			n++
		}
	}
	f.resp.Topics = f.resp.Topics[:n]
	if withRecords > 0 {
		// Partitions that returned records go to the end of the
		// session, so the next fetches start with the others and a
		// response limit does not starve them (as Kafka does).
		rotated := make([]*sessionPart, 0, withRecords)
		kept := s.parts[:0]
		for _, sp := range s.parts {
			if sp.rotate {
				sp.rotate = false
				rotated = append(rotated, sp)
			} else {
				kept = append(kept, sp)
			}
		}
		s.parts = append(kept, rotated...)
	}
}
