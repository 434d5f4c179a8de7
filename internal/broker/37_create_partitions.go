package broker

// CreatePartitions (key 37), versions 0-3.
//
// Grows a topic to `count` partitions. Shrinking or keeping the count fails
// with INVALID_PARTITIONS, explicit assignments must name as many brokers
// per partition as the topic's replication factor, and validate_only
// changes nothing. The
// active controller places and commits the new partitions; a broker that
// is not the controller forwards the request and answers once it has
// published the new count.
//
// Limits (hardening): more than gregor.max.partitions.per.request new
// partitions in one request fails every topic with POLICY_VIOLATION (KRaft's
// per-request cap); going over gregor.max.partitions fails the topic with
// POLICY_VIOLATION naming the limit. Internal topics cannot be grown by
// clients (INVALID_REQUEST). The new partitions become visible on a broker
// only once they all exist there (catalog.go).

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registerAdmin(37, 0, 3, createPartitions, func(_ *Broker, req *kmsg.CreatePartitionsRequest, code int16) *kmsg.CreatePartitionsResponse {
		resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewCreatePartitionsResponseTopic()
			st.Topic, st.ErrorCode = rt.Topic, code
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}, func(c *conn, req *kmsg.CreatePartitionsRequest, resp *kmsg.CreatePartitionsResponse) {
		if req.ValidateOnly {
			return
		}
		want := map[string]int32{}
		for i, st := range resp.Topics {
			if st.ErrorCode == 0 && i < len(req.Topics) {
				want[st.Topic] = req.Topics[i].Count
			}
		}
		if len(want) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		c.b.catalog.waitFor(ctx.Done(), func() bool {
			for name, n := range want {
				if t := c.b.catalog.byName[name]; t == nil || t.Partitions < n {
					return false
				}
			}
			return true
		})
	})
}

// createPartitions runs CreatePartitions where this node is the active
// controller.
func createPartitions(ctx context.Context, b *Broker, v int16, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	var adding int64
	for _, rt := range req.Topics {
		if t := b.meta.Image().Topic(rt.Topic); t != nil && rt.Count > int32(len(t.Partitions)) {
			adding += int64(rt.Count - int32(len(t.Partitions)))
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
		var t *topic
		if ti := b.meta.Image().Topic(rt.Topic); ti != nil {
			t = &topic{Name: ti.Name, ID: ti.ID, Partitions: int32(len(ti.Partitions)), parts: ti.Partitions}
		}
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
			rf := len(t.parts[0].Replicas)
			if i := slices.IndexFunc(rt.Assignment, func(a kmsg.CreatePartitionsRequestTopicAssignment) bool { return len(a.Replicas) != rf }); i >= 0 {
				fail(kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("Inconsistent replication factor between partitions, partition 0 has %d while partition %d has replicas %v.", rf, int(t.Partitions)+i, rt.Assignment[i].Replicas))
			} else if err := b.catalog.checkLimit(rt.Topic, int64(rt.Count-t.Partitions), false); err != nil {
				fail(kerr.PolicyViolation.Code, err.Error())
			}
		}
		if st.ErrorCode == 0 {
			var assign [][]int32
			for _, a := range rt.Assignment {
				assign = append(assign, a.Replicas)
			}
			if err := b.ctl.CreatePartitions(ctx, rt.Topic, rt.Count, assign, req.ValidateOnly); err != nil {
				code, msg := ctlErr(err)
				fail(code, msg)
			} else if !req.ValidateOnly {
				b.log.Info("added partitions", "topic", rt.Topic, "partitions", rt.Count)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	b.awaitBrokers(ctx)
	return resp
}
