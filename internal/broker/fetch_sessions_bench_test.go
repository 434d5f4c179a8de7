package broker

import (
	"context"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkFetchSession1000Partitions is the broker's work for one Fetch
// of a consumer of 1,000 partitions of which one has records to return:
// decoding the request, the fetch, the session bookkeeping and encoding
// the response (no network). "full" is a sessionless full fetch listing
// every partition (kgo.DisableFetchSessions), "incremental" a fetch of an
// established session listing nothing (the client's offsets unchanged).
func BenchmarkFetchSession1000Partitions(b *testing.B) {
	const parts = 1000
	br := fetchTestBroker(b)
	cl := fetchTestClient(b, br, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetchCreateTopic(b, cl, "wide", parts)
	// The active partition: 10 KiB of records; every fetch returns them
	// (partition_max_bytes 1 MiB), the others are at their end.
	for range 10 {
		r := &kgo.Record{Topic: "wide", Partition: 0, Value: make([]byte, 1024)}
		if err := cl.ProduceSync(fetchTestCtx(b), r).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	full := kmsg.NewPtrFetchRequest()
	full.Version = 17
	full.ReplicaID = -1
	full.MaxWaitMillis, full.MinBytes, full.MaxBytes = 500, 1, math.MaxInt32
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = "wide", br.catalog.get("wide").ID
	for p := range int32(parts) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	full.Topics = []kmsg.FetchRequestTopic{rt}
	ctx := context.Background()

	// serve is the broker's side of one request; it returns the response
	// size.
	var out []byte
	serve := func(raw []byte, epoch int32) (*kmsg.FetchResponse, int) {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 17
		if err := req.ReadFrom(raw); err != nil {
			b.Fatal(err)
		}
		if epoch != 0 {
			req.SessionEpoch = epoch // the client's next epoch
		}
		f, code := openFetch(br, ctx, req, br.clientListener)
		if code != 0 {
			b.Fatalf("session error %d", code)
		}
		if !f.fill() {
			b.Fatal("the active partition's records were not ready")
		}
		f.finishSession()
		out = f.resp.AppendTo(out[:0])
		resp := f.resp
		f.count()
		f.releaseBuffers()
		return resp, len(out)
	}

	b.Run("full", func(b *testing.B) {
		full.SessionID, full.SessionEpoch = 0, -1
		raw := full.AppendTo(nil)
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			resp, size := serve(raw, 0)
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != parts {
				b.Fatal("full fetch did not answer every partition")
			}
			n = size
		}
		b.ReportMetric(float64(len(raw)), "req-bytes")
		b.ReportMetric(float64(n), "resp-bytes")
	})
	b.Run("incremental", func(b *testing.B) {
		full.SessionID, full.SessionEpoch = 0, 0
		resp, _ := serve(full.AppendTo(nil), 0)
		if resp.SessionID == 0 {
			b.Fatal("no session")
		}
		inc := kmsg.NewPtrFetchRequest()
		inc.Version = 17
		inc.ReplicaID = -1
		inc.MaxWaitMillis, inc.MinBytes, inc.MaxBytes = 500, 1, math.MaxInt32
		inc.SessionID, inc.SessionEpoch = resp.SessionID, 1
		raw := inc.AppendTo(nil)
		epoch := int32(1)
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			resp, size := serve(raw, epoch)
			epoch = nextSessionEpoch(epoch)
			if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				b.Fatalf("incremental fetch: error %d, %d topics", resp.ErrorCode, len(resp.Topics))
			}
			n = size
		}
		b.ReportMetric(float64(len(raw)), "req-bytes")
		b.ReportMetric(float64(n), "resp-bytes")
	})
}
