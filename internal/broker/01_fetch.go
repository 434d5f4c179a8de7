package broker

// Fetch (key 1), versions 4-17.
//
// Zero-copy: a partition's records of at least spliceMin (32 KiB) are not
// read by the broker at all. The response is encoded around them
// (fetch_encode.go) and the connection's writer sends them from the
// segment file to the socket with sendfile at an explicit offset, holding
// the segment's reference until then; smaller runs are copied into the
// response, which costs less than the extra system calls. Where sendfile
// cannot be used (not a TCP socket, not an OS file) they are copied at
// write time. gregor_fetch_sendfile_bytes_total and
// gregor_fetch_copied_bytes_total count both ways.
//
// Reads whole record batches, byte for byte as stored, below the high
// watermark only (with gregor.durability=fsync that is the fsynced offset,
// so a consumer never sees a record a crash can take back). Limits follow
// KIP-74: the response holds at most max_bytes, capped by the broker's
// fetch.max.bytes whatever the client asks, and each partition at most its
// partition_max_bytes, except that the first batch of the first non-empty
// partition is always returned whole, however large, so a consumer can
// always make progress. Other partitions never get a cut batch: a batch
// that does not fit waits for the next fetch, and is not read at all (the
// size is known from the index before any data is copied).
//
// A partition listed more than once is fetched once, as Kafka does (its
// fetch builds a map keyed by topic-partition): the response lists it once,
// at its first position, with the fetch offset and partition_max_bytes of
// its last listing.
//
// max_wait_ms is a long poll: when fewer than min_bytes are available the
// request parks on each of its partitions (storage.Log.Watch; no goroutine
// per partition) and is woken when the high watermark of one of them moves,
// then re-reads only the partitions that moved. It also ends at the
// timeout, broker shutdown, the client going away or a log dir failure.
//
// A partition of an offline log dir answers KAFKA_STORAGE_ERROR.
//
// Fetch sessions (KIP-227, fetch_sessions.go) from v7, read as Kafka's
// FetchManager reads session id and epoch: epoch -1 is a sessionless full
// fetch (kafka-go's Client.Fetch sends id -1, epoch -1), epoch 0 a full
// fetch that asks for a session (answered with its id, or 0 when the cache
// has no room), and either closes the session the id names. Any other
// epoch is an incremental fetch of session id: FETCH_SESSION_ID_NOT_FOUND
// when there is none (also for id 0), INVALID_FETCH_SESSION_EPOCH when the
// epoch is not the one the session expects, FETCH_SESSION_TOPIC_ID_ERROR
// when the session was made with topic ids (v13+) and the request is
// older, or the other way round; these answers carry no partitions. An
// incremental request's partitions update or join the session (fetch
// offset, partition_max_bytes, epochs), forgotten_topics_data leaves it,
// and the session's partitions are fetched: a follower's all of them,
// long polls parking on all of them; a consumer's only those that may
// answer something new, long polls parking on the session (change
// tracking, fetch_sessions.go). The answer holds only the partitions with
// records, an error or a diverging epoch, or whose high watermark, last
// stable offset or log start changed since the session last answered
// them (Kafka
// compares the high watermark and log start, not the LSO; the LSO only
// moves with a marker, which moves the high watermark too). Partitions
// that returned records move to the end of the session's order, as in
// Kafka. A session that forgets its last partition is closed and that
// fetch answered sessionless. Should a second request of a session
// overtake the first, the first is answered INVALID_FETCH_SESSION_EPOCH.
//
// Topics are named until v12 and identified by topic id from v13
// (UNKNOWN_TOPIC_ID when the id is not known, also for a session's
// partition whose topic was deleted: it is answered with the error until
// the client forgets it). The log is found through the id, so Gregor never
// answers INCONSISTENT_TOPIC_ID.
//
// read_committed (isolation level 1) reads below the last stable offset
// only and gets the aborted transactions of what it read (from the
// segments' transaction indexes), so the consumer can drop aborted
// batches; every answer carries the LSO.

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

func init() {
	registerRaw(1, 4, 17, handleFetch)
}

func handleFetch(c *conn, inf *inflight, kreq kmsg.Request) {
	req := kreq.(*kmsg.FetchRequest)
	inf.wait = time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	f, code := openFetch(c.b, c.ctx, req, c.listener)
	if code != 0 {
		// A session error: no partitions, no session (Kafka's
		// SessionErrorContext).
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = code
		inf.reply(resp)
		return
	}
	inf.release = func() {
		f.count()
		f.releaseBuffers()
	}
	if f.fill() || req.MaxWaitMillis <= 0 {
		f.finishSession()
		inf.reply(f.answer())
		return
	}
	c.goAsync(inf, func() kmsg.Response {
		f.wait(time.Duration(req.MaxWaitMillis) * time.Millisecond)
		f.finishSession()
		return f.answer()
	})
}

// spliceMin is the smallest run of records a fetch sends from the segment
// file with sendfile (zero-copy) rather than copying it into the response:
// below it the copy costs less than the two extra system calls.
const spliceMin = 32 << 10

// splicedFetch is a Fetch response some of whose records are still in
// segment files (fetch_encode.go): the connection's writer encodes it with
// appendSpliced and sends those records with sendfile.
type splicedFetch struct {
	*kmsg.FetchResponse
	f *fetch
}

// answer is the response to reply with: the bare response when nothing
// is spliced.
func (f *fetch) answer() kmsg.Response {
	for i := range f.parts {
		if f.parts[i].fr.Size > 0 {
			return splicedFetch{f.resp, f}
		}
	}
	return f.resp
}

func (s splicedFetch) appendSpliced(dst []byte, corr int32) ([]byte, []responsePiece) {
	byMarker := s.f.splicedByMarker()
	return appendFetchResponse(dst, corr, s.FetchResponse, func(ti, pi int) storage.FileRange {
		rb := s.Topics[ti].Partitions[pi].RecordBatches
		if len(rb) != 1 {
			return storage.FileRange{}
		}
		return byMarker[&rb[0]]
	})
}

// noRecords is an empty, non-null records field: Kafka never sends null
// records, and kafka-python fails on them.
var noRecords = []byte{}

// fetchPart is one distinct partition of a Fetch request.
type fetchPart struct {
	l        *storage.Log // nil: answered with the error already set
	offset   int64
	maxBytes int
	ti, pi   int // its place in resp.Topics[ti].Partitions[pi]
	// rp is what the request (or the session) asked for the partition.
	rp  kmsg.FetchRequestTopicPartition
	n   int     // bytes of records currently in the response
	buf *[]byte // pooled buffer holding them, or nil
	// fr: the records, when they are sent from the segment file
	// (spliced); the response's RecordBatches is then marker[:], a byte
	// of its own, which identifies the part wherever sessions move the
	// partition (and wherever f.parts is copied to when it grows).
	fr      storage.FileRange
	marker  *[1]byte
	hw      int64 // high watermark (a replica's: log end) seen by the last read
	replica bool  // a follower's fetch: read up to the log end
	// committed: a read_committed consumer's fetch, read up to the LSO
	// (hw then holds the LSO seen).
	committed bool
	// throttled: a replica fetch of a throttled replica (throttle.go).
	throttled bool
}

// fetch is one Fetch request being answered.
type fetch struct {
	b        *Broker
	ctx      context.Context // the connection's: done at shutdown or disconnect
	req      *kmsg.FetchRequest
	resp     *kmsg.FetchResponse
	parts    []fetchPart
	maxBytes int    // the request's max_bytes capped by fetch.max.bytes
	total    int    // bytes of records in the response
	listener string // the connection's listener, for leader hints
	// replicaID is the fetching follower's broker id, -1 for a consumer.
	replicaID int32

	// The fetch session (fetch_sessions.go): what finishSession does with
	// the response. Incremental: session and its parts, parallel to parts,
	// and the epoch the session must still have when the answer is made.
	sessionMode  fetchSessionMode
	session      *fetchSession
	sessionParts []*sessionPart
	sessionEpoch int32
	// byTopic: topic → index in resp.Topics (responseTopic).
	byTopic map[fetchKey]int

	// Long poll. Wake (any goroutine) marks the parts whose log moved and
	// signals wake; the fetch goroutine re-reads only those.
	mu    sync.Mutex
	byLog map[*storage.Log]int // log → index in parts; read-only once built
	dirty []bool               // mu; parts marked since the last re-read
	moved []int                // mu; the indexes marked in dirty
	wake  chan struct{}
}

// fetchBufs recycles the buffers fetched records are read into: a fresh
// buffer per fetch costs several times the copy on a machine where new
// pages are slow to fault in.
var fetchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledBuf keeps unusually large buffers out of the pool.
const maxPooledBuf = 8 << 20

func putFetchBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		*bp = (*bp)[:0]
		fetchBufs.Put(bp)
	}
}

// releaseBuffers returns every record buffer; the response must not be
// used afterwards (the connection calls it once the response is encoded).
func (f *fetch) releaseBuffers() {
	for i := range f.parts {
		f.parts[i].dropRecords()
	}
	f.total = 0
}

// dropRecords gives back what holds the part's records: the pooled
// buffer, or the spliced range's segment reference.
func (p *fetchPart) dropRecords() {
	if p.buf != nil {
		putFetchBuf(p.buf)
		p.buf = nil
	}
	p.fr.Release()
	p.fr = storage.FileRange{}
	p.n = 0
}

// count adds the response's records to the topics' bytes-out counters,
// once the response is final (the writer calls it before releasing the
// buffers).
func (f *fetch) count() {
	m := f.b.metrics
	spliced := f.splicedByMarker()
	for i := range f.parts {
		if p := &f.parts[i]; p.buf != nil {
			m.copiedOut.Add(uint64(p.n))
		}
	}
	for ti := range f.resp.Topics {
		rt := &f.resp.Topics[ti]
		var n uint64
		known, failed := false, false
		for pi := range rt.Partitions {
			sp := &rt.Partitions[pi]
			n += uint64(recordBytes(sp.RecordBatches, spliced))
			failed = failed || sp.ErrorCode != 0
			// Unknown topics get no series, as in Kafka (and cannot
			// grow the label set).
			known = known || sp.ErrorCode != kerr.UnknownTopicOrPartition.Code && sp.ErrorCode != kerr.UnknownTopicID.Code
		}
		if known && rt.Topic != "" {
			m.fetched(m.topic(rt.Topic), n, failed)
		}
	}
}

// recordBytes is the size of a response partition's records, spliced or
// not (spliced: splicedByMarker's).
func recordBytes(rb []byte, spliced map[*byte]storage.FileRange) int {
	if len(rb) == 1 {
		if fr, ok := spliced[&rb[0]]; ok {
			return fr.Size
		}
	}
	return len(rb)
}

// splicedByMarker maps the marker of each spliced part to its range (nil
// if none is spliced). A spliced partition's RecordBatches is its part's
// marker byte, wherever sessions have moved the partition since.
func (f *fetch) splicedByMarker() map[*byte]storage.FileRange {
	var m map[*byte]storage.FileRange
	for i := range f.parts {
		if p := &f.parts[i]; p.fr.Size > 0 {
			if m == nil {
				m = make(map[*byte]storage.FileRange)
			}
			m[&p.marker[0]] = p.fr
		}
	}
	return m
}

// fetchKey identifies a partition of the request: by topic name when the
// topic is known (so a topic named twice, or by name and id, collapses),
// else by what the request said.
type fetchKey struct {
	topic string
	id    [16]byte
	p     int32
}

// fetchReplicaID is the broker id of the follower sending req, or -1 for a
// consumer.
func fetchReplicaID(req *kmsg.FetchRequest) int32 {
	switch {
	case req.Version >= 15 && req.ReplicaState.ID >= 0:
		return req.ReplicaState.ID
	case req.Version < 15 && req.ReplicaID >= 0:
		return req.ReplicaID
	}
	return -1
}

// newFetch prepares the fetch of topics: the request's own, or for an
// incremental fetch its session's, which are unique (no partition listed
// twice, so no need to look for duplicates).
func newFetch(b *Broker, ctx context.Context, req *kmsg.FetchRequest, listener string, topics []kmsg.FetchRequestTopic, unique bool) *fetch {
	f := &fetch{b: b, ctx: ctx, req: req, resp: req.ResponseKind().(*kmsg.FetchResponse), listener: listener, replicaID: fetchReplicaID(req)}
	f.maxBytes = int(req.MaxBytes)
	if f.maxBytes <= 0 {
		f.maxBytes = 1 << 30 // as before the cap: no client limit
	}
	if limit := b.cfg.FetchMaxBytes; limit > 0 && f.maxBytes > limit {
		f.maxBytes = limit
	}
	f.resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(topics))
	n := 0
	for i := range topics {
		n += len(topics[i].Partitions)
	}
	f.parts = make([]fetchPart, 0, n)
	var parts map[fetchKey]int // partition → index in f.parts
	if !unique {
		parts = make(map[fetchKey]int, n)
	}
	f.byTopic = map[fetchKey]int{}
	for _, rt := range topics {
		t, tk, ti := f.responseTopic(rt.Topic, rt.TopicID)
		for _, rp := range rt.Partitions {
			pk := tk
			pk.p = rp.Partition
			if i, dup := parts[pk]; dup && !unique {
				// Kafka keeps the last listing's parameters.
				f.parts[i].offset, f.parts[i].maxBytes, f.parts[i].rp = rp.FetchOffset, int(rp.PartitionMaxBytes), rp
				continue
			}
			if !unique {
				parts[pk] = len(f.parts)
			}
			f.addPart(t, ti, rp)
		}
	}
	return f
}

// responseTopic finds the topic a request names (by id from v13, else by
// name; nil when unknown) and its entry in the response, made if new.
func (f *fetch) responseTopic(name string, id [16]byte) (*topic, fetchKey, int) {
	var t *topic
	if f.req.Version >= 13 {
		t = f.b.catalog.getByID(id)
	} else {
		t = f.b.catalog.get(name)
	}
	tk := fetchKey{topic: name, id: id}
	if f.req.Version >= 13 {
		tk.topic = ""
	}
	if t != nil {
		tk = fetchKey{topic: t.Name}
	}
	ti, ok := f.byTopic[tk]
	if !ok {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = name, id
		if t != nil {
			st.Topic = t.Name
		}
		ti = len(f.resp.Topics)
		f.byTopic[tk] = ti
		f.resp.Topics = append(f.resp.Topics, st)
	}
	return t, tk, ti
}

// addPart adds partition rp of topic t (nil: unknown), answered in
// resp.Topics[ti], to the fetch: it finds the partition's log if this
// broker leads it, or sets the error to answer.
func (f *fetch) addPart(t *topic, ti int, rp kmsg.FetchRequestTopicPartition) {
	b, req := f.b, f.req
	st := &f.resp.Topics[ti]
	sp := kmsg.NewFetchResponseTopicPartition()
	sp.Partition = rp.Partition
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
	sp.PreferredReadReplica = -1
	sp.RecordBatches = noRecords
	var l *storage.Log
	if t != nil && t.partition(rp.Partition) != nil && b.leads(t, rp.Partition) {
		l = b.store.Get(t.Name, rp.Partition)
	}
	switch {
	case t == nil && req.Version >= 13:
		sp.ErrorCode = kerr.UnknownTopicID.Code
	case t == nil:
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
	case t.partition(rp.Partition) == nil:
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
	case l == nil: // not the leader, or not here yet
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		if leader, epoch, ep, ok := b.leaderHint(t, rp.Partition, f.listener); ok {
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = leader, epoch
			f.addBroker(leader, ep)
		}
	case req.Version >= 9 && epochError(t, rp.Partition, rp.CurrentLeaderEpoch) != 0:
		sp.ErrorCode = epochError(t, rp.Partition, rp.CurrentLeaderEpoch)
		l = nil
	case l.Offline() != nil:
		// Recovery found records missing (storage.Log.Offline).
		sp.ErrorCode = kerr.KafkaStorageError.Code
		l = nil
	}
	replica := false
	if l != nil && f.replicaID >= 0 {
		replica = true
		if f.divergedOrTrack(t.Name, rp, &sp, l) {
			l = nil
		}
	}
	throttled := false
	if replica && l != nil {
		throttled, _ = b.leaderThrottled(t.Name, rp.Partition)
	}
	f.parts = append(f.parts, fetchPart{l: l, offset: rp.FetchOffset, maxBytes: int(rp.PartitionMaxBytes),
		ti: ti, pi: len(st.Partitions), rp: rp, hw: -1, replica: replica, throttled: throttled,
		committed: !replica && req.IsolationLevel == 1})
	st.Partitions = append(st.Partitions, sp)
}

// fill reads every partition and reports whether the response is ready:
// min_bytes reached, or an error worth answering at once.
func (f *fetch) fill() bool {
	f.releaseBuffers() // a full re-fill replaces everything
	urgent := false
	for i := range f.parts {
		if f.read(i) {
			urgent = true
		}
	}
	return f.ready(urgent)
}

func (f *fetch) ready(urgent bool) bool {
	return urgent || f.total >= int(f.req.MinBytes) && f.total > 0 || f.req.MinBytes <= 0
}

// read (re)reads one partition into the response, replacing what it held,
// and reports whether it answered an error.
func (f *fetch) read(i int) (urgent bool) {
	p := &f.parts[i]
	sp := &f.resp.Topics[p.ti].Partitions[p.pi]
	if p.l == nil {
		return true
	}
	f.total -= p.n
	p.dropRecords()
	sp.RecordBatches = noRecords

	limit := max(min(p.maxBytes, f.maxBytes-f.total), 0)
	var (
		fr  storage.FileRange
		res storage.ReadResult
		err error
	)
	switch {
	case p.replica:
		fr, res, err = p.l.ReadReplicaRange(p.offset, limit)
	default:
		// A consumer's answer fills its limit, the last batch cut short as
		// Kafka's is; a follower's holds whole batches, which it appends.
		fr, res, err = p.l.FetchRange(p.offset, limit, p.committed)
	}
	kept := false // the range is spliced: the part holds its reference
	defer func() {
		if !kept {
			fr.Release()
		}
	}()
	sp.ErrorCode = errCode(err)
	if err != nil && sp.ErrorCode != kerr.OffsetOutOfRange.Code {
		// Kafka answers an error with unknown (-1) offsets.
		sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
		return true
	}
	// On OFFSET_OUT_OF_RANGE the offsets still tell the consumer where
	// the log is.
	p.hw = res.HighWatermark
	switch {
	case p.replica:
		p.hw = res.LogEndOffset
	case p.committed:
		p.hw = res.LastStableOffset
	}
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = res.HighWatermark, res.LastStableOffset, res.LogStartOffset
	sp.AbortedTransactions = nil
	if err != nil {
		return true
	}
	// Only the first non-empty partition may exceed its limits (KIP-74);
	// a batch that does not fit elsewhere is not even copied.
	if fr.Size == 0 || fr.Size > limit && f.total > 0 {
		return false
	}
	if p.throttled {
		// Over the leader's replication throttle: this one waits.
		now := time.Now()
		q := &f.b.replicas.leaderQuota
		if q.rate(now) > f.b.throttleRate("leader.replication.throttled.rate") {
			return false
		}
		q.record(int64(fr.Size), now)
	}
	if fr.Size >= spliceMin && fr.File != nil {
		kept = true
		p.fr, p.n = fr, fr.Size
		f.total += p.n
		if p.marker == nil {
			p.marker = new([1]byte)
		}
		sp.RecordBatches = p.marker[:]
		if p.committed {
			// The records are not read here: the aborted transactions
			// up to the read's bound, a superset as Kafka's (up to the
			// segment's end) is; consumers skip entries they never reach.
			sp.AbortedTransactions = abortedTxns(p.l.AbortedTxns(p.offset, res.LastStableOffset))
		}
		return false
	}
	bp := fetchBufs.Get().(*[]byte)
	recs, err := fr.AppendTo((*bp)[:0])
	if cap(recs) > 0 {
		*bp = recs[:0] // may have grown
	}
	if err != nil {
		putFetchBuf(bp)
		f.b.log.Error("fetch read failed", "topic", p.l.Topic(), "partition", p.l.Partition(), "err", err)
		sp.ErrorCode = kerr.KafkaStorageError.Code
		return true
	}
	p.buf, p.n = bp, len(recs)
	f.total += p.n
	sp.RecordBatches = recs
	if p.committed {
		sp.AbortedTransactions = abortedIn(p.l, p.offset, recs)
	}
	return false
}

// abortedIn lists the aborted transactions with data in recs, the batches
// a read_committed fetch of l from offset returns.
func abortedIn(l *storage.Log, offset int64, recs []byte) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	end := offset
	for rest := recs; len(rest) >= 61; {
		n := int(int32(binary.BigEndian.Uint32(rest[8:]))) + 12
		if n < 61 || n > len(rest) {
			break
		}
		end = int64(binary.BigEndian.Uint64(rest)) + int64(int32(binary.BigEndian.Uint32(rest[23:]))) + 1
		rest = rest[n:]
	}
	return abortedTxns(l.AbortedTxns(offset, end))
}

// abortedTxns converts storage's aborted transactions to the response's.
func abortedTxns(list []storage.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(list))
	for i, a := range list {
		out[i] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
	}
	return out
}

// Wake implements storage.Waker: a watched log's high watermark may have
// moved. Called on the appending or fsyncing goroutine; only marks.
func (f *fetch) Wake(l *storage.Log) {
	i, ok := f.byLog[l]
	if !ok {
		return
	}
	f.mu.Lock()
	if !f.dirty[i] {
		f.dirty[i] = true
		f.moved = append(f.moved, i)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// wait long-polls until min_bytes is reached, the deadline passes, the
// client goes away or the broker shuts down. It parks on every partition
// first, then marks the ones whose high watermark moved since fill read
// them, so an append between the read and the park is never missed.
func (f *fetch) wait(maxWait time.Duration) {
	if f.sessionMode == sessionIncremental && f.session.tracked {
		f.waitSession(maxWait)
		return
	}
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	f.wake = make(chan struct{}, 1)
	f.dirty = make([]bool, len(f.parts))
	f.byLog = make(map[*storage.Log]int, len(f.parts))
	for i := range f.parts {
		if l := f.parts[i].l; l != nil {
			f.byLog[l] = i
		}
	}
	for l := range f.byLog {
		l.Watch(f)
	}
	defer func() {
		for l := range f.byLog {
			l.Unwatch(f)
		}
	}()
	for i := range f.parts {
		if p := &f.parts[i]; p.l != nil && p.bound() != p.hw {
			f.Wake(p.l)
		}
	}
	var moved []int // swapped with f.moved, so neither is reallocated
	for {
		select {
		case <-f.wake:
		case <-timer.C:
			return
		case <-f.ctx.Done():
			return
		}
		f.mu.Lock()
		moved, f.moved = f.moved, moved[:0]
		for _, i := range moved {
			f.dirty[i] = false
		}
		f.mu.Unlock()
		urgent := false
		for _, i := range moved {
			if f.read(i) {
				urgent = true
			}
		}
		if f.ready(urgent) {
			return
		}
	}
}

// waitSession is wait for an incremental fetch of a tracked session
// (fetch_sessions.go): it parks on the session rather than on its logs,
// and reads the partitions marked since the fetch took them, adding those
// it did not hold. A mark between the take and the park is found by the
// first look, which comes before the first wait.
func (f *fetch) waitSession(maxWait time.Duration) {
	s := f.session
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	wake := make(chan struct{}, 1)
	defer s.park(wake)()
	in := make(map[*sessionPart]int, len(f.sessionParts))
	for i, sp := range f.sessionParts {
		in[sp] = i
	}
	var (
		marked []*sessionPart
		added  []kmsg.FetchRequestTopicPartition // the request of each marked part not held yet
	)
	for {
		marked, added = marked[:0], added[:0]
		s.mu.Lock()
		if s.epoch == f.sessionEpoch { // else overtaken: answered with an error
			marked = s.takeDirtyLocked(marked)
			for _, sp := range marked {
				if _, ok := in[sp]; !ok {
					added = append(added, sp.request())
				}
			}
		}
		s.mu.Unlock()
		urgent := false
		for _, sp := range marked {
			i, ok := in[sp]
			if !ok {
				t, _, ti := f.responseTopic(sp.key.topic, sp.key.id)
				i = len(f.parts)
				f.addPart(t, ti, added[0])
				added = added[1:]
				f.sessionParts = append(f.sessionParts, sp)
				in[sp] = i
			}
			if f.read(i) {
				urgent = true
			}
		}
		if f.ready(urgent) {
			return
		}
		select {
		case <-wake:
		case <-timer.C:
			return
		case <-f.ctx.Done():
			return
		}
	}
}

// addBroker adds a leader's endpoint to the response's KIP-951 hints, once.
func (f *fetch) addBroker(id int32, ep metadata.Endpoint) {
	for _, br := range f.resp.Brokers {
		if br.NodeID == id {
			return
		}
	}
	br := kmsg.NewFetchResponseBroker()
	br.NodeID, br.Host, br.Port = id, ep.Host, ep.Port
	f.resp.Brokers = append(f.resp.Brokers, br)
}

// bound is what a read of the part stops at: the high watermark, or for a
// follower the log end.
func (p *fetchPart) bound() int64 {
	switch {
	case p.replica:
		return p.l.LogEndOffset()
	case p.committed:
		return p.l.LastStableOffset()
	}
	return p.l.HighWatermark()
}

// divergedOrTrack handles a follower's fetch of a partition led here: if
// the follower's log diverged from this one (its last fetched epoch ends
// elsewhere here, KIP-320/KIP-595), the answer is the diverging epoch and
// no records (true); otherwise the fetch offset is the follower's log end,
// which may advance the high watermark or bring it back into the ISR.
func (f *fetch) divergedOrTrack(topic string, rp kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, l *storage.Log) bool {
	if f.req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
		end, epoch := l.EndOffsetForEpoch(rp.LastFetchedEpoch)
		if epoch < rp.LastFetchedEpoch || end < rp.FetchOffset {
			sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = epoch, end
			hw := l.HighWatermark()
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, hw, l.LogStartOffset()
			return true
		}
	}
	if r := f.b.replicas.get(topic, rp.Partition); r != nil && rp.FetchOffset <= l.LogEndOffset() {
		r.followerFetched(f.replicaID, rp.FetchOffset)
	}
	return false
}
