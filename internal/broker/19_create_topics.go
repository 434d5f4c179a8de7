package broker

// CreateTopics (key 19), versions 0-7.
//
// num_partitions and replication_factor of -1 take num.partitions and
// default.replication.factor. The active controller places the partitions
// over the registered brokers (rack-aware, leaders spread) and commits the
// topic to the metadata log; a broker that is not the active controller
// forwards the request to it, and answers once the topic is published
// here too, so the client's next Metadata or Produce finds it. A
// replication factor above the number of unfenced brokers fails with
// INVALID_REPLICATION_FACTOR, as in Kafka; manual assignments must name
// registered brokers, each once, the same number per partition
// (INVALID_REPLICA_ASSIGNMENT). Configs are checked against the topic
// config table (INVALID_CONFIG).
//
// Limits and rules (hardening): a request asking for more than
// gregor.max.partitions.per.request partitions in all (KRaft's fixed
// 10,000) fails every topic with POLICY_VIOLATION and KRaft's message; a
// topic that would take the broker over gregor.max.partitions fails with
// POLICY_VIOLATION naming the limit. Internal topics (__consumer_offsets,
// __transaction_state) are created by the broker only: INVALID_REQUEST, as
// KRaft answers for its own internal topic. A name that collides with
// another topic's once '.' and '_' are unified fails with
// INVALID_TOPIC_EXCEPTION, as in Kafka. A topic stays invisible on a broker
// until all its partitions there exist (catalog.go). validate_only checks
// everything and creates nothing.
// From v5 the response echoes the partition count, replication factor and
// the topic's effective configs; from v7 its id.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
)

func init() {
	registerRaw(19, 0, 7, func(c *conn, inf *inflight, r kmsg.Request) {
		req := r.(*kmsg.CreateTopicsRequest)
		v := inf.hdr.Version
		c.goAsync(inf, func() kmsg.Response {
			resp := c.b.viaController(c, req, func(ctx context.Context) kmsg.Response {
				// Brokers create internal topics on their own behalf over
				// the controller listener; clients never may.
				return createTopics(ctx, c.b, v, req, c.on == onController)
			}, func() kmsg.Response {
				return createTopicsFailed(req, kerr.NotController.Code, "this node is not the active controller")
			}).(*kmsg.CreateTopicsResponse)
			resp.SetVersion(v)
			if c.on == onBroker && !req.ValidateOnly {
				var names []string
				for _, t := range resp.Topics {
					if t.ErrorCode == 0 {
						names = append(names, t.Topic)
					}
				}
				c.b.waitTopics(c.ctx, names, true)
			}
			return resp
		})
	}).alsoController()
}

// createTopicsFailed answers every topic with one error.
func createTopicsFailed(req *kmsg.CreateTopicsRequest, code int16, msg string) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		st.ErrorCode, st.ErrorMessage = code, &msg
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// createTopics runs CreateTopics where this node is the active controller.
func createTopics(ctx context.Context, b *Broker, v int16, req *kmsg.CreateTopicsRequest, internalOK bool) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	if requestPartitions(req, b.cfg.NumPartitions) > int64(b.cfg.MaxPartitionsPerReq) {
		// Refused whole before any per-topic work, with one shared
		// message: a request of hundreds of thousands of tiny topics must
		// cost no more than its answer.
		msg := tooManyPartitionsMessage(b.cfg.MaxPartitionsPerReq)
		resp.Topics = make([]kmsg.CreateTopicsResponseTopic, len(req.Topics))
		for i, rt := range req.Topics {
			st := &resp.Topics[i]
			*st = kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.NumPartitions, st.ReplicationFactor = -1, -1
			st.ErrorCode, st.ErrorMessage = kerr.PolicyViolation.Code, &msg
		}
		return resp
	}
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	created := false
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		partitions, rf := rt.NumPartitions, rt.ReplicationFactor
		if len(rt.ReplicaAssignment) > 0 {
			partitions, rf = int32(len(rt.ReplicaAssignment)), int16(len(rt.ReplicaAssignment[0].Replicas))
		}
		if partitions == -1 {
			partitions = b.cfg.NumPartitions
		}
		if rf == -1 {
			rf = b.cfg.DefaultReplicationFactor
		}
		configs := map[string]string{}
		raw := map[string]*string{}
		for _, cfg := range rt.Configs {
			raw[cfg.Name] = cfg.Value
			if cfg.Value != nil {
				configs[cfg.Name] = *cfg.Value
			}
		}
		collides := b.catalog.collidesWith(rt.Topic)
		switch {
		case seen[rt.Topic] > 1:
			fail(kerr.InvalidRequest.Code, fmt.Sprintf("Create topics request from client contains multiple entries for the following topics: %s", rt.Topic))
		case !validTopicName(rt.Topic):
			fail(kerr.InvalidTopicException.Code, fmt.Sprintf("Topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-', or is empty, '.', '..' or longer than 249 characters", rt.Topic))
		case isInternalTopic(rt.Topic) && !internalOK:
			fail(kerr.InvalidRequest.Code, fmt.Sprintf("Creation of internal topic %s is prohibited.", rt.Topic))
		case b.catalog.get(rt.Topic) != nil:
			fail(kerr.TopicAlreadyExists.Code, fmt.Sprintf("Topic '%s' already exists.", rt.Topic))
		case collides != "":
			fail(kerr.InvalidTopicException.Code, (&errCollision{rt.Topic, collides}).Error())
		case partitions <= 0:
			fail(kerr.InvalidPartitions.Code, "Number of partitions must be larger than 0.")
		case rf <= 0:
			fail(kerr.InvalidReplicationFactor.Code, "Replication factor must be larger than 0.")
		case rf > 1 && int(rf) > b.liveBrokers():
			fail(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only %d broker(s) are registered.", rf, rf, b.liveBrokers()))
		default:
			if err := validateTopicConfigs(raw); err != nil {
				fail(kerr.InvalidConfig.Code, err.Error())
			} else if err := b.checkCompactionLags(raw); err != nil {
				fail(kerr.InvalidConfig.Code, err.Error())
			} else if err := b.catalog.checkLimit(rt.Topic, int64(partitions), false); err != nil {
				fail(kerr.PolicyViolation.Code, err.Error())
			}
		}
		if st.ErrorCode == 0 {
			created = created || !req.ValidateOnly
			spec := controller.TopicSpec{Name: rt.Topic, Partitions: partitions, ReplicationFactor: rf, Configs: configs}
			for _, a := range rt.ReplicaAssignment {
				spec.Assignments = append(spec.Assignments, a.Replicas)
			}
			res, err := b.ctl.CreateTopics(ctx, []controller.TopicSpec{spec}, req.ValidateOnly)
			switch {
			case err != nil:
				code, msg := ctlErr(err)
				fail(code, msg)
			case res[0].Err != nil:
				fail(res[0].Err.Code, res[0].Err.Message)
			default:
				st.TopicID = res[0].ID
				if !req.ValidateOnly {
					b.log.Info("created topic", "topic", rt.Topic, "partitions", partitions, "configs", configs)
				}
			}
		}
		if st.ErrorCode == 0 {
			st.NumPartitions, st.ReplicationFactor = partitions, rf
			if v >= 5 {
				for _, def := range topicConfigDefs {
					r := b.resolveTopicConfig(&def, configs)
					sc := kmsg.NewCreateTopicsResponseTopicConfig()
					sc.Name = def.name
					val := r.value
					sc.Value = &val
					sc.Source = int8(r.source)
					st.Configs = append(st.Configs, sc)
				}
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	if created {
		b.awaitBrokers(ctx)
	}
	return resp
}

// requestPartitions counts the partitions a CreateTopics request asks for,
// as KRaft's controller does before its per-request cap: assignments if
// given, else the count, with -1 meaning num.partitions.
func requestPartitions(req *kmsg.CreateTopicsRequest, defaultPartitions int32) int64 {
	var n int64
	for _, rt := range req.Topics {
		switch {
		case len(rt.ReplicaAssignment) > 0:
			n += int64(len(rt.ReplicaAssignment))
		case rt.NumPartitions == -1:
			n += int64(defaultPartitions)
		case rt.NumPartitions > 0:
			n += int64(rt.NumPartitions)
		}
	}
	return n
}

// tooManyPartitionsMessage starts with KRaft's message and names the limit.
func tooManyPartitionsMessage(limit int32) string {
	return fmt.Sprintf("Excessively large number of partitions per request. The limit is %d (gregor.max.partitions.per.request).", limit)
}
