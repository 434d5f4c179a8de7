package group

import (
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

// txnCommit sends a TxnOffsetCommit v3 for topic "t" and returns each
// partition's error code.
func txnCommit(t *testing.T, c *Coordinator, group string, pid int64, gen int32, member string, offsets map[int32]int64) map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID = "tx"
	req.Group, req.ProducerID, req.ProducerEpoch = group, pid, 2
	req.Generation, req.MemberID = gen, member
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "t"
	for p, o := range offsets {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, o
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{rt}
	done := make(chan *kmsg.TxnOffsetCommitResponse, 2)
	c.TxnOffsetCommit(req, func(r *kmsg.TxnOffsetCommitResponse) { done <- r })
	resp := within(t, done, "txn offset commit")
	out := map[int32]int16{}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			out[sp.Partition] = sp.ErrorCode
		}
	}
	return out
}

func mustTxnCommit(t *testing.T, c *Coordinator, group string, pid int64, offsets map[int32]int64) {
	t.Helper()
	for p, code := range txnCommit(t, c, group, pid, -1, "", offsets) {
		if code != 0 {
			t.Fatalf("txn commit of %s partition %d: error %d", group, p, code)
		}
	}
}

// marker appends a COMMIT or ABORT control batch for pid to the group's
// partition, as the broker's marker path does, and returns its offset.
func marker(t *testing.T, logs *memLogs, group string, pid int64, commit bool) int64 {
	t.Helper()
	typ := kmsg.ControlRecordKeyTypeAbort
	if commit {
		typ = kmsg.ControlRecordKeyTypeCommit
	}
	key := (&kmsg.ControlRecordKey{Version: 0, Type: typ}).AppendTo(nil)
	value := (&kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: 1}).AppendTo(nil)
	b := encodeBatchWith(batchHeader{pid, 2, attrTransactional | attrControl}, []kv{{key, value}}, time.Now())
	l, _ := logs.get(PartitionFor(group, 50))
	res, err := l.Append(b)
	if err != nil {
		t.Fatal(err)
	}
	return res.BaseOffset
}

// endTxn writes the marker and reports it, as the broker does.
func endTxn(t *testing.T, c *Coordinator, logs *memLogs, group string, pid int64, commit bool) {
	t.Helper()
	off := marker(t, logs, group, pid, commit)
	c.CompleteTxn(PartitionFor(group, 50), pid, commit, off)
}

func stable(c *Coordinator, group string, p int32) (FetchedOffset, int16) {
	got, code := c.FetchOffsetsRequireStable(group, map[string][]int32{"t": {p}})
	return got["t"][p], code
}

// expectOffset checks what OffsetFetch answers for t-p, with and without
// RequireStable: want is the committed offset (-1 none), unstable whether
// a transaction is pending on it.
func expectOffset(t *testing.T, c *Coordinator, group string, p int32, want int64, unstable bool) {
	t.Helper()
	got, code := fetch(c, group, p)
	if code != 0 || got[p].Offset != want || got[p].ErrorCode != 0 {
		t.Fatalf("OffsetFetch %s t-%d: %+v code %d, want offset %d", group, p, got[p], code, want)
	}
	fo, code := stable(c, group, p)
	switch {
	case code != 0:
		t.Fatalf("OffsetFetch RequireStable %s: code %d", group, code)
	case unstable && (fo.ErrorCode != kerr.UnstableOffsetCommit.Code || fo.Offset != -1):
		t.Fatalf("OffsetFetch RequireStable %s t-%d: %+v, want UNSTABLE_OFFSET_COMMIT", group, p, fo)
	case !unstable && (fo.ErrorCode != 0 || fo.Offset != want):
		t.Fatalf("OffsetFetch RequireStable %s t-%d: %+v, want offset %d", group, p, fo, want)
	}
}

func TestTxnOffsetsVisibleOnlyAfterCommitMarker(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	mustTxnCommit(t, c, g, 7, map[int32]int64{0: 10, 1: 11})

	// The batch is the producer's transactional batch, with no sequence.
	l := logs.logs[PartitionFor(g, 50)]
	b := l.data
	if pid := int64(binary.BigEndian.Uint64(b[43:])); pid != 7 {
		t.Fatalf("batch producer id %d, want 7", pid)
	}
	if epoch := int16(binary.BigEndian.Uint16(b[51:])); epoch != 2 {
		t.Fatalf("batch producer epoch %d, want 2", epoch)
	}
	if attrs := binary.BigEndian.Uint16(b[21:]); attrs != attrTransactional {
		t.Fatalf("batch attributes %#x, want 0x10", attrs)
	}
	if seq := int32(binary.BigEndian.Uint32(b[53:])); seq != -1 {
		t.Fatalf("batch base sequence %d, want -1", seq)
	}

	expectOffset(t, c, g, 0, -1, true)
	expectOffset(t, c, g, 1, -1, true)
	// A partition the transaction did not touch is stable.
	expectOffset(t, c, g, 2, -1, false)
	// Another producer's marker settles nothing.
	endTxn(t, c, logs, g, 8, true)
	expectOffset(t, c, g, 0, -1, true)

	endTxn(t, c, logs, g, 7, true)
	expectOffset(t, c, g, 0, 10, false)
	expectOffset(t, c, g, 1, 11, false)
	// A second marker (a retried one) changes nothing.
	endTxn(t, c, logs, g, 7, false)
	expectOffset(t, c, g, 0, 10, false)
}

func TestTxnAbortDropsOffsets(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	if code := commit(t, c, g, -1, "", map[int32]int64{0: 5}); code != 0 {
		t.Fatal(code)
	}
	mustTxnCommit(t, c, g, 7, map[int32]int64{0: 10})
	expectOffset(t, c, g, 0, 5, true)
	endTxn(t, c, logs, g, 7, false)
	expectOffset(t, c, g, 0, 5, false)

	c2 := newTestCoordinator(t, logs)
	expectOffset(t, c2, g, 0, 5, false)
}

func TestPlainCommitAfterTxnCommitWins(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	// Transactional records first, then a plain commit, then the marker:
	// the plain commit was written later and stays.
	mustTxnCommit(t, c, g, 7, map[int32]int64{0: 10, 1: 11})
	if code := commit(t, c, g, -1, "", map[int32]int64{0: 20}); code != 0 {
		t.Fatal(code)
	}
	expectOffset(t, c, g, 0, 20, true)
	endTxn(t, c, logs, g, 7, true)
	expectOffset(t, c, g, 0, 20, false)
	expectOffset(t, c, g, 1, 11, false)

	// A plain commit before the transactional records loses to them.
	if code := commit(t, c, g, -1, "", map[int32]int64{1: 30}); code != 0 {
		t.Fatal(code)
	}
	mustTxnCommit(t, c, g, 9, map[int32]int64{1: 40})
	endTxn(t, c, logs, g, 9, true)
	expectOffset(t, c, g, 1, 40, false)

	// The log says the same.
	c2 := newTestCoordinator(t, logs)
	expectOffset(t, c2, g, 0, 20, false)
	expectOffset(t, c2, g, 1, 40, false)
}

func TestTxnOffsetsReplayedFromLog(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	if code := commit(t, c, g, -1, "", map[int32]int64{3: 3}); code != 0 {
		t.Fatal(code)
	}
	mustTxnCommit(t, c, g, 1, map[int32]int64{0: 100})
	mustTxnCommit(t, c, g, 2, map[int32]int64{1: 200, 3: 300})
	mustTxnCommit(t, c, g, 3, map[int32]int64{2: 300})
	// A group with nothing but a committed transaction.
	other := groupsIn(PartitionFor(g, 50), 1)[0]
	mustTxnCommit(t, c, other, 1, map[int32]int64{0: 9})
	endTxn(t, c, logs, g, 1, true)
	endTxn(t, c, logs, g, 2, false)
	// Producer 3's transaction has no marker yet.

	for i, cc := range []*Coordinator{c, newTestCoordinator(t, logs)} {
		t.Logf("coordinator %d", i)
		expectOffset(t, cc, g, 0, 100, false)
		expectOffset(t, cc, g, 1, -1, false)
		expectOffset(t, cc, g, 3, 3, false)
		expectOffset(t, cc, g, 2, -1, true)
		expectOffset(t, cc, other, 0, 9, false)
	}

	// The reloaded coordinator settles the open transaction when its
	// marker comes.
	c2 := newTestCoordinator(t, logs)
	endTxn(t, c2, logs, g, 3, true)
	expectOffset(t, c2, g, 2, 300, false)
	c3 := newTestCoordinator(t, logs)
	expectOffset(t, c3, g, 2, 300, false)
}

// A producer id outlives its transactions: a marker settles only what was
// written before it.
func TestTxnMarkerSettlesOnlyEarlierOffsets(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	p := PartitionFor(g, 50)
	mustTxnCommit(t, c, g, 7, map[int32]int64{0: 10})
	m := marker(t, logs, g, 7, true)
	// The next transaction writes before the first marker is reported.
	mustTxnCommit(t, c, g, 7, map[int32]int64{0: 20})
	c.CompleteTxn(p, 7, true, m)
	expectOffset(t, c, g, 0, 10, true)
	c2 := newTestCoordinator(t, logs)
	expectOffset(t, c2, g, 0, 10, true)

	endTxn(t, c, logs, g, 7, false)
	expectOffset(t, c, g, 0, 10, false)
	c3 := newTestCoordinator(t, logs)
	expectOffset(t, c3, g, 0, 10, false)
}

func TestTxnOffsetCommitValidation(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	c := New(cfg, nil, logs.get, func(topic string) bool { return topic == "t" })
	if err := c.Load(logs.existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	if got := txnCommit(t, c, "", 7, -1, "", map[int32]int64{0: 1}); got[0] != kerr.InvalidGroupID.Code {
		t.Fatalf("empty group id: %d", got[0])
	}
	if got := txnCommit(t, c, "nobody", 7, 1, "m", map[int32]int64{0: 1}); got[0] != kerr.UnknownMemberID.Code {
		t.Fatalf("member of an unknown group: %d, want UNKNOWN_MEMBER_ID", got[0])
	}

	// A consumer group with one member.
	g := "cg"
	m := (<-join(c, g, "", 4)).MemberID
	jr := <-join(c, g, m, 4)
	if jr.ErrorCode != 0 {
		t.Fatalf("join: %d", jr.ErrorCode)
	}
	for _, tc := range []struct {
		name   string
		gen    int32
		member string
		want   int16
	}{
		{"stale generation", jr.Generation - 1, m, kerr.IllegalGeneration.Code},
		{"unknown member", jr.Generation, "ghost", kerr.UnknownMemberID.Code},
		{"current member", jr.Generation, m, 0},
		// Producers before KIP-447 send no member: accepted.
		{"no member", -1, "", 0},
	} {
		if got := txnCommit(t, c, g, 7, tc.gen, tc.member, map[int32]int64{0: 1}); got[0] != tc.want {
			t.Errorf("%s: error %d, want %d", tc.name, got[0], tc.want)
		}
	}

	// Static membership: another member id for the instance is fenced.
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.Group, req.ProducerID, req.Generation, req.MemberID = "static", 7, 1, "old"
	iid := "i-1"
	req.InstanceID = &iid
	jreq := kmsg.NewPtrJoinGroupRequest()
	jreq.Version = 5
	jreq.Group, jreq.InstanceID = "static", &iid
	jreq.SessionTimeoutMillis, jreq.RebalanceTimeoutMillis = 10000, 10000
	jreq.ProtocolType = "consumer"
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "range", []byte{0}
	jreq.Protocols = []kmsg.JoinGroupRequestProtocol{proto}
	jc := make(chan *kmsg.JoinGroupResponse, 1)
	c.JoinGroup(JoinRequest{Req: jreq, ClientID: "c"}, func(r *kmsg.JoinGroupResponse) { jc <- r })
	if r := within(t, jc, "static join"); r.ErrorCode != 0 {
		t.Fatalf("static join: %d", r.ErrorCode)
	}
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rt.Partitions = []kmsg.TxnOffsetCommitRequestTopicPartition{rp}
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{rt}
	done := make(chan *kmsg.TxnOffsetCommitResponse, 1)
	c.TxnOffsetCommit(req, func(r *kmsg.TxnOffsetCommitResponse) { done <- r })
	if r := within(t, done, "fenced commit"); r.Topics[0].Partitions[0].ErrorCode != kerr.FencedInstanceID.Code {
		t.Fatalf("old static member: %d, want FENCED_INSTANCE_ID", r.Topics[0].Partitions[0].ErrorCode)
	}

	// Per-partition errors; the good partition is still committed.
	big := strings.Repeat("x", cfg.MaxMetadataBytes+1)
	req = kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.Group, req.ProducerID = "simple", 8
	for _, topic := range []string{"t", "nope"} {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, 50
			if p == 1 {
				rp.Metadata = &big
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	c.TxnOffsetCommit(req, func(r *kmsg.TxnOffsetCommitResponse) { done <- r })
	r := within(t, done, "mixed commit")
	want := map[string][2]int16{
		"t":    {0, kerr.OffsetMetadataTooLarge.Code},
		"nope": {kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicOrPartition.Code},
	}
	for _, st := range r.Topics {
		for _, sp := range st.Partitions {
			if sp.ErrorCode != want[st.Topic][sp.Partition] {
				t.Errorf("%s-%d: error %d, want %d", st.Topic, sp.Partition, sp.ErrorCode, want[st.Topic][sp.Partition])
			}
		}
	}
	expectOffset(t, c, "simple", 0, -1, true)
	expectOffset(t, c, "simple", 1, -1, false)

	// Not the coordinator.
	c.UnloadPartition(PartitionFor("simple", 50))
	if got := txnCommit(t, c, "simple", 8, -1, "", map[int32]int64{0: 1}); got[0] != kerr.NotCoordinator.Code {
		t.Fatalf("unloaded partition: %d, want NOT_COORDINATOR", got[0])
	}
}

func TestTxnPendingOffsetsAcrossUnloadDeleteAndExpiry(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	p := PartitionFor(g, 50)
	mustTxnCommit(t, c, g, 7, map[int32]int64{0: 10})

	// Unload forgets; reload rebuilds from the log, and the marker
	// settles what was rebuilt.
	c.UnloadPartition(p)
	c.CompleteTxn(p, 7, true, marker(t, logs, g, 7, true)) // not ours: no-op
	if _, code := stable(c, g, 0); code != kerr.NotCoordinator.Code {
		t.Fatalf("unloaded: code %d", code)
	}
	if err := c.LoadPartition(p, logs.existing(p)); err != nil {
		t.Fatal(err)
	}
	expectOffset(t, c, g, 0, 10, false)

	// Expiry keeps a partition a transaction is writing, and its group.
	mustTxnCommit(t, c, g, 8, map[int32]int64{0: 20, 1: 21})
	c.ExpireOffsets(time.Now().Add(30 * 24 * time.Hour))
	expectOffset(t, c, g, 0, 10, true)
	if s := c.Describe(g); s.State != "Empty" {
		t.Fatalf("a group with a transaction in flight expired: %s", s.State)
	}

	// OffsetDelete takes the pending offsets of its partitions along.
	res, err := c.DeleteOffsets(g, map[string][]int32{"t": {1}}, nil)
	if err != nil || res["t"][1] != nil {
		t.Fatalf("DeleteOffsets: %v %v", res, err)
	}
	expectOffset(t, c, g, 1, -1, false)

	// DeleteGroup drops everything; the marker that comes later brings
	// nothing back, in memory or from the log.
	if err := c.DeleteGroup(g); err != nil {
		t.Fatal(err)
	}
	endTxn(t, c, logs, g, 8, true)
	expectOffset(t, c, g, 0, -1, false)
	expectOffset(t, c, g, 1, -1, false)
	c2 := newTestCoordinator(t, logs)
	expectOffset(t, c2, g, 0, -1, false)
	expectOffset(t, c2, g, 1, -1, false)
}

// snapLog is a memLog whose first read returns what the log held when it
// began, after release is closed.
type snapLog struct {
	*memLog
	once    sync.Once
	reading chan struct{}
	release chan struct{}
}

func (s *snapLog) Read(offset int64, max int) (storage.ReadResult, error) {
	res, err := s.memLog.Read(offset, max)
	s.once.Do(func() {
		close(s.reading)
		<-s.release
	})
	return res, err
}

// A marker reported while the partition loads is applied once the replay
// is done.
func TestTxnMarkerDuringLoad(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c0 := newTestCoordinator(t, logs)
	g := "txn-group"
	p := PartitionFor(g, 50)
	mustTxnCommit(t, c0, g, 7, map[int32]int64{0: 10})

	sl := &snapLog{memLog: logs.logs[p], reading: make(chan struct{}), release: make(chan struct{})}
	c := New(DefaultConfig(), nil, logs.get, func(string) bool { return true })
	t.Cleanup(c.Close)
	loaded := make(chan error, 1)
	go func() { loaded <- c.LoadPartition(p, sl) }()
	<-sl.reading
	// The replay's read has ended before the marker was appended.
	c.CompleteTxn(p, 7, true, marker(t, logs, g, 7, true))
	close(sl.release)
	if err := within(t, loaded, "load"); err != nil {
		t.Fatal(err)
	}
	expectOffset(t, c, g, 0, 10, false)
}

// Replay skips what it does not understand instead of failing the load.
func TestReplayToleratesUnknownBatches(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	g := "txn-group"
	p := PartitionFor(g, 50)
	if code := commit(t, c, g, -1, "", map[int32]int64{0: 5}); code != 0 {
		t.Fatal(code)
	}
	l, _ := logs.get(p)
	ctl := batchHeader{7, 0, attrTransactional | attrControl}
	for _, recs := range [][]kv{
		{{[]byte{0}, nil}},                      // short control key
		{{[]byte{0, 0, 0, 9}, []byte{1, 2, 3}}}, // unknown control type
		{{nil, nil}},                            // null key
	} {
		if _, err := l.Append(encodeBatchWith(ctl, recs, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	// Transactional records with unknown key versions and garbage values.
	txn := batchHeader{7, 0, attrTransactional}
	bad := []kv{{[]byte{0, 9, 1}, []byte{1}}, {offsetKey(g, "t", 0), []byte{0}}}
	if _, err := l.Append(encodeBatchWith(txn, bad, time.Now())); err != nil {
		t.Fatal(err)
	}
	c.CompleteTxn(p, 7, true, marker(t, logs, g, 7, true))
	c2 := newTestCoordinator(t, logs)
	expectOffset(t, c2, g, 0, 5, false)
}
