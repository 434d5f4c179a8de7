package broker

// DeleteRecords (key 21), versions 0-2.
//
// Moves a partition's log start offset forward to `offset` (-1 means the
// high watermark) and removes whole segments below it. An offset beyond the
// high watermark is OFFSET_OUT_OF_RANGE. The answer carries the new low
// watermark.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(21, 0, 2, handleDeleteRecords)
}

func handleDeleteRecords(c *conn, v int16, req *kmsg.DeleteRecordsRequest) *kmsg.DeleteRecordsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			t := b.catalog.get(rt.Topic)
			l := b.store.Get(rt.Topic, rp.Partition)
			if t == nil || t.partition(rp.Partition) == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else if l == nil || !b.leads(t, rp.Partition) {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			} else if lw, err := l.DeleteRecordsBefore(rp.Offset); err != nil {
				sp.ErrorCode = errCode(err)
			} else {
				sp.LowWatermark = lw
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
