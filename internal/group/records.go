package group

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The coordinator's records in __consumer_offsets use Kafka's schemas so
// that tools reading the topic (Burrow, lag exporters, kafka-dump-log)
// understand them:
//
//	offset commit:  key   = OffsetCommitKey v1   (int16 1 | group | topic | partition)
//	                value = OffsetCommitValue v3 (int16 3 | offset | leader epoch | metadata | commit ts)
//	group metadata: key   = GroupMetadataKey v2  (int16 2 | group)
//	                value = GroupMetadataValue v3
//
// A null value is a tombstone. Batches are written uncompressed by this
// package only (clients may not produce to the topic).

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// kv is one record to write.
type kv struct{ key, value []byte }

// Batch attributes this package reads or writes (v2 batch header).
const (
	attrCompression   = 0x07
	attrTransactional = 0x10
	attrControl       = 0x20
)

// batchHeader is the producer part of a v2 batch header: none (-1, -1,
// attributes 0) for the coordinator's own records; a TxnOffsetCommit's
// batch carries the producer id and epoch of the request and the
// transactional bit, with no sequence (-1): the producer's sequences
// number its own batches only.
type batchHeader struct {
	producerID    int64
	producerEpoch int16
	attrs         uint16
}

var plainBatch = batchHeader{producerID: -1, producerEpoch: -1}

// encodeBatch builds an uncompressed v2 record batch holding recs. Offsets
// are assigned by the log on append.
func encodeBatch(recs []kv, now time.Time) []byte {
	return encodeBatchWith(plainBatch, recs, now)
}

// encodeTxnBatch builds the transactional batch of a TxnOffsetCommit.
func encodeTxnBatch(producerID int64, producerEpoch int16, recs []kv, now time.Time) []byte {
	return encodeBatchWith(batchHeader{producerID, producerEpoch, attrTransactional}, recs, now)
}

func encodeBatchWith(h batchHeader, recs []kv, now time.Time) []byte {
	ts := now.UnixMilli()
	b := make([]byte, 61, 61+len(recs)*64)
	var body []byte
	for i, r := range recs {
		body = body[:0]
		body = append(body, 0)                     // attributes
		body = kbin.AppendVarlong(body, 0)         // timestamp delta
		body = kbin.AppendVarint(body, int32(i))   // offset delta
		body = kbin.AppendVarintBytes(body, r.key) // key
		body = kbin.AppendVarintBytes(body, r.value)
		body = kbin.AppendVarint(body, 0) // no headers
		b = kbin.AppendVarint(b, int32(len(body)))
		b = append(b, body...)
	}
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)                        // base offset, set by the log
	be.PutUint32(b[8:], uint32(len(b)-12))        // batch length
	be.PutUint32(b[12:], 0)                       // partition leader epoch
	b[16] = 2                                     // magic
	be.PutUint16(b[21:], h.attrs)                 // attributes
	be.PutUint32(b[23:], uint32(len(recs)-1))     // last offset delta
	be.PutUint64(b[27:], uint64(ts))              // base timestamp
	be.PutUint64(b[35:], uint64(ts))              // max timestamp
	be.PutUint64(b[43:], uint64(h.producerID))    // producer id
	be.PutUint16(b[51:], uint16(h.producerEpoch)) // producer epoch
	be.PutUint32(b[53:], 0xffffffff)              // base sequence -1
	be.PutUint32(b[57:], uint32(len(recs)))       // record count
	be.PutUint32(b[17:], crc32.Checksum(b[21:], crcTable))
	return b
}

var errCompressed = errors.New("group: compressed batch in __consumer_offsets")

// batchInfo is what replay needs of the batch a record came in.
type batchInfo struct {
	producerID int64
	attrs      uint16
}

func (b batchInfo) transactional() bool { return b.attrs&attrTransactional != 0 }
func (b batchInfo) control() bool       { return b.attrs&attrControl != 0 }

// decodeBatches calls fn for every record of the uncompressed v2 batches in
// data, control batches included, with its batch and offset. A compressed
// batch is skipped and reported; a batch of another magic is skipped.
func decodeBatches(data []byte, fn func(b batchInfo, offset int64, key, value []byte)) error {
	var skipped error
	for len(data) >= 61 {
		base := int64(binary.BigEndian.Uint64(data[0:]))
		length := int(int32(binary.BigEndian.Uint32(data[8:])))
		if length < 49 || 12+length > len(data) {
			return errors.New("group: truncated batch")
		}
		batch := data[:12+length]
		data = data[12+length:]
		if batch[16] != 2 {
			continue
		}
		info := batchInfo{
			producerID: int64(binary.BigEndian.Uint64(batch[43:])),
			attrs:      binary.BigEndian.Uint16(batch[21:]),
		}
		if info.attrs&attrCompression != 0 {
			skipped = errCompressed
			continue
		}
		count := int(int32(binary.BigEndian.Uint32(batch[57:])))
		r := kbin.Reader{Src: batch[61:]}
		for i := 0; i < count && r.Ok(); i++ {
			n := r.Varint()
			rec := kbin.Reader{Src: r.Span(int(n))}
			rec.Int8()
			rec.Varlong()
			delta := rec.Varint()
			key := rec.VarintBytes()
			value := rec.VarintBytes()
			if !rec.Ok() {
				return errors.New("group: malformed record")
			}
			fn(info, base+int64(delta), key, value)
		}
		if !r.Ok() {
			return errors.New("group: malformed batch")
		}
	}
	return skipped
}

// controlType reads the key of a control record: ABORT or COMMIT, or
// false for anything else (other control types, an unreadable key).
func controlType(key []byte) (commit, ok bool) {
	k := kmsg.ControlRecordKey{}
	if k.ReadFrom(key) != nil {
		return false, false
	}
	switch k.Type {
	case kmsg.ControlRecordKeyTypeCommit:
		return true, true
	case kmsg.ControlRecordKeyTypeAbort:
		return false, true
	}
	return false, false
}

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = 1, group, topic, partition
	return k.AppendTo(nil)
}

func offsetValue(o offsetCommit) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.offset, o.leaderEpoch, o.metadata, o.commitTime.UnixMilli()
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = 2, group
	return k.AppendTo(nil)
}
