package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gregorhq/gregor/internal/storage"
)

// catalogFile holds the topic catalog in the log dir. Kafka keeps topics in
// its KRaft metadata log; until Gregor has a metadata quorum, a small JSON
// file rewritten atomically plays that part. Partition directories stay in
// Kafka's layout and carry the topic id in partition.metadata.
const catalogFile = "gregor-topics.json"

// topic is one topic's metadata. It is immutable once published in the
// catalog: changes replace the whole *topic under catalog.mu.
type topic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
}

// catalog is the set of topics. mu guards the maps and serializes every
// change with its write to disk; it is taken before any storage lock.
type catalog struct {
	mu     sync.RWMutex
	path   string
	byName map[string]*topic
	byID   map[[16]byte]*topic

	store     *storage.Store
	logConfig func(map[string]string) storage.LogConfig
}

func openCatalog(dir string, store *storage.Store, logConfig func(map[string]string) storage.LogConfig) (*catalog, error) {
	c := &catalog{
		path:      filepath.Join(dir, catalogFile),
		byName:    map[string]*topic{},
		byID:      map[[16]byte]*topic{},
		store:     store,
		logConfig: logConfig,
	}
	topics, err := readCatalog(c.path)
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		c.byName[t.Name] = t
		c.byID[t.ID] = t
	}
	// Reconcile with the partition directories: a crash between creating
	// directories and saving the catalog leaves directories the catalog
	// does not list, and the other way round.
	changed := false
	for _, l := range store.Partitions() {
		t := c.byName[l.Topic()]
		if t == nil {
			t = &topic{Name: l.Topic(), ID: l.TopicID()}
			c.byName[t.Name] = t
			c.byID[t.ID] = t
			changed = true
		}
		if l.Partition() >= t.Partitions {
			t.Partitions = l.Partition() + 1
			changed = true
		}
	}
	for _, t := range c.byName {
		lc := logConfig(t.Configs)
		for p := int32(0); p < t.Partitions; p++ {
			if l := store.Get(t.Name, p); l != nil {
				l.SetConfig(lc)
				continue
			}
			if _, err := store.Create(t.Name, p, t.ID, lc); err != nil {
				return nil, fmt.Errorf("broker: recreate %s-%d: %w", t.Name, p, err)
			}
		}
	}
	if changed {
		if err := c.saveLocked(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// readCatalog reads the catalog file; a missing file is an empty catalog.
func readCatalog(path string) ([]*topic, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("broker: topic catalog: %w", err)
	}
	var topics []*topic
	if err := json.Unmarshal(data, &topics); err != nil {
		return nil, fmt.Errorf("broker: topic catalog %s: %w", path, err)
	}
	return topics, nil
}

func (c *catalog) saveLocked() error {
	topics := make([]*topic, 0, len(c.byName))
	for _, t := range c.byName {
		topics = append(topics, t)
	}
	sort.Slice(topics, func(i, j int) bool { return topics[i].Name < topics[j].Name })
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

var errTopicExists = errors.New("topic already exists")

// create makes a topic with its partitions. If the topic appeared
// concurrently, it returns the existing one and errTopicExists.
func (c *catalog) create(name string, partitions int32, configs map[string]string, internal bool) (*topic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.byName[name]; t != nil {
		return t, errTopicExists
	}
	t := &topic{Name: name, Partitions: partitions, Configs: configs, Internal: internal}
	for {
		t.ID = newUUID()
		if c.byID[t.ID] == nil {
			break
		}
	}
	lc := c.logConfig(configs)
	for p := int32(0); p < partitions; p++ {
		if _, err := c.store.Create(name, p, t.ID, lc); err != nil {
			for q := int32(0); q < p; q++ {
				_ = c.store.Delete(name, q)
			}
			return nil, err
		}
	}
	c.byName[name] = t
	c.byID[t.ID] = t
	if err := c.saveLocked(); err != nil {
		return nil, err
	}
	return t, nil
}

// delete removes a topic and its partition directories.
func (c *catalog) delete(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byName[name]
	if t == nil {
		return nil
	}
	delete(c.byName, name)
	delete(c.byID, t.ID)
	// Save first: a crash after this leaves orphan directories, which
	// openCatalog would adopt again, so remove them right after.
	if err := c.saveLocked(); err != nil {
		return err
	}
	var errs []error
	for p := int32(0); p < t.Partitions; p++ {
		if err := c.store.Delete(name, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addPartitions grows a topic to total partitions.
func (c *catalog) addPartitions(name string, total int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byName[name]
	if t == nil {
		return errors.New("unknown topic")
	}
	nt := *t
	nt.Partitions = total
	lc := c.logConfig(t.Configs)
	for p := t.Partitions; p < total; p++ {
		if _, err := c.store.Create(name, p, t.ID, lc); err != nil {
			return err
		}
	}
	c.byName[name] = &nt
	c.byID[nt.ID] = &nt
	return c.saveLocked()
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

func (c *catalog) applyLocked(t *topic) {
	lc := c.logConfig(t.Configs)
	for p := int32(0); p < t.Partitions; p++ {
		if l := c.store.Get(t.Name, p); l != nil {
			l.SetConfig(lc)
		}
	}
}
