package broker

// Upgrade from a single-node data dir written before the metadata quorum:
// its topic catalog (gregor-topics.json), dynamic broker configs
// (gregor-broker-configs.json) and producer-id counter (gregor-producer-ids)
// are imported into the new metadata log as records, once, with the same
// topic ids, so partition directories, committed offsets and producer
// state carry over. The files are then renamed with an .imported suffix.
// Until the import is committed the image those files describe decides
// which partition directories storage loads.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

const (
	legacyCatalogFile   = "gregor-topics.json"
	legacyDynamicFile   = "gregor-broker-configs.json"
	legacyProducerIDs   = "gregor-producer-ids"
	legacyImportedSufix = ".imported"
)

// legacyTopic is a topic as the old catalog file kept it.
type legacyTopic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	State      string            `json:"state,omitempty"`
}

type legacyState struct {
	dir     string
	topics  []legacyTopic
	broker  map[string]string
	cluster map[string]string
	nextPID int64
}

// loadLegacy reads the old files of a data dir whose metadata log is new.
// It returns nil when there is nothing to import. A new metadata log next
// to partition directories but no catalog is refused: the topics' ids and
// configs would be lost.
func loadLegacy(dir string, fresh bool) (*legacyState, error) {
	path := filepath.Join(dir, legacyCatalogFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !fresh {
			return nil, nil
		}
		dirs, derr := storage.PartitionDirs(dir)
		if derr != nil {
			return nil, fmt.Errorf("broker: %w", derr)
		}
		if len(dirs) > 0 {
			return nil, fmt.Errorf("broker: the metadata log %s is missing but the log dir holds %d partition directories (%s, ...); "+
				"restore %s from a backup, or move the partition directories out of %s to start with no topics",
				filepath.Join(dir, metadataDirName), len(dirs), dirs[0], metadataDirName, dir)
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("broker: topic catalog: %w", err)
	}
	if !fresh {
		// Imported before a crash stopped the rename.
		return nil, renameImported(dir)
	}
	l := &legacyState{dir: dir}
	var topics []legacyTopic
	if err := json.Unmarshal(data, &topics); err != nil {
		return nil, fmt.Errorf("broker: topic catalog %s: %w", path, err)
	}
	for _, t := range topics {
		if t.State == "" { // "creating" and "deleting" topics never were / are gone
			l.topics = append(l.topics, t)
		}
	}
	sort.Slice(l.topics, func(i, j int) bool { return l.topics[i].Name < l.topics[j].Name })
	if data, err := os.ReadFile(filepath.Join(dir, legacyDynamicFile)); err == nil {
		var body struct {
			Broker  map[string]string `json:"broker"`
			Cluster map[string]string `json:"cluster"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			return nil, fmt.Errorf("broker: %s: %w", legacyDynamicFile, err)
		}
		l.broker, l.cluster = body.Broker, body.Cluster
	}
	if data, err := os.ReadFile(filepath.Join(dir, legacyProducerIDs)); err == nil {
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("broker: %s: %w", legacyProducerIDs, err)
		}
		l.nextPID = n
	}
	return l, nil
}

// records are the metadata records equivalent to the old files, for a
// cluster of one (node).
func (l *legacyState) records(node int32) []metadata.Record {
	var recs []metadata.Record
	for _, t := range l.topics {
		recs = append(recs, metadata.Topic{Name: t.Name, ID: t.ID})
		for p := int32(0); p < t.Partitions; p++ {
			recs = append(recs, metadata.Partition{TopicID: t.ID, Partition: p, Replicas: []int32{node}, ISR: []int32{node}, Leader: node})
		}
		for _, k := range sortedKeys(t.Configs) {
			v := t.Configs[k]
			recs = append(recs, metadata.Config{ResourceType: metadata.ResourceTopic, ResourceName: t.Name, Name: k, Value: &v})
		}
	}
	for _, k := range sortedKeys(l.broker) {
		v := l.broker[k]
		recs = append(recs, metadata.Config{ResourceType: metadata.ResourceBroker, ResourceName: strconv.Itoa(int(node)), Name: k, Value: &v})
	}
	for _, k := range sortedKeys(l.cluster) {
		v := l.cluster[k]
		recs = append(recs, metadata.Config{ResourceType: metadata.ResourceBroker, ResourceName: "", Name: k, Value: &v})
	}
	if l.nextPID > 0 {
		recs = append(recs, metadata.ProducerIDs{BrokerID: node, Next: l.nextPID})
	}
	return recs
}

// image is the image the old files describe, for storage's adoption.
func (l *legacyState) image(node int32) *metadata.Image {
	im, err := metadata.Empty().Apply(1, l.records(node))
	if err != nil {
		return metadata.Empty()
	}
	return im
}

// importLegacy commits the old files' records; called where this node is
// the ready leader.
func (b *Broker) importLegacy() error {
	l := b.legacy.Load()
	if len(b.meta.Image().Topics()) == 0 {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		if err := b.ctl.Import(ctx, l.records(b.cfg.NodeID)); err != nil {
			return err
		}
		b.log.Info("imported the single-node topic catalog into the metadata log", "topics", len(l.topics))
	}
	if err := renameImported(l.dir); err != nil {
		b.log.Warn("could not rename the imported files", "err", err)
	}
	b.legacy.Store(nil)
	return nil
}

func renameImported(dir string) error {
	var errs []error
	for _, f := range []string{legacyCatalogFile, legacyDynamicFile, legacyProducerIDs} {
		p := filepath.Join(dir, f)
		if err := os.Rename(p, p+legacyImportedSufix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
