package quorum

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/gregorhq/gregor/internal/guard"
)

// StateMachine is what the quorum replicates. Apply is called for every
// committed entry, in log order, on every voter, from one goroutine; it
// must be deterministic (its result may depend only on the state and the
// data). The error it returns goes back to the proposer only; the entry
// is committed either way.
type StateMachine interface {
	Apply(index uint64, data []byte) error
	// Snapshot returns the whole state as of the last applied entry.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's.
	Restore(data []byte) error
}

// Config configures a Node.
type Config struct {
	ID uint64
	// Voters are the initial voter ids (controller.quorum.voters). Used
	// only when the directory is new; afterwards the log is the truth.
	Voters []uint64
	Dir    string
	SM     StateMachine
	// Transport carries messages to the other voters.
	Transport Transport
	Logger    *slog.Logger
	// Tick is the raft tick (default 100 ms); elections time out after
	// ElectionTicks (default 10) and leaders heartbeat every tick.
	Tick          time.Duration
	ElectionTicks int
	// SnapshotEntries is how many applied entries trigger a snapshot
	// (default 10,000); KeepEntries stay in the log behind it (1,000), at
	// most SnapshotBytes/4 of them.
	SnapshotEntries uint64
	KeepEntries     uint64
	// SnapshotBytes is how many bytes of applied entries trigger a
	// snapshot too (Kafka's metadata.log.max.record.bytes.between.snapshots,
	// default 20 MiB): one entry can carry thousands of records (a restart
	// of a broker leading 10,000 partitions), and a restart replays every
	// byte behind the last snapshot.
	SnapshotBytes uint64

	// afterPersist, for tests, runs after a Ready batch is durable and
	// before its messages are sent; returning true kills the node right
	// there, as kill -9 would: nothing of the batch is sent or applied.
	afterPersist func() (die bool)
}

// ErrNotLeader is returned to a proposal whose node lost leadership before
// the entry was applied: it may or may not be committed later.
var ErrNotLeader = errors.New("quorum: leadership lost; the proposal's outcome is unknown")

// ErrStopped is returned once the node has stopped.
var ErrStopped = errors.New("quorum: node stopped")

// errKilled ends the raft loop where a test's afterPersist killed it.
var errKilled = errors.New("quorum: killed by test")

// Node is one voter of the metadata quorum.
type Node struct {
	cfg     Config
	log     *slog.Logger
	raft    raft.Node
	storage *diskStorage
	tr      Transport

	applied  uint64 // raft loop only
	snapshot uint64 // index of the last snapshot; raft loop only
	// sinceSnapshot is the bytes of entries applied after it (those
	// replayed at start included); raft loop only.
	sinceSnapshot uint64
	// replayed is the last entry Start applied to the state machine from
	// the local log (up to the persisted commit index): the raft loop
	// gets those entries again and must not apply them twice.
	replayed uint64
	confSt   *pb.ConfState

	seq     atomic.Uint64
	mu      sync.Mutex
	waiters map[uint64]chan result

	stop    chan struct{}
	done    chan struct{}
	failed  atomic.Pointer[error]
	stopped sync.Once

	status atomic.Pointer[Status]
	// readyTerm is the term whose first entry (the empty entry a new leader
	// appends) this node has applied: from then on its state machine holds
	// everything committed before, so it may decide as leader.
	readyTerm atomic.Uint64
}

type result struct {
	index uint64
	err   error
}

// Start opens (or creates) the quorum's directory and starts the voter.
func Start(cfg Config) (*Node, error) {
	if cfg.ID == 0 {
		return nil, errors.New("quorum: node id 0 is reserved; node.id must be >= 1 for a voter")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.ElectionTicks <= 1 {
		cfg.ElectionTicks = 10
	}
	if cfg.SnapshotEntries == 0 {
		cfg.SnapshotEntries = 10_000
	}
	if cfg.KeepEntries == 0 {
		cfg.KeepEntries = 1_000
	}
	if cfg.SnapshotBytes == 0 {
		cfg.SnapshotBytes = 20 << 20
	}
	st, existed, err := openStorage(cfg.Dir, cfg.KeepEntries, cfg.SnapshotBytes/4)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger, storage: st, tr: cfg.Transport,
		waiters: map[uint64]chan result{},
		stop:    make(chan struct{}), done: make(chan struct{}),
	}
	snap, err := st.Snapshot()
	if err != nil {
		return nil, err
	}
	if !raft.IsEmptySnap(snap) {
		if err := cfg.SM.Restore(snap.GetData()); err != nil {
			return nil, fmt.Errorf("quorum: restore snapshot %d: %w", snap.GetMetadata().GetIndex(), err)
		}
		n.applied = snap.GetMetadata().GetIndex()
		n.snapshot = n.applied
		n.confSt = snap.GetMetadata().GetConfState()
	}
	// Apply what the local log already knows is committed before raft
	// starts, so that when Start returns the state machine is at least as
	// new as anything this node applied before it stopped (the hard
	// state's commit is persisted before its entries are applied).
	if err := n.replay(); err != nil {
		return nil, err
	}
	rc := &raft.Config{
		ID:              cfg.ID,
		ElectionTick:    cfg.ElectionTicks,
		HeartbeatTick:   1,
		Storage:         st,
		Applied:         n.applied,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		// A leader that loses touch with a majority steps down, so a
		// partitioned leader stops accepting proposals (no stale leader).
		CheckQuorum: true,
		// A node rejoining after a partition does not disrupt a healthy
		// leader with a higher term.
		PreVote:                   true,
		MaxUncommittedEntriesSize: 64 << 20,
		// Only the leader appends proposals: a node that lost leadership
		// (a paused controller waking up) must not have its stale
		// decisions forwarded to the new leader and committed.
		DisableProposalForwarding: true,
		Logger:                    raftLogger{cfg.Logger},
	}
	if existed {
		n.raft = raft.RestartNode(rc)
	} else {
		peers := make([]raft.Peer, 0, len(cfg.Voters))
		for _, id := range cfg.Voters {
			peers = append(peers, raft.Peer{ID: id})
		}
		n.raft = raft.StartNode(rc, peers)
	}
	if err := n.tr.Start(n); err != nil {
		n.raft.Stop()
		st.close()
		return nil, err
	}
	guard.Go(n.log, "quorum raft loop", n.run, func(v any) {
		n.fail(fmt.Errorf("raft loop panic: %v", v))
		close(n.done)
	})
	return n, nil
}

// replay applies the committed entries of the local log after the
// snapshot to the state machine.
func (n *Node) replay() error {
	hs, _, err := n.storage.InitialState()
	if err != nil {
		return err
	}
	commit := hs.GetCommit()
	if last, _ := n.storage.LastIndex(); commit > last {
		commit = last
	}
	for next := n.applied + 1; next <= commit; {
		ents, err := n.storage.Entries(next, commit+1, 64<<20)
		if err != nil {
			return fmt.Errorf("quorum: replay from %d: %w", next, err)
		}
		for _, e := range ents {
			if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) >= 16 {
				_ = n.cfg.SM.Apply(e.GetIndex(), e.GetData()[16:])
			}
			n.replayed = e.GetIndex()
			next = e.GetIndex() + 1
		}
	}
	return nil
}

// Applied returns the index of the last entry applied to the state
// machine.
func (n *Node) Applied() uint64 {
	st := n.Status()
	return max(st.Applied, n.replayed)
}

// Propose replicates data and waits until it is committed and applied
// here, returning its index and the state machine's result.
func (n *Node) Propose(ctx context.Context, data []byte) (uint64, error) {
	if err := n.Err(); err != nil {
		return 0, err
	}
	seq := n.seq.Add(1)
	buf := make([]byte, 16+len(data))
	binary.BigEndian.PutUint64(buf, n.cfg.ID)
	binary.BigEndian.PutUint64(buf[8:], seq)
	copy(buf[16:], data)
	ch := make(chan result, 1)
	n.mu.Lock()
	n.waiters[seq] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, seq)
		n.mu.Unlock()
	}()
	if err := n.raft.Propose(ctx, buf); err != nil {
		return 0, err
	}
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.done:
		return 0, ErrStopped
	}
}

// failWaiters answers every pending proposal with err.
func (n *Node) failWaiters(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for seq, ch := range n.waiters {
		select {
		case ch <- result{err: err}:
		default:
		}
		delete(n.waiters, seq)
	}
}

// Err is the failure that stopped the node, if any.
func (n *Node) Err() error {
	if p := n.failed.Load(); p != nil {
		return *p
	}
	select {
	case <-n.done:
		return ErrStopped
	default:
		return nil
	}
}

func (n *Node) fail(err error) {
	if n.failed.CompareAndSwap(nil, &err) {
		n.log.Error("metadata quorum node failed; stopping it", "err", err)
	}
}

// Step, ReportUnreachable and ReportSnapshot make Node the transport's
// Receiver.
func (n *Node) Step(m *pb.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.raft.Step(ctx, m)
}

func (n *Node) ReportUnreachable(id uint64) { n.raft.ReportUnreachable(id) }

func (n *Node) ReportSnapshot(id uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	n.raft.ReportSnapshot(id, st)
}

// Stop stops the voter: no more entries are applied, the WAL is closed.
func (n *Node) Stop() {
	n.stopped.Do(func() {
		close(n.stop)
		<-n.done
		n.tr.Close()
	})
}

func (n *Node) run() {
	defer close(n.done)
	defer n.raft.Stop()
	defer n.storage.close()
	ticker := time.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	// A quorum of one need not wait out an election timeout: it starts
	// its election as soon as its configuration is applied (raft refuses
	// to campaign before), so a single node serves in milliseconds.
	alone := len(n.cfg.Voters) == 1 && n.cfg.Voters[0] == n.cfg.ID
	for {
		if alone && n.confSt != nil || alone && n.applied > 0 {
			alone = false
			guard.Go(n.log, "quorum campaign", func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = n.raft.Campaign(ctx)
			}, nil)
		}
		select {
		case <-ticker.C:
			n.raft.Tick()
		case rd := <-n.raft.Ready():
			if rd.SoftState != nil && rd.SoftState.RaftState != raft.StateLeader {
				// Proposals waiting here may never commit (a new leader
				// may overwrite them) or may commit later: either way
				// their proposer learns now that the outcome is unknown.
				n.failWaiters(ErrNotLeader)
			}
			if err := n.handle(rd); err != nil {
				if err != errKilled {
					n.fail(err)
				}
				return
			}
			n.raft.Advance()
		case <-n.stop:
			return
		}
	}
}

// handle processes one Ready batch in the order the raft package requires:
// persist, then send, then apply.
func (n *Node) handle(rd raft.Ready) error {
	if err := n.storage.save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return fmt.Errorf("quorum: persist: %w", err)
	}
	if n.cfg.afterPersist != nil && n.cfg.afterPersist() {
		return errKilled
	}
	n.tr.Send(rd.Messages)
	if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
		meta := rd.Snapshot.GetMetadata()
		if err := n.cfg.SM.Restore(rd.Snapshot.GetData()); err != nil {
			return fmt.Errorf("quorum: restore snapshot %d: %w", meta.GetIndex(), err)
		}
		n.applied, n.snapshot, n.confSt = meta.GetIndex(), meta.GetIndex(), meta.GetConfState()
		n.sinceSnapshot = 0
	}
	for _, e := range rd.CommittedEntries {
		if e.GetIndex() <= n.applied {
			continue
		}
		switch e.GetType() {
		case pb.EntryType_EntryNormal:
			if e.GetIndex() <= n.replayed {
				break // applied by replay at start
			}
			n.applyNormal(e)
		case pb.EntryType_EntryConfChange:
			var cc pb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("quorum: conf change at %d: %w", e.GetIndex(), err)
			}
			n.confSt = n.raft.ApplyConfChange(&cc)
		case pb.EntryType_EntryConfChangeV2:
			var cc pb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("quorum: conf change at %d: %w", e.GetIndex(), err)
			}
			n.confSt = n.raft.ApplyConfChange(&cc)
		}
		n.applied = e.GetIndex()
		n.sinceSnapshot += uint64(len(e.GetData()))
	}
	n.publishStatus()
	if n.applied-n.snapshot >= n.cfg.SnapshotEntries || n.sinceSnapshot >= n.cfg.SnapshotBytes {
		data, err := n.cfg.SM.Snapshot()
		if err != nil {
			return fmt.Errorf("quorum: snapshot: %w", err)
		}
		if err := n.storage.snapshot(n.applied, n.confSt, data); err != nil {
			return fmt.Errorf("quorum: snapshot: %w", err)
		}
		n.snapshot, n.sinceSnapshot = n.applied, 0
	}
	return nil
}

func (n *Node) applyNormal(e *pb.Entry) {
	data := e.GetData()
	if len(data) == 0 {
		// A new leader's empty entry: once applied, everything committed
		// in earlier terms is applied too.
		n.readyTerm.Store(e.GetTerm())
		return
	}
	if len(data) < 16 {
		n.log.Error("skipping malformed metadata entry", "index", e.GetIndex(), "bytes", len(data))
		return
	}
	from, seq := binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])
	err := n.cfg.SM.Apply(e.GetIndex(), data[16:])
	if from != n.cfg.ID {
		return
	}
	n.mu.Lock()
	ch := n.waiters[seq]
	n.mu.Unlock()
	if ch != nil {
		ch <- result{e.GetIndex(), err}
	}
}

// Status is a snapshot of the voter's raft state, for DescribeQuorum and
// the metadata-quorum tool.
type Status struct {
	ID      uint64
	Leader  uint64 // 0 when unknown
	Term    uint64
	Commit  uint64
	Applied uint64
	// LeaderReady: this node leads and has applied its term's first entry,
	// so its state machine reflects everything committed before its term.
	// A leader decides (validates against its state) only when ready.
	LeaderReady bool
	// Voters lists every voter with its log end as the leader knows it
	// (only a leader knows the others'; elsewhere they are 0).
	Voters []VoterStatus
}

// VoterStatus is one voter's replication progress.
type VoterStatus struct {
	ID    uint64
	Match uint64
}

func (n *Node) publishStatus() {
	rs := n.raft.Status()
	st := &Status{ID: n.cfg.ID, Leader: rs.Lead, Term: rs.HardState.GetTerm(), Commit: rs.HardState.GetCommit(), Applied: n.applied}
	st.LeaderReady = rs.Lead == n.cfg.ID && n.readyTerm.Load() == st.Term
	if rs.Progress != nil {
		for id, pr := range rs.Progress {
			st.Voters = append(st.Voters, VoterStatus{ID: id, Match: pr.Match})
		}
	} else if n.confSt != nil {
		for _, id := range n.confSt.GetVoters() {
			st.Voters = append(st.Voters, VoterStatus{ID: id})
		}
	}
	sort.Slice(st.Voters, func(i, j int) bool { return st.Voters[i].ID < st.Voters[j].ID })
	n.status.Store(st)
}

// Status returns the state as of the last Ready batch.
func (n *Node) Status() Status {
	if st := n.status.Load(); st != nil {
		return *st
	}
	return Status{ID: n.cfg.ID}
}

// raftLogger sends the raft package's logs to slog at matching levels.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any) {
	r.l.Error(fmt.Sprintf(f, v...))
	panic(fmt.Sprintf(f, v...))
}
func (r raftLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }

// IsLeader reports whether this node leads and has applied its term's
// first entry (Status().LeaderReady): what a controller needs to decide.
func (n *Node) IsLeader() bool { return n.Status().LeaderReady }
