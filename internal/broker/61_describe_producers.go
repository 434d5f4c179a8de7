package broker

// DescribeProducers (key 61), version 0: the producer state of partitions
// led here (kafka-transactions.sh describe-producers, find-hanging):
// each producer's epoch, last sequence and timestamp, the coordinator
// epoch of its last marker and the first offset of its open transaction.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(61, 0, 0, func(c *conn, v int16, req *kmsg.DescribeProducersRequest) *kmsg.DescribeProducersResponse {
		b := c.b
		resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewDescribeProducersResponseTopic()
			st.Topic = rt.Topic
			t := b.catalog.get(rt.Topic)
			for _, p := range rt.Partitions {
				sp := kmsg.NewDescribeProducersResponseTopicPartition()
				sp.Partition = p
				l := b.store.Get(rt.Topic, p)
				switch {
				case t == nil || t.partition(p) == nil:
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case l == nil || !b.leads(t, p):
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
				case l.Offline() != nil:
					sp.ErrorCode = kerr.KafkaStorageError.Code
				default:
					for _, pi := range l.ProducerIDs() {
						ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
						ap.ProducerID, ap.ProducerEpoch = pi.ProducerID, int32(pi.Epoch)
						ap.LastSequence, ap.LastTimestamp = pi.LastSequence, pi.LastTimestamp
						ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = pi.CoordinatorEpoch, pi.TxnStartOffset
						sp.ActiveProducers = append(sp.ActiveProducers, ap)
					}
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	})
}
