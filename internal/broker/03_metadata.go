package broker

// Metadata (key 3), versions 0-13.
//
// One broker (this node) leads every partition, with itself as the only
// replica and ISR, at leader epoch 0. Topics are listed by name or, from v10,
// by id. Auto-creation happens when auto.create.topics.enable is set and the
// request allows it (always before v4, AllowAutoTopicCreation from v4), with
// num.partitions partitions. Deviation: Kafka answers the creating request
// with LEADER_NOT_AVAILABLE while leaders are elected; here the topic is
// usable at once, so it is reported ready and the client need not retry.
// Auto-creation follows CreateTopics' rules: a name colliding with another
// on '.'/'_' gets INVALID_TOPIC_EXCEPTION, one over gregor.max.partitions
// POLICY_VIOLATION, and a request whose missing topics would need more than
// gregor.max.partitions.per.request partitions creates none of them
// (POLICY_VIOLATION each); of the internal topics only __consumer_offsets
// is created, and with the coordinator's settings.
//
// A partition that recovery left offline (records missing between
// segments) is reported with KAFKA_STORAGE_ERROR and this node as its
// offline replica.
//
// When the log dir is offline (an I/O error; see logdir_failure.go) every
// partition answers KAFKA_STORAGE_ERROR with no leader, the node listed in
// offline_replicas and an empty ISR: the only replica is unusable.
//
// v0 asks for all topics with an empty list; v1+ with a null list.
// Cluster and topic authorized operations are reported as "not requested"
// (-2147483648) since there are no ACLs.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
)

func init() {
	register(3, 0, 13, handleMetadata)
}

const authorizedOpsUnknown = -2147483648

func handleMetadata(c *conn, v int16, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.advHost, b.advPort
	resp.Brokers = []kmsg.MetadataResponseBroker{br}
	resp.ClusterID = &b.clusterID
	resp.ControllerID = b.cfg.NodeID
	resp.AuthorizedOperations = authorizedOpsUnknown

	allTopics := req.Topics == nil || (v == 0 && len(req.Topics) == 0)
	if allTopics {
		for _, t := range b.catalog.all() {
			resp.Topics = append(resp.Topics, b.metadataTopic(t, 0))
		}
		return withTopicAuthorizedOps(v, req, resp)
	}
	autoCreate := b.cfg.AutoCreateTopics && (v < 4 || req.AllowAutoTopicCreation)
	// Auto-creation is one CreateTopics on the client's behalf, so the same
	// per-request partition limit holds for the request as a whole (KRaft
	// refuses the whole batch): one Metadata request cannot create ten
	// thousand topics.
	tooMany := false
	if autoCreate {
		missing := int64(0)
		for _, rt := range req.Topics {
			if rt.Topic != nil && *rt.Topic != "" && b.catalog.get(*rt.Topic) == nil {
				missing++
			}
		}
		tooMany = missing*int64(b.cfg.NumPartitions) > int64(b.cfg.MaxPartitionsPerReq)
	}
	for _, rt := range req.Topics {
		var t *topic
		switch {
		case rt.Topic == nil || *rt.Topic == "":
			t = b.catalog.getByID(rt.TopicID)
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		default:
			name := *rt.Topic
			t = b.catalog.get(name)
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = &name
				mt.AuthorizedOperations = authorizedOpsUnknown
				switch {
				case !validTopicName(name):
					mt.ErrorCode = kerr.InvalidTopicException.Code
				case !autoCreate:
					mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case tooMany:
					mt.ErrorCode = kerr.PolicyViolation.Code
				case name == group.TopicName:
					// Kafka creates its internal topics only through the
					// coordinator's own path, with their own settings.
					t, _ = b.offsetsTopic()
					if t == nil {
						mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
					}
				case isInternalTopic(name):
					mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				default:
					var err error
					t, err = b.autoCreateTopic(name)
					var collision *errCollision
					var limit *errPartitionLimit
					switch {
					case errors.As(err, &collision):
						mt.ErrorCode = kerr.InvalidTopicException.Code
					case errors.As(err, &limit):
						mt.ErrorCode = kerr.PolicyViolation.Code
					case err != nil:
						mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
					}
				}
				if t == nil {
					resp.Topics = append(resp.Topics, mt)
					continue
				}
			}
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(t, 0))
	}
	return withTopicAuthorizedOps(v, req, resp)
}

// withTopicAuthorizedOps: asked for (v8+), every topic in the answer, an
// unknown one included, gets every topic operation, as Kafka without an
// authorizer answers. The cluster's operations stay unknown: Kafka 4 no
// longer fills them in Metadata (DescribeCluster has them).
func withTopicAuthorizedOps(v int16, req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse) *kmsg.MetadataResponse {
	if v >= 8 && req.IncludeTopicAuthorizedOperations {
		for i := range resp.Topics {
			resp.Topics[i].AuthorizedOperations = authorizedOpsTopic
		}
	}
	return resp
}

func (b *Broker) metadataTopic(t *topic, code int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.ErrorCode = code
	mt.IsInternal = t.Internal
	mt.AuthorizedOperations = authorizedOpsUnknown
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, 0, t.Partitions)
	dirFailed := b.store.Failure() != nil
	someOffline := b.store.HasOfflinePartitions()
	for p := int32(0); p < t.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.Leader = b.cfg.NodeID
		mp.LeaderEpoch = 0
		mp.Replicas = []int32{b.cfg.NodeID}
		mp.ISR = []int32{b.cfg.NodeID}
		mp.OfflineReplicas = []int32{}
		if dirFailed || someOffline {
			// The log dir failed (an I/O error), or recovery found records
			// missing in this partition (storage.Log.Offline): the only
			// replica is offline.
			if l := b.store.Get(t.Name, p); dirFailed || (l != nil && l.Offline() != nil) {
				mp.ErrorCode = kerr.KafkaStorageError.Code
				mp.Leader = -1
				mp.ISR = []int32{}
				mp.OfflineReplicas = []int32{b.cfg.NodeID}
			}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// autoCreateTopic creates a topic with the broker defaults, as a Metadata
// request or a produce to a missing topic may ask. The same rules as
// CreateTopics hold: collisions and the partition cap refuse it.
func (b *Broker) autoCreateTopic(name string) (*topic, error) {
	t, err := b.catalog.create(name, b.cfg.NumPartitions, nil, false)
	if err == errTopicExists {
		return t, nil
	}
	if err != nil {
		b.log.Error("auto-create topic failed", "topic", name, "err", err)
		return nil, err
	}
	b.log.Info("auto-created topic", "topic", name, "partitions", b.cfg.NumPartitions)
	return t, nil
}
