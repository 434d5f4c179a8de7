package broker

// ListOffsets (key 2), versions 0-10.
//
// Special timestamps: -1 latest (high watermark; the last stable offset for
// read_committed, equal until transactions exist), -2 earliest (log start
// offset), -3 the record with the largest timestamp (KIP-734, v7+), -4
// earliest local (= earliest, no tiered storage), -5 latest tiered (KIP-1005)
// and -6 earliest pending upload (KIP-1023; Kafka serves it from v11, and
// treats it as special at any version): no tiered storage, so offset -1.
// Any other timestamp finds the first record whose timestamp is at or after
// it; none gives offset -1, timestamp -1.
//
// Nothing at or above the high watermark is ever answered, as Kafka does
// for consumers: -1 is the HW (with gregor.durability=fsync the fsynced
// offset), and a timestamp lookup (or -3) that lands at or above the HW
// finds nothing (offset -1). A partition of an offline log dir answers
// KAFKA_STORAGE_ERROR.
//
// With the durable high watermark, latest (-1) first waits (at most
// listOffsetsSyncWait) for the fsync covering what the log holds when the
// request arrives: a client that produced with acks=0/1 and then asks for
// the end, as many do, sees its records as it would in Kafka (where a
// single replica's HW moves on append), at the cost of one group-commit
// round for this request.
//
// v0 answers in old_style_offsets, a list holding the one offset.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

func init() {
	register(2, 0, 10, handleListOffsets)
}

// listOffsetsSyncWait bounds how long latest waits for an fsync round.
const listOffsetsSyncWait = time.Second

// waitForLatest waits, at most listOffsetsSyncWait for the whole request,
// for the fsync covering what each partition asked for its latest offset
// holds now. All partitions wait in the same group-commit rounds. An error
// (timeout, shutdown, failure) just leaves the high watermarks where they
// are; a failure is reported per partition by the caller.
func waitForLatest(c *conn, req *kmsg.ListOffsetsRequest) {
	var logs []*storage.Log
	var offsets []int64
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if rp.Timestamp != -1 {
				continue
			}
			l := c.b.store.Get(rt.Topic, rp.Partition)
			if l == nil || l.Offline() != nil || l.Err() != nil {
				continue
			}
			if leo := l.LogEndOffset(); l.HighWatermark() < leo {
				logs, offsets = append(logs, l), append(offsets, leo-1)
			}
		}
	}
	if len(logs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, listOffsetsSyncWait)
	defer cancel()
	_ = storage.WaitDurableAll(ctx, logs, offsets)
}

func handleListOffsets(c *conn, v int16, req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	waitForLatest(c, req)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			t := b.catalog.get(rt.Topic)
			if t == nil || t.partition(rp.Partition) == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			l := b.store.Get(rt.Topic, rp.Partition)
			if !b.leads(t, rp.Partition) || l == nil {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if code := epochError(t, rp.Partition, rp.CurrentLeaderEpoch); v >= 4 && code != 0 {
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if l.Offline() != nil {
				// Recovery found records missing (storage.Log.Offline).
				sp.ErrorCode = kerr.KafkaStorageError.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			err := l.Err()
			hw := l.HighWatermark()
			switch {
			case err != nil:
			case rp.Timestamp == -1 && req.IsolationLevel == 1:
				sp.Offset = l.LastStableOffset()
			case rp.Timestamp == -1:
				sp.Offset = hw
			case rp.Timestamp == -2 || rp.Timestamp == -4:
				sp.Offset = l.LogStartOffset()
			case rp.Timestamp == -3:
				sp.Offset, sp.Timestamp, err = l.MaxTimestamp()
			case rp.Timestamp == -5 || rp.Timestamp == -6:
			default:
				var found bool
				var off, ts int64
				off, ts, found, err = l.OffsetForTimestamp(rp.Timestamp)
				if found {
					sp.Offset, sp.Timestamp = off, ts
				}
			}
			if (rp.Timestamp >= 0 || rp.Timestamp == -3) && sp.Offset >= hw {
				sp.Offset, sp.Timestamp = -1, -1 // not visible yet
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				sp.Offset, sp.Timestamp = -1, -1
			} else if sp.Offset >= 0 {
				// The epoch of the offset (KIP-320): a consumer validates
				// its position with it after a leader change.
				if rp.Timestamp == -1 {
					sp.LeaderEpoch = l.LatestEpoch()
				} else {
					sp.LeaderEpoch = l.EpochOf(sp.Offset)
				}
			}
			if v == 0 && sp.ErrorCode == 0 {
				if sp.Offset >= 0 {
					sp.OldStyleOffsets = []int64{sp.Offset}
				} else {
					sp.OldStyleOffsets = []int64{}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
