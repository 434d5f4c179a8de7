package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

// catalogFile holds the topic catalog in the log dir. Kafka keeps topics in
// its KRaft metadata log; until Gregor has a metadata quorum, a small JSON
// file rewritten atomically plays that part. Partition directories stay in
// Kafka's layout and carry the topic id in partition.metadata.
//
// The catalog, not the directories, says which topics exist. Creation and
// deletion are written ahead:
//
//   - create: the topic is saved as "creating" before any directory is
//     made, and as created (no state) once all its partitions exist. A
//     restart removes the directories of a topic still "creating": a topic
//     is either fully there or fully absent, whatever the moment of a crash.
//   - add partitions: "pending_partitions" records the target count before
//     the new directories are made; a restart removes directories at or
//     above "partitions".
//   - delete: the topic is replaced at once by a "deleting" tombstone; its
//     directories are renamed to topic-N.<uuid>-delete and removed in the
//     background, then the tombstone goes. A restart removes directories
//     the tombstone names (matched by topic id).
//
// Directories no entry accounts for are renamed topic-N.<uuid>-stray and
// left for the operator. A data dir written before these states existed
// holds only created topics and opens unchanged.
const catalogFile = "gregor-topics.json"

// Topic states in the catalog file; created topics have none.
const (
	stateCreating = "creating"
	stateDeleting = "deleting"
)

// topic is one topic's metadata. It is immutable once published in the
// catalog: changes replace the whole *topic under catalog.mu.
type topic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	// State is empty for a created topic (the only kind clients see).
	State string `json:"state,omitempty"`
	// PendingPartitions is the count a CreatePartitions in progress grows
	// the topic to; 0 when none is.
	PendingPartitions int32 `json:"pending_partitions,omitempty"`
}

// catalog is the set of topics.
//
// mu guards the maps and serializes every change with its write to disk;
// it is taken before any storage lock and never held across partition
// directory work, so creating or deleting thousands of partitions does not
// stall Produce, Fetch or Metadata. Instead, each topic operation claims
// the topic's collision key (busy) for its whole duration, so operations on
// one name (or on names that collide) run one at a time.
type catalog struct {
	mu       sync.RWMutex
	path     string
	byName   map[string]*topic // created topics
	byID     map[[16]byte]*topic
	creating map[string]*topic // reserved, invisible to clients
	deleting []*topic          // tombstones whose directories are being removed
	// byKey maps a collision key (see collisionKey) to the created or
	// creating topic holding it.
	byKey map[string]string
	// total counts the partitions of created topics plus those being
	// created or added, for the broker-wide cap.
	total int64
	busy  map[string]chan struct{}

	maxPartitions int64 // broker-wide cap; 0 = none
	limitSource   string

	store     *storage.Store
	logConfig func(map[string]string) storage.LogConfig
	log       *slog.Logger
	bg        sync.WaitGroup // background removal of deleted topics
}

// collisionKey is the name with '.' replaced by '_': Kafka refuses a topic
// whose key equals another topic's, as their metric names would collide.
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

// loadCatalog reads the catalog file. A missing file is an empty catalog
// only if the log dir holds no partition directories: otherwise every
// topic's configs and ids would be lost silently, so it is an error telling
// the operator what to do.
func loadCatalog(dir string, log *slog.Logger) (*catalog, error) {
	c := &catalog{
		path:     filepath.Join(dir, catalogFile),
		byName:   map[string]*topic{},
		byID:     map[[16]byte]*topic{},
		creating: map[string]*topic{},
		byKey:    map[string]string{},
		busy:     map[string]chan struct{}{},
		log:      log,
	}
	data, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		dirs, derr := storage.PartitionDirs(dir)
		if derr != nil {
			return nil, fmt.Errorf("broker: %w", derr)
		}
		if len(dirs) > 0 {
			return nil, fmt.Errorf("broker: the topic catalog %s is missing but the log dir holds %d partition directories (%s, ...); "+
				"restore %s from a backup, or move the partition directories out of %s to start with no topics",
				c.path, len(dirs), dirs[0], catalogFile, dir)
		}
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("broker: topic catalog: %w", err)
	}
	var topics []*topic
	if err := json.Unmarshal(data, &topics); err != nil {
		return nil, fmt.Errorf("broker: topic catalog %s: %w", c.path, err)
	}
	for _, t := range topics {
		switch t.State {
		case "":
			c.byName[t.Name] = t
			c.byID[t.ID] = t
		case stateCreating:
			c.creating[t.Name] = t
		case stateDeleting:
			c.deleting = append(c.deleting, t)
		default:
			return nil, fmt.Errorf("broker: topic catalog %s: topic %q has unknown state %q", c.path, t.Name, t.State)
		}
	}
	return c, nil
}

// adopt is storage.Options.Adopt: which partition directories Open loads.
// Called only during storage.Open, before the catalog is shared.
func (c *catalog) adopt(name string, p int32, id [16]byte) storage.Adoption {
	ours := func(t *topic) bool { return id == t.ID || id == [16]byte{} }
	if t := c.byName[name]; t != nil && ours(t) {
		switch {
		case p < t.Partitions:
			return storage.AdoptLoad
		case p < t.PendingPartitions:
			return storage.AdoptDelete // an addition that never completed
		}
	}
	if t := c.creating[name]; t != nil && ours(t) {
		return storage.AdoptDelete
	}
	for _, t := range c.deleting {
		if t.Name == name && id == t.ID {
			return storage.AdoptDelete
		}
	}
	return storage.AdoptStray
}

// attach finishes opening: it rolls back what a crash interrupted (creates,
// additions and the bookkeeping of deletions, whose directories adopt had
// removed), recreates partition directories a created topic lacks, repairs
// topic ids and applies each topic's log config. Called once, before the
// catalog is shared.
func (c *catalog) attach(store *storage.Store, logConfig func(map[string]string) storage.LogConfig) error {
	c.store, c.logConfig = store, logConfig
	changed := len(c.creating) > 0 || len(c.deleting) > 0
	for name := range c.creating {
		c.log.Warn("topic creation was interrupted; the topic is removed", "topic", name)
	}
	c.creating = map[string]*topic{}
	c.deleting = nil
	for name, t := range c.byName {
		if t.PendingPartitions != 0 {
			c.log.Warn("adding partitions was interrupted; the topic keeps its previous count", "topic", name, "partitions", t.Partitions, "attempted", t.PendingPartitions)
			nt := *t
			nt.PendingPartitions = 0
			t = &nt
			c.byName[name], c.byID[t.ID] = t, t
			changed = true
		}
		c.byKey[collisionKey(name)] = name
		c.total += int64(t.Partitions)
		lc := logConfig(t.Configs)
		for p := int32(0); p < t.Partitions; p++ {
			l := store.Get(name, p)
			if l == nil {
				c.log.Warn("partition directory missing; creating it empty", "topic", name, "partition", p)
				if err := store.CreatePartitions(name, p, p+1, t.ID, lc); err != nil {
					return fmt.Errorf("broker: recreate %s-%d: %w", name, p, err)
				}
				continue
			}
			l.SetConfig(lc)
			if l.TopicID() != t.ID {
				if err := store.SetTopicID(l, t.ID); err != nil {
					return err
				}
			}
		}
	}
	if changed {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.saveLocked()
	}
	return nil
}

// saveLocked writes the catalog: created topics, then creating ones and
// tombstones. Requires c.mu (write).
func (c *catalog) saveLocked() error {
	topics := make([]*topic, 0, len(c.byName)+len(c.creating)+len(c.deleting))
	for _, t := range c.byName {
		topics = append(topics, t)
	}
	for _, t := range c.creating {
		topics = append(topics, t)
	}
	topics = append(topics, c.deleting...)
	sort.SliceStable(topics, func(i, j int) bool {
		if topics[i].Name != topics[j].Name {
			return topics[i].Name < topics[j].Name
		}
		return topics[i].State < topics[j].State
	})
	data, err := json.MarshalIndent(topics, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, data)
}

func (c *catalog) get(name string) *topic {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byName[name]
}

func (c *catalog) getByID(id [16]byte) *topic {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byID[id]
}

// all returns the topics sorted by name.
func (c *catalog) all() []*topic {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*topic, 0, len(c.byName))
	for _, t := range c.byName {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// claim waits until no other operation holds name's collision key, then
// holds it until release is called. Must not be called with c.mu held.
func (c *catalog) claim(name string) (release func()) {
	key := collisionKey(name)
	for {
		c.mu.Lock()
		ch, busy := c.busy[key]
		if !busy {
			ch = make(chan struct{})
			c.busy[key] = ch
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.busy, key)
				c.mu.Unlock()
				close(ch)
			}
		}
		c.mu.Unlock()
		<-ch
	}
}

// isInternalTopic reports Kafka's internal topics, which only the broker
// creates, and clients can neither delete nor grow.
func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// collidesWith returns the created or creating topic whose name collides
// with name once '.' and '_' are unified, or "".
func (c *catalog) collidesWith(name string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if other, ok := c.byKey[collisionKey(name)]; ok && other != name {
		return other
	}
	return ""
}

var errTopicExists = errors.New("topic already exists")

// errCollision: the name collides with an existing topic's ('.' vs '_').
type errCollision struct{ name, existing string }

func (e *errCollision) Error() string {
	return fmt.Sprintf("Topic '%s' collides with existing topic: %s", e.name, e.existing)
}

// errPartitionLimit: the broker-wide partition cap would be exceeded.
type errPartitionLimit struct{ msg string }

func (e *errPartitionLimit) Error() string { return e.msg }

// checkLimitLocked refuses adding n partitions over the broker-wide cap.
// Internal topics are exempt: the group coordinator needs its
// __consumer_offsets whatever clients did. Requires c.mu.
func (c *catalog) checkLimitLocked(name string, n int64, internal bool) error {
	if internal || c.maxPartitions <= 0 || c.total+n <= c.maxPartitions {
		return nil
	}
	return &errPartitionLimit{fmt.Sprintf(
		"Adding %d partition(s) to topic '%s' would bring this broker to %d partitions, over its limit of %d "+
			"(gregor.max.partitions, %s). Delete topics, or raise gregor.max.partitions (and the open file limit).",
		n, name, c.total+n, c.maxPartitions, c.limitSource)}
}

// checkLimit is checkLimitLocked for validate_only requests, which change
// nothing.
func (c *catalog) checkLimit(name string, n int64) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.checkLimitLocked(name, n, false)
}

// create makes a topic with its partitions: reserve the name and save the
// intent, create the directories with no lock held, then publish and save.
// If the topic exists, it returns the existing one and errTopicExists.
func (c *catalog) create(name string, partitions int32, configs map[string]string, internal bool) (*topic, error) {
	release := c.claim(name)
	defer release()

	c.mu.Lock()
	if t := c.byName[name]; t != nil {
		c.mu.Unlock()
		return t, errTopicExists
	}
	if other, ok := c.byKey[collisionKey(name)]; ok && other != name {
		c.mu.Unlock()
		return nil, &errCollision{name, other}
	}
	if err := c.checkLimitLocked(name, int64(partitions), internal); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	t := &topic{Name: name, Partitions: partitions, Configs: configs, Internal: internal, State: stateCreating}
	for {
		t.ID = metadata.NewUUID()
		if c.byID[t.ID] == nil {
			break
		}
	}
	c.creating[name] = t
	c.byKey[collisionKey(name)] = name
	c.total += int64(partitions)
	unreserveLocked := func() {
		delete(c.creating, name)
		delete(c.byKey, collisionKey(name))
		c.total -= int64(partitions)
	}
	if err := c.saveLocked(); err != nil {
		unreserveLocked()
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Unlock()

	err := c.store.CreatePartitions(name, 0, partitions, t.ID, c.logConfig(configs))

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		unreserveLocked()
		// Best effort: if this save fails too, the next start removes the
		// "creating" entry and whatever directories are left.
		if serr := c.saveLocked(); serr != nil {
			c.log.Error("cannot record the failed creation; the next start cleans it up", "topic", name, "err", serr)
		}
		return nil, err
	}
	nt := *t
	nt.State = ""
	delete(c.creating, name)
	c.byName[name], c.byID[nt.ID] = &nt, &nt
	if err := c.saveLocked(); err != nil {
		// Not durably created: take it back so it is absent now as it
		// would be after a restart.
		delete(c.byName, name)
		delete(c.byID, nt.ID)
		delete(c.byKey, collisionKey(name))
		c.total -= int64(partitions)
		c.mu.Unlock()
		if paths, derr := c.store.DetachTopic(name, partitions); derr == nil {
			_ = c.store.RemoveDirs(paths)
		}
		c.mu.Lock()
		return nil, err
	}
	return &nt, nil
}

// delete removes a topic at once and durably from the catalog, renames its
// partition directories for deletion and removes them in the background,
// as Kafka does.
func (c *catalog) delete(name string) error {
	release := c.claim(name)
	defer release()

	c.mu.Lock()
	t := c.byName[name]
	if t == nil {
		c.mu.Unlock()
		return nil
	}
	tomb := *t
	tomb.State = stateDeleting
	delete(c.byName, name)
	delete(c.byID, t.ID)
	delete(c.byKey, collisionKey(name))
	c.deleting = append(c.deleting, &tomb)
	if err := c.saveLocked(); err != nil {
		c.byName[name], c.byID[t.ID] = t, t
		c.byKey[collisionKey(name)] = name
		c.deleting = c.deleting[:len(c.deleting)-1]
		c.mu.Unlock()
		return err
	}
	c.total -= int64(t.Partitions)
	c.mu.Unlock()

	// Renaming is quick and must finish before the name is released: a
	// topic created again under it needs the topic-N names.
	paths, err := c.store.DetachTopic(name, t.Partitions)
	if err != nil {
		// The topic is deleted; the tombstone stays so the next start
		// removes what could not be renamed.
		c.log.Error("deleted topic's directories not all renamed; the next start removes them", "topic", name, "err", err)
	}
	c.bg.Add(1)
	guard.Go(c.log, "topic directory removal", func() {
		defer c.bg.Done()
		if rerr := c.store.RemoveDirs(paths); rerr != nil {
			c.log.Error("removing a deleted topic's directories failed; the next start retries", "topic", name, "err", rerr)
			return
		}
		if err != nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, d := range c.deleting {
			if d == &tomb {
				c.deleting = append(c.deleting[:i], c.deleting[i+1:]...)
				break
			}
		}
		if serr := c.saveLocked(); serr != nil {
			c.log.Error("cannot drop a deletion tombstone from the catalog", "topic", name, "err", serr)
		}
	}, nil)
	return nil
}

// wait waits for background removals of deleted topics to finish.
func (c *catalog) wait() { c.bg.Wait() }

// addPartitions grows a topic to total partitions, written ahead like
// create: the target is saved first, the new partitions become visible
// only once they all exist.
func (c *catalog) addPartitions(name string, total int32) error {
	release := c.claim(name)
	defer release()

	c.mu.Lock()
	t := c.byName[name]
	if t == nil {
		c.mu.Unlock()
		return errors.New("unknown topic")
	}
	if total <= t.Partitions {
		c.mu.Unlock()
		return fmt.Errorf("topic %s already has %d partitions", name, t.Partitions)
	}
	added := int64(total - t.Partitions)
	if err := c.checkLimitLocked(name, added, t.Internal); err != nil {
		c.mu.Unlock()
		return err
	}
	pending := *t
	pending.PendingPartitions = total
	c.byName[name], c.byID[t.ID] = &pending, &pending
	c.total += added
	if err := c.saveLocked(); err != nil {
		c.byName[name], c.byID[t.ID] = t, t
		c.total -= added
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()

	err := c.store.CreatePartitions(name, t.Partitions, total, t.ID, c.logConfig(t.Configs))

	c.mu.Lock()
	defer c.mu.Unlock()
	// Configs may have changed meanwhile: start from the current value.
	cur := *c.byName[name]
	cur.PendingPartitions = 0
	if err != nil {
		c.byName[name], c.byID[cur.ID] = &cur, &cur
		c.total -= added
		if serr := c.saveLocked(); serr != nil {
			c.log.Error("cannot record the failed partition addition; the next start cleans it up", "topic", name, "err", serr)
		}
		return err
	}
	grown := cur
	grown.Partitions = total
	c.byName[name], c.byID[cur.ID] = &grown, &grown
	if err := c.saveLocked(); err != nil {
		c.byName[name], c.byID[cur.ID] = &cur, &cur
		c.total -= added
		return err
	}
	c.applyLocked(&grown)
	return nil
}

// setConfigs replaces a topic's config overrides and applies them.
func (c *catalog) setConfigs(name string, configs map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byName[name]
	if t == nil {
		return errors.New("unknown topic")
	}
	nt := *t
	nt.Configs = configs
	c.byName[name] = &nt
	c.byID[nt.ID] = &nt
	if err := c.saveLocked(); err != nil {
		return err
	}
	c.applyLocked(&nt)
	return nil
}

// reapply pushes every topic's effective log config to storage again, after
// a broker-level default changed.
func (c *catalog) reapply() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, t := range c.byName {
		c.applyLocked(t)
	}
}

// applyLocked pushes a topic's log config to its partitions. Requires c.mu
// (read or write).
func (c *catalog) applyLocked(t *topic) {
	lc := c.logConfig(t.Configs)
	for p := int32(0); p < t.Partitions; p++ {
		if l := c.store.Get(t.Name, p); l != nil {
			l.SetConfig(lc)
		}
	}
}
