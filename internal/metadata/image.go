package metadata

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Image is the cluster metadata as of one offset of the metadata log. It is
// immutable: Apply returns a new Image that shares every part the batch did
// not change, so readers hold an *Image without locks while the next one is
// built.
type Image struct {
	// Offset is the quorum index of the last batch applied (0: none).
	Offset  uint64
	brokers map[int32]*Broker
	byName  map[string]*TopicImage
	byID    map[UUID]*TopicImage
	configs map[ConfigKey]map[string]string
	// NextProducerID is the first producer id not yet handed out.
	NextProducerID int64
	features       map[string]int16
}

// Broker is a registered broker.
type Broker struct {
	ID                   int32
	Epoch                int64
	IncarnationID        UUID
	Listeners            []Endpoint
	Rack                 string
	Fenced               bool
	InControlledShutdown bool
}

// TopicImage is a topic and its partitions, indexed by partition number
// (partitions are always 0..n-1).
type TopicImage struct {
	Name       string
	ID         UUID
	Partitions []*PartitionImage
}

// PartitionImage is one partition's replica state.
type PartitionImage struct {
	Replicas       []int32
	ISR            []int32
	Adding         []int32
	Removing       []int32
	Leader         int32 // -1: none
	LeaderEpoch    int32
	PartitionEpoch int32
	Unclean        bool
}

// ConfigKey names a config resource.
type ConfigKey struct {
	Type int8
	Name string
}

// Empty is the image before any record.
func Empty() *Image {
	return &Image{
		brokers:  map[int32]*Broker{},
		byName:   map[string]*TopicImage{},
		byID:     map[UUID]*TopicImage{},
		configs:  map[ConfigKey]map[string]string{},
		features: map[string]int16{},
	}
}

// Broker returns a registered broker, or nil.
func (im *Image) Broker(id int32) *Broker { return im.brokers[id] }

// Brokers returns the registered brokers sorted by id.
func (im *Image) Brokers() []*Broker {
	out := make([]*Broker, 0, len(im.brokers))
	for _, b := range im.brokers {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Topic returns a topic by name, or nil.
func (im *Image) Topic(name string) *TopicImage { return im.byName[name] }

// TopicByID returns a topic by id, or nil.
func (im *Image) TopicByID(id UUID) *TopicImage { return im.byID[id] }

// Topics returns every topic sorted by name.
func (im *Image) Topics() []*TopicImage {
	out := make([]*TopicImage, 0, len(im.byName))
	for _, t := range im.byName {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Configs returns a resource's dynamic configs (do not modify).
func (im *Image) Configs(typ int8, name string) map[string]string {
	return im.configs[ConfigKey{typ, name}]
}

// Feature returns a finalized feature level (0: not finalized).
func (im *Image) Feature(name string) int16 { return im.features[name] }

// ErrInvalid marks a batch that does not apply to the image (the
// controller validates before proposing, so this means a bug or a
// concurrent change it raced with). A failed batch changes nothing.
var ErrInvalid = errors.New("metadata: record does not apply")

// Apply returns the image after the batch at offset. All records apply or
// none: on error the receiver is returned unchanged with the error.
func (im *Image) Apply(offset uint64, recs []Record) (*Image, error) {
	d := &delta{base: im, next: *im}
	for i, r := range recs {
		if err := d.apply(r); err != nil {
			return im, fmt.Errorf("%w: record %d (type %d): %v", ErrInvalid, i, r.Type(), err)
		}
	}
	d.next.Offset = offset
	return &d.next, nil
}

// delta builds the next image, copying each shared map the first time the
// batch writes to it.
type delta struct {
	base    *Image
	next    Image
	cBroker bool
	cTopics bool
	cConfig bool
	cFeat   bool
	touched map[UUID]bool // topics already copied in this batch
}

func (d *delta) brokersW() map[int32]*Broker {
	if !d.cBroker {
		d.next.brokers = maps.Clone(d.base.brokers)
		d.cBroker = true
	}
	return d.next.brokers
}

func (d *delta) topicsW() {
	if !d.cTopics {
		d.next.byName = maps.Clone(d.base.byName)
		d.next.byID = maps.Clone(d.base.byID)
		d.cTopics = true
		d.touched = map[UUID]bool{}
	}
}

// topicW returns a copy of the topic that this batch may modify.
func (d *delta) topicW(id UUID) *TopicImage {
	d.topicsW()
	t := d.next.byID[id]
	if t == nil {
		return nil
	}
	if !d.touched[id] {
		c := *t
		c.Partitions = slices.Clone(t.Partitions)
		t = &c
		d.next.byID[id], d.next.byName[t.Name] = t, t
		d.touched[id] = true
	}
	return t
}

func (d *delta) apply(r Record) error {
	switch r := r.(type) {
	case RegisterBroker:
		if r.ID < 0 {
			return fmt.Errorf("broker id %d", r.ID)
		}
		d.brokersW()[r.ID] = &Broker{ID: r.ID, Epoch: r.Epoch, IncarnationID: r.IncarnationID,
			Listeners: slices.Clone(r.Listeners), Rack: r.Rack, Fenced: r.Fenced}
	case UnregisterBroker:
		b := d.next.brokers[r.ID]
		if b == nil || b.Epoch != r.Epoch {
			return fmt.Errorf("broker %d epoch %d is not registered", r.ID, r.Epoch)
		}
		delete(d.brokersW(), r.ID)
	case BrokerChange:
		b := d.next.brokers[r.ID]
		if b == nil || b.Epoch != r.Epoch {
			return fmt.Errorf("broker %d epoch %d is not registered", r.ID, r.Epoch)
		}
		c := *b
		if r.Fenced != nil {
			c.Fenced = *r.Fenced
		}
		if r.InControlledShutdown != nil {
			c.InControlledShutdown = *r.InControlledShutdown
		}
		d.brokersW()[r.ID] = &c
	case Topic:
		if r.Name == "" {
			return errors.New("empty topic name")
		}
		if d.next.byName[r.Name] != nil || d.next.byID[r.ID] != nil {
			return fmt.Errorf("topic %q or id %s exists", r.Name, r.ID)
		}
		d.topicsW()
		t := &TopicImage{Name: r.Name, ID: r.ID}
		d.next.byName[r.Name], d.next.byID[r.ID] = t, t
		d.touched[r.ID] = true
	case Partition:
		t := d.topicW(r.TopicID)
		if t == nil {
			return fmt.Errorf("partition of unknown topic %s", r.TopicID)
		}
		if r.Partition < 0 || int(r.Partition) > len(t.Partitions) {
			return fmt.Errorf("partition %d of %s: partitions are numbered 0..%d", r.Partition, t.Name, len(t.Partitions))
		}
		if len(r.Replicas) == 0 {
			return fmt.Errorf("partition %d of %s has no replicas", r.Partition, t.Name)
		}
		p := &PartitionImage{Replicas: slices.Clone(r.Replicas), ISR: slices.Clone(r.ISR), Leader: r.Leader,
			LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch, Adding: slices.Clone(r.Adding),
			Removing: slices.Clone(r.Removing), Unclean: r.Unclean}
		if int(r.Partition) == len(t.Partitions) {
			t.Partitions = append(t.Partitions, p)
		} else {
			t.Partitions[r.Partition] = p
		}
	case PartitionChange:
		t := d.topicW(r.TopicID)
		if t == nil {
			return fmt.Errorf("change of unknown topic %s", r.TopicID)
		}
		if r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
			return fmt.Errorf("change of unknown partition %s-%d", t.Name, r.Partition)
		}
		c := *t.Partitions[r.Partition]
		if r.Leader != nil && *r.Leader != c.Leader {
			c.Leader = *r.Leader
			c.LeaderEpoch++
		}
		if r.ISR != nil {
			c.ISR = slices.Clone(r.ISR)
		}
		if r.Replicas != nil {
			c.Replicas = slices.Clone(r.Replicas)
		}
		// An empty list clears a reassignment: stored as nil, as a
		// snapshot (which omits empty lists) rebuilds it.
		if r.Adding != nil {
			c.Adding = nilIfEmpty(slices.Clone(*r.Adding))
		}
		if r.Removing != nil {
			c.Removing = nilIfEmpty(slices.Clone(*r.Removing))
		}
		if r.Unclean != nil {
			c.Unclean = *r.Unclean
		}
		if r.Replicas != nil || r.Adding != nil || r.Removing != nil {
			// A change of the replica set (reassignment) must leave a
			// consistent partition. Only such changes are checked, so
			// older logs replay as they always did.
			if err := checkReplicaSet(&c); err != nil {
				return fmt.Errorf("change of %s-%d: %v", t.Name, r.Partition, err)
			}
		}
		c.PartitionEpoch++
		t.Partitions[r.Partition] = &c
	case RemoveTopic:
		t := d.next.byID[r.ID]
		if t == nil {
			return fmt.Errorf("removal of unknown topic %s", r.ID)
		}
		d.topicsW()
		delete(d.next.byID, r.ID)
		delete(d.next.byName, t.Name)
		key := ConfigKey{ResourceTopic, t.Name}
		if _, ok := d.next.configs[key]; ok {
			d.configsW()
			delete(d.next.configs, key)
		}
	case Config:
		key := ConfigKey{r.ResourceType, r.ResourceName}
		if r.ResourceType == ResourceTopic && d.next.byName[r.ResourceName] == nil {
			return fmt.Errorf("config of unknown topic %q", r.ResourceName)
		}
		d.configsW()
		m := maps.Clone(d.next.configs[key])
		if m == nil {
			m = map[string]string{}
		}
		if r.Value == nil {
			delete(m, r.Name)
		} else {
			m[r.Name] = *r.Value
		}
		if len(m) == 0 {
			delete(d.next.configs, key)
		} else {
			d.next.configs[key] = m
		}
	case ProducerIDs:
		if r.Next <= d.next.NextProducerID {
			return fmt.Errorf("producer ids go backwards: %d after %d", r.Next, d.next.NextProducerID)
		}
		d.next.NextProducerID = r.Next
	case FeatureLevel:
		if !d.cFeat {
			d.next.features = maps.Clone(d.base.features)
			d.cFeat = true
		}
		d.next.features[r.Name] = r.Level
	default:
		return fmt.Errorf("unknown record %T", r)
	}
	return nil
}

func nilIfEmpty(s []int32) []int32 {
	if len(s) == 0 {
		return nil
	}
	return s
}

// checkReplicaSet checks a partition whose replicas changed: replicas
// non-empty and distinct, ISR, Adding and Removing among them (Adding and
// Removing disjoint), the leader one of them or none.
func checkReplicaSet(p *PartitionImage) error {
	if len(p.Replicas) == 0 {
		return errors.New("no replicas")
	}
	for i, r := range p.Replicas {
		if slices.Contains(p.Replicas[:i], r) {
			return fmt.Errorf("replica %d listed twice", r)
		}
	}
	for _, set := range [][]int32{p.ISR, p.Adding, p.Removing} {
		for _, r := range set {
			if !slices.Contains(p.Replicas, r) {
				return fmt.Errorf("broker %d is not a replica", r)
			}
		}
	}
	for _, r := range p.Adding {
		if slices.Contains(p.Removing, r) {
			return fmt.Errorf("replica %d both adding and removing", r)
		}
	}
	if p.Leader >= 0 && !slices.Contains(p.Replicas, p.Leader) {
		return fmt.Errorf("leader %d is not a replica", p.Leader)
	}
	return nil
}

func (d *delta) configsW() {
	if !d.cConfig {
		d.next.configs = maps.Clone(d.base.configs)
		d.cConfig = true
	}
}

// Records returns records that rebuild the image from Empty: the content of
// a snapshot. Order: features, brokers, topics with their partitions and
// configs, other configs, producer ids.
func (im *Image) Records() []Record {
	var out []Record
	names := make([]string, 0, len(im.features))
	for n := range im.features {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, FeatureLevel{Name: n, Level: im.features[n]})
	}
	for _, b := range im.Brokers() {
		out = append(out, RegisterBroker{ID: b.ID, Epoch: b.Epoch, IncarnationID: b.IncarnationID,
			Listeners: b.Listeners, Rack: b.Rack, Fenced: b.Fenced})
		if b.InControlledShutdown {
			yes := true
			out = append(out, BrokerChange{ID: b.ID, Epoch: b.Epoch, InControlledShutdown: &yes})
		}
	}
	for _, t := range im.Topics() {
		out = append(out, Topic{Name: t.Name, ID: t.ID})
		for i, p := range t.Partitions {
			out = append(out, Partition{TopicID: t.ID, Partition: int32(i), Replicas: p.Replicas, ISR: p.ISR,
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				Adding: p.Adding, Removing: p.Removing, Unclean: p.Unclean})
		}
	}
	keys := make([]ConfigKey, 0, len(im.configs))
	for k := range im.configs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Type != keys[j].Type {
			return keys[i].Type > keys[j].Type // topics (2) after brokers (4): topics exist by then anyway
		}
		return keys[i].Name < keys[j].Name
	})
	for _, k := range keys {
		cfg := im.configs[k]
		names := make([]string, 0, len(cfg))
		for n := range cfg {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := cfg[n]
			out = append(out, Config{ResourceType: k.Type, ResourceName: k.Name, Name: n, Value: &v})
		}
	}
	if im.NextProducerID > 0 {
		out = append(out, ProducerIDs{Next: im.NextProducerID})
	}
	return out
}
