package broker

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

// The catalog is this broker's published view of the cluster metadata:
// the topics of the metadata image (internal/metadata), each with its
// partitions' replica state, as far as this broker has carried them out
// on disk.
//
// The metadata log, not the directories, says which topics exist; the
// catalog follows it (publish). A topic becomes visible to clients here
// only once every partition this broker hosts has its directory, and a
// removed topic disappears before its directories are renamed aside and
// removed in the background. After a crash the image is replayed from the
// metadata log before storage opens, so directories of topics deleted
// since are removed (Adopt), and partitions the image assigns to this
// broker but which have no directory yet are created before the broker
// serves: a topic is either fully there or fully absent.
//
// Directories no topic accounts for (a topic id the image does not know,
// or a partition not assigned here) are renamed topic-N.<uuid>-stray and
// left for the operator.

// topic is one topic as published. It is immutable: a change publishes a
// new *topic.
type topic struct {
	Name       string
	ID         [16]byte
	Partitions int32
	// Configs are the topic's config overrides.
	Configs  map[string]string
	Internal bool
	// parts is each partition's replica state (leader, epochs, replicas,
	// ISR), from the image.
	parts []*metadata.PartitionImage
}

// partition returns partition p's replica state, or nil.
func (t *topic) partition(p int32) *metadata.PartitionImage {
	if p < 0 || int(p) >= len(t.parts) {
		return nil
	}
	return t.parts[p]
}

// catalog is the set of published topics.
//
// mu guards the maps; it is held only to read them or to swap in a newly
// published state, never across directory work. publish runs on one
// goroutine at a time (pubMu), which alone creates and detaches partition
// directories.
type catalog struct {
	mu     sync.RWMutex
	byName map[string]*topic
	byID   map[[16]byte]*topic
	// byKey maps a collision key (see collisionKey) to the topic holding it.
	byKey map[string]string
	// total counts this broker's partitions, for the broker-wide cap.
	total int64
	// image is the last image published and offset its offset.
	image   *metadata.Image
	changed *sync.Cond // broadcast on every publish (with mu)

	pubMu sync.Mutex

	nodeID        int32
	maxPartitions int64 // broker-wide cap; 0 = none
	limitSource   string

	store     *storage.Store
	logConfig func(map[string]string) storage.LogConfig
	// brokerConfigs are the dynamic broker configs of the last publish
	// (this node's, then the cluster default's), so publish can tell when
	// every topic's log config must be pushed again.
	brokerConfigs [2]map[string]string
	// onPublish runs after an image's directories exist and before the
	// image is visible (the group coordinator follows leadership there).
	onPublish func(*metadata.Image)
	log       *slog.Logger
	bg        sync.WaitGroup // background removal of deleted topics
}

// collisionKey is the name with '.' replaced by '_': Kafka refuses a topic
// whose key equals another topic's, as their metric names would collide.
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

func newCatalog(nodeID int32, log *slog.Logger) *catalog {
	c := &catalog{
		byName: map[string]*topic{},
		byID:   map[[16]byte]*topic{},
		byKey:  map[string]string{},
		image:  metadata.Empty(),
		nodeID: nodeID,
		log:    log,
	}
	c.changed = sync.NewCond(&c.mu)
	return c
}

// hosts reports whether this broker holds a replica of p.
func (c *catalog) hosts(p *metadata.PartitionImage) bool {
	return slices.Contains(p.Replicas, c.nodeID)
}

// adopt is storage.Options.Adopt: which partition directories Open loads,
// judged against the image replayed from the metadata log. Called only
// during storage.Open.
func (c *catalog) adopt(im *metadata.Image) func(name string, p int32, id [16]byte) storage.Adoption {
	return func(name string, p int32, id [16]byte) storage.Adoption {
		t := im.Topic(name)
		switch {
		case t != nil && (id == [16]byte{} || metadata.UUID(id) == t.ID):
			if int(p) < len(t.Partitions) && c.hosts(t.Partitions[p]) {
				return storage.AdoptLoad
			}
			return storage.AdoptStray // not assigned here
		case id != [16]byte{} && im.TopicByID(metadata.UUID(id)) == nil:
			// A topic the metadata log no longer has: deleted (maybe
			// re-created since under the same name).
			return storage.AdoptDelete
		}
		return storage.AdoptStray
	}
}

// attach gives the catalog its store once it is open.
func (c *catalog) attach(store *storage.Store, logConfig func(map[string]string) storage.LogConfig) {
	c.store, c.logConfig = store, logConfig
}

// publish carries an image out on this broker: it removes the topics the
// image no longer has, creates the directories of partitions assigned
// here, pushes changed configs to the logs, and then makes the image the
// catalog's. It returns the first error creating a directory; the topic
// concerned stays unpublished and the next publish tries again.
func (c *catalog) publish(im *metadata.Image) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.mu.RLock()
	prev := c.image
	old := c.byID
	c.mu.RUnlock()
	if im.Offset != 0 && im.Offset <= prev.Offset && prev.Offset != 0 {
		return nil
	}

	bcfg := [2]map[string]string{im.Configs(metadata.ResourceBroker, strconv.Itoa(int(c.nodeID))), im.Configs(metadata.ResourceBroker, "")}
	brokerChanged := !maps.Equal(bcfg[0], c.brokerConfigs[0]) || !maps.Equal(bcfg[1], c.brokerConfigs[1])
	c.brokerConfigs = bcfg

	// Removed topics go first: a topic re-created under the same name
	// needs the topic-N directory names.
	for id, t := range old {
		nt := im.TopicByID(metadata.UUID(id))
		if nt != nil && nt.Name == t.Name {
			continue
		}
		c.mu.Lock()
		delete(c.byName, t.Name)
		delete(c.byID, id)
		delete(c.byKey, collisionKey(t.Name))
		c.mu.Unlock()
		c.removeLocal(t)
	}

	next := make(map[[16]byte]*topic, len(im.Topics()))
	var firstErr error
	for _, ti := range im.Topics() {
		prevT := old[ti.ID]
		cfgs := im.Configs(metadata.ResourceTopic, ti.Name)
		if cfgs == nil {
			cfgs = map[string]string{}
		}
		if err := c.createLocal(ti, cfgs, prevT); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if prevT != nil {
				next[ti.ID] = prevT
			}
			continue
		}
		t := &topic{Name: ti.Name, ID: ti.ID, Partitions: int32(len(ti.Partitions)), Configs: cfgs,
			Internal: isInternalTopic(ti.Name), parts: ti.Partitions}
		if prevT == nil || brokerChanged || !maps.Equal(prevT.Configs, cfgs) || prevT.Partitions != t.Partitions {
			c.applyConfig(t)
		}
		next[ti.ID] = t
	}

	if c.onPublish != nil && firstErr == nil {
		c.onPublish(im)
	}
	c.mu.Lock()
	c.byID = next
	c.byName = make(map[string]*topic, len(next))
	c.byKey = make(map[string]string, len(next))
	c.total = 0
	for _, t := range next {
		c.byName[t.Name] = t
		c.byKey[collisionKey(t.Name)] = t.Name
		for _, p := range t.parts {
			if c.hosts(p) {
				c.total++
			}
		}
	}
	if firstErr == nil {
		c.image = im
	}
	c.changed.Broadcast()
	c.mu.Unlock()
	return firstErr
}

// createLocal creates the directories of the topic's partitions assigned
// here that have none (new partitions, or replicas a reassignment adds
// here), in runs of consecutive partitions.
func (c *catalog) createLocal(ti *metadata.TopicImage, cfgs map[string]string, prev *topic) error {
	var lc storage.LogConfig
	made := false
	for p := int32(0); p < int32(len(ti.Partitions)); {
		if !c.hosts(ti.Partitions[p]) || c.store.Get(ti.Name, p) != nil {
			p++
			continue
		}
		end := p + 1
		for end < int32(len(ti.Partitions)) && c.hosts(ti.Partitions[end]) && c.store.Get(ti.Name, end) == nil {
			end++
		}
		if !made {
			lc, made = c.logConfig(cfgs), true
		}
		if err := c.store.CreatePartitions(ti.Name, p, end, ti.ID, lc); err != nil {
			c.log.Error("creating partition directories failed; retrying at the next metadata change", "topic", ti.Name, "from", p, "to", end, "err", err)
			return err
		}
		p = end
	}
	return nil
}

// removeLocal renames a removed topic's directories for deletion and
// removes them in the background, as Kafka does.
func (c *catalog) removeLocal(t *topic) {
	paths, err := c.store.DetachTopic(t.Name, t.Partitions)
	if err != nil {
		// The next start removes what is left (Adopt: topic unknown).
		c.log.Error("deleted topic's directories not all renamed; the next start removes them", "topic", t.Name, "err", err)
	}
	if len(paths) == 0 {
		return
	}
	c.bg.Add(1)
	guard.Go(c.log, "topic directory removal", func() {
		defer c.bg.Done()
		if rerr := c.store.RemoveDirs(paths); rerr != nil {
			c.log.Error("removing a deleted topic's directories failed; the next start retries", "topic", t.Name, "err", rerr)
		}
	}, nil)
}

// offset is the metadata offset of the last image published.
func (c *catalog) offset() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.image.Offset
}

// currentImage is the last image published.
func (c *catalog) currentImage() *metadata.Image {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.image
}

// waitFor waits until cond holds for the published catalog or done is
// closed; cond runs with mu held (read).
func (c *catalog) waitFor(done <-chan struct{}, cond func() bool) bool {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-done:
			c.mu.Lock()
			c.changed.Broadcast()
			c.mu.Unlock()
		case <-stop:
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		select {
		case <-done:
			return false
		default:
		}
		c.changed.Wait()
	}
	return true
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

// isInternalTopic reports Kafka's internal topics, which only the broker
// creates, and clients can neither delete nor grow.
func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// collidesWith returns the topic whose name collides with name once '.'
// and '_' are unified, or "".
func (c *catalog) collidesWith(name string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if other, ok := c.byKey[collisionKey(name)]; ok && other != name {
		return other
	}
	return ""
}

// errCollision: the name collides with an existing topic's ('.' vs '_').
type errCollision struct{ name, existing string }

func (e *errCollision) Error() string {
	return fmt.Sprintf("Topic '%s' collides with existing topic: %s", e.name, e.existing)
}

// errPartitionLimit: the broker-wide partition cap would be exceeded.
type errPartitionLimit struct{ msg string }

func (e *errPartitionLimit) Error() string { return e.msg }

// checkLimit refuses adding n partitions over the broker-wide cap.
// Internal topics are exempt: the group coordinator needs its
// __consumer_offsets whatever clients did. In a cluster the count is of
// this broker's partitions, against a request's whole count: conservative.
func (c *catalog) checkLimit(name string, n int64, internal bool) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if internal || c.maxPartitions <= 0 || c.total+n <= c.maxPartitions {
		return nil
	}
	return &errPartitionLimit{fmt.Sprintf(
		"Adding %d partition(s) to topic '%s' would bring this broker to %d partitions, over its limit of %d "+
			"(gregor.max.partitions, %s). Delete topics, or raise gregor.max.partitions (and the open file limit).",
		n, name, c.total+n, c.maxPartitions, c.limitSource)}
}

// wait waits for background removals of deleted topics to finish.
func (c *catalog) wait() { c.bg.Wait() }

// applyConfig pushes a topic's log config to its local partitions.
func (c *catalog) applyConfig(t *topic) {
	lc := c.logConfig(t.Configs)
	for p := int32(0); p < t.Partitions; p++ {
		if l := c.store.Get(t.Name, p); l != nil {
			l.SetConfig(lc)
		}
	}
}
