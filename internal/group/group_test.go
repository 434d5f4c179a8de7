package group

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

// memLog is an in-memory __consumer_offsets partition.
type memLog struct {
	mu   sync.Mutex
	data []byte
	next int64
	fail error // returned by Append when set
}

func (m *memLog) Append(b []byte) (storage.AppendResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return storage.AppendResult{}, m.fail
	}
	count := int64(binary.BigEndian.Uint32(b[57:]))
	binary.BigEndian.PutUint64(b[0:], uint64(m.next))
	res := storage.AppendResult{BaseOffset: m.next, LastOffset: m.next + count - 1}
	m.next += count
	m.data = append(m.data, b...)
	return res, nil
}
func (m *memLog) WaitDurable(context.Context, int64) error { return nil }
func (m *memLog) Read(offset int64, _ int) (storage.ReadResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if offset > 0 {
		return storage.ReadResult{}, nil // tests read everything at once
	}
	return storage.ReadResult{Records: append([]byte(nil), m.data...), HighWatermark: m.next}, nil
}
func (m *memLog) LogStartOffset() int64 { return 0 }
func (m *memLog) LogEndOffset() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next
}

type memLogs struct {
	mu   sync.Mutex
	logs map[int32]*memLog
}

func (ml *memLogs) get(p int32) (Log, error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.logs[p] == nil {
		ml.logs[p] = &memLog{}
	}
	return ml.logs[p], nil
}

func (ml *memLogs) existing(p int32) Log {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if l := ml.logs[p]; l != nil {
		return l
	}
	return nil
}

func newTestCoordinator(t *testing.T, logs *memLogs) *Coordinator {
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	if err := c.Load(logs.existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func commit(t *testing.T, c *Coordinator, group string, gen int32, member string, offsets map[int32]int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.Generation, req.MemberID = group, gen, member
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, o
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.OffsetCommitRequestTopic{rt}
	done := make(chan *kmsg.OffsetCommitResponse, 1)
	c.OffsetCommit(req, func(r *kmsg.OffsetCommitResponse) { done <- r })
	resp := <-done
	return resp.Topics[0].Partitions[0].ErrorCode
}

func TestPartitionForMatchesJavaHashCode(t *testing.T) {
	// Values printed by Java 17 for s.hashCode() and Kafka's
	// Utils.abs(h) % 50; "polygenelubricants" hashes to Integer.MIN_VALUE,
	// which Utils.abs maps to 0. The last two exercise UTF-16 code units.
	for _, tc := range []struct {
		group string
		want  int32
	}{
		{"", 0},
		{"a", 47},
		{"test-consumer-group", 31},
		{"console-consumer-44048", 21},
		{"polygenelubricants", 0},
		{"组", 2},
		{"😀x", 39},
	} {
		if got := PartitionFor(tc.group, 50); got != tc.want {
			t.Errorf("PartitionFor(%q) = %d, want %d", tc.group, got, tc.want)
		}
	}
}

func TestSimpleGroupCommitsSurviveReloadAndExpire(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	if code := commit(t, c, "simple", -1, "", map[int32]int64{0: 5, 1: 7}); code != 0 {
		t.Fatalf("simple commit: error %d", code)
	}
	// A generation >= 0 for a group that has no members is stale.
	if code := commit(t, c, "nobody", 3, "m", map[int32]int64{0: 1}); code != kerr.IllegalGeneration.Code {
		t.Fatalf("commit with a generation for an unknown group: error %d, want ILLEGAL_GENERATION", code)
	}

	c2 := newTestCoordinator(t, logs)
	got := c2.CommittedOffsets("simple", map[string][]int32{"t": {0, 1, 2}})
	if got["t"][0].Offset != 5 || got["t"][1].Offset != 7 || got["t"][2].Found {
		t.Fatalf("after reload: %+v", got)
	}

	// offsets.retention.minutes (7 days by default) removes them...
	c2.ExpireOffsets(time.Now().Add(6 * 24 * time.Hour))
	if got := c2.CommittedOffsets("simple", nil); len(got["t"]) != 2 {
		t.Fatalf("expired before the retention period: %+v", got)
	}
	c2.ExpireOffsets(time.Now().Add(8 * 24 * time.Hour))
	if got := c2.CommittedOffsets("simple", nil); len(got) != 0 {
		t.Fatalf("not expired after the retention period: %+v", got)
	}
	if s := c2.Describe("simple"); s.State != "Dead" {
		t.Fatalf("an expired simple group should be gone, is %s", s.State)
	}
	// ...with tombstones, so a reload does not bring them back.
	c3 := newTestCoordinator(t, logs)
	if got := c3.CommittedOffsets("simple", nil); len(got) != 0 {
		t.Fatalf("expired offsets came back after reload: %+v", got)
	}
}

func join(c *Coordinator, group, member string, version int16) chan *kmsg.JoinGroupResponse {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group, req.MemberID = group, member
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte{0, 1}
	req.Protocols = []kmsg.JoinGroupRequestProtocol{p}
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	c.JoinGroup(JoinRequest{Req: req, ClientID: "c", ClientHost: "/127.0.0.1"}, func(r *kmsg.JoinGroupResponse) { ch <- r })
	return ch
}

func TestJoinStateMachine(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)

	// KIP-394: a v4+ join without a member id gets one back first.
	r := <-join(c, "g", "", 4)
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		t.Fatalf("first join: error %d member %q", r.ErrorCode, r.MemberID)
	}
	m1 := r.MemberID
	r = <-join(c, "g", m1, 4)
	if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != m1 || len(r.Members) != 1 {
		t.Fatalf("join: %+v", r)
	}
	// An unknown member id is refused.
	if r := <-join(c, "g", "ghost", 4); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("ghost join: error %d", r.ErrorCode)
	}
	// A second member triggers a rebalance; the first learns from its heartbeat.
	r2 := <-join(c, "g", "", 4)
	ch2 := join(c, "g", r2.MemberID, 4)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", m1, 1
	if resp := c.Heartbeat(hb); resp.ErrorCode != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat during rebalance: %d", resp.ErrorCode)
	}
	ch1 := join(c, "g", m1, 4)
	a, b := <-ch1, <-ch2
	if a.Generation != 2 || b.Generation != 2 || a.LeaderID != m1 || len(a.Members) != 2 || len(b.Members) != 0 {
		t.Fatalf("second generation: %+v / %+v", a, b)
	}
	// A stale generation is ILLEGAL_GENERATION.
	hb.Generation = 1
	if resp := c.Heartbeat(hb); resp.ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("stale heartbeat: %d", resp.ErrorCode)
	}
	// The leader's sync completes the rebalance for both; an empty
	// assignment is a valid one.
	sync2 := make(chan *kmsg.SyncGroupResponse, 1)
	s2 := kmsg.NewPtrSyncGroupRequest()
	s2.Group, s2.MemberID, s2.Generation = "g", b.MemberID, 2
	c.SyncGroup(s2, func(r *kmsg.SyncGroupResponse) { sync2 <- r })
	s1 := kmsg.NewPtrSyncGroupRequest()
	s1.Group, s1.MemberID, s1.Generation = "g", m1, 2
	as := kmsg.NewSyncGroupRequestGroupAssignment()
	as.MemberID, as.MemberAssignment = m1, []byte{9}
	s1.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{as}
	sync1 := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(s1, func(r *kmsg.SyncGroupResponse) { sync1 <- r })
	if r := <-sync1; r.ErrorCode != 0 || len(r.MemberAssignment) != 1 {
		t.Fatalf("leader sync: %+v", r)
	}
	if r := <-sync2; r.ErrorCode != 0 || r.MemberAssignment == nil || len(r.MemberAssignment) != 0 {
		t.Fatalf("follower sync: %+v", r)
	}
	if s := c.Describe("g"); s.State != "Stable" || len(s.Members) != 2 || s.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe: %+v", s)
	}
	// Leaving twice: the second time the member is unknown.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version = 3
	lv.Group = "g"
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = b.MemberID
	lv.Members = []kmsg.LeaveGroupRequestMember{lm}
	if resp := c.LeaveGroup(lv); resp.Members[0].ErrorCode != 0 {
		t.Fatalf("leave: %+v", resp)
	}
	if resp := c.LeaveGroup(lv); resp.Members[0].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("second leave: %+v", resp)
	}
	if s := c.Describe("g"); s.State != "PreparingRebalance" {
		t.Fatalf("after a leave the group rebalances, state %s", s.State)
	}
}

func TestGroupMaxSize(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	cfg.MaxSize = 2
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	if err := c.Load(logs.existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Two members are handed ids (KIP-394); pending members count.
	a := <-join(c, "g", "", 4)
	b := <-join(c, "g", "", 4)
	if a.ErrorCode != kerr.MemberIDRequired.Code || b.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first two joins: %d, %d", a.ErrorCode, b.ErrorCode)
	}
	if r := <-join(c, "g", "", 4); r.ErrorCode != kerr.GroupMaxSizeReached.Code {
		t.Fatalf("third join: error %d, want GROUP_MAX_SIZE_REACHED", r.ErrorCode)
	}
	// The two admitted members still complete their join.
	ca, cb := join(c, "g", a.MemberID, 4), join(c, "g", b.MemberID, 4)
	if ra, rb := <-ca, <-cb; ra.ErrorCode != 0 || rb.ErrorCode != 0 || ra.Generation != 1 {
		t.Fatalf("admitted members: %+v / %+v", ra, rb)
	}
	if r := <-join(c, "g", "", 4); r.ErrorCode != kerr.GroupMaxSizeReached.Code {
		t.Fatalf("join to a full stable group: error %d", r.ErrorCode)
	}
}

// An assignment that cannot be stored is not handed out: every waiting
// member gets the error and the group rebalances (Kafka's behaviour).
func TestSyncGroupReportsStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int16
	}{
		{"too large", fmt.Errorf("%w: batch of 10485760 bytes", storage.ErrMessageTooLarge), kerr.UnknownServerError.Code},
		{"log dir failed", fmt.Errorf("%w: fsync: input/output error", storage.ErrStorageFailed), kerr.CoordinatorNotAvailable.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &memLogs{logs: map[int32]*memLog{}}
			c := newTestCoordinator(t, logs)
			r := <-join(c, "g", "", 4)
			m := r.MemberID
			if r = <-join(c, "g", m, 4); r.ErrorCode != 0 {
				t.Fatalf("join: %d", r.ErrorCode)
			}
			l, _ := logs.get(PartitionFor("g", DefaultConfig().Partitions))
			ml := l.(*memLog)
			ml.mu.Lock()
			ml.fail = tc.err
			ml.mu.Unlock()
			s := kmsg.NewPtrSyncGroupRequest()
			s.Group, s.MemberID, s.Generation = "g", m, r.Generation
			as := kmsg.NewSyncGroupRequestGroupAssignment()
			as.MemberID, as.MemberAssignment = m, []byte{1, 2, 3}
			s.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{as}
			got := make(chan *kmsg.SyncGroupResponse, 1)
			c.SyncGroup(s, func(r *kmsg.SyncGroupResponse) { got <- r })
			if resp := <-got; resp.ErrorCode != tc.want || len(resp.MemberAssignment) != 0 {
				t.Fatalf("sync: error %d assignment %v, want error %d and no assignment", resp.ErrorCode, resp.MemberAssignment, tc.want)
			}
			if st := c.Describe("g"); st.State != "PreparingRebalance" {
				t.Fatalf("after a failed store the group should rebalance, is %s", st.State)
			}
			// Once the log works again the member rejoins and gets its assignment.
			ml.mu.Lock()
			ml.fail = nil
			ml.mu.Unlock()
			if r = <-join(c, "g", m, 4); r.ErrorCode != 0 {
				t.Fatalf("rejoin: %d", r.ErrorCode)
			}
			s.Generation = r.Generation
			c.SyncGroup(s, func(r *kmsg.SyncGroupResponse) { got <- r })
			if resp := <-got; resp.ErrorCode != 0 || len(resp.MemberAssignment) != 3 {
				t.Fatalf("sync after recovery: %+v", resp)
			}
		})
	}
}
