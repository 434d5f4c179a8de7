package broker

// OffsetFetch (key 9), versions 0-9.
//
// v0-7 fetch one group, v8+ many (groups[]). A null topic list (v2+) means
// every partition the group has committed. A partition without a commit
// answers offset -1 with no error, as Kafka does. A group this broker does
// not coordinate (or whose partition is loading) gets NOT_COORDINATOR
// (COORDINATOR_LOAD_IN_PROGRESS): v8+ per group, v2-7 at the top level,
// v0-1 on every requested partition. v7+ RequireStable (KIP-447): a
// partition with transactional offsets waiting for their marker answers
// UNSTABLE_OFFSET_COMMIT, which the consumer retries.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	register(9, 0, 9, handleOffsetFetch)
}

func handleOffsetFetch(c *conn, v int16, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	fetchOffsets := c.b.groups.FetchOffsets
	if v >= 7 && req.RequireStable {
		fetchOffsets = c.b.groups.FetchOffsetsRequireStable
	}
	if v < 8 {
		var topics map[string][]int32
		if req.Topics != nil || v < 2 {
			topics = map[string][]int32{}
			for _, t := range req.Topics {
				topics[t.Topic] = t.Partitions
			}
		}
		got, code := fetchOffsets(req.Group, topics)
		if code != 0 {
			if v >= 2 {
				resp.ErrorCode = code
				return resp
			}
			for _, rt := range req.Topics {
				st := kmsg.NewOffsetFetchResponseTopic()
				st.Topic = rt.Topic
				for _, p := range rt.Partitions {
					sp := kmsg.NewOffsetFetchResponseTopicPartition()
					sp.Partition, sp.Offset, sp.ErrorCode = p, -1, code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp
		}
		for _, t := range orderTopics(req.Topics, got) {
			st := kmsg.NewOffsetFetchResponseTopic()
			st.Topic = t
			for _, p := range sortedPartitions(got[t]) {
				fo := got[t][p]
				sp := kmsg.NewOffsetFetchResponseTopicPartition()
				sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p, fo.Offset, fo.LeaderEpoch, fo.ErrorCode
				meta := fo.Metadata
				sp.Metadata = &meta
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	for _, rg := range req.Groups {
		sg := kmsg.NewOffsetFetchResponseGroup()
		sg.Group = rg.Group
		var topics map[string][]int32
		if rg.Topics != nil {
			topics = map[string][]int32{}
			for _, t := range rg.Topics {
				topics[t.Topic] = t.Partitions
			}
		}
		got, code := fetchOffsets(rg.Group, topics)
		if code != 0 {
			sg.ErrorCode = code
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		names := make([]string, 0, len(got))
		for _, t := range rg.Topics {
			names = append(names, t.Topic)
		}
		if rg.Topics == nil {
			names = sortedKeys(got)
		}
		for _, t := range names {
			st := kmsg.NewOffsetFetchResponseGroupTopic()
			st.Topic = t
			for _, p := range sortedPartitions(got[t]) {
				fo := got[t][p]
				sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p, fo.Offset, fo.LeaderEpoch, fo.ErrorCode
				meta := fo.Metadata
				sp.Metadata = &meta
				st.Partitions = append(st.Partitions, sp)
			}
			sg.Topics = append(sg.Topics, st)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

func orderTopics[T any](req []kmsg.OffsetFetchRequestTopic, got map[string]T) []string {
	if req == nil {
		return sortedKeys(got)
	}
	out := make([]string, 0, len(req))
	for _, t := range req {
		out = append(out, t.Topic)
	}
	return out
}
