package broker

// DeleteTopics (key 20), versions 0-6.
//
// Topics are named until v5 and named or identified by id from v6. As in
// Kafka, deletion is asynchronous: the active controller removes the topic
// from the metadata log before the answer (a broker that is not the
// controller forwards the request and answers once the topic is gone here
// too); each broker then renames its partition directories to
// topic-N.<uuid>-delete and removes them in the background (catalog.go).
// A topic that is re-created afterwards gets a new topic id.
// delete.topic.enable=false gives TOPIC_DELETION_DISABLED.
//
// Internal topics (__consumer_offsets, __transaction_state) belong to the
// broker: INVALID_REQUEST, the code KRaft gives for its own internal topic.
// Deviation: Kafka lets a client with cluster authorization delete
// __consumer_offsets (losing every group's offsets); Gregor has no ACLs, so
// it refuses.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registerRaw(20, 0, 6, func(c *conn, inf *inflight, r kmsg.Request) {
		req := r.(*kmsg.DeleteTopicsRequest)
		v := inf.hdr.Version
		if v < 6 {
			// Forwarded requests go at v6: name the topics the v6 way.
			for _, n := range req.TopicNames {
				t := kmsg.NewDeleteTopicsRequestTopic()
				t.Topic = &n
				req.Topics = append(req.Topics, t)
			}
		}
		c.goAsync(inf, func() kmsg.Response {
			resp := c.b.viaController(c, req, func(ctx context.Context) kmsg.Response {
				return deleteTopics(ctx, c.b, req)
			}, func() kmsg.Response {
				resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
				for _, t := range req.Topics {
					st := kmsg.NewDeleteTopicsResponseTopic()
					st.Topic, st.TopicID, st.ErrorCode = t.Topic, t.TopicID, kerr.NotController.Code
					resp.Topics = append(resp.Topics, st)
				}
				return resp
			}).(*kmsg.DeleteTopicsResponse)
			resp.SetVersion(v)
			if c.on == onBroker {
				var names []string
				for _, t := range resp.Topics {
					if t.ErrorCode == 0 && t.Topic != nil {
						names = append(names, *t.Topic)
					}
				}
				c.b.waitTopics(c.ctx, names, false)
			}
			return resp
		})
	}).alsoController()
}

// deleteTopics runs DeleteTopics where this node is the active controller.
func deleteTopics(ctx context.Context, b *Broker, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, t := range req.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		var t *topic
		// The controller's image, not this broker's published view: it
		// decides.
		im := b.meta.Image()
		var ti = im.TopicByID(tg.id)
		if tg.name != nil && *tg.name != "" {
			ti = im.Topic(*tg.name)
		}
		if ti != nil {
			t = &topic{Name: ti.Name, ID: ti.ID}
		}
		switch {
		case !b.cfg.DeleteTopicEnable:
			st.ErrorCode = kerr.TopicDeletionDisabled.Code
		case t == nil && (tg.name == nil || *tg.name == ""):
			st.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case isInternalTopic(t.Name):
			name := t.Name
			st.Topic, st.TopicID = &name, t.ID
			st.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("Deletion of internal topic %s is prohibited.", t.Name)
			st.ErrorMessage = &msg
		default:
			name := t.Name
			st.Topic, st.TopicID = &name, t.ID
			if _, err := b.ctl.DeleteTopic(ctx, t.Name); err != nil {
				code, msg := ctlErr(err)
				st.ErrorCode, st.ErrorMessage = code, &msg
			} else {
				b.log.Info("deleted topic", "topic", t.Name)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	b.awaitBrokers(ctx)
	return resp
}
