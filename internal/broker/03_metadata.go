package broker

// Metadata (key 3), versions 0-13.
//
// Brokers are the registered, unfenced brokers with their endpoint on the
// listener the request came in on; each partition has its leader, leader
// epoch, replicas and ISR from this broker's metadata image, with replicas
// on fenced brokers offline (a partition without a leader:
// LEADER_NOT_AVAILABLE). Topics are listed by name or, from v10, by id. Auto-creation happens when auto.create.topics.enable is set and the
// request allows it (always before v4, AllowAutoTopicCreation from v4), with
// num.partitions partitions. Deviation: Kafka answers the creating request
// with LEADER_NOT_AVAILABLE while leaders are elected; here the answer waits
// until the topic is published on this broker, so it is reported ready.
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
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/metadata"
)

func init() {
	// Also on the controller listener: brokers forward to the active
	// controller with a franz-go client, which refreshes Metadata from its
	// seeds now and then; refusing it would close the connection that
	// heartbeats and forwarded requests share.
	register(3, 0, 13, handleMetadata).alsoController()
}

const authorizedOpsUnknown = -2147483648

func handleMetadata(c *conn, v int16, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	im := b.catalog.currentImage()
	resp.Brokers = b.metadataBrokers(im, c.listener)
	resp.ClusterID = &b.clusterID
	resp.ControllerID = b.controllerIDForClients(im)
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
					t, _ = b.offsetsTopic(c.ctx)
					if t == nil {
						mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
					}
				case isInternalTopic(name):
					mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				default:
					var err error
					t, err = b.autoCreateTopic(c.ctx, name)
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
	im := b.catalog.currentImage()
	for p := int32(0); p < t.Partitions; p++ {
		ps := b.partitionState(im, t, p)
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.ErrorCode = ps.code
		mp.Leader, mp.LeaderEpoch = ps.leader, ps.leaderEpoch
		mp.Replicas, mp.ISR, mp.OfflineReplicas = ps.replicas, ps.isr, ps.offline
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// partitionView is a partition as Metadata and DescribeTopicPartitions
// report it.
type partitionView struct {
	code                   int16
	leader, leaderEpoch    int32
	replicas, isr, offline []int32
}

// partitionState is a partition's replica state from the image, with the
// replicas on fenced or unknown brokers offline. A partition this broker
// leads whose log is unusable (the log dir failed, or recovery found
// records missing: storage.Log.Offline) has this broker offline too, with
// KAFKA_STORAGE_ERROR; a partition with no leader has
// LEADER_NOT_AVAILABLE.
func (b *Broker) partitionState(im *metadata.Image, t *topic, p int32) partitionView {
	v := partitionView{leader: -1, replicas: []int32{}, isr: []int32{}, offline: []int32{}}
	pi := t.partition(p)
	if pi == nil {
		v.code = kerr.LeaderNotAvailable.Code
		return v
	}
	v.leader, v.leaderEpoch = pi.Leader, pi.LeaderEpoch
	v.replicas = append(v.replicas, pi.Replicas...)
	v.isr = append(v.isr, pi.ISR...)
	for _, r := range pi.Replicas {
		if br := im.Broker(r); br == nil || br.Fenced {
			v.offline = append(v.offline, r)
		}
	}
	if slices.Contains(pi.Replicas, b.cfg.NodeID) && !slices.Contains(v.offline, b.cfg.NodeID) {
		failed := b.store.Failure() != nil
		if !failed && b.store.HasOfflinePartitions() {
			l := b.store.Get(t.Name, p)
			failed = l != nil && l.Offline() != nil
		}
		if failed {
			v.offline = append(v.offline, b.cfg.NodeID)
			if v.leader == b.cfg.NodeID {
				v.code = kerr.KafkaStorageError.Code
				v.leader = -1
				v.isr = slices.DeleteFunc(v.isr, func(r int32) bool { return r == b.cfg.NodeID })
			}
		}
	}
	if v.leader == -1 && v.code == 0 {
		v.code = kerr.LeaderNotAvailable.Code
	}
	return v
}

// metadataBrokers lists the unfenced brokers with their endpoint on the
// named listener (the one the request came in on), as Kafka does.
func (b *Broker) metadataBrokers(im *metadata.Image, listener string) []kmsg.MetadataResponseBroker {
	var out []kmsg.MetadataResponseBroker
	for _, br := range im.Brokers() {
		if br.Fenced && br.ID != b.cfg.NodeID {
			continue
		}
		ep, ok := endpointOf(br, listener)
		if !ok {
			continue
		}
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = br.ID, ep.Host, ep.Port
		if br.Rack != "" {
			rack := br.Rack
			mb.Rack = &rack
		}
		out = append(out, mb)
	}
	if !slices.ContainsFunc(out, func(mb kmsg.MetadataResponseBroker) bool { return mb.NodeID == b.cfg.NodeID }) {
		// Not registered yet (or the image is behind): clients still need
		// this broker to talk to.
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.cfg.NodeID, b.advHost, b.advPort
		out = append(out, mb)
		slices.SortFunc(out, func(x, y kmsg.MetadataResponseBroker) int { return int(x.NodeID - y.NodeID) })
	}
	return out
}

// endpointOf is a broker's endpoint on a listener name; a request that
// came in on an unnamed (internal) listener gets the client listener.
func endpointOf(br *metadata.Broker, listener string) (metadata.Endpoint, bool) {
	for _, e := range br.Listeners {
		if e.Name == listener {
			return e, true
		}
	}
	if len(br.Listeners) > 0 && listener == "" {
		return br.Listeners[0], true
	}
	return metadata.Endpoint{}, false
}

// controllerIDForClients is the controller id Metadata and DescribeCluster
// report to clients: the active controller when it is a live broker (a
// combined node), else this broker, which forwards admin requests.
func (b *Broker) controllerIDForClients(im *metadata.Image) int32 {
	leader := int32(b.qnode.Status().Leader)
	if br := im.Broker(leader); br != nil && !br.Fenced {
		return leader
	}
	return b.cfg.NodeID
}

// autoCreateTopic creates a topic with the broker defaults, as a Metadata
// request or a produce to a missing topic may ask. The same rules as
// CreateTopics hold: collisions and the partition cap refuse it.
func (b *Broker) autoCreateTopic(ctx context.Context, name string) (*topic, error) {
	if err := b.catalog.checkLimit(name, int64(b.cfg.NumPartitions), false); err != nil {
		return nil, err
	}
	if other := b.catalog.collidesWith(name); other != "" {
		return nil, &errCollision{name, other}
	}
	t, err := b.createTopicInternal(ctx, controller.TopicSpec{Name: name, Partitions: b.cfg.NumPartitions, ReplicationFactor: 1})
	if err != nil {
		b.log.Warn("auto-create topic failed", "topic", name, "err", err)
		return nil, err
	}
	return t, nil
}
