package broker

// CreatePartitions (key 37), versions 0-3.
//
// Grows a topic to `count` partitions. Shrinking or keeping the count fails
// with INVALID_PARTITIONS, explicit assignments must name this node only,
// and validate_only changes nothing.
//
// Limits (hardening): more than gregor.max.partitions.per.request new
// partitions in one request fails every topic with POLICY_VIOLATION (KRaft's
// per-request cap); going over gregor.max.partitions fails the topic with
// POLICY_VIOLATION naming the limit. Internal topics cannot be grown by
// clients (INVALID_REQUEST). The new partitions are written ahead and
// become visible only once they all exist (catalog.go).

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(37, 0, 3, handleCreatePartitions)
}

func handleCreatePartitions(c *conn, v int16, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	var adding int64
	for _, rt := range req.Topics {
		if t := b.catalog.get(rt.Topic); t != nil && rt.Count > t.Partitions {
			adding += int64(rt.Count - t.Partitions)
		}
	}
	tooMany := adding > int64(b.cfg.MaxPartitionsPerReq)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		t := b.catalog.get(rt.Topic)
		switch {
		case seen[rt.Topic] > 1:
			fail(kerr.InvalidRequest.Code, "Duplicate topic in request.")
		case tooMany:
			fail(kerr.PolicyViolation.Code, tooManyPartitionsMessage(b.cfg.MaxPartitionsPerReq))
		case t == nil:
			fail(kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("The topic '%s' does not exist.", rt.Topic))
		case t.Internal || isInternalTopic(t.Name):
			fail(kerr.InvalidRequest.Code, fmt.Sprintf("Adding partitions to internal topic %s is prohibited.", t.Name))
		case rt.Count < t.Partitions:
			fail(kerr.InvalidPartitions.Code, fmt.Sprintf("The topic %s currently has %d partition(s); %d would not be an increase.", rt.Topic, t.Partitions, rt.Count))
		case rt.Count == t.Partitions:
			fail(kerr.InvalidPartitions.Code, fmt.Sprintf("Topic already has %d partition(s).", t.Partitions))
		case rt.Assignment != nil && len(rt.Assignment) != int(rt.Count-t.Partitions):
			fail(kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", rt.Count-t.Partitions, len(rt.Assignment)))
		default:
			for _, a := range rt.Assignment {
				if len(a.Replicas) != 1 || a.Replicas[0] != b.cfg.NodeID {
					fail(kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("Replica assignments must name broker %d only.", b.cfg.NodeID))
					break
				}
			}
		}
		if st.ErrorCode == 0 && !req.ValidateOnly {
			var limit *errPartitionLimit
			if err := b.catalog.addPartitions(rt.Topic, rt.Count); errors.As(err, &limit) {
				fail(kerr.PolicyViolation.Code, err.Error())
			} else if err != nil {
				b.log.Error("create partitions failed", "topic", rt.Topic, "err", err)
				fail(kerr.KafkaStorageError.Code, err.Error())
			} else {
				b.log.Info("added partitions", "topic", rt.Topic, "partitions", rt.Count)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
