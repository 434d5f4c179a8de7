package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumeRaw reads like consume, but with the cheapest client possible, so
// the broker, not the client, is the bottleneck: each consumer has its own
// connection to the leader of its partitions (rawConn), sends sessionless
// full Fetch requests on it one at a time, reads every answer into the same
// buffer and walks the batch headers in it (base offset, length, record
// count) without decoding records, decompressing or checking CRCs. The
// receiving copy from the kernel is all that is left on the client. bytes
// is records times -record-size (the records bench/load produces). With
// -passes above 1, each consumer reads its partitions that many times over
// (from the start offsets to the end offsets listed before it starts),
// so that a fast read of a cached topic still lasts long enough to measure.
func consumeRaw(ctx context.Context, c config) (*result, error) {
	ends, err := ensureTopic(ctx, c, false)
	if err != nil {
		return nil, err
	}
	cls, err := clients(ctx, c, 1)
	if err != nil {
		return nil, err
	}
	defer closeAll(cls)
	cl := cls[0]
	leaders, err := leaderAddrs(ctx, kadm.NewClient(cl), c.topic)
	if err != nil {
		return nil, err
	}
	addrOf := map[int32]string{}
	for _, l := range leaders {
		for _, p := range l.parts {
			addrOf[p] = l.addr
		}
	}
	// The consumers' partitions, grouped by leader.
	type part struct {
		p     int32
		start int64
		next  int64
		end   int64
		addr  string // the leader's
	}
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	starts, err := kadm.NewClient(cl).ListStartOffsets(lctx, c.topic)
	lcancel()
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", c.topic, err)
	}
	groups := split(ends, c.topic, c.consumers)
	work := make([][]*part, len(groups))
	for i, ps := range groups {
		for _, p := range ps {
			end := ends[c.topic][p].Offset
			if c.records <= 0 && end <= 0 {
				continue
			}
			start := starts[c.topic][p].Offset
			work[i] = append(work[i], &part{p: p, start: start, next: start, end: end, addr: addrOf[p]})
		}
	}
	// Each consumer's leader: the raw client speaks to one broker.
	addrs := make([]string, len(work))
	for i, parts := range work {
		for _, p := range parts {
			if p.addr != parts[0].addr {
				return nil, fmt.Errorf("%s[%d] is led by %s and %s[%d] by %s: the raw client wants one leader per consumer",
					c.topic, p.p, p.addr, c.topic, parts[0].p, parts[0].addr)
			}
			addrs[i] = p.addr
		}
	}
	settings := []kv{{"consumers", strconv.Itoa(len(groups))}, {"partitions", strconv.Itoa(len(ends[c.topic]))},
		{"fetch_max_bytes", strconv.Itoa(c.fetchMaxBytes)}, {"fetch_max_partition_bytes", strconv.Itoa(c.fetchMaxPartitionBytes)},
		{"client", "raw"}, {"passes", strconv.Itoa(c.passes)}}

	m, rctx, cancel, err := startReading(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var (
		total, fetches, batchBytes atomic.Int64
		wg                         sync.WaitGroup
		errs                       = make([]error, len(work))
	)
	for i, parts := range work {
		if len(parts) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() error {
				rc, err := dialRaw(rctx, addrs[i])
				if err != nil {
					return err
				}
				defer rc.close()
				req := kmsg.NewPtrFetchRequest()
				req.Version = rawFetchVersion
				resp := kmsg.NewPtrFetchResponse()
				for pass := 1; rctx.Err() == nil; {
					req.ReplicaID, req.MaxWaitMillis, req.MinBytes = -1, int32(c.fetchMaxWait.Milliseconds()), 1
					req.MaxBytes, req.SessionID, req.SessionEpoch = int32(c.fetchMaxBytes), 0, -1
					t := kmsg.NewFetchRequestTopic()
					t.Topic = c.topic
					for _, p := range parts {
						if c.records <= 0 && p.next >= p.end {
							continue
						}
						fp := kmsg.NewFetchRequestTopicPartition()
						fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p.p, p.next, int32(c.fetchMaxPartitionBytes)
						fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
						t.Partitions = append(t.Partitions, fp)
					}
					if len(t.Partitions) == 0 { // every partition read to its end
						if pass >= c.passes {
							return nil
						}
						pass++
						for _, p := range parts {
							p.next = p.start
						}
						continue
					}
					req.Topics = append(req.Topics[:0], t)
					if err := rc.roundTrip(req, resp); err != nil {
						if rctx.Err() != nil {
							return nil
						}
						return err
					}
					if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
						return fmt.Errorf("fetch: %w", err)
					}
					fetches.Add(1)
					var n int64
					for _, rt := range resp.Topics {
						for _, rp := range rt.Partitions {
							if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
								return fmt.Errorf("fetch %s[%d]: %w", c.topic, rp.Partition, err)
							}
							batchBytes.Add(int64(len(rp.RecordBatches)))
							for _, p := range parts {
								if p.p == rp.Partition {
									k, next := walkBatches(rp.RecordBatches, p.next)
									p.next, n = next, n+k
								}
							}
						}
					}
					if t := total.Add(n); c.records > 0 && t >= c.records {
						cancel()
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	r, err := m.finish(errs...)
	if err != nil {
		return nil, err
	}
	n := total.Load()
	r.records, r.bytes = n, n*int64(c.recordSize)
	r.settings = append(settings, kv{"fetches", strconv.FormatInt(fetches.Load(), 10)},
		kv{"record_bytes_per_fetch", strconv.FormatInt(batchBytes.Load()/max(fetches.Load(), 1), 10)})
	return r, nil
}

// walkBatches counts the records of the whole v2 batches in b at or after
// offset next (a partial batch at the end, which a broker may send, is
// left for the next fetch) and returns the offset after the last one.
func walkBatches(b []byte, next int64) (records, after int64) {
	const headerLen = 61 // base offset to records count, inclusive
	after = next
	for len(b) >= headerLen {
		size := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
		if size < headerLen || size > len(b) {
			break
		}
		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(int32(binary.BigEndian.Uint32(b[23:27])))
		if last >= after {
			records += int64(int32(binary.BigEndian.Uint32(b[57:61])))
			after = last + 1
		}
		b = b[size:]
	}
	return records, after
}

// rawFetchVersion is the Fetch version the raw client speaks: the newest
// that names topics rather than topic IDs, served by every broker this
// harness compares.
const rawFetchVersion = 12

// rawConn is one connection of the raw client. Unlike a general client,
// which allocates a buffer for each answer (franz-go does, and a 16 MiB
// answer then costs the client page faults and memclr whenever the Go
// runtime has given the last one's memory back), it reads every answer
// into one buffer, kept across answers; the decoded response aliases it
// until the next round trip.
type rawConn struct {
	conn   net.Conn
	format *kmsg.RequestFormatter
	corr   int32
	out    []byte
	in     []byte
	stop   func() bool
}

func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{conn: conn, format: kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench-load-raw"))}
	// Cancelling ctx unblocks a read or write in flight.
	rc.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	return rc, nil
}

func (rc *rawConn) close() {
	rc.stop()
	rc.conn.Close()
}

// roundTrip sends req and decodes its answer into resp.
func (rc *rawConn) roundTrip(req *kmsg.FetchRequest, resp *kmsg.FetchResponse) error {
	rc.corr++
	rc.out = rc.format.AppendRequest(rc.out[:0], req, rc.corr)
	if _, err := rc.conn.Write(rc.out); err != nil {
		return err
	}
	b, err := readAnswer(rc.conn, &rc.in, rc.corr)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if req.IsFlexible() { // response header v1: tagged fields
		var err error
		if b, err = skipTags(b); err != nil {
			return err
		}
	}
	resp.Version = req.Version
	return resp.ReadFrom(b)
}

// readAnswer reads one size-prefixed answer from r into *buf, grown as
// needed and kept for the next one, checks that it answers request corr,
// and returns what follows the correlation ID.
func readAnswer(r io.Reader, buf *[]byte, corr int32) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(size[:])))
	if n < 4 || n > 1<<30 {
		return nil, fmt.Errorf("answer of %d bytes", n)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != corr {
		return nil, fmt.Errorf("answer to request %d, want %d", got, corr)
	}
	return b[4:], nil
}

// skipTags skips a tagged-field section: a count, then each field's tag,
// length and bytes, all but the bytes as unsigned varints.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errors.New("fetch: bad tagged fields in the response header")
	}
	b = b[n:]
	for range count {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, errors.New("fetch: bad tag in the response header")
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errors.New("fetch: bad tagged field in the response header")
		}
		b = b[n+int(size):]
	}
	return b, nil
}
