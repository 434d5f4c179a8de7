package broker

// DescribeTopicPartitions (key 75), version 0.
//
// Kafka 4's topic tool describes topics with this API. An empty topic list
// means every topic. Topics are answered in name order, and at most
// response_partition_limit partitions (capped at 2000, Kafka's
// max.request.partition.size.limit) per response; when more remain,
// next_cursor names the topic and partition to continue from, and a request
// carrying a cursor starts there. Leader, leader epoch, replicas, ISR and
// offline replicas come from this broker's metadata image, as in
// Metadata. Eligible-leader-replica lists are empty (no ELR without
// replication). A partition this broker leads whose log is unusable gets
// KAFKA_STORAGE_ERROR, no leader, this broker offline.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(75, 0, 0, handleDescribeTopicPartitions)
}

const maxDescribePartitions = 2000

func handleDescribeTopicPartitions(c *conn, v int16, req *kmsg.DescribeTopicPartitionsRequest) *kmsg.DescribeTopicPartitionsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	limit := int(req.ResponsePartitionLimit)
	if limit <= 0 || limit > maxDescribePartitions {
		limit = maxDescribePartitions
	}
	var names []string
	if len(req.Topics) == 0 {
		for _, t := range b.catalog.all() {
			names = append(names, t.Name)
		}
	} else {
		for _, t := range req.Topics {
			names = append(names, t.Topic)
		}
		sort.Strings(names)
	}
	startTopic, startPartition := "", int32(0)
	if req.Cursor != nil {
		startTopic, startPartition = req.Cursor.Topic, req.Cursor.Partition
	}
	count := 0
	im := b.catalog.currentImage()
	for _, name := range names {
		if name < startTopic {
			continue
		}
		st := kmsg.NewDescribeTopicPartitionsResponseTopic()
		n := name
		st.Topic = &n
		st.AuthorizedOperations = authorizedOpsTopic // always, unknown topics too, as in Kafka
		t := b.catalog.get(name)
		if t == nil {
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.TopicID, st.IsInternal = t.ID, t.Internal
		first := int32(0)
		if name == startTopic {
			first = startPartition
		}
		for p := first; p < t.Partitions; p++ {
			if count == limit {
				cur := kmsg.NewDescribeTopicPartitionsResponseNextCursor()
				cur.Topic, cur.Partition = name, p
				resp.NextCursor = &cur
				break
			}
			ps := b.partitionState(im, t, p)
			sp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			sp.Partition, sp.LeaderID, sp.LeaderEpoch = p, ps.leader, ps.leaderEpoch
			sp.Replicas, sp.ISR, sp.OfflineReplicas = ps.replicas, ps.isr, ps.offline
			sp.EligibleLeaderReplicas, sp.LastKnownELR = []int32{}, []int32{}
			if ps.code == kerr.KafkaStorageError.Code {
				sp.ErrorCode = ps.code
			}
			st.Partitions = append(st.Partitions, sp)
			count++
		}
		resp.Topics = append(resp.Topics, st)
		if resp.NextCursor != nil {
			break
		}
	}
	return resp
}
