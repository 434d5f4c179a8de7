// Package txn is the transaction coordinator (KIP-98, with KIP-360 producer
// recovery and transactions v2 of KIP-890): the state of each transactional
// id, persisted in the compacted internal topic __transaction_state in
// Kafka's record schemas (records.go), and the two-phase completion of a
// transaction: Prepare{Commit,Abort} made durable, markers written to every
// partition of the transaction (MarkerWriter), then Complete{Commit,Abort}.
//
// Ownership mirrors the group coordinator: a transactional id lives in
// partition PartitionFor(id, Config.Partitions) of __transaction_state and is
// served only while this coordinator owns that partition. LoadPartition
// replays the partition (requests for its ids get COORDINATOR_LOAD_IN_PROGRESS
// meanwhile) and then resumes what the previous owner left half done: a
// Prepare* state gets its markers and its Complete* record; a
// PrepareEpochFence (never written by us, nor by Kafka) is aborted.
// UnloadPartition drops the partition's ids (requests get NOT_COORDINATOR)
// and stops their background work (marker retries, pending writes).
//
// Concurrency. Coordinator.mu guards the partition table (and each
// partState's txns map); it is a leaf: never held while taking txnMeta.mu,
// calling storage, the producer id allocator or the MarkerWriter. Each
// transactional id has a txnMeta whose mu guards its state. Transitions of
// one id are serialized by txnMeta.pending: the handler decides the next
// state under txnMeta.mu, sets pending, appends the record (under the id's
// lock, so one id's records reach the log in order) and then releases the
// lock while it waits for durability (WaitDurable), so other ids (and reads
// of this one) are never blocked by a replication wait. While pending, other
// transitions of the id answer CONCURRENT_TRANSACTIONS, as Kafka does. Lock
// order: txnMeta.mu, then Coordinator.mu (an expiring id removes itself from
// the map) or storage's locks. The wait for durability and the marker loop
// use the partition's context, not the request's, so a disconnecting client
// cannot leave memory behind a record already in the log; unloading the
// partition cancels them. A txnMeta dropped from the map (unload, expiry) is
// marked removed under its lock; a request that finds it removed re-looks the
// id up or answers NOT_COORDINATOR. Every goroutine runs under guard.Go.
package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/storage"
)

// TopicName is the internal topic holding transaction state.
const TopicName = "__transaction_state"

// Config are the coordinator settings (Kafka property in comments).
type Config struct {
	Partitions        int32         // transaction.state.log.num.partitions (50)
	OffsetsPartitions int32         // offsets.topic.num.partitions (50), for AddOffsetsToTxn
	MaxTimeout        time.Duration // transaction.max.timeout.ms (15 min)
	IDExpiration      time.Duration // transactional.id.expiration.ms (7 days)
	AbortInterval     time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s)
	ExpireInterval    time.Duration // transaction.remove.expired.transaction.cleanup.interval.ms (1 h)
	// TransactionVersion is the finalized transaction.version feature level
	// the cluster advertises (0-2). Kafka writes TransactionLogValue v1 from
	// level 1; at 0 we still write v1 for transactions of TV2 clients.
	TransactionVersion int16
	Now                func() time.Time // nil = time.Now
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		Partitions:        50,
		OffsetsPartitions: 50,
		MaxTimeout:        15 * time.Minute,
		IDExpiration:      7 * 24 * time.Hour,
		AbortInterval:     10 * time.Second,
		ExpireInterval:    time.Hour,
	}
}

// Log is one __transaction_state partition (the shape of group.Log).
// Append+WaitDurable = the record is committed; Read reads what this
// replica has.
type Log interface {
	Append(records []byte) (storage.AppendResult, error)
	WaitDurable(ctx context.Context, offset int64) error
	Read(offset int64, maxBytes int) (storage.ReadResult, error)
	LogStartOffset() int64
	LogEndOffset() int64
}

// TopicPartition names one partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Markers asks for COMMIT or ABORT markers on every partition of a
// transaction.
type Markers struct {
	TransactionalID    string
	ProducerID         int64
	ProducerEpoch      int16
	Commit             bool
	CoordinatorEpoch   int32
	TransactionVersion int8 // 0/1 = TV1, 2 = TV2 (WriteTxnMarkers v2 field)
	Partitions         []TopicPartition
}

// MarkerWriter writes markers to every partition's leader, each acknowledged
// like acks=all. nil: every partition has its marker or no longer exists; an
// error: retry later.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, m Markers) error
}

// State is a transaction state, numbered as Kafka's TransactionState ids
// (the TransactionStatus of the log value).
type State int8

// The states (Kafka's ids).
const (
	StateEmpty             State = 0
	StateOngoing           State = 1
	StatePrepareCommit     State = 2
	StatePrepareAbort      State = 3
	StateCompleteCommit    State = 4
	StateCompleteAbort     State = 5
	StateDead              State = 6
	StatePrepareEpochFence State = 7
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort",
	"CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

// String is Kafka's state name (DescribeTransactions, ListTransactions).
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("Unknown(%d)", int8(s))
}

const (
	noProducerID    = int64(-1)
	noProducerEpoch = int16(-1)
)

// epochExhausted: Kafka keeps MaxInt16 for the coordinator, so that it can
// always fence; a client epoch at MaxInt16-1 needs a new producer id.
func epochExhausted(e int16) bool { return e >= math.MaxInt16-1 }

// Errors of LoadPartition.
var (
	ErrUnloaded = errors.New("txn: partition unloaded while it was loading")
	ErrClosed   = errors.New("txn: coordinator closed")
)

// Coordinator owns the transactional ids of the __transaction_state
// partitions it loaded.
type Coordinator struct {
	cfg       Config
	log       *slog.Logger
	partition func(p int32) (Log, error)
	nextPID   func(ctx context.Context) (int64, error)
	markers   MarkerWriter

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines

	mu     sync.Mutex
	parts  map[int32]*partState
	closed bool
	// lastAbort and lastExpire are Tick's last scans.
	lastAbort, lastExpire time.Time
}

// partState is one owned partition. Its identity tells a load or a
// background task whether the partition was unloaded (and maybe loaded
// again) meanwhile.
type partState struct {
	p       int32
	loading bool
	epoch   int32 // coordinator epoch: the partition's leader epoch
	log     Log   // nil until the topic exists
	txns    map[string]*txnMeta
	ctx     context.Context // cancelled by unload
	cancel  context.CancelFunc
}

// txnMeta is one transactional id.
type txnMeta struct {
	id   string
	part *partState

	mu sync.Mutex
	persisted
	// lastEpoch is the epoch before the last client-driven bump (KIP-360
	// retries of InitProducerId, TV2 retries of EndTxn); -1 after a fence.
	// Like Kafka, it is not in the record, so it is lost on reload.
	lastEpoch int16
	// fenced: the current epoch was bumped by the coordinator (fence or
	// timeout), not by the client's EndTxn, so a TV2 retry with epoch-1
	// is a zombie.
	fenced bool
	// failedFence: a fence's write failed; the next fence reuses the epoch
	// (it was never returned to a client).
	failedFence bool
	pending     bool // a transition is being written
	removed     bool // dropped from the map
	removedCode int16
}

// New makes a coordinator. It owns no partition until LoadPartition.
func New(cfg Config, log *slog.Logger, partition func(p int32) (Log, error),
	nextProducerID func(ctx context.Context) (int64, error), markers MarkerWriter) *Coordinator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 50
	}
	if cfg.OffsetsPartitions <= 0 {
		cfg.OffsetsPartitions = 50
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Coordinator{cfg: cfg, log: log, partition: partition, nextPID: nextProducerID, markers: markers,
		ctx: ctx, cancel: cancel, parts: map[int32]*partState{}}
}

func (c *Coordinator) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// PartitionFor is Kafka's placement of a transactional id:
// abs(javaHashCode(id)) % partitions, the same as for groups.
func PartitionFor(transactionalID string, partitions int32) int32 {
	return group.PartitionFor(transactionalID, partitions)
}

// LoadPartition takes ownership of partition p of __transaction_state: it
// replays l (nil: the topic does not exist yet; writes create it through
// the partition callback) and then serves the ids whose PartitionFor is p,
// resuming their unfinished completions. Meanwhile those ids get
// COORDINATOR_LOAD_IN_PROGRESS. A partition already owned at the same
// coordinator epoch is left alone; at another epoch it is unloaded and
// loaded again. If the partition is unloaded before the load completes,
// ErrUnloaded is returned; on a read error the partition is not owned.
func (c *Coordinator) LoadPartition(p int32, l Log, coordinatorEpoch int32) error {
	if p < 0 || p >= c.cfg.Partitions {
		return fmt.Errorf("txn: %s has no partition %d (%d partitions)", TopicName, p, c.cfg.Partitions)
	}
	start := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if old := c.parts[p]; old != nil {
		if old.epoch == coordinatorEpoch {
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		c.UnloadPartition(p)
		c.mu.Lock()
		if c.closed || c.parts[p] != nil {
			c.mu.Unlock()
			return nil
		}
	}
	ctx, cancel := context.WithCancel(c.ctx)
	ps := &partState{p: p, loading: true, epoch: coordinatorEpoch, log: l, txns: map[string]*txnMeta{}, ctx: ctx, cancel: cancel}
	c.parts[p] = ps
	c.mu.Unlock()

	// Replay with no lock held: nobody reaches the partition's ids while it
	// is loading.
	states := map[string]persisted{}
	records := 0
	var err error
	if l != nil {
		records, err = c.replay(p, l, states)
	}
	if err != nil {
		c.mu.Lock()
		if c.parts[p] == ps {
			delete(c.parts, p)
		}
		c.mu.Unlock()
		cancel()
		return err
	}
	var resume []*txnMeta
	for id, s := range states {
		if PartitionFor(id, c.cfg.Partitions) != p {
			c.log.Warn("skipping transaction state in the wrong partition", "transactional_id", id, "partition", p)
			continue
		}
		if s.state == StateDead {
			continue
		}
		t := &txnMeta{id: id, part: ps, persisted: s, lastEpoch: noProducerEpoch}
		ps.txns[id] = t
		switch s.state {
		case StatePrepareCommit, StatePrepareAbort, StatePrepareEpochFence:
			resume = append(resume, t)
		}
	}
	c.mu.Lock()
	if c.parts[p] != ps {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s-%d", ErrUnloaded, TopicName, p)
	}
	ps.loading = false
	c.mu.Unlock()
	for _, t := range resume {
		t.mu.Lock()
		if t.state == StatePrepareEpochFence {
			// Nothing of ours writes it; treat it as an Ongoing
			// transaction being fenced and abort it.
			t.state = StateOngoing
			c.goFence(t)
		} else {
			c.goComplete(t)
		}
		t.mu.Unlock()
	}
	c.log.Debug("transaction state partition loaded", "partition", p, "ids", len(ps.txns),
		"records", records, "resumed", len(resume), "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// replay reads partition p from its start: the last value of each key wins,
// a tombstone deletes.
func (c *Coordinator) replay(p int32, l Log, states map[string]persisted) (int, error) {
	records := 0
	off := l.LogStartOffset()
	for off < l.LogEndOffset() {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			return records, fmt.Errorf("txn: load %s-%d at %d: %w", TopicName, p, off, err)
		}
		if len(res.Records) == 0 {
			break
		}
		next := off
		last, err := decodeBatches(res.Records, func(o int64, key, value []byte) {
			if o < off {
				return // the batch started before the offset asked for
			}
			records++
			if o >= next {
				next = o + 1
			}
			var k kmsg.TxnMetadataKey
			if k.ReadFrom(key) != nil || k.Version != 0 {
				return // not a transaction record (Kafka ignores unknown keys)
			}
			if value == nil {
				delete(states, k.TransactionalID)
				return
			}
			s, err := decodeValue(value)
			if err != nil {
				c.log.Warn("skipping unreadable transaction state", "transactional_id", k.TransactionalID, "offset", o, "err", err)
				return
			}
			states[k.TransactionalID] = s
		})
		if err != nil && !errors.Is(err, errCompressed) {
			return records, fmt.Errorf("txn: load %s-%d: %w", TopicName, p, err)
		}
		if last+1 > next {
			next = last + 1
		}
		if next <= off { // no progress: a malformed read
			return records, fmt.Errorf("txn: load %s-%d: no progress at offset %d", TopicName, p, off)
		}
		off = next
	}
	return records, nil
}

// UnloadPartition gives up partition p: its ids are dropped from memory,
// their pending writes and marker retries stop, and their requests get
// NOT_COORDINATOR. Unloading a partition not owned does nothing.
func (c *Coordinator) UnloadPartition(p int32) {
	c.mu.Lock()
	ps := c.parts[p]
	if ps == nil {
		c.mu.Unlock()
		return
	}
	delete(c.parts, p)
	txns := make([]*txnMeta, 0, len(ps.txns))
	for _, t := range ps.txns {
		txns = append(txns, t)
	}
	c.mu.Unlock()
	ps.cancel()
	for _, t := range txns {
		t.mu.Lock()
		t.removed, t.removedCode = true, kerr.NotCoordinator.Code
		t.mu.Unlock()
	}
	c.log.Debug("transaction state partition unloaded", "partition", p, "ids", len(txns))
}

// Owned returns the loaded partitions, sorted (not those still loading).
func (c *Coordinator) Owned() []int32 { return c.partitions(false) }

// Loading returns the partitions being loaded, sorted.
func (c *Coordinator) Loading() []int32 { return c.partitions(true) }

func (c *Coordinator) partitions(loading bool) []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []int32{}
	for p, ps := range c.parts {
		if ps.loading == loading {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Close stops background work and owns nothing afterwards.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	parts := make([]int32, 0, len(c.parts))
	for p := range c.parts {
		parts = append(parts, p)
	}
	c.mu.Unlock()
	for _, p := range parts {
		c.UnloadPartition(p)
	}
	c.cancel()
	c.wg.Wait()
}

// lookup finds id's partition and metadata: code is NOT_COORDINATOR or
// COORDINATOR_LOAD_IN_PROGRESS when the partition is not served; t is nil
// for an unknown id.
func (c *Coordinator) lookup(id string) (ps *partState, t *txnMeta, code int16) {
	p := PartitionFor(id, c.cfg.Partitions)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps = c.parts[p]
	switch {
	case ps == nil:
		return nil, nil, kerr.NotCoordinator.Code
	case ps.loading:
		return nil, nil, kerr.CoordinatorLoadInProgress.Code
	}
	return ps, ps.txns[id], 0
}

// locked looks id up and returns its metadata locked (nil if unknown),
// re-looking it up when it was removed by an expiry meanwhile.
func (c *Coordinator) locked(id string) (*partState, *txnMeta, int16) {
	for i := 0; ; i++ {
		ps, t, code := c.lookup(id)
		if code != 0 || t == nil {
			return ps, nil, code
		}
		t.mu.Lock()
		if !t.removed {
			return ps, t, 0
		}
		code = t.removedCode
		t.mu.Unlock()
		if code != 0 || i >= 3 {
			if code == 0 {
				code = kerr.ConcurrentTransactions.Code
			}
			return nil, nil, code
		}
	}
}

// logOf returns the partition's log, creating the topic on first use.
func (c *Coordinator) logOf(ps *partState) (Log, error) {
	c.mu.Lock()
	l := ps.log
	c.mu.Unlock()
	if l != nil {
		return l, nil
	}
	if c.partition == nil {
		return nil, errors.New("txn: no partition callback")
	}
	l, err := c.partition(ps.p)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, errors.New("txn: partition not available")
	}
	c.mu.Lock()
	if ps.log == nil {
		ps.log = l
	}
	l = ps.log
	c.mu.Unlock()
	return l, nil
}

// appendErrCode maps a failed write of the transaction log to Kafka's
// code: NOT_COORDINATOR when leadership (or the log dir) is gone,
// UNKNOWN_SERVER_ERROR for a record too large, else
// COORDINATOR_NOT_AVAILABLE (retriable).
func appendErrCode(err error) int16 {
	switch {
	case errors.Is(err, storage.ErrNotLeader), errors.Is(err, storage.ErrStorageFailed),
		errors.Is(err, storage.ErrClosed), errors.Is(err, context.Canceled):
		return kerr.NotCoordinator.Code
	case errors.Is(err, storage.ErrMessageTooLarge):
		return kerr.UnknownServerError.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

// flexible tells which TransactionLogValue version to write for s.
func (c *Coordinator) flexible(s *persisted) bool {
	return c.cfg.TransactionVersion >= 1 || s.tv >= 2
}

// persist makes next the state of t: it appends the record and waits until
// it is durable, then applies it. Requires t.mu, not pending; releases it
// during the wait and holds it again on return. The returned code is 0 on
// success; on failure t is unchanged.
func (c *Coordinator) persist(t *txnMeta, next persisted) int16 {
	ps := t.part
	t.pending = true
	l, err := c.logOf(ps)
	if err != nil {
		t.pending = false
		c.log.Warn("transaction log not available", "transactional_id", t.id, "partition", ps.p, "err", err)
		return kerr.CoordinatorNotAvailable.Code
	}
	batch := encodeBatch([]kv{{txnKey(t.id), txnValue(&next, c.flexible(&next))}}, c.now())
	res, err := l.Append(batch)
	if err != nil {
		t.pending = false
		c.log.Warn("transaction log append failed", "transactional_id", t.id, "partition", ps.p, "err", err)
		return appendErrCode(err)
	}
	t.mu.Unlock()
	err = l.WaitDurable(ps.ctx, res.LastOffset)
	t.mu.Lock()
	t.pending = false
	if t.removed {
		return kerr.NotCoordinator.Code
	}
	if err != nil {
		c.log.Warn("transaction log write not committed", "transactional_id", t.id, "partition", ps.p, "err", err)
		return appendErrCode(err)
	}
	t.persisted = next
	return 0
}

// next returns a copy of t's persisted state with its partitions copied,
// prevPID set to the current producer id (as Kafka records it on every
// transition) and the update time now.
func (c *Coordinator) next(t *txnMeta) persisted {
	n := t.persisted
	n.parts = make(map[TopicPartition]struct{}, len(t.parts))
	for tp := range t.parts {
		n.parts[tp] = struct{}{}
	}
	n.prevPID = t.pid
	n.lastUpdateMs = c.now().UnixMilli()
	return n
}

// fencedCode is PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for request
// versions that predate it.
func fencedCode(code int16, version, since int16) int16 {
	if code == kerr.ProducerFenced.Code && version < since {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
