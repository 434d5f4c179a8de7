package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

// groupsIn returns n group ids that live in partition p.
func groupsIn(p int32, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("g-%d", i)
		if PartitionFor(id, DefaultConfig().Partitions) == p {
			out = append(out, id)
		}
	}
	return out
}

func fetch(c *Coordinator, group string, parts ...int32) (map[int32]FetchedOffset, int16) {
	got, code := c.FetchOffsets(group, map[string][]int32{"t": parts})
	return got["t"], code
}

// joinCh is join with room for more than one answer, to catch a second one.
func joinCh(c *Coordinator, group, member string, version int16) chan *kmsg.JoinGroupResponse {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group, req.MemberID = group, member
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte{0, 1}
	req.Protocols = []kmsg.JoinGroupRequestProtocol{p}
	ch := make(chan *kmsg.JoinGroupResponse, 4)
	c.JoinGroup(JoinRequest{Req: req, ClientID: "c", ClientHost: "/127.0.0.1"}, func(r *kmsg.JoinGroupResponse) { ch <- r })
	return ch
}

func within[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no answer", what)
		panic("unreachable")
	}
}

func silent[T any](t *testing.T, ch chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: unexpected answer %+v", what, v)
	case <-time.After(d):
	}
}

func TestUnloadAndReloadPartition(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c := newTestCoordinator(t, logs)
	p1 := PartitionFor("a", 50)
	g1, g2 := "a", "test-consumer-group"
	if got := c.Owned(); len(got) != 50 {
		t.Fatalf("after Load the coordinator owns %d partitions, want 50", len(got))
	}
	if code := commit(t, c, g1, -1, "", map[int32]int64{0: 11}); code != 0 {
		t.Fatalf("commit %s: %d", g1, code)
	}
	if code := commit(t, c, g2, -1, "", map[int32]int64{0: 22}); code != 0 {
		t.Fatalf("commit %s: %d", g2, code)
	}
	// A consumer group in p1 too, with a stored assignment.
	cg := groupsIn(p1, 1)[0]
	m := (<-join(c, cg, "", 4)).MemberID
	jr := <-join(c, cg, m, 4)
	s := kmsg.NewPtrSyncGroupRequest()
	s.Group, s.MemberID, s.Generation = cg, m, jr.Generation
	as := kmsg.NewSyncGroupRequestGroupAssignment()
	as.MemberID, as.MemberAssignment = m, []byte{7, 7}
	s.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{as}
	sc := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(s, func(r *kmsg.SyncGroupResponse) { sc <- r })
	if r := within(t, sc, "sync"); r.ErrorCode != 0 {
		t.Fatalf("sync: %d", r.ErrorCode)
	}

	c.UnloadPartition(p1)

	if c.Owns(g1) || !c.Owns(g2) || slices.Contains(c.Owned(), p1) || len(c.Owned()) != 49 {
		t.Fatalf("after unloading %d: Owns(%s)=%v Owns(%s)=%v Owned=%v", p1, g1, c.Owns(g1), g2, c.Owns(g2), c.Owned())
	}
	if _, code := fetch(c, g1, 0); code != kerr.NotCoordinator.Code {
		t.Fatalf("OffsetFetch of an unloaded group: code %d, want NOT_COORDINATOR", code)
	}
	if got, code := fetch(c, g2, 0); code != 0 || got[0].Offset != 22 {
		t.Fatalf("OffsetFetch of a group still owned: %+v code %d", got, code)
	}
	if code := commit(t, c, g1, -1, "", map[int32]int64{0: 99}); code != kerr.NotCoordinator.Code {
		t.Fatalf("commit to an unloaded group: %d", code)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = cg, m, jr.Generation
	if r := c.Heartbeat(hb); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat: %d", r.ErrorCode)
	}
	c.SyncGroup(s, func(r *kmsg.SyncGroupResponse) { sc <- r })
	if r := within(t, sc, "sync"); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("sync: %d", r.ErrorCode)
	}
	if r := <-join(c, cg, m, 4); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("join: %d", r.ErrorCode)
	}
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version = 3
	lv.Group = cg
	if r := c.LeaveGroup(lv); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("leave: %d", r.ErrorCode)
	}
	if d := c.Describe(cg); d.ErrorCode != kerr.NotCoordinator.Code || d.State != "" {
		t.Fatalf("describe: %+v", d)
	}
	if err := c.DeleteGroup(g1); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("delete group: %v", err)
	}
	if _, err := c.DeleteOffsets(g1, map[string][]int32{"t": {0}}, nil); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("delete offsets: %v", err)
	}
	for _, gs := range c.List() {
		if gs.ID == g1 || gs.ID == cg {
			t.Fatalf("List shows %s of an unloaded partition", gs.ID)
		}
	}
	if got := c.CommittedOffsets(g1, nil); len(got) != 0 {
		t.Fatalf("CommittedOffsets of an unloaded group: %+v", got)
	}

	if err := c.LoadPartition(p1, logs.existing(p1)); err != nil {
		t.Fatal(err)
	}
	if got, code := fetch(c, g1, 0); code != 0 || got[0].Offset != 11 {
		t.Fatalf("after reload: %+v code %d", got, code)
	}
	d := c.Describe(cg)
	if d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != m || string(d.Members[0].Assignment) != "\x07\x07" {
		t.Fatalf("group metadata after reload: %+v", d)
	}
	// The member carries on with the same generation.
	if r := c.Heartbeat(hb); r.ErrorCode != 0 {
		t.Fatalf("heartbeat after reload: %d", r.ErrorCode)
	}
	if err := c.LoadPartition(p1, logs.existing(p1)); err != nil {
		t.Fatalf("loading an owned partition again: %v", err)
	}
	c.UnloadPartition(p1)
	c.UnloadPartition(p1) // a no-op
}

// A JoinGroup parked in the initial rebalance delay, a SyncGroup parked for
// the leader and a pending member are all dropped with their partition:
// the parked requests are answered NOT_COORDINATOR at once and no timer
// acts on the dropped group afterwards.
func TestUnloadAnswersParkedRequests(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = 150 * time.Millisecond
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	if err := c.Load(logs.existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := int32(7)
	ids := groupsIn(p, 3)
	delayed, syncing, pending := ids[0], ids[1], ids[2]

	// Two members of `syncing` join within the delay; the follower then
	// waits in SyncGroup for the leader's assignment.
	a, b := joinCh(c, syncing, "", 3), joinCh(c, syncing, "", 3)
	ra, rb := within(t, a, "join a"), within(t, b, "join b")
	if ra.ErrorCode != 0 || rb.ErrorCode != 0 {
		t.Fatalf("joins: %d %d", ra.ErrorCode, rb.ErrorCode)
	}
	follower := ra
	if ra.MemberID == ra.LeaderID {
		follower = rb
	}
	s := kmsg.NewPtrSyncGroupRequest()
	s.Group, s.MemberID, s.Generation = syncing, follower.MemberID, follower.Generation
	sc := make(chan *kmsg.SyncGroupResponse, 4)
	c.SyncGroup(s, func(r *kmsg.SyncGroupResponse) { sc <- r })
	silent(t, sc, 20*time.Millisecond, "follower sync before the leader's")

	// A v4 join leaves a pending member with its own timer.
	if r := <-joinCh(c, pending, "", 4); r.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("v4 join: %d", r.ErrorCode)
	}

	// The join of `delayed` waits for the initial delay.
	jc := joinCh(c, delayed, "", 3)
	silent(t, jc, 20*time.Millisecond, "join during the initial delay")

	l, _ := logs.get(p)
	end := l.LogEndOffset()
	start := time.Now()
	c.UnloadPartition(p)
	if r := within(t, jc, "parked join"); r.ErrorCode != kerr.NotCoordinator.Code || r.Generation != -1 {
		t.Fatalf("parked join: %+v", r)
	}
	if r := within(t, sc, "parked sync"); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("parked sync: %+v", r)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("parked requests answered after %v", took)
	}
	// Past the initial delay and a session of the restored members: no
	// second answer, nothing written for the dropped groups.
	time.Sleep(400 * time.Millisecond)
	silent(t, jc, 0, "parked join after unload")
	silent(t, sc, 0, "parked sync after unload")
	if got := l.LogEndOffset(); got != end {
		t.Fatalf("a timer wrote to the log of an unloaded partition: end offset %d, was %d", got, end)
	}
	for _, id := range ids {
		if d := c.Describe(id); d.ErrorCode != kerr.NotCoordinator.Code {
			t.Fatalf("%s after unload: %+v", id, d)
		}
	}
}

// durLog is a memLog whose fsync waits are held until release is closed.
type durLog struct {
	*memLog
	release chan struct{}
}

func (d *durLog) WaitDurable(ctx context.Context, _ int64) error {
	select {
	case <-d.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestUnloadAnswersCommitWaitingForFsync(t *testing.T) {
	dl := &durLog{memLog: &memLog{}, release: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	c := New(cfg, nil, func(int32) (Log, error) { return dl, nil }, func(string) bool { return true })
	g := "a"
	p := PartitionFor(g, cfg.Partitions)
	if err := c.LoadPartition(p, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.Generation = g, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 5
	rt.Partitions = []kmsg.OffsetCommitRequestTopicPartition{rp}
	req.Topics = []kmsg.OffsetCommitRequestTopic{rt}
	done := make(chan *kmsg.OffsetCommitResponse, 2)
	c.OffsetCommit(req, func(r *kmsg.OffsetCommitResponse) { done <- r })
	silent(t, done, 20*time.Millisecond, "commit before its fsync")
	c.UnloadPartition(p)
	if r := within(t, done, "commit"); r.Topics[0].Partitions[0].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("commit parked on fsync: %+v", r)
	}
	close(dl.release)
	silent(t, done, 100*time.Millisecond, "commit after its fsync")
	// The record was written: the next owner sees it.
	if err := c.LoadPartition(p, dl); err != nil {
		t.Fatal(err)
	}
	if got, code := fetch(c, g, 0); code != 0 || got[0].Offset != 5 {
		t.Fatalf("after reload: %+v %d", got, code)
	}
}

// blockLog is a log whose reads wait until release is closed.
type blockLog struct {
	*memLog
	reading chan struct{} // closed at the first read
	once    sync.Once
	release chan struct{}
}

func (b *blockLog) Read(offset int64, max int) (storage.ReadResult, error) {
	b.once.Do(func() { close(b.reading) })
	<-b.release
	return b.memLog.Read(offset, max)
}

func newBlockLog(m *memLog) *blockLog {
	return &blockLog{memLog: m, reading: make(chan struct{}), release: make(chan struct{})}
}

func TestLoadInProgress(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c0 := newTestCoordinator(t, logs)
	g := "a"
	p := PartitionFor(g, 50)
	if code := commit(t, c0, g, -1, "", map[int32]int64{0: 3}); code != 0 {
		t.Fatal(code)
	}

	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	t.Cleanup(c.Close)
	if _, code := fetch(c, g, 0); code != kerr.NotCoordinator.Code {
		t.Fatalf("before any load: code %d, want NOT_COORDINATOR", code)
	}

	bl := newBlockLog(logs.logs[p])
	loaded := make(chan error, 1)
	go func() { loaded <- c.LoadPartition(p, bl) }()
	<-bl.reading
	if got := c.Loading(); !slices.Equal(got, []int32{p}) || len(c.Owned()) != 0 || c.Owns(g) {
		t.Fatalf("while loading: Loading=%v Owned=%v Owns=%v", got, c.Owned(), c.Owns(g))
	}
	const inProgress = 14
	if _, code := fetch(c, g, 0); code != inProgress {
		t.Fatalf("OffsetFetch while loading: code %d", code)
	}
	if code := commit(t, c, g, -1, "", map[int32]int64{0: 4}); code != inProgress {
		t.Fatalf("commit while loading: %d", code)
	}
	if r := <-join(c, g, "", 4); r.ErrorCode != inProgress {
		t.Fatalf("join while loading: %d", r.ErrorCode)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group = g
	if r := c.Heartbeat(hb); r.ErrorCode != inProgress {
		t.Fatalf("heartbeat while loading: %d", r.ErrorCode)
	}
	if d := c.Describe(g); d.ErrorCode != inProgress {
		t.Fatalf("describe while loading: %+v", d)
	}
	if err := c.DeleteGroup(g); !errors.Is(err, kerr.CoordinatorLoadInProgress) {
		t.Fatalf("delete while loading: %v", err)
	}
	if ls := c.List(); len(ls) != 0 {
		t.Fatalf("List while loading: %+v", ls)
	}
	// A second load of the same partition does not wait or replay twice.
	if err := c.LoadPartition(p, bl); err != nil {
		t.Fatal(err)
	}
	close(bl.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if got, code := fetch(c, g, 0); code != 0 || got[0].Offset != 3 {
		t.Fatalf("after the load: %+v %d", got, code)
	}
	if !slices.Equal(c.Owned(), []int32{p}) || len(c.Loading()) != 0 {
		t.Fatalf("after the load: Owned=%v Loading=%v", c.Owned(), c.Loading())
	}
}

func TestUnloadDuringLoad(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	c0 := newTestCoordinator(t, logs)
	g := "a"
	p := PartitionFor(g, 50)
	if code := commit(t, c0, g, -1, "", map[int32]int64{0: 3}); code != 0 {
		t.Fatal(code)
	}
	cfg := DefaultConfig()
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	t.Cleanup(c.Close)
	bl := newBlockLog(logs.logs[p])
	loaded := make(chan error, 1)
	go func() { loaded <- c.LoadPartition(p, bl) }()
	<-bl.reading
	c.UnloadPartition(p)
	close(bl.release)
	if err := <-loaded; !errors.Is(err, ErrUnloaded) {
		t.Fatalf("load interrupted by an unload: %v", err)
	}
	if _, code := fetch(c, g, 0); code != kerr.NotCoordinator.Code || len(c.Owned()) != 0 || len(c.Loading()) != 0 {
		t.Fatalf("after the abandoned load: code %d Owned=%v Loading=%v", code, c.Owned(), c.Loading())
	}
	// Loading it again works.
	if err := c.LoadPartition(p, logs.existing(p)); err != nil {
		t.Fatal(err)
	}
	if got, code := fetch(c, g, 0); code != 0 || got[0].Offset != 3 {
		t.Fatalf("after the load: %+v %d", got, code)
	}
}

func TestListOnlyOwnedGroups(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	cfg := DefaultConfig()
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	t.Cleanup(c.Close)
	g1, g2 := "a", "test-consumer-group"
	p1 := PartitionFor(g1, 50)
	// A partition whose log does not exist yet is owned: the first commit
	// creates it.
	if err := c.LoadPartition(p1, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Owned(), []int32{p1}) {
		t.Fatalf("Owned=%v", c.Owned())
	}
	if code := commit(t, c, g1, -1, "", map[int32]int64{0: 1}); code != 0 {
		t.Fatalf("commit to an owned group: %d", code)
	}
	if code := commit(t, c, g2, -1, "", map[int32]int64{0: 1}); code != kerr.NotCoordinator.Code {
		t.Fatalf("commit to a group not owned: %d", code)
	}
	if ls := c.List(); len(ls) != 1 || ls[0].ID != g1 {
		t.Fatalf("List: %+v", ls)
	}
	if err := c.LoadPartition(PartitionFor(g2, 50), logs.existing(PartitionFor(g2, 50))); err != nil {
		t.Fatal(err)
	}
	if code := commit(t, c, g2, -1, "", map[int32]int64{0: 1}); code != 0 {
		t.Fatalf("commit after loading: %d", code)
	}
	if ls := c.List(); len(ls) != 2 {
		t.Fatalf("List: %+v", ls)
	}
	c.UnloadPartition(p1)
	if ls := c.List(); len(ls) != 1 || ls[0].ID != g2 {
		t.Fatalf("List after unload: %+v", ls)
	}
	if err := c.LoadPartition(-1, nil); err == nil {
		t.Fatal("loaded partition -1")
	}
}

// Requests and timers racing with a partition moving away and back (run
// with -race): every request is answered, nothing deadlocks.
func TestUnloadRacesRequests(t *testing.T) {
	logs := &memLogs{logs: map[int32]*memLog{}}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelay = time.Millisecond
	cfg.MinSessionTimeout = time.Millisecond
	c := New(cfg, nil, logs.get, func(string) bool { return true })
	if err := c.Load(logs.existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := int32(3)
	ids := groupsIn(p, 4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			member := ""
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req := kmsg.NewPtrJoinGroupRequest()
				req.Version = 5
				req.Group, req.MemberID = id, member
				req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 20, 20
				req.ProtocolType = "consumer"
				pr := kmsg.NewJoinGroupRequestProtocol()
				pr.Name = "range"
				req.Protocols = []kmsg.JoinGroupRequestProtocol{pr}
				jc := make(chan *kmsg.JoinGroupResponse, 2)
				c.JoinGroup(JoinRequest{Req: req}, func(r *kmsg.JoinGroupResponse) { jc <- r })
				r := within(t, jc, "join")
				member = r.MemberID
				if r.ErrorCode == 0 {
					s := kmsg.NewPtrSyncGroupRequest()
					s.Group, s.MemberID, s.Generation = id, member, r.Generation
					sc := make(chan *kmsg.SyncGroupResponse, 2)
					c.SyncGroup(s, func(r *kmsg.SyncGroupResponse) { sc <- r })
					within(t, sc, "sync")
				} else if r.ErrorCode != kerr.MemberIDRequired.Code {
					member = ""
				}
				commit(t, c, id, -1, "", map[int32]int64{int32(i): int64(n)})
				c.FetchOffsets(id, nil)
				c.Describe(id)
			}
		}()
	}
	for i := 0; i < 50; i++ {
		c.UnloadPartition(p)
		time.Sleep(time.Millisecond)
		if err := c.LoadPartition(p, logs.existing(p)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
