// Package group is the classic consumer group coordinator: membership
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with Kafka's state machine,
// and committed offsets, persisted in the internal compacted topic
// __consumer_offsets with Kafka's record schemas (records.go).
//
// Concurrency: Coordinator.mu guards the groups map only. Each Group has its
// own mutex guarding all of its state; timers (session, rebalance, initial
// delay, sync) take that mutex when they fire and check that the state they
// were armed for still holds. Lock order: Coordinator.mu, then Group.mu,
// then storage's locks (appends to __consumer_offsets happen under Group.mu
// so a group's records reach the log in the order its state changed).
// Replies to clients are plain callbacks that only queue a response; they
// are safe to call under Group.mu.
//
// Durability: a commit is answered after its records are fsynced (when the
// broker runs with gregor.durability=fsync), and the in-memory offset
// becomes visible to OffsetFetch only then.
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

// Coordinator owns every group of this broker.
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
	closed bool
}

// New makes a coordinator. Load must be called before it serves.
func New(cfg Config, log *slog.Logger, partition func(int32) (Log, error), topicExists func(string) bool) *Coordinator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, log: log, partition: partition, topicExists: topicExists, groups: map[string]*Group{}}
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

// Load replays __consumer_offsets into memory. Partitions that do not
// exist yet are skipped.
func (c *Coordinator) Load(existing func(p int32) Log) error {
	start := time.Now()
	metas := map[string][]byte{}
	offsets := map[string]map[tp]offsetCommit{}
	records := 0
	for p := int32(0); p < c.cfg.Partitions; p++ {
		l := existing(p)
		if l == nil {
			continue
		}
		off := l.LogStartOffset()
		for off < l.LogEndOffset() {
			res, err := l.Read(off, 1<<20)
			if err != nil {
				return fmt.Errorf("group: load %s-%d at %d: %w", TopicName, p, off, err)
			}
			if len(res.Records) == 0 {
				break
			}
			next := off
			err = decodeBatches(res.Records, func(o int64, key, value []byte) {
				records++
				if o >= next {
					next = o + 1
				}
				c.replay(key, value, metas, offsets)
			})
			if err != nil && !errors.Is(err, errCompressed) {
				return fmt.Errorf("group: load %s-%d: %w", TopicName, p, err)
			}
			if next == off { // no records decoded; step past the batch
				next = lastOffsetOf(res.Records) + 1
			}
			off = next
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for id, v := range metas {
		g := newGroup(c, id)
		if err := g.restore(v, now); err != nil {
			c.log.Warn("skipping unreadable group metadata", "group", id, "err", err)
			continue
		}
		c.groups[id] = g
	}
	for id, offs := range offsets {
		g := c.groups[id]
		if g == nil {
			g = newGroup(c, id)
			c.groups[id] = g
		}
		g.offsets = offs
	}
	c.log.Info("consumer groups loaded", "groups", len(c.groups), "records", records, "took", time.Since(start).Round(time.Microsecond))
	return nil
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

// replay applies one record of __consumer_offsets; the last value of a
// key wins and a null value deletes.
func (c *Coordinator) replay(key, value []byte, metas map[string][]byte, offsets map[string]map[tp]offsetCommit) {
	if len(key) < 2 {
		return
	}
	switch int16(be16(key)) {
	case 0, 1:
		k := kmsg.NewOffsetCommitKey()
		if k.ReadFrom(key) != nil {
			return
		}
		m := offsets[k.Group]
		if value == nil {
			delete(m, tp{k.Topic, k.Partition})
			return
		}
		v := kmsg.NewOffsetCommitValue()
		if v.ReadFrom(value) != nil {
			return
		}
		if m == nil {
			m = map[tp]offsetCommit{}
			offsets[k.Group] = m
		}
		leaderEpoch := v.LeaderEpoch
		if v.Version < 3 {
			leaderEpoch = -1
		}
		m[tp{k.Topic, k.Partition}] = offsetCommit{
			offset: v.Offset, leaderEpoch: leaderEpoch, metadata: v.Metadata,
			commitTime: time.UnixMilli(v.CommitTimestamp),
		}
	case 2:
		k := kmsg.NewGroupMetadataKey()
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			delete(metas, k.Group)
			delete(offsets, k.Group)
			return
		}
		metas[k.Group] = value
	}
}

// get returns the group, or nil.
func (c *Coordinator) get(id string) *Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[id]
}

// getOrCreate returns the group, creating an empty one.
func (c *Coordinator) getOrCreate(id string) *Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[id]
	if g == nil {
		g = newGroup(c, id)
		c.groups[id] = g
	}
	return g
}

// remove drops a dead group from the map if it is still the one given.
func (c *Coordinator) remove(g *Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
}

// sortedGroups returns all groups by id.
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
