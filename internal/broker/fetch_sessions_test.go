package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sessConn sends Fetch requests of a fixed version over one connection,
// as a client that manages its own session would.
type sessConn struct {
	t    *testing.T
	nc   net.Conn
	corr int32
}

func dialSess(t *testing.T, b *Broker) *sessConn {
	t.Helper()
	nc, err := net.Dial("tcp", b.AdvertisedAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &sessConn{t: t, nc: nc}
}

func (c *sessConn) fetch(req *kmsg.FetchRequest) *kmsg.FetchResponse {
	c.t.Helper()
	resp, err := c.roundTrip(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// fetchNoFatal is fetch for other goroutines than the test's: nil on error.
func (c *sessConn) fetchNoFatal(req *kmsg.FetchRequest) *kmsg.FetchResponse {
	resp, _ := c.roundTrip(req)
	return resp
}

func (c *sessConn) roundTrip(req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
	c.corr++
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("sess")).AppendRequest(nil, req, c.corr)
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(frame); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c.nc, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:])-4)
	if _, err := io.ReadFull(c.nc, body); err != nil {
		return nil, err
	}
	if req.IsFlexible() {
		body = body[1:] // no tagged fields in the response header
	}
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding fetch v%d response: %w", req.Version, err)
	}
	return resp, nil
}

// sessReq is a Fetch of version v with the given session id and epoch,
// listing parts of topic (by name and id) at the given offsets.
func sessReq(b *Broker, v int16, id, epoch int32, topic string, offsets map[int32]int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = v
	req.ReplicaID = -1
	req.SessionID, req.SessionEpoch = id, epoch
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 0, 1, math.MaxInt32
	if len(offsets) == 0 {
		return req
	}
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	if t := b.catalog.get(topic); t != nil {
		rt.TopicID = t.ID
	}
	for p := int32(0); p < 1000; p++ {
		off, ok := offsets[p]
		if !ok {
			continue
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func forget(b *Broker, req *kmsg.FetchRequest, topic string, parts ...int32) {
	ft := kmsg.NewFetchRequestForgottenTopic()
	ft.Topic, ft.TopicID, ft.Partitions = topic, b.catalog.get(topic).ID, parts
	req.ForgottenTopics = append(req.ForgottenTopics, ft)
}

// answered lists the partitions a response answers, with their record
// bytes, high watermark and error.
type answer struct {
	bytes int
	hw    int64
	err   int16
}

func answered(resp *kmsg.FetchResponse) map[int32]answer {
	out := map[int32]answer{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = answer{len(p.RecordBatches), p.HighWatermark, p.ErrorCode}
		}
	}
	return out
}

func sessTopic(t *testing.T, props ...string) (*Broker, *kgo.Client) {
	b := fetchTestBroker(t, props...)
	cl := fetchTestClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetchCreateTopic(t, cl, "s", 3)
	return b, cl
}

// A sessionless full fetch with session id -1 and epoch -1 (kafka-go's
// Client.Fetch) gets the records, and no session.
func TestFetchSessionlessMinusOne(t *testing.T) {
	b, cl := sessTopic(t)
	produceN(t, cl, "s", 1, 3, 10)
	for _, v := range []int16{4, 7, 12, 13, 17} {
		resp := dialSess(t, b).fetch(sessReq(b, v, -1, -1, "s", map[int32]int64{0: 0, 1: 0}))
		got := answered(resp)
		if resp.ErrorCode != 0 || resp.SessionID != 0 || len(got) != 2 || got[1].bytes == 0 || got[1].hw != 3 {
			t.Fatalf("v%d: error %d, session %d, partitions %+v", v, resp.ErrorCode, resp.SessionID, got)
		}
	}
	if n := b.fetchSessions.len(); n != 0 {
		t.Fatalf("%d sessions after sessionless fetches", n)
	}
}

// A session's life: created by 0/0, incremental fetches that answer only
// what changed, a long poll on the session's partitions, forgotten
// partitions, epoch and id errors, and closing with epoch -1.
func TestFetchSessionIncremental(t *testing.T) {
	b, cl := sessTopic(t)
	produceN(t, cl, "s", 0, 1, 10)
	c := dialSess(t, b)
	const v = 17

	resp := c.fetch(sessReq(b, v, 0, 0, "s", map[int32]int64{0: 0, 1: 0, 2: 0}))
	got := answered(resp)
	id := resp.SessionID
	if resp.ErrorCode != 0 || id == 0 || len(got) != 3 || got[0].bytes == 0 {
		t.Fatalf("full fetch 0/0: error %d, session %d, %+v", resp.ErrorCode, id, got)
	}

	// Epoch 1: the client moved p0 on; nothing changed.
	resp = c.fetch(sessReq(b, v, id, 1, "s", map[int32]int64{0: 1}))
	if resp.ErrorCode != 0 || resp.SessionID != id || len(resp.Topics) != 0 {
		t.Fatalf("incremental without changes: error %d, session %d, %+v", resp.ErrorCode, resp.SessionID, answered(resp))
	}

	// Epoch 2: p2 got a record; it alone is answered, with it. Partitions
	// the request does not list are still fetched.
	produceN(t, cl, "s", 2, 1, 10)
	resp = c.fetch(sessReq(b, v, id, 2, "s", nil))
	if got := answered(resp); resp.ErrorCode != 0 || len(got) != 1 || got[2].bytes == 0 || got[2].hw != 1 {
		t.Fatalf("after producing to p2: error %d, %+v", resp.ErrorCode, got)
	}

	// Epoch 3: a long poll parked on the session's partitions is woken by
	// a record in p1, which it did not list.
	req := sessReq(b, v, id, 3, "s", map[int32]int64{2: 1})
	req.MaxWaitMillis = 20000
	woken := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		r := &kgo.Record{Topic: "s", Partition: 1, Value: []byte("woken")}
		woken <- cl.ProduceSync(context.Background(), r).FirstErr()
	}()
	start := time.Now()
	resp = c.fetch(req)
	if got := answered(resp); resp.ErrorCode != 0 || len(got) != 1 || got[1].bytes == 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("long poll: error %d, %+v after %v", resp.ErrorCode, got, time.Since(start))
	}
	if err := <-woken; err != nil {
		t.Fatal(err)
	}

	// Epoch 4: p0 is forgotten, so a record there is not answered.
	produceN(t, cl, "s", 0, 1, 10)
	req = sessReq(b, v, id, 4, "s", map[int32]int64{1: 1})
	forget(b, req, "s", 0)
	resp = c.fetch(req)
	if resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Fatalf("after forgetting p0: error %d, %+v", resp.ErrorCode, answered(resp))
	}

	// A repeated epoch is refused without answering any partition, and
	// does not spend the session's epoch.
	resp = c.fetch(sessReq(b, v, id, 4, "s", nil))
	if resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code || len(resp.Topics) != 0 {
		t.Fatalf("repeated epoch: error %d, %d topics", resp.ErrorCode, len(resp.Topics))
	}
	// Adding p0 back answers it (and its record) again.
	resp = c.fetch(sessReq(b, v, id, 5, "s", map[int32]int64{0: 1}))
	if got := answered(resp); resp.ErrorCode != 0 || len(got) != 1 || got[0].bytes == 0 || got[0].hw != 2 {
		t.Fatalf("p0 added back: error %d, %+v", resp.ErrorCode, got)
	}

	// Unknown ids, and an incremental epoch without an id.
	for _, bad := range []int32{id + 1, 0} {
		resp = c.fetch(sessReq(b, v, bad, 3, "s", nil))
		if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || len(resp.Topics) != 0 || resp.SessionID != 0 {
			t.Fatalf("session %d: error %d, session %d", bad, resp.ErrorCode, resp.SessionID)
		}
	}
	// A session created with topic ids cannot go on with topic names.
	resp = c.fetch(sessReq(b, 12, id, 6, "s", nil))
	if resp.ErrorCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("v12 on a v17 session: error %d", resp.ErrorCode)
	}

	// Epoch -1 closes the session: a sessionless full fetch.
	resp = c.fetch(sessReq(b, v, id, -1, "s", map[int32]int64{0: 0}))
	if got := answered(resp); resp.ErrorCode != 0 || resp.SessionID != 0 || got[0].bytes == 0 {
		t.Fatalf("closing fetch: error %d, session %d, %+v", resp.ErrorCode, resp.SessionID, got)
	}
	resp = c.fetch(sessReq(b, v, id, 6, "s", nil))
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || b.fetchSessions.len() != 0 {
		t.Fatalf("closed session: error %d, %d sessions", resp.ErrorCode, b.fetchSessions.len())
	}
}

// Id N with epoch 0 replaces session N; forgetting every partition closes
// the session; a v12 session keys partitions by name.
func TestFetchSessionRecreateAndEmpty(t *testing.T) {
	b, cl := sessTopic(t)
	produceN(t, cl, "s", 0, 1, 10)
	c := dialSess(t, b)
	resp := c.fetch(sessReq(b, 12, 0, 0, "s", map[int32]int64{0: 0}))
	first := resp.SessionID
	resp = c.fetch(sessReq(b, 12, first, 0, "s", map[int32]int64{0: 0, 1: 0}))
	second := resp.SessionID
	if first == 0 || second == 0 || second == first || len(answered(resp)) != 2 || b.fetchSessions.len() != 1 {
		t.Fatalf("sessions %d then %d, %d cached, %+v", first, second, b.fetchSessions.len(), answered(resp))
	}
	if resp = c.fetch(sessReq(b, 12, first, 1, "s", nil)); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("replaced session: error %d", resp.ErrorCode)
	}
	req := sessReq(b, 12, second, 1, "s", nil)
	forget(b, req, "s", 0, 1)
	resp = c.fetch(req)
	if resp.ErrorCode != 0 || resp.SessionID != 0 || b.fetchSessions.len() != 0 {
		t.Fatalf("everything forgotten: error %d, session %d, %d cached", resp.ErrorCode, resp.SessionID, b.fetchSessions.len())
	}
}

// With one slot, a second client gets no session (id 0) but its data;
// once the first session has been idle for two minutes, it is evicted.
func TestFetchSessionCacheFull(t *testing.T) {
	b, cl := sessTopic(t, "max.incremental.fetch.session.cache.slots", "1")
	produceN(t, cl, "s", 0, 2, 10)
	var mu sync.Mutex
	now := time.Now()
	b.fetchSessions.mu.Lock() // read under it
	b.fetchSessions.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b.fetchSessions.mu.Unlock()

	a, c := dialSess(t, b), dialSess(t, b)
	resp := a.fetch(sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0}))
	idA := resp.SessionID
	if idA == 0 {
		t.Fatal("first client got no session")
	}
	resp = c.fetch(sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0, 1: 0}))
	if got := answered(resp); resp.ErrorCode != 0 || resp.SessionID != 0 || got[0].bytes == 0 || got[0].hw != 2 {
		t.Fatalf("second client: error %d, session %d, %+v", resp.ErrorCode, resp.SessionID, got)
	}
	if resp = a.fetch(sessReq(b, 17, idA, 1, "s", nil)); resp.ErrorCode != 0 || resp.SessionID != idA {
		t.Fatalf("first session after the refusal: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}

	mu.Lock()
	now = now.Add(fetchSessionEvictAfter + time.Second)
	mu.Unlock()
	resp = c.fetch(sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0}))
	if resp.SessionID == 0 || resp.SessionID == idA {
		t.Fatalf("after two idle minutes the second client got session %d", resp.SessionID)
	}
	mfs := scrape(t, b)
	if n, _ := value(mfs, "kafka_server_fetchsessioncache_numincrementalfetchsessions"); n != 1 {
		t.Errorf("sessions gauge %v, want 1", n)
	}
	if n, _ := value(mfs, "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached"); n != 1 {
		t.Errorf("cached partitions gauge %v, want 1", n)
	}
	if n, _ := value(mfs, "kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total"); n != 1 {
		t.Errorf("evictions %v, want 1", n)
	}
	if resp = a.fetch(sessReq(b, 17, idA, 2, "s", nil)); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("evicted session: error %d", resp.ErrorCode)
	}
}

// Eviction when the cache is full and nothing is stale: a follower's new
// session evicts a consumer's; a consumer's evicts a smaller consumer
// session only once that one is older than the eviction time; never one
// of the same size.
func TestFetchSessionEvictionRules(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newFetchSessionCache(2)
	c.now = func() time.Time { return now }
	mk := func(n int) func() []*sessionPart {
		return func() []*sessionPart {
			out := make([]*sessionPart, n)
			for i := range out {
				out[i] = &sessionPart{key: sessionKey{topic: "t", p: int32(i)}}
			}
			return out
		}
	}
	create := func(privileged bool, n int) int32 {
		if s := c.create(privileged, false, n, sessionState{}, mk(n)); s != nil {
			return s.id
		}
		return 0
	}
	touch := func(id int32) {
		c.mu.Lock()
		s := c.sessions[id]
		c.touchLocked(s, now, s.size)
		c.mu.Unlock()
	}
	small := create(false, 2)
	big := create(false, 5)
	if small == 0 || big == 0 {
		t.Fatal("no room in an empty cache")
	}
	if id := create(false, 3); id != 0 {
		t.Fatal("a consumer session evicted a session younger than the eviction time")
	}
	now = now.Add(time.Minute)
	touch(small)
	touch(big)
	if id := create(true, 1); id == 0 || c.get(small) {
		t.Fatalf("a follower's session did not evict the smallest consumer session (got %d)", id)
	}
	// big and the follower's session: big, now older than two minutes
	// at its last use, may go for a bigger consumer session only.
	now = now.Add(2 * time.Minute)
	touch(big)
	if id := create(false, 5); id != 0 {
		t.Fatal("a session of the same size was evicted")
	}
	if id := create(false, 6); id == 0 || c.get(big) {
		t.Fatal("a bigger consumer session did not evict an old smaller one")
	}
	if c.len() != 2 || c.partitions != 7 {
		t.Fatalf("%d sessions, %d partitions", c.len(), c.partitions)
	}
	c.maxParts = 10
	if id := create(true, 4); id != 0 {
		t.Fatal("the partition bound was exceeded")
	}
}

// franz-go consumes through sessions (its default), without them, and
// from a broker that creates none (slots 0: it answers session id 0).
func TestFetchSessionKgoConsumer(t *testing.T) {
	for _, tc := range []struct {
		sessions bool
		slots    string
	}{{true, "1000"}, {false, "1000"}, {true, "0"}} {
		sessions := tc.sessions
		b := fetchTestBroker(t, "max.incremental.fetch.session.cache.slots", tc.slots)
		prod := fetchTestClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		const parts, per = 8, 25
		fetchCreateTopic(t, prod, "many", parts)
		produce := func(round int) {
			for p := range int32(parts) {
				for i := range per {
					r := &kgo.Record{Topic: "many", Partition: p, Value: []byte{byte(round), byte(i)}}
					prod.Produce(fetchTestCtx(t), r, nil)
				}
			}
			if err := prod.Flush(fetchTestCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
		produce(0)
		opts := []kgo.Opt{kgo.ConsumeTopics("many"), kgo.FetchMaxWait(200 * time.Millisecond)}
		if !sessions {
			opts = append(opts, kgo.DisableFetchSessions())
		}
		cons := fetchTestClient(t, b, opts...)
		seen := map[int32]int64{}
		total := 0
		consume := func(want int) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for total < want {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("sessions %v: consumed %d of %d", sessions, total, want)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if next := seen[r.Partition]; r.Offset != next {
						t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next)
					}
					seen[r.Partition] = r.Offset + 1
					total++
				})
			}
		}
		consume(parts * per)
		// A second round while the consumer long-polls its session.
		produce(1)
		consume(2 * parts * per)
		if n := b.fetchSessions.len(); (sessions && tc.slots != "0") != (n > 0) {
			t.Fatalf("sessions %v, slots %s: %d sessions cached", sessions, tc.slots, n)
		}
	}
}

func (c *fetchSessionCache) get(id int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id] != nil
}

// A session keyed by topic id keeps a deleted topic's partition, answered
// UNKNOWN_TOPIC_ID at every fetch until the client forgets it; the other
// partitions are not answered while nothing changes.
func TestFetchSessionDeletedTopic(t *testing.T) {
	b, cl := sessTopic(t)
	fetchCreateTopic(t, cl, "gone", 1)
	goneID := b.catalog.get("gone").ID
	c := dialSess(t, b)
	req := sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0})
	req.Topics = append(req.Topics, sessReq(b, 17, 0, 0, "gone", map[int32]int64{0: 0}).Topics...)
	resp := c.fetch(req)
	id := resp.SessionID
	if id == 0 || len(resp.Topics) != 2 {
		t.Fatalf("session %d, %d topics", id, len(resp.Topics))
	}
	if _, err := kadm.NewClient(cl).DeleteTopics(fetchTestCtx(t), "gone"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); b.catalog.getByID(goneID) != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("topic not deleted")
		}
	}
	for epoch := int32(1); epoch <= 2; epoch++ {
		resp = c.fetch(sessReq(b, 17, id, epoch, "s", nil))
		if len(resp.Topics) != 1 || resp.Topics[0].TopicID != goneID || len(resp.Topics[0].Partitions) != 1 ||
			resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
			t.Fatalf("epoch %d after the delete: error %d, %+v", epoch, resp.ErrorCode, resp.Topics)
		}
	}
	req = sessReq(b, 17, id, 3, "s", nil)
	ft := kmsg.NewFetchRequestForgottenTopic()
	ft.TopicID, ft.Partitions = goneID, []int32{0}
	req.ForgottenTopics = append(req.ForgottenTopics, ft)
	if resp = c.fetch(req); resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Fatalf("after forgetting the deleted topic: error %d, %+v", resp.ErrorCode, answered(resp))
	}
}

func TestNextSessionEpoch(t *testing.T) {
	for in, want := range map[int32]int32{0: 1, 1: 2, math.MaxInt32: 1, -1: -1, -7: -1} {
		if got := nextSessionEpoch(in); got != want {
			t.Errorf("next epoch after %d: %d, want %d", in, got, want)
		}
	}
}

// Several connections race on one session, with duplicate epochs, adds,
// forgets, and closes that recreate it: every answer is a session answer
// or one of the session errors, and (under -race) the cache is safe.
func TestFetchSessionConcurrentUse(t *testing.T) {
	b, cl := sessTopic(t)
	produceN(t, cl, "s", 0, 5, 10)
	var (
		mu    sync.Mutex
		id    int32
		epoch int32
	)
	resp := dialSess(t, b).fetch(sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0, 1: 0}))
	id, epoch = resp.SessionID, 1
	var wg sync.WaitGroup
	for w := range 4 {
		c := dialSess(t, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				mu.Lock()
				sid, e := id, epoch
				mu.Unlock()
				var req *kmsg.FetchRequest
				switch (i + w) % 7 {
				case 0:
					req = sessReq(b, 17, sid, 0, "s", map[int32]int64{0: 0, 1: 0, 2: 0})
				case 1:
					req = sessReq(b, 17, sid, e, "s", nil)
					forget(b, req, "s", int32(i%3))
				default:
					req = sessReq(b, 17, sid, e, "s", map[int32]int64{int32(i % 3): int64(i % 6)})
				}
				resp := c.fetchNoFatal(req)
				if resp == nil {
					t.Error("fetch failed")
					return
				}
				switch resp.ErrorCode {
				case 0:
					mu.Lock()
					if req.SessionEpoch == 0 && resp.SessionID != 0 {
						id, epoch = resp.SessionID, 1
					} else if resp.SessionID == sid && sid == id && e == epoch {
						epoch = nextSessionEpoch(e)
					}
					mu.Unlock()
				case kerr.InvalidFetchSessionEpoch.Code, kerr.FetchSessionIDNotFound.Code:
				default:
					t.Errorf("error %d", resp.ErrorCode)
				}
			}
		}()
	}
	wg.Wait()
	// Racing recreations leave orphan sessions (as in Kafka); the books
	// must still balance.
	c := b.fetchSessions
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := 0
	for _, s := range c.sessions {
		s.mu.Lock()
		if s.size != len(s.parts) || len(s.index) != len(s.parts) {
			t.Errorf("session %d: size %d, %d parts, %d indexed", s.id, s.size, len(s.parts), len(s.index))
		}
		s.mu.Unlock()
		sum += s.size
	}
	if sum != c.partitions || c.lru.Len() != len(c.sessions) {
		t.Fatalf("%d partitions counted, %d cached; %d in the LRU list, %d sessions", c.partitions, sum, c.lru.Len(), len(c.sessions))
	}
}

// The bound on cached partitions: a full fetch over it gets no session; an
// incremental fetch that would pass it loses its session.
func TestFetchSessionPartitionBound(t *testing.T) {
	b, _ := sessTopic(t)
	b.fetchSessions.mu.Lock()
	b.fetchSessions.maxParts = 3
	b.fetchSessions.mu.Unlock()
	c := dialSess(t, b)
	if resp := c.fetch(sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})); resp.SessionID != 0 || len(answered(resp)) != 4 {
		t.Fatalf("over the bound: session %d, %+v", resp.SessionID, answered(resp))
	}
	resp := c.fetch(sessReq(b, 17, 0, 0, "s", map[int32]int64{0: 0, 1: 0}))
	if resp.SessionID == 0 {
		t.Fatal("no session under the bound")
	}
	if resp := c.fetch(sessReq(b, 17, resp.SessionID, 1, "s", map[int32]int64{2: 0, 3: 0})); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || b.fetchSessions.len() != 0 {
		t.Fatalf("growing past the bound: error %d, %d sessions", resp.ErrorCode, b.fetchSessions.len())
	}
}

// A consumer's session reads only what changed (fetch_sessions.go), yet
// answers everything a full read would: records a response limit held
// back come in the next fetches with nothing produced meanwhile, a log
// start moved by DeleteRecords is answered, a long poll wakes for a
// partition it did not hold, and the session's watches end with it.
func TestFetchSessionTrackedAnswersWhatChanged(t *testing.T) {
	b, cl := sessTopic(t)
	for p := int32(0); p < 3; p++ {
		produceN(t, cl, "s", p, 5, 1000)
	}
	c := dialSess(t, b)
	const v = 17

	// max_bytes 1: each response holds one partition's first batch.
	req := sessReq(b, v, 0, 0, "s", map[int32]int64{0: 0, 1: 0, 2: 0})
	req.MaxBytes = 1
	resp := c.fetch(req)
	id := resp.SessionID
	offsets := map[int32]int64{}
	note := func(resp *kmsg.FetchResponse) {
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if len(rp.RecordBatches) > 0 {
					var batch kmsg.RecordBatch
					if err := batch.ReadFrom(rp.RecordBatches); err != nil {
						t.Fatal(err)
					}
					offsets[rp.Partition] = batch.FirstOffset + int64(batch.LastOffsetDelta) + 1
				}
			}
		}
	}
	note(resp)
	if id == 0 || len(offsets) != 1 {
		t.Fatalf("full fetch: session %d, records from %v", id, offsets)
	}
	epoch := int32(0)
	for offsets[0]+offsets[1]+offsets[2] < 15 {
		if epoch++; epoch == 20 {
			t.Fatalf("records held back by max_bytes never came: read up to %v", offsets)
		}
		req := sessReq(b, v, id, epoch, "s", offsets)
		req.MaxBytes = 1
		note(c.fetch(req))
	}
	next := func() *kmsg.FetchResponse {
		epoch++
		return c.fetch(sessReq(b, v, id, epoch, "s", nil))
	}
	epoch++
	if resp := c.fetch(sessReq(b, v, id, epoch, "s", offsets)); len(resp.Topics) != 0 {
		t.Fatalf("caught up: %+v", answered(resp))
	}
	if resp := next(); len(resp.Topics) != 0 {
		t.Fatalf("caught up, nothing changed: %+v", answered(resp))
	}

	// DeleteRecords on an idle partition: its new log start is answered.
	if _, err := b.store.Get("s", 2).DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	resp = next()
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Partition != 2 ||
		resp.Topics[0].Partitions[0].LogStartOffset != 3 {
		t.Fatalf("after DeleteRecords on p2: error %d, %+v (offsets %v, epoch %d)", resp.ErrorCode, resp.Topics, offsets, epoch)
	}

	// A long poll that begins with nothing to read wakes for p1.
	epoch++
	req = sessReq(b, v, id, epoch, "s", nil)
	req.MaxWaitMillis = 20000
	produced := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		produced <- cl.ProduceSync(context.Background(), &kgo.Record{Topic: "s", Partition: 1, Value: []byte("x")}).FirstErr()
	}()
	start := time.Now()
	resp = c.fetch(req)
	if got := answered(resp); len(got) != 1 || got[1].bytes == 0 || got[1].hw != 6 || time.Since(start) > 10*time.Second {
		t.Fatalf("long poll: %+v after %v", got, time.Since(start))
	}
	// The fetch may wake before the producer has its ack: wait for it, or
	// the test's end closes the client under it.
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	// The session watches its three logs; closing it ends the watches.
	for p := int32(0); p < 3; p++ {
		if n := b.store.Get("s", p).Watchers(); n != 1 {
			t.Fatalf("p%d: %d watchers while the session lives", p, n)
		}
	}
	c.fetch(sessReq(b, v, id, -1, "s", nil))
	for p := int32(0); p < 3; p++ {
		if n := b.store.Get("s", p).Watchers(); n != 0 {
			t.Fatalf("p%d: %d watchers after the session closed", p, n)
		}
	}
}
