package broker

// DeleteTopics (key 20), versions 0-6.
//
// Topics are named until v5 and named or identified by id from v6. As in
// Kafka, deletion is asynchronous: the topic leaves the catalog durably
// before the answer, its partition directories are renamed to
// topic-N.<uuid>-delete at once and removed in the background (catalog.go).
// A topic that is re-created afterwards gets a new topic id.
// delete.topic.enable=false gives TOPIC_DELETION_DISABLED.
//
// Internal topics (__consumer_offsets, __transaction_state) belong to the
// broker: INVALID_REQUEST, the code KRaft gives for its own internal topic.
// Deviation: Kafka lets a client with cluster authorization delete
// __consumer_offsets (losing every group's offsets); Gregor has no ACLs, so
// it refuses.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(20, 0, 6, handleDeleteTopics)
}

func handleDeleteTopics(c *conn, v int16, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if v < 6 {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: &n})
		}
	} else {
		for _, t := range req.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	}
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		var t *topic
		if tg.name != nil && *tg.name != "" {
			t = b.catalog.get(*tg.name)
		} else {
			t = b.catalog.getByID(tg.id)
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
			if err := b.catalog.delete(t.Name); err != nil {
				b.log.Error("delete topic failed", "topic", t.Name, "err", err)
				st.ErrorCode = kerr.KafkaStorageError.Code
				msg := err.Error()
				st.ErrorMessage = &msg
			} else {
				b.log.Info("deleted topic", "topic", t.Name)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
