package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn is one TCP connection speaking the Kafka protocol directly: a
// request is encoded with kmsg and written, a response read back whole.
// The connection curve uses it so that one "client" is exactly one
// connection (a kgo client keeps several) and costs almost no client CPU;
// the Metadata timings use it so that decoding a large response on the
// client is not part of the latency.
type rawConn struct {
	c    net.Conn
	r    *bufio.Reader
	f    *kmsg.RequestFormatter
	corr int32
	out  []byte // reused request buffer
	in   []byte // reused response buffer
}

func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 64<<10), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("scale"))}, nil
}

func (rc *rawConn) Close() error { return rc.c.Close() }

// send writes req and returns its correlation ID.
func (rc *rawConn) send(req kmsg.Request) (int32, error) {
	rc.corr++
	rc.out = rc.f.AppendRequest(rc.out[:0], req, rc.corr)
	_, err := rc.c.Write(rc.out)
	return rc.corr, err
}

// recv reads one response and returns its correlation ID and the bytes
// after it (the response header's tagged fields, if any, then the body).
// The bytes are valid until the next recv.
func (rc *rawConn) recv() (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(rc.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := int(binary.BigEndian.Uint32(hdr[:4]))
	if size < 4 || size > 256<<20 {
		return 0, nil, fmt.Errorf("response size %d", size)
	}
	corr := int32(binary.BigEndian.Uint32(hdr[4:]))
	if cap(rc.in) < size-4 {
		rc.in = make([]byte, size-4)
	}
	rc.in = rc.in[:size-4]
	if _, err := io.ReadFull(rc.r, rc.in); err != nil {
		return 0, nil, err
	}
	return corr, rc.in, nil
}

// roundTrip sends req and reads its response's bytes.
func (rc *rawConn) roundTrip(req kmsg.Request) ([]byte, error) {
	corr, err := rc.send(req)
	if err != nil {
		return nil, err
	}
	got, b, err := rc.recv()
	if err != nil {
		return nil, err
	}
	if got != corr {
		return nil, fmt.Errorf("correlation ID %d, want %d", got, corr)
	}
	return b, nil
}

// decode parses the bytes recv returned as the response to req.
func decode(req kmsg.Request, b []byte) (kmsg.Response, error) {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// Flexible responses have a header with tagged fields, except
	// ApiVersions (key 18), whose header is always v0.
	if resp.IsFlexible() && req.Key() != 18 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errors.New("response header: bad tag count")
		}
		b = b[k:]
		for range n {
			_, k1 := binary.Uvarint(b) // tag
			if k1 <= 0 {
				return nil, errors.New("response header: bad tag")
			}
			size, k2 := binary.Uvarint(b[k1:])
			if k2 <= 0 || uint64(len(b)) < uint64(k1+k2)+size {
				return nil, errors.New("response header: bad tag size")
			}
			b = b[uint64(k1+k2)+size:]
		}
	}
	if err := resp.ReadFrom(b); err != nil {
		return nil, err
	}
	return resp, nil
}

// recordBatch encodes one uncompressed v2 record batch holding a single
// record with value v (no key, no headers), timestamped now.
func recordBatch(v []byte) []byte {
	rec := kmsg.Record{Value: v}
	body := rec.AppendTo(nil)
	rec.Length = int32(len(body) - 1) // everything after the 1-byte varint 0
	recs := rec.AppendTo(nil)
	now := time.Now().UnixMilli()
	b := (&kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              recs,
	}).AppendTo(nil)
	// Length counts what follows it (offset 8, 4 bytes); the CRC-32C at
	// offset 17 covers everything from the attributes (offset 21) on.
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// produceRequest is an acks=1 Produce (v9) of batch to one partition.
func produceRequest(topic string, partition int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = 1
	req.TimeoutMillis = 30000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = partition
	p.Records = batch
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

// produceError is the first error code in a Produce response, if any.
func produceError(resp *kmsg.ProduceResponse) int16 {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return p.ErrorCode
			}
		}
	}
	return 0
}
