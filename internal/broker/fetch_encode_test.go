package broker

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
	"github.com/gregorhq/gregor/internal/wire"
)

// randomFetchResponse fills a response of version v with what a broker
// may set: errors, offsets, aborted transactions (nil or not), records
// (empty or not), leader hints, diverging epochs, snapshot ids, brokers.
func randomFetchResponse(r *rand.Rand, v int16) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = v
	resp.ThrottleMillis = r.Int31n(100)
	resp.ErrorCode = int16(r.Intn(3))
	resp.SessionID = r.Int31()
	for t := r.Intn(4); t > 0; t-- {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = string(rune('a'+r.Intn(26))) + "topic"
		r.Read(st.TopicID[:])
		for p := r.Intn(5); p > 0; p-- {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = r.Int31n(1000)
			sp.ErrorCode = int16(r.Intn(2) * 6)
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = r.Int63(), r.Int63(), r.Int63()
			sp.PreferredReadReplica = r.Int31n(3) - 1
			if r.Intn(2) == 0 {
				sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				for a := r.Intn(3); a > 0; a-- {
					sp.AbortedTransactions = append(sp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: r.Int63(), FirstOffset: r.Int63()})
				}
			}
			sp.RecordBatches = make([]byte, r.Intn(3)*r.Intn(300))
			r.Read(sp.RecordBatches)
			if r.Intn(3) == 0 {
				sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = r.Int31n(5), r.Int31n(50)
			}
			if r.Intn(4) == 0 {
				sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = r.Int31n(50), r.Int63()
			}
			if r.Intn(5) == 0 {
				sp.SnapshotID.Epoch, sp.SnapshotID.EndOffset = r.Int31n(50), r.Int63()
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if r.Intn(2) == 0 {
		for b := r.Intn(3) + 1; b > 0; b-- {
			br := kmsg.NewFetchResponseBroker()
			br.NodeID, br.Host, br.Port = r.Int31n(9), "host", r.Int31n(65536)
			if r.Intn(2) == 0 {
				rack := "rack"
				br.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, br)
		}
	}
	return resp
}

// The spliced encoding, with the file ranges' bytes put back, is exactly
// kmsg's encoding of the same response, for every version Fetch is served
// at; and the frame size counts the spliced records.
func TestAppendFetchResponseMatchesKmsg(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "segment"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewSource(1))
	for v := int16(4); v <= 17; v++ {
		for i := 0; i < 200; i++ {
			resp := randomFetchResponse(r, v)
			// Records of some partitions go to the file, at random places.
			ranges := map[[2]int]storage.FileRange{}
			for ti := range resp.Topics {
				for pi, p := range resp.Topics[ti].Partitions {
					if len(p.RecordBatches) > 0 && r.Intn(2) == 0 {
						pos := r.Int63n(1 << 20)
						if _, err := f.WriteAt(p.RecordBatches, pos); err != nil {
							t.Fatal(err)
						}
						ranges[[2]int{ti, pi}] = storage.FileRange{File: f, Pos: pos, Size: len(p.RecordBatches)}
					}
				}
			}
			corr := r.Int31()
			want := wire.AppendResponse(nil, corr, resp)
			buf, pieces := appendFetchResponse([]byte("prefix"), corr, resp, func(ti, pi int) storage.FileRange { return ranges[[2]int{ti, pi}] })
			if !bytes.HasPrefix(buf, []byte("prefix")) {
				t.Fatal("the buffer's prefix was overwritten")
			}
			var got []byte
			for _, pc := range pieces {
				if pc.fr.Size == 0 {
					got = append(got, pc.b...)
					continue
				}
				b := make([]byte, pc.fr.Size)
				if _, err := pc.fr.File.ReadAt(b, pc.fr.Pos); err != nil {
					t.Fatal(err)
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d case %d: %d spliced bytes differ from kmsg's %d", v, i, len(got), len(want))
			}
		}
	}
}

// Consumers get large reads from the segment files with sendfile and
// small ones copied, and every byte arrives as produced, whichever way
// it went; kgo's fetch sessions move partitions around in between.
func TestFetchSendsLargeReadsFromTheFile(t *testing.T) {
	b := fetchTestBroker(t)
	ctx := fetchTestCtx(t)
	cl := fetchTestClient(t, b, kgo.DefaultProduceTopic("big"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(20*time.Millisecond))
	fetchCreateTopic(t, cl, "big", 3)
	r := rand.New(rand.NewSource(2))
	want := map[string]bool{}
	var recs []*kgo.Record
	for i := 0; i < 300; i++ {
		v := make([]byte, 1+r.Intn(20000))
		r.Read(v)
		if i%50 == 0 {
			v = v[:10] // some small records
		}
		want[string(v)] = true
		recs = append(recs, &kgo.Record{Value: v})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	before := scrape(t, b)
	sent0, _ := value(before, "gregor_fetch_sendfile_bytes_total")

	c := fetchTestClient(t, b, kgo.ConsumeTopics("big"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < len(recs) {
		fs := c.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if !want[string(rec.Value)] {
				t.Fatalf("record at %d/%d was not produced (%d bytes)", rec.Partition, rec.Offset, len(rec.Value))
			}
			got++
		})
	}
	after := scrape(t, b)
	sent, _ := value(after, "gregor_fetch_sendfile_bytes_total")
	if sent-sent0 < 1<<20 {
		t.Errorf("%v bytes went with sendfile for about 3 MB of records", sent-sent0)
	}
	if v, _ := value(after, "kafka_server_brokertopicmetrics_bytesout_total", "topic", "big"); v < sent-sent0 {
		t.Errorf("bytes out %v, less than the %v sent from files", v, sent-sent0)
	}
}
