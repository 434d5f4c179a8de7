package broker

// Fetch (key 1), versions 4-17.
//
// Reads whole record batches, byte for byte as stored. Limits follow KIP-74:
// the response holds at most max_bytes and each partition at most its
// partition_max_bytes, except that the first batch of the first non-empty
// partition is always returned whole, however large, so a consumer can
// always make progress. Other partitions never get a cut batch: a batch that
// does not fit waits for the next fetch.
//
// max_wait_ms is a long poll: when fewer than min_bytes are available the
// request waits until an append to any requested partition (woken at once
// through storage.Log.Subscribe), the timeout, broker shutdown, or the
// client going away.
//
// Fetch sessions (KIP-227): Gregor is sessionless. A full fetch that asks
// for a new session (session_id 0, epoch 0) is answered with session_id 0,
// which tells the client no session was created, so it keeps sending full
// fetches. A request naming a session id is answered with
// FETCH_SESSION_ID_NOT_FOUND, an incremental epoch without a session with
// INVALID_FETCH_SESSION_EPOCH; clients then fall back to full fetches.
//
// Topics are named until v12 and identified by topic id from v13
// (UNKNOWN_TOPIC_ID when the id is not known). read_committed sees the same
// data as read_uncommitted until transactions exist (last stable offset =
// high watermark).

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

func init() {
	registerRaw(1, 4, 17, handleFetch)
}

func handleFetch(c *conn, inf *inflight, kreq kmsg.Request) {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	switch {
	case req.SessionID != 0:
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		inf.reply(resp)
		return
	case req.SessionEpoch > 0:
		resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
		inf.reply(resp)
		return
	}
	f := newFetch(c.b, c.ctx, req)
	inf.release = f.releaseBuffers
	if f.fill() || req.MaxWaitMillis <= 0 {
		inf.reply(f.resp)
		return
	}
	c.goAsync(inf, func() kmsg.Response {
		f.wait(time.Duration(req.MaxWaitMillis) * time.Millisecond)
		return f.resp
	})
}

// noRecords is an empty, non-null records field: Kafka never sends null
// records, and kafka-python fails on them.
var noRecords = []byte{}

// fetch is one Fetch request being answered.
type fetch struct {
	b    *Broker
	ctx  context.Context // the connection's: done at shutdown or disconnect
	req  *kmsg.FetchRequest
	resp *kmsg.FetchResponse
	logs []*storage.Log // parallel to the flattened partitions; nil on error
	bufs []*[]byte      // pooled buffers the response's records point into
}

// fetchBufs recycles the buffers fetched records are read into: a fresh
// buffer per fetch costs several times the copy on a machine where new
// pages are slow to fault in.
var fetchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledBuf keeps unusually large buffers out of the pool.
const maxPooledBuf = 8 << 20

func (f *fetch) releaseBuffers() {
	for _, bp := range f.bufs {
		if cap(*bp) <= maxPooledBuf {
			*bp = (*bp)[:0]
			fetchBufs.Put(bp)
		}
	}
	f.bufs = f.bufs[:0]
}

func newFetch(b *Broker, ctx context.Context, req *kmsg.FetchRequest) *fetch {
	f := &fetch{b: b, ctx: ctx, req: req, resp: req.ResponseKind().(*kmsg.FetchResponse)}
	f.resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(req.Topics))
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var t *topic
		if req.Version >= 13 {
			t = b.catalog.getByID(rt.TopicID)
			if t != nil {
				st.Topic = t.Name
			}
		} else {
			t = b.catalog.get(rt.Topic)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.PreferredReadReplica = -1
			sp.RecordBatches = noRecords
			var l *storage.Log
			switch {
			case t == nil && req.Version >= 13:
				sp.ErrorCode = kerr.UnknownTopicID.Code
			case t == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				l = b.store.Get(t.Name, rp.Partition)
				if l == nil {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				} else if l.Offline() != nil {
					// Recovery found records missing (storage.Log.Offline).
					sp.ErrorCode = kerr.KafkaStorageError.Code
					l = nil
				}
			}
			st.Partitions = append(st.Partitions, sp)
			f.logs = append(f.logs, l)
		}
		f.resp.Topics = append(f.resp.Topics, st)
	}
	return f
}

// fill reads every partition once and reports whether min_bytes (or an
// error worth answering at once) is reached.
func (f *fetch) fill() bool {
	maxBytes := int(f.req.MaxBytes)
	if f.req.Version < 3 || maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	total := 0
	urgent := false
	i := 0
	f.releaseBuffers() // a re-fill after a long-poll wake-up replaces everything
	for ti := range f.req.Topics {
		rt := &f.req.Topics[ti]
		st := &f.resp.Topics[ti]
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			l := f.logs[i]
			i++
			if l == nil {
				urgent = true
				continue
			}
			limit := int(rp.PartitionMaxBytes)
			if rem := maxBytes - total; rem < limit {
				limit = rem
			}
			if limit < 0 {
				limit = 0
			}
			bp := fetchBufs.Get().(*[]byte)
			res, err := l.ReadInto((*bp)[:0], rp.FetchOffset, limit)
			if cap(res.Records) > 0 {
				*bp = res.Records // may have grown
			}
			f.bufs = append(f.bufs, bp)
			sp.HighWatermark = l.HighWatermark()
			sp.LastStableOffset = sp.HighWatermark
			sp.LogStartOffset = l.LogStartOffset()
			sp.ErrorCode = errCode(err)
			sp.RecordBatches = noRecords
			if err != nil {
				urgent = true
				continue
			}
			sp.HighWatermark = res.HighWatermark
			sp.LastStableOffset = res.HighWatermark
			sp.LogStartOffset = res.LogStartOffset
			n := len(res.Records)
			// Only the first non-empty partition may exceed its limits.
			if n == 0 || n > limit && total > 0 {
				continue
			}
			sp.RecordBatches = res.Records
			total += n
		}
	}
	return urgent || total >= int(f.req.MinBytes) && total > 0 || f.req.MinBytes <= 0
}

// wait long-polls until min_bytes is reached, the deadline passes or the
// broker shuts down. It subscribes before re-reading so an append between
// the read and the wait is never missed.
func (f *fetch) wait(maxWait time.Duration) {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	wake := make(chan struct{}, 1)
	for {
		stop := make(chan struct{})
		for _, l := range f.logs {
			if l == nil {
				continue
			}
			ch := l.Subscribe()
			go func() {
				select {
				case <-ch:
					select {
					case wake <- struct{}{}:
					default:
					}
				case <-stop:
				}
			}()
		}
		if f.fill() {
			close(stop)
			return
		}
		select {
		case <-wake:
			close(stop)
		case <-timer.C:
			close(stop)
			f.fill()
			return
		case <-f.ctx.Done():
			close(stop)
			f.fill()
			return
		}
	}
}
