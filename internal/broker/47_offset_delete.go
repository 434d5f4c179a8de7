package broker

// OffsetDelete (key 47), version 0.
//
// Deletes a group's committed offsets for some partitions. While the group
// has members subscribed to a topic, its partitions answer
// GROUP_SUBSCRIBED_TO_TOPIC. An unknown group is GROUP_ID_NOT_FOUND.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/group"
)

func init() {
	register(47, 0, 0, func(c *conn, v int16, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		topics := map[string][]int32{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				topics[t.Topic] = append(topics[t.Topic], p.Partition)
			}
		}
		res, err := c.b.groups.DeleteOffsets(req.Group, topics, subscribedTopics)
		var ke *kerr.Error
		switch {
		case errors.As(err, &ke): // NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS
			resp.ErrorCode = ke.Code
			return resp
		case errors.Is(err, group.ErrGroupNotFound):
			resp.ErrorCode = kerr.GroupIDNotFound.Code
			return resp
		case err != nil:
			c.log.Error("offset delete failed", "group", req.Group, "err", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
		for _, t := range req.Topics {
			st := kmsg.NewOffsetDeleteResponseTopic()
			st.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetDeleteResponseTopicPartition()
				sp.Partition = p.Partition
				if !c.b.topicExists(t.Topic) {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				} else if errors.Is(res[t.Topic][p.Partition], group.ErrSubscribed) {
					sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	})
}
