// Package group is the classic consumer group coordinator: membership
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with Kafka's state machine,
// and committed offsets, persisted in the internal compacted topic
// __consumer_offsets with Kafka's record schemas (records.go).
//
// Ownership: a group lives in the __consumer_offsets partition
// PartitionFor(group, Config.Partitions), and the coordinator answers for a
// group only while it owns that partition. LoadPartition(p, log) takes
// ownership of p: while its log is replayed the partition is "loading" and
// requests for its groups get COORDINATOR_LOAD_IN_PROGRESS; once loaded
// they are served. UnloadPartition(p) gives it up: the partition's groups
// are dropped from memory (timers stopped, parked JoinGroup/SyncGroup and
// commits waiting for their fsync answered NOT_COORDINATOR) and requests
// for them get NOT_COORDINATOR from then on, as they do for every
// partition never loaded. In a cluster the broker calls LoadPartition when
// it becomes leader of a __consumer_offsets partition and UnloadPartition
// when it stops being leader. A single broker calls Load, which takes every
// partition; LoadPartition(p, nil) owns a partition whose log does not
// exist yet (nothing to replay): writes create it through the partition
// callback given to New, as before.
//
// Concurrency: Coordinator.mu guards the groups map and the partition
// ownership table only; it is a leaf lock: it is never held while taking
// a Group.mu or calling into storage. Each Group has its own mutex
// guarding all of its state; timers (session, rebalance, initial delay,
// sync) take that mutex when they fire and check that the state they were
// armed for still holds (the group's epoch, or the member still being in
// the group). Lock order: Group.mu, then Coordinator.mu (a dead group
// removes itself from the map under its own lock) or storage's locks
// (appends to __consumer_offsets happen under Group.mu so a group's
// records reach the log in the order its state changed). Replaying a
// partition's log happens with no lock held. A request looks its group up
// (ownership is checked under Coordinator.mu), then locks the group and
// checks it was not dropped meanwhile: a dropped group is Dead and
// remembers the code to answer (NOT_COORDINATOR). Replies to clients are
// plain callbacks that only queue a response; they are safe to call under
// Group.mu.
//
// Durability: a commit is answered after its records are fsynced (when the
// broker runs with gregor.durability=fsync), and the in-memory offset
// becomes visible to OffsetFetch only then.
//
// Transactions (txn.go): a TxnOffsetCommit's offsets are pending for its
// producer id, invisible to OffsetFetch, until the broker reports the
// transaction's marker (CompleteTxn); replay rebuilds the same from the
// transactional and control batches in the log. Coordinator.mu also
// guards each owned partition's index of the groups with pending offsets
// by producer id: TxnOffsetCommit adds to it under Group.mu (the lock
// order above), CompleteTxn reads it under Coordinator.mu alone and then
// locks each group in turn. An unloaded partition forgets its pending
// offsets with its groups; the next load finds them in the log.
package group

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

	"github.com/gregorhq/gregor/internal/storage"
)

// TopicName is the internal topic holding offsets and group metadata.
const TopicName = "__consumer_offsets"

// Config are the coordinator settings (Kafka property in comments).
type Config struct {
	Partitions            int32         // offsets.topic.num.partitions (50)
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms (3 s)
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms (6 s)
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms (30 min)
	OffsetsRetention      time.Duration // offsets.retention.minutes (7 days)
	MaxMetadataBytes      int           // offset.metadata.max.bytes (4096)
	MaxSize               int           // group.max.size (2^31-1)
	// Durable makes commits wait for an fsync before they are answered.
	Durable bool
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		Partitions:            50,
		InitialRebalanceDelay: 3 * time.Second,
		MinSessionTimeout:     6 * time.Second,
		MaxSessionTimeout:     30 * time.Minute,
		OffsetsRetention:      7 * 24 * time.Hour,
		MaxMetadataBytes:      4096,
		MaxSize:               math.MaxInt32,
		Durable:               true,
	}
}

// Log is one partition of __consumer_offsets.
type Log interface {
	Append(records []byte) (storage.AppendResult, error)
	WaitDurable(ctx context.Context, offset int64) error
	Read(offset int64, maxBytes int) (storage.ReadResult, error)
	LogStartOffset() int64
	LogEndOffset() int64
}

// errNoPartition: the group's __consumer_offsets partition is not
// available here (not created, deleted, or its log dir failed).
var errNoPartition = errors.New("group: offsets partition not available")

// Coordinator owns the groups of the __consumer_offsets partitions it
// loaded.
type Coordinator struct {
	cfg Config
	log *slog.Logger
	// partition returns the __consumer_offsets partition log, creating
	// the topic on first use.
	partition func(p int32) (Log, error)
	// topicExists tells whether a topic exists, for offset commits.
	topicExists func(topic string) bool

	mu     sync.Mutex
	groups map[string]*Group
	// parts are the owned partitions of __consumer_offsets, loading or
	// loaded; a partition not in it is not ours.
	parts  map[int32]*partState
	closed bool
}

// partState is one owned partition. A load in progress recognizes by the
// pointer that it was not unloaded (and maybe loaded again) meanwhile.
type partState struct {
	loading bool
	// producers indexes the groups with pending transactional offsets
	// by producer id, for CompleteTxn (txn.go).
	producers map[int64]map[string]struct{}
	// deferred are markers reported while loading, applied before the
	// partition is served.
	deferred []txnEnd
}

// New makes a coordinator. It owns no partition until Load or
// LoadPartition is called, and answers NOT_COORDINATOR until then.
func New(cfg Config, log *slog.Logger, partition func(int32) (Log, error), topicExists func(string) bool) *Coordinator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, log: log, partition: partition, topicExists: topicExists,
		groups: map[string]*Group{}, parts: map[int32]*partState{}}
}

// PartitionFor is Kafka's placement of a group in __consumer_offsets:
// Utils.abs(groupId.hashCode()) % partitions, with Java's String.hashCode
// over UTF-16 code units and Utils.abs mapping MinInt32 to 0.
func PartitionFor(group string, partitions int32) int32 {
	var h int32
	for _, r := range group {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -h { // 0 or MinInt32
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// Load takes every partition of __consumer_offsets, replaying those for
// which existing returns a log; the others are owned with nothing to
// replay (their log is created on first write). It is the single-broker
// start-up: afterwards the coordinator answers for every group.
func (c *Coordinator) Load(existing func(p int32) Log) error {
	start := time.Now()
	groups, records := 0, 0
	for p := int32(0); p < c.cfg.Partitions; p++ {
		g, r, err := c.loadPartition(p, existing(p))
		if err != nil {
			return err
		}
		groups += g
		records += r
	}
	c.log.Info("consumer groups loaded", "groups", groups, "records", records, "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// Errors of LoadPartition.
var (
	ErrUnloaded = errors.New("group: partition unloaded while it was loading")
	ErrClosed   = errors.New("group: coordinator closed")
)

// LoadPartition takes ownership of partition p of __consumer_offsets:
// it replays l (nil: nothing to replay, the log does not exist yet) and
// from then on serves the groups whose PartitionFor is p. It returns when
// the partition is loaded; meanwhile those groups are answered
// COORDINATOR_LOAD_IN_PROGRESS (Loading lists p). A partition already
// owned or loading is left alone (nil). If the partition is unloaded
// before its load completes, the load is discarded and ErrUnloaded
// returned; on a read error the partition is not owned afterwards.
func (c *Coordinator) LoadPartition(p int32, l Log) error {
	start := time.Now()
	groups, records, err := c.loadPartition(p, l)
	if err == nil {
		c.log.Debug("consumer groups partition loaded", "partition", p, "groups", groups, "records", records, "took", time.Since(start).Round(time.Microsecond))
	}
	return err
}

func (c *Coordinator) loadPartition(p int32, l Log) (groups, records int, err error) {
	if p < 0 || p >= c.cfg.Partitions {
		return 0, 0, fmt.Errorf("group: %s has no partition %d (%d partitions)", TopicName, p, c.cfg.Partitions)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, 0, ErrClosed
	}
	if c.parts[p] != nil {
		c.mu.Unlock()
		return 0, 0, nil
	}
	ps := &partState{loading: true}
	c.parts[p] = ps
	c.mu.Unlock()

	// Replay with no lock held: nobody can reach the partition's groups
	// while it is loading.
	st := newReplayState()
	var end int64
	if l != nil {
		records, end, err = c.replayLog(p, l, st)
	}
	if err != nil {
		c.mu.Lock()
		if c.parts[p] == ps {
			delete(c.parts, p)
		}
		c.mu.Unlock()
		return 0, records, err
	}
	now := time.Now()
	restored := map[string]*Group{}
	for id, v := range st.metas {
		g := newGroup(c, id)
		if err := g.restore(v, now); err != nil {
			c.log.Warn("skipping unreadable group metadata", "group", id, "err", err)
			continue
		}
		restored[id] = g
	}
	for id, offs := range st.offsets {
		g := restored[id]
		if g == nil {
			g = newGroup(c, id)
			restored[id] = g
		}
		g.offsets = offs
	}
	// Offsets of transactions without a marker yet: a group may have
	// nothing else (a producer's first commit for it).
	for pid, byGroup := range st.txn {
		for id, pend := range byGroup {
			g := restored[id]
			if g == nil {
				g = newGroup(c, id)
				restored[id] = g
			}
			g.txnOffsets[pid] = pend
		}
	}

	c.mu.Lock()
	// Markers reported during the replay: those it did not read (at or
	// past where it stopped) apply now, in the order reported, before
	// anything is served. (The groups are not published yet; their lock
	// is taken because restored members' session timers already run.)
	for c.parts[p] == ps && len(ps.deferred) > 0 {
		ds := ps.deferred
		ps.deferred = nil
		c.mu.Unlock()
		for _, d := range ds {
			if d.markerOffset < end {
				continue
			}
			for _, g := range restored {
				g.mu.Lock()
				g.completeTxn(d.producerID, d.commit, d.markerOffset)
				g.mu.Unlock()
			}
		}
		c.mu.Lock()
	}
	if c.parts[p] != ps {
		c.mu.Unlock()
		for _, g := range restored {
			g.mu.Lock()
			g.drop(kerr.NotCoordinator.Code)
			g.mu.Unlock()
		}
		return 0, records, fmt.Errorf("%w: %s-%d", ErrUnloaded, TopicName, p)
	}
	var misplaced []*Group
	for id, g := range restored {
		if g.partition != p {
			// Records of a group that does not live here (the coordinator
			// never writes them; a different partition count would): it
			// could be neither found nor unloaded with this partition.
			c.log.Warn("skipping group records in the wrong partition", "group", id, "partition", p, "expected", g.partition)
			misplaced = append(misplaced, g)
			delete(restored, id)
			continue
		}
		c.groups[id] = g
		for pid := range g.txnOffsets {
			ps.trackTxnLocked(pid, id)
		}
	}
	ps.loading = false
	c.mu.Unlock()
	for _, g := range misplaced {
		g.mu.Lock()
		g.drop(kerr.NotCoordinator.Code)
		g.mu.Unlock()
	}
	return len(restored), records, nil
}

// replayLog reads a partition from its start into st. It returns the
// records read and the offset it read up to.
func (c *Coordinator) replayLog(p int32, l Log, st *replayState) (int, int64, error) {
	records := 0
	off := l.LogStartOffset()
	for off < l.LogEndOffset() {
		res, err := l.Read(off, 1<<20)
		if err != nil {
			return records, off, fmt.Errorf("group: load %s-%d at %d: %w", TopicName, p, off, err)
		}
		if len(res.Records) == 0 {
			break
		}
		next := off
		err = decodeBatches(res.Records, func(b batchInfo, o int64, key, value []byte) {
			records++
			if o >= next {
				next = o + 1
			}
			st.replay(b, o, key, value)
		})
		if err != nil && !errors.Is(err, errCompressed) {
			return records, off, fmt.Errorf("group: load %s-%d: %w", TopicName, p, err)
		}
		if next == off { // no records decoded; step past the batch
			next = lastOffsetOf(res.Records) + 1
		}
		if next <= off {
			// Nothing readable moves the replay on: stop rather than spin.
			c.log.Warn("unreadable data stops the replay", "partition", p, "offset", off, "log_end", l.LogEndOffset())
			break
		}
		off = next
	}
	return records, off, nil
}

// UnloadPartition gives up partition p of __consumer_offsets: its groups
// are dropped from memory (timers stopped; JoinGroup, SyncGroup and
// commits parked on them answered NOT_COORDINATOR) and their requests are
// answered NOT_COORDINATOR from now on. Committed offsets and group
// metadata stay in the log, for the next owner. When it returns, this
// coordinator appends nothing more for those groups (appends happen under
// the group's lock, which the drop takes), so a later LoadPartition(p)
// here replays everything it wrote. (Another broker sees those records
// as far as the log replicated them.) A load in progress is abandoned.
// Unloading a partition not owned does nothing.
func (c *Coordinator) UnloadPartition(p int32) {
	c.mu.Lock()
	if c.parts[p] == nil {
		c.mu.Unlock()
		return
	}
	delete(c.parts, p)
	var dropped []*Group
	for id, g := range c.groups {
		if g.partition == p {
			dropped = append(dropped, g)
			delete(c.groups, id)
		}
	}
	c.mu.Unlock()
	for _, g := range dropped {
		g.mu.Lock()
		g.drop(kerr.NotCoordinator.Code)
		g.mu.Unlock()
	}
	c.log.Debug("consumer groups partition unloaded", "partition", p, "groups", len(dropped))
}

// Owned returns the loaded partitions, sorted (not those still loading).
func (c *Coordinator) Owned() []int32 {
	return c.partitions(false)
}

// Loading returns the partitions being loaded, sorted.
func (c *Coordinator) Loading() []int32 {
	return c.partitions(true)
}

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

// Owns reports whether the coordinator serves the group: its partition is
// loaded.
func (c *Coordinator) Owns(group string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownerCodeLocked(PartitionFor(group, c.cfg.Partitions)) == 0
}

// ownerCodeLocked is 0 if partition p is loaded, else the error for its
// groups' requests. Requires c.mu.
func (c *Coordinator) ownerCodeLocked(p int32) int16 {
	ps := c.parts[p]
	switch {
	case ps == nil:
		return kerr.NotCoordinator.Code
	case ps.loading:
		return kerr.CoordinatorLoadInProgress.Code
	}
	return 0
}

func lastOffsetOf(data []byte) int64 {
	var last int64 = -1
	for len(data) >= 61 {
		base := int64(be64(data[0:]))
		length := int(int32(be32(data[8:])))
		if length < 49 || 12+length > len(data) {
			break
		}
		last = base + int64(int32(be32(data[23:])))
		data = data[12+length:]
	}
	return last
}

// replayState is what a partition's log replays into: group metadata
// values and committed offsets by group, and the offsets of transactions
// without a marker yet, by producer id and group (see txn.go).
type replayState struct {
	metas   map[string][]byte
	offsets map[string]map[tp]offsetCommit
	txn     map[int64]map[string]map[tp][]offsetCommit
}

func newReplayState() *replayState {
	return &replayState{
		metas:   map[string][]byte{},
		offsets: map[string]map[tp]offsetCommit{},
		txn:     map[int64]map[string]map[tp][]offsetCommit{},
	}
}

// replay applies one record of __consumer_offsets at offset o, from batch
// b; the last value of a key wins and a null value deletes. Records of
// transactional batches wait for their producer's marker; a control
// record settles them. Anything unreadable or unknown is skipped.
func (st *replayState) replay(b batchInfo, o int64, key, value []byte) {
	if b.control() {
		if commit, ok := controlType(key); ok {
			st.endTxn(b.producerID, commit, o)
		}
		return
	}
	if len(key) < 2 {
		return
	}
	switch int16(be16(key)) {
	case 0, 1:
		k := kmsg.NewOffsetCommitKey()
		if k.ReadFrom(key) != nil {
			return
		}
		at := tp{k.Topic, k.Partition}
		if value == nil {
			if b.transactional() { // never written by this package
				if pend := st.txn[b.producerID][k.Group]; pend != nil {
					delete(pend, at)
				}
				return
			}
			delete(st.offsets[k.Group], at)
			for _, byGroup := range st.txn {
				delete(byGroup[k.Group], at)
			}
			return
		}
		v := kmsg.NewOffsetCommitValue()
		if v.ReadFrom(value) != nil {
			return
		}
		leaderEpoch := v.LeaderEpoch
		if v.Version < 3 {
			leaderEpoch = -1
		}
		oc := offsetCommit{
			offset: v.Offset, leaderEpoch: leaderEpoch, metadata: v.Metadata,
			commitTime: time.UnixMilli(v.CommitTimestamp), logOffset: o,
		}
		if b.transactional() {
			byGroup := st.txn[b.producerID]
			if byGroup == nil {
				byGroup = map[string]map[tp][]offsetCommit{}
				st.txn[b.producerID] = byGroup
			}
			pend := byGroup[k.Group]
			if pend == nil {
				pend = map[tp][]offsetCommit{}
				byGroup[k.Group] = pend
			}
			pend[at] = append(pend[at], oc)
			return
		}
		m := st.offsets[k.Group]
		if m == nil {
			m = map[tp]offsetCommit{}
			st.offsets[k.Group] = m
		}
		m[at] = oc
	case 2:
		k := kmsg.NewGroupMetadataKey()
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			delete(st.metas, k.Group)
			delete(st.offsets, k.Group)
			for _, byGroup := range st.txn {
				delete(byGroup, k.Group)
			}
			return
		}
		st.metas[k.Group] = value
	}
}

// endTxn applies a producer's marker at offset o to what was replayed.
func (st *replayState) endTxn(producerID int64, commit bool, o int64) {
	byGroup := st.txn[producerID]
	for id, pend := range byGroup {
		committed := st.offsets[id]
		if committed == nil {
			committed = map[tp]offsetCommit{}
			st.offsets[id] = committed
		}
		if !settle(committed, pend, commit, o) {
			delete(byGroup, id)
		}
		if len(committed) == 0 {
			delete(st.offsets, id)
		}
	}
	if len(byGroup) == 0 {
		delete(st.txn, producerID)
	}
}

// lookup returns the group (nil if it does not exist and create is
// false), or the error code for a group whose partition is not loaded
// here. Ownership is checked under c.mu, so a group is never created in a
// partition that is not (or no longer) ours.
func (c *Coordinator) lookup(id string, create bool) (*Group, int16) {
	p := PartitionFor(id, c.cfg.Partitions)
	c.mu.Lock()
	defer c.mu.Unlock()
	if code := c.ownerCodeLocked(p); code != 0 {
		return nil, code
	}
	g := c.groups[id]
	if g == nil && create {
		g = newGroup(c, id)
		c.groups[id] = g
	}
	return g, 0
}

// remove drops a dead group from the map if it is still the one given.
// Callers may hold g.mu (Group.mu comes before Coordinator.mu).
func (c *Coordinator) remove(g *Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
}

// sortedGroups returns the groups of loaded partitions by id.
func (c *Coordinator) sortedGroups() []*Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Group, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// write appends records for a group to its __consumer_offsets partition.
// It returns the last offset written. Callers hold g.mu.
func (c *Coordinator) write(group string, recs []kv) (Log, int64, error) {
	l, err := c.partition(PartitionFor(group, c.cfg.Partitions))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errNoPartition, err)
	}
	res, err := l.Append(encodeBatch(recs, time.Now()))
	if err != nil {
		return nil, 0, err
	}
	return l, res.LastOffset, nil
}

// waitDurable waits for an fsync of what write returned, if configured.
func (c *Coordinator) waitDurable(l Log, offset int64) error {
	if !c.cfg.Durable {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.WaitDurable(ctx, offset)
}

// ExpireOffsets removes offsets past offsets.retention.minutes, as Kafka
// does: for a group with members' protocol (a consumer group), all of its
// offsets once it has been Empty for the retention period; for a group that
// only commits (a simple group), each offset once it is older than that.
// A group left Empty with no offsets is deleted.
func (c *Coordinator) ExpireOffsets(now time.Time) {
	for _, g := range c.sortedGroups() {
		g.expireOffsets(now)
	}
}

// Close stops all timers. Pending joins and syncs are answered with
// COORDINATOR_NOT_AVAILABLE so clients move on.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	groups := make([]*Group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.shutdown()
	}
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func be64(b []byte) uint64 { return uint64(be32(b))<<32 | uint64(be32(b[4:])) }
