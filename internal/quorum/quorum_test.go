package quorum

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/gregorhq/gregor/internal/guard"
)

// listSM records applied entries. Payloads are "id" strings; a repeated id
// (a proposal retried after a timeout) is applied once, as the controller's
// records will be idempotent.
type listSM struct {
	mu   sync.Mutex
	ids  []string
	seen map[string]bool
}

func newListSM() *listSM { return &listSM{seen: map[string]bool{}} }

func (s *listSM) Apply(_ uint64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := string(data)
	if s.seen[id] {
		return errors.New("duplicate")
	}
	s.seen[id] = true
	s.ids = append(s.ids, id)
	return nil
}

func (s *listSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.ids)
}

func (s *listSM) Restore(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = nil
	if err := json.Unmarshal(data, &s.ids); err != nil {
		return err
	}
	s.seen = map[string]bool{}
	for _, id := range s.ids {
		s.seen[id] = true
	}
	return nil
}

func (s *listSM) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// memNet is a network of in-memory transports that can drop, delay
// (and so reorder) messages and isolate nodes.
type memNet struct {
	mu       sync.Mutex
	nodes    map[uint64]*memTransport
	rng      *rand.Rand
	drop     float64
	maxDelay time.Duration
	isolated map[uint64]bool
	sent     atomic.Int64
	dropped  atomic.Int64
}

func newMemNet(seed int64) *memNet {
	return &memNet{nodes: map[uint64]*memTransport{}, rng: rand.New(rand.NewSource(seed)), isolated: map[uint64]bool{}}
}

type memTransport struct {
	net    *memNet
	id     uint64
	recv   Receiver
	closed atomic.Bool
}

func (n *memNet) transport(id uint64) *memTransport { return &memTransport{net: n, id: id} }

// Start joins the network: from now on messages to this id arrive here.
func (t *memTransport) Start(r Receiver) error {
	t.recv = r
	t.net.mu.Lock()
	t.net.nodes[t.id] = t
	t.net.mu.Unlock()
	return nil
}
func (t *memTransport) Close() error { t.closed.Store(true); return nil }

func (t *memTransport) Send(msgs []*pb.Message) {
	n := t.net
	for _, m := range msgs {
		n.sent.Add(1)
		n.mu.Lock()
		dst := n.nodes[m.GetTo()]
		lost := n.isolated[t.id] || n.isolated[m.GetTo()] || n.rng.Float64() < n.drop
		var delay time.Duration
		if n.maxDelay > 0 {
			delay = time.Duration(n.rng.Int63n(int64(n.maxDelay)))
		}
		n.mu.Unlock()
		if lost || dst == nil {
			n.dropped.Add(1)
			t.recv.ReportUnreachable(m.GetTo())
			if m.GetType() == pb.MessageType_MsgSnap {
				t.recv.ReportSnapshot(m.GetTo(), false)
			}
			continue
		}
		if m.GetType() == pb.MessageType_MsgSnap {
			t.recv.ReportSnapshot(m.GetTo(), true)
		}
		guard.AfterFunc(delay, nil, "memnet delivery", func() {
			if !dst.closed.Load() && dst.recv != nil {
				dst.recv.Step(m)
			}
		})
	}
}

func (n *memNet) isolate(id uint64, on bool) {
	n.mu.Lock()
	n.isolated[id] = on
	n.mu.Unlock()
}

// cluster is N voters in one test.
type cluster struct {
	mu    sync.Mutex // nodes and sms: the test and its proposers race on them
	t     *testing.T
	ids   []uint64
	dirs  map[uint64]string
	nodes map[uint64]*Node
	sms   map[uint64]*listSM
	trans func(id uint64) Transport
	tweak func(*Config)
}

func newCluster(t *testing.T, n int, trans func(id uint64) Transport, tweak func(*Config)) *cluster {
	c := &cluster{t: t, dirs: map[uint64]string{}, nodes: map[uint64]*Node{}, sms: map[uint64]*listSM{}, trans: trans, tweak: tweak}
	root := t.TempDir()
	for i := 1; i <= n; i++ {
		id := uint64(i)
		c.ids = append(c.ids, id)
		c.dirs[id] = filepath.Join(root, fmt.Sprintf("node-%d", i))
	}
	for _, id := range c.ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			if nd := c.node(id); nd != nil {
				nd.Stop()
			}
		}
	})
	return c
}

func (c *cluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) sm(id uint64) *listSM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

// take removes a node from the cluster (before stopping or killing it).
func (c *cluster) take(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	nd := c.nodes[id]
	c.nodes[id] = nil
	return nd
}

func (c *cluster) start(id uint64) {
	c.t.Helper()
	sm := newListSM()
	cfg := Config{ID: id, Voters: c.ids, Dir: c.dirs[id], SM: sm, Transport: c.trans(id),
		Tick: 10 * time.Millisecond, ElectionTicks: 10}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	nd, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("start node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = nd, sm
	c.mu.Unlock()
}

func (c *cluster) leader() uint64 {
	for _, id := range c.ids {
		if nd := c.node(id); nd != nil {
			if st := nd.Status(); st.Leader == id {
				return id
			}
		}
	}
	return 0
}

func (c *cluster) waitLeader() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if l := c.leader(); l != 0 {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader elected")
	return 0
}

// propose retries until the id is committed (a proposal can be dropped by
// a leader change or the network). It reports whether it was acknowledged.
func (c *cluster) propose(via uint64, id string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		nd := c.node(via)
		if l := c.leader(); l != 0 {
			nd = c.node(l)
		}
		if nd == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := nd.Propose(ctx, []byte(id))
		cancel()
		if err == nil || err.Error() == "duplicate" {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// converge waits until every running node applied the same list, and
// returns it.
func (c *cluster) converge() []string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ref []string
		same := true
		for i, id := range c.ids {
			if c.node(id) == nil {
				continue
			}
			l := c.sm(id).list()
			if i == 0 || ref == nil {
				ref = l
			} else if !slices.Equal(ref, l) {
				same = false
			}
		}
		if same {
			return ref
		}
		if time.Now().After(deadline) {
			for _, id := range c.ids {
				if c.node(id) != nil {
					c.t.Logf("node %d applied %d entries", id, len(c.sm(id).list()))
				}
			}
			c.t.Fatal("nodes did not converge")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAll asserts every acknowledged id is applied, exactly once.
func checkAll(t *testing.T, applied []string, acked []string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range applied {
		count[id]++
	}
	lost, dup := 0, 0
	for _, id := range acked {
		if count[id] == 0 {
			lost++
		}
	}
	for _, n := range count {
		if n > 1 {
			dup++
		}
	}
	if lost > 0 || dup > 0 {
		t.Fatalf("acknowledged %d, lost %d, duplicated %d", len(acked), lost, dup)
	}
}

func tcpCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	lns := map[uint64]net.Listener{}
	addrs := map[uint64]string{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[uint64(i)] = ln
		addrs[uint64(i)] = ln.Addr().String()
	}
	return newCluster(t, n, func(id uint64) Transport {
		ln := lns[id]
		if ln == nil { // a restart: listen again on the same address
			var err error
			if ln, err = net.Listen("tcp", addrs[id]); err != nil {
				t.Fatal(err)
			}
		}
		lns[id] = nil
		return NewTCPTransport(id, addrs, ln, nil)
	}, tweak)
}

// Three voters over real TCP: one leader, every proposal applied in the same
// order everywhere. Only the leader takes proposals: a follower refuses at
// once (no forwarding), so a stale leader's decisions never reach the log.
func TestThreeVotersOverTCP(t *testing.T) {
	c := tcpCluster(t, 3, nil)
	c.waitLeader()
	for _, id := range c.ids {
		if id == c.leader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err := c.node(id).Propose(ctx, []byte("via-follower"))
		cancel()
		if err == nil || time.Since(start) > time.Second {
			t.Fatalf("a follower's proposal: %v after %v, want a prompt refusal", err, time.Since(start))
		}
	}
	var acked []string
	for i := 0; i < 150; i++ {
		id := fmt.Sprintf("e%d", i)
		via := c.leader()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		idx, err := c.node(via).Propose(ctx, []byte(id))
		cancel()
		if err != nil {
			t.Fatalf("propose %s via %d: %v", id, via, err)
		}
		if idx == 0 {
			t.Fatal("index 0")
		}
		acked = append(acked, id)
	}
	applied := c.converge()
	checkAll(t, applied, acked)
	if !slices.Equal(applied, acked) {
		t.Fatal("sequential proposals applied out of order")
	}
	st := c.node(c.leader()).Status()
	if len(st.Voters) != 3 || st.Term == 0 || st.Commit < 150 || !st.LeaderReady {
		t.Fatalf("leader status: %+v", st)
	}
	for _, id := range c.ids {
		if fs := c.node(id).Status(); id != st.ID && fs.LeaderReady {
			t.Fatalf("follower %d says it is a ready leader: %+v", id, fs)
		}
	}
}

// Raft over a network that drops 20% of messages and delays (so reorders)
// the rest by up to 20 ms, with the leader isolated twice: everything
// acknowledged is applied exactly once, in the same order on every voter.
func TestTransportDropsAndDelays(t *testing.T) {
	mn := newMemNet(1)
	mn.drop, mn.maxDelay = 0.2, 20*time.Millisecond
	c := newCluster(t, 3, func(id uint64) Transport { return mn.transport(id) }, nil)
	c.waitLeader()
	var acked []string
	faults := 0
	for i := 0; i < 200; i++ {
		if i == 60 || i == 140 {
			l := c.waitLeader()
			mn.isolate(l, true)
			faults++
			// Proposals go on against the majority meanwhile.
			for j := 0; j < 20; j++ {
				id := fmt.Sprintf("p%d-%d", i, j)
				if c.propose(c.ids[0], id, 20*time.Second) {
					acked = append(acked, id)
				}
			}
			mn.isolate(l, false)
		}
		id := fmt.Sprintf("e%d", i)
		if c.propose(c.ids[i%3], id, 20*time.Second) {
			acked = append(acked, id)
		}
	}
	applied := c.converge()
	checkAll(t, applied, acked)
	t.Logf("acknowledged %d, applied %d, messages sent %d, dropped %d, leader isolations %d",
		len(acked), len(applied), mn.sent.Load(), mn.dropped.Load(), faults)
	if len(acked) < 200 {
		t.Fatalf("only %d of 240 proposals acknowledged", len(acked))
	}
}

// Voters restart from their WAL and snapshots: state, term and log survive,
// old WAL files are removed after snapshots, and the quorum goes on.
func TestRestartFromWALAndSnapshot(t *testing.T) {
	c := tcpCluster(t, 3, func(cfg *Config) { cfg.SnapshotEntries, cfg.KeepEntries = 40, 10 })
	c.waitLeader()
	var acked []string
	for i := 0; i < 130; i++ {
		id := fmt.Sprintf("a%d", i)
		if !c.propose(1, id, 10*time.Second) {
			t.Fatalf("proposal %s not acknowledged", id)
		}
		acked = append(acked, id)
	}
	before := c.converge()
	for _, id := range c.ids {
		c.take(id).Stop()
		snaps, _ := listSeq(c.dirs[id], "snap-", ".snap")
		wals, _ := listSeq(c.dirs[id], "wal-", ".log")
		if len(snaps) == 0 || len(wals) != 1 || wals[0] == 1 {
			t.Fatalf("node %d: snapshots %v, WAL files %v: want snapshots and one rotated WAL", id, snaps, wals)
		}
	}
	for _, id := range c.ids {
		c.start(id)
	}
	// Restored before any new entry: the state machine came back from disk.
	for _, id := range c.ids {
		if got := c.sm(id).list(); len(got) < 100 {
			t.Fatalf("node %d restored only %d entries", id, len(got))
		}
	}
	c.waitLeader()
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("b%d", i)
		if !c.propose(2, id, 10*time.Second) {
			t.Fatalf("proposal %s after restart not acknowledged", id)
		}
		acked = append(acked, id)
	}
	after := c.converge()
	checkAll(t, after, acked)
	if !slices.Equal(after[:len(before)], before) {
		t.Fatal("history changed across the restart")
	}
}

// Few but large entries (a broker restart leading 10,000 partitions
// commits one entry of 10,000 records) trigger snapshots by bytes
// (SnapshotBytes), far below SnapshotEntries, and the entries kept behind
// a snapshot are bounded by bytes too (SnapshotBytes/4), so the WAL a
// restart reads stays small; a restart restores the state.
func TestSnapshotByBytes(t *testing.T) {
	c := newCluster(t, 1, func(uint64) Transport { return newMemNet(1).transport(1) },
		func(cfg *Config) { cfg.SnapshotBytes = 64 << 10 })
	c.waitLeader()
	var acked []string
	for i := range 40 { // 40 entries of 4 KiB: 160 KiB, 40 entries
		id := fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 4<<10))
		if !c.propose(1, id, 10*time.Second) {
			t.Fatalf("proposal %d not acknowledged", i)
		}
		acked = append(acked, id)
	}
	c.converge()
	c.take(1).Stop()
	snaps, _ := listSeq(c.dirs[1], "snap-", ".snap")
	if len(snaps) == 0 {
		t.Fatalf("no snapshot after 160 KiB of entries with SnapshotBytes 64 KiB (SnapshotEntries %d)", 10_000)
	}
	wals, _ := listSeq(c.dirs[1], "wal-", ".log")
	var walBytes int64
	for _, seq := range wals {
		st, err := os.Stat(filepath.Join(c.dirs[1], fmt.Sprintf("wal-%016x.log", seq)))
		if err != nil {
			t.Fatal(err)
		}
		walBytes += st.Size()
	}
	// At most 16 KiB kept behind the last snapshot and under 64 KiB after it.
	if walBytes > 96<<10 {
		t.Fatalf("WAL files %v hold %d bytes after snapshots: entries behind a snapshot are not bounded by bytes", wals, walBytes)
	}
	c.start(1)
	if got := c.sm(1).list(); len(got) < 16 {
		t.Fatalf("restored %d entries, want at least the 16 a 64 KiB snapshot holds", len(got))
	}
	c.waitLeader()
	checkAll(t, c.converge(), acked)
}

// A voter killed after persisting a batch but before sending its messages
// (raft's ordering contract) comes back from disk and agrees with the
// others; nothing acknowledged is lost. Repeated on the leader and on a
// follower, several times.
func TestKillBetweenPersistAndSend(t *testing.T) {
	mn := newMemNet(2)
	var victim atomic.Uint64 // node to kill at its next persist
	killed := make(chan uint64, 1)
	var c *cluster
	c = newCluster(t, 3, func(id uint64) Transport { return mn.transport(id) }, func(cfg *Config) {
		id := cfg.ID
		cfg.afterPersist = func() bool {
			if victim.Load() == id && victim.CompareAndSwap(id, 0) {
				// Die here: this batch is on disk, none of its messages
				// leave the node and nothing more is written.
				killed <- id
				return true
			}
			return false
		}
	})
	var acked []string
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("k%d", i)
			if c.propose(1, id, 10*time.Second) {
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}
	}()
	for round := 0; round < 6; round++ {
		l := c.waitLeader()
		target := l
		if round%2 == 1 {
			target = c.ids[(int(l))%3] // a follower
		}
		victim.Store(target)
		var id uint64
		select {
		case id = <-killed:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: node %d never persisted a batch", round, target)
		}
		nd := c.take(id)
		nd.Stop() // the raft loop is already dead; this only closes the transport
		time.Sleep(50 * time.Millisecond)
		c.start(id) // from its WAL and snapshot, with a fresh transport
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	c.waitLeader()
	applied := c.converge()
	mu.Lock()
	defer mu.Unlock()
	checkAll(t, applied, acked)
	t.Logf("kills 6, acknowledged %d, applied %d", len(acked), len(applied))
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
}

// A WAL whose last record was torn by a crash is cut back to the last whole
// record; damage before the tail is refused.
func TestTornWALTail(t *testing.T) {
	mn := newMemNet(3)
	c := newCluster(t, 1, func(id uint64) Transport { return mn.transport(id) }, nil)
	c.waitLeader()
	for i := 0; i < 20; i++ {
		if !c.propose(1, fmt.Sprintf("t%d", i), 5*time.Second) {
			t.Fatal("proposal not acknowledged")
		}
	}
	c.take(1).Stop()
	path := filepath.Join(c.dirs[1], walName(1))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 50, 1, 2, 3, 4, 1, 9}) // a record cut short
	f.Close()
	c.start(1)
	c.waitLeader()
	if got := c.sm(1).list(); len(got) != 20 {
		t.Fatalf("after a torn tail: %d entries, want 20", len(got))
	}
	if !c.propose(1, "after", 5*time.Second) {
		t.Fatal("no progress after recovering a torn tail")
	}
	c.take(1).Stop()

	// Flip a byte in the middle: that is corruption, not a torn write.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Add a second file so the damaged one is not the newest.
	if err := os.WriteFile(filepath.Join(c.dirs[1], walName(2)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Start(Config{ID: 1, Voters: []uint64{1}, Dir: c.dirs[1], SM: newListSM(), Transport: mn.transport(1)})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("start over a corrupt WAL: %v, want ErrCorrupt", err)
	}
}
