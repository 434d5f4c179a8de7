package controller

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/metadata"
)

// DeleteTopic removes a topic by name; internal topics are refused by the
// caller's rules, not here.
func (c *Controller) DeleteTopic(ctx context.Context, name string) (metadata.UUID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return metadata.UUID{}, err
	}
	t := c.state.Image().Topic(name)
	if t == nil {
		return metadata.UUID{}, refuse(kerr.UnknownTopicOrPartition, "This server does not host this topic-partition.")
	}
	if _, err := c.commit(ctx, []metadata.Record{metadata.RemoveTopic{ID: t.ID}}); err != nil {
		return metadata.UUID{}, err
	}
	c.log.Info("deleted topic", "topic", name, "id", t.ID)
	return t.ID, nil
}

// CreatePartitions grows a topic to total partitions, placing the new ones
// (or using assignments, one replica list per new partition).
func (c *Controller) CreatePartitions(ctx context.Context, name string, total int32, assignments [][]int32, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return err
	}
	im := c.state.Image()
	t := im.Topic(name)
	if t == nil {
		return refuse(kerr.UnknownTopicOrPartition, "This server does not host this topic-partition.")
	}
	cur := int32(len(t.Partitions))
	switch {
	case total < cur:
		return refuse(kerr.InvalidPartitions, "Topic currently has %d partitions, which is higher than the requested %d.", cur, total)
	case total == cur:
		return refuse(kerr.InvalidPartitions, "Topic already has %d partitions.", cur)
	case total-cur > c.cfg.MaxPartitionsPerRequest:
		return refuse(kerr.PolicyViolation, "Excessively large number of partitions per request: %d > %d", total-cur, c.cfg.MaxPartitionsPerRequest)
	}
	rf := int16(len(t.Partitions[0].Replicas))
	assign := assignments
	if assign == nil {
		var err *Error
		if assign, err = place(im, cur, total-cur, rf); err != nil {
			return err
		}
	} else {
		if int32(len(assign)) != total-cur {
			return refuse(kerr.InvalidReplicaAssignment, "Increasing the number of partitions by %d but %d assignments provided.", total-cur, len(assign))
		}
		if err := checkAssignments(im, assign); err != nil {
			return err
		}
	}
	if validateOnly {
		return nil
	}
	recs := make([]metadata.Record, 0, len(assign))
	for i, rs := range assign {
		recs = append(recs, newPartition(im, t.ID, cur+int32(i), rs))
	}
	_, err := c.commit(ctx, recs)
	return err
}

// ConfigOp is one incremental config change: Value nil deletes.
type ConfigOp struct {
	Name  string
	Value *string
}

// AlterConfigs applies changes to one resource (a topic, a broker by id,
// or "" for the cluster-wide broker default). Validation of names and
// values is the caller's.
func (c *Controller) AlterConfigs(ctx context.Context, typ int8, resource string, ops []ConfigOp, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return err
	}
	im := c.state.Image()
	if typ == metadata.ResourceTopic && im.Topic(resource) == nil {
		return refuse(kerr.UnknownTopicOrPartition, "Topic %s does not exist", resource)
	}
	if validateOnly {
		return nil
	}
	recs := make([]metadata.Record, 0, len(ops))
	for _, op := range ops {
		recs = append(recs, metadata.Config{ResourceType: typ, ResourceName: resource, Name: op.Name, Value: op.Value})
	}
	_, err := c.commit(ctx, recs)
	return err
}

// AllocateProducerIDs hands a broker the next block of producer ids,
// unique cluster-wide: [first, first+count).
func (c *Controller) AllocateProducerIDs(ctx context.Context, broker int32, epoch int64) (first, count int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return 0, 0, err
	}
	im := c.state.Image()
	if b := im.Broker(broker); b == nil || b.Epoch != epoch {
		return 0, 0, refuse(kerr.StaleBrokerEpoch, "broker %d epoch %d is not the registered one", broker, epoch)
	}
	first = im.NextProducerID
	if _, err := c.commit(ctx, []metadata.Record{metadata.ProducerIDs{BrokerID: broker, BrokerEpoch: epoch,
		Next: first + c.cfg.ProducerIDBlock}}); err != nil {
		return 0, 0, err
	}
	return first, c.cfg.ProducerIDBlock, nil
}

// AlterPartition is a leader's ISR change (Kafka's AlterPartition): it is
// accepted only from the current leader at the current leader and
// partition epochs, and only with live replicas joining.
func (c *Controller) AlterPartition(ctx context.Context, broker int32, brokerEpoch int64, topic metadata.UUID, partition, leaderEpoch, partitionEpoch int32, isr []int32) (*metadata.PartitionImage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return nil, err
	}
	im := c.state.Image()
	if b := im.Broker(broker); b == nil || b.Epoch != brokerEpoch {
		return nil, refuse(kerr.StaleBrokerEpoch, "broker %d epoch %d is not the registered one", broker, brokerEpoch)
	}
	t := im.TopicByID(topic)
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, refuse(kerr.UnknownTopicOrPartition, "unknown partition")
	}
	p := t.Partitions[partition]
	switch {
	case p.Leader != broker:
		return nil, refuse(kerr.NotLeaderForPartition, "broker %d does not lead %s-%d", broker, t.Name, partition)
	case leaderEpoch != p.LeaderEpoch:
		return nil, refuse(kerr.FencedLeaderEpoch, "leader epoch %d, current %d", leaderEpoch, p.LeaderEpoch)
	case partitionEpoch != p.PartitionEpoch:
		return nil, refuse(kerr.InvalidUpdateVersion, "partition epoch %d, current %d", partitionEpoch, p.PartitionEpoch)
	case !slices.Contains(isr, broker):
		return nil, refuse(kerr.InvalidRequest, "the leader must stay in the ISR")
	}
	for _, r := range isr {
		if !slices.Contains(p.Replicas, r) {
			return nil, refuse(kerr.InvalidRequest, "broker %d is not a replica", r)
		}
		if b := im.Broker(r); !slices.Contains(p.ISR, r) && (b == nil || b.Fenced || b.InControlledShutdown) {
			return nil, refuse(kerr.IneligibleReplica, "broker %d is fenced or shutting down and cannot join the ISR", r)
		}
	}
	ch := metadata.PartitionChange{TopicID: topic, Partition: partition, ISR: slices.Clone(isr)}
	// The ISR change that brings the last adding replica in sync also
	// completes a reassignment in progress.
	c.completeIfDone(im, t, p, &ch, nil)
	if _, err := c.commit(ctx, []metadata.Record{ch}); err != nil {
		return nil, err
	}
	return c.state.Image().TopicByID(topic).Partitions[partition], nil
}

// UnregisterBroker removes a broker that is fenced (Kafka refuses to
// unregister a live broker only implicitly: a live one registers again).
func (c *Controller) UnregisterBroker(ctx context.Context, id int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return err
	}
	im := c.state.Image()
	b := im.Broker(id)
	if b == nil {
		return refuse(kerr.BrokerIDNotRegistered, "Broker ID not registered")
	}
	recs := []metadata.Record{}
	if !b.Fenced {
		recs = append(recs, c.fence(im, b)...)
	}
	recs = append(recs, metadata.UnregisterBroker{ID: id, Epoch: b.Epoch})
	_, err := c.commit(ctx, recs)
	delete(c.lastSeen, id)
	return err
}

// Import commits records as they are, as one batch: the broker's one-time
// import of a single-node data dir's topic catalog into a new metadata
// log. Only a ready leader imports; the image validates the records.
func (c *Controller) Import(ctx context.Context, recs []metadata.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lead(); err != nil {
		return err
	}
	_, err := c.commit(ctx, recs)
	return err
}
