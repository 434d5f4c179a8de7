package txn

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Records of __transaction_state, in Kafka's schemas so that Kafka's tools
// (kafka-dump-log --transaction-log-decoder, the console consumer's
// TransactionLogMessageFormatter) read them:
//
//	key   = TransactionLogKey v0   (int16 0 | transactionalId)
//	value = TransactionLogValue v0 (int16 0 | producerId | producerEpoch |
//	        timeoutMs | status int8 | [topic [partition]] (null when Empty) |
//	        lastUpdateMs | startMs)
//	     or TransactionLogValue v1: the same fields, flexible encoding, plus
//	        tagged PreviousProducerId (0), NextProducerId (1) and
//	        ClientTransactionVersion (2).
//
// Kafka picks the value version from the cluster's transaction.version
// feature (v1 from level 1); we write v1 when Config.TransactionVersion >= 1
// or when the transaction's client speaks TV2 (which it can only do if the
// broker advertises level 2), else v0. A null value (tombstone) removes an
// expired transactional id. Batches are uncompressed v2 batches with
// producer id -1, written only by this package.

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// kv is one record to write; a nil value is a tombstone.
type kv struct{ key, value []byte }

// encodeBatch builds an uncompressed v2 record batch of recs. The log
// assigns the offsets.
func encodeBatch(recs []kv, now time.Time) []byte {
	ts := now.UnixMilli()
	b := make([]byte, 61, 61+len(recs)*96)
	var body []byte
	for i, r := range recs {
		body = body[:0]
		body = append(body, 0)                   // record attributes
		body = kbin.AppendVarlong(body, 0)       // timestamp delta
		body = kbin.AppendVarint(body, int32(i)) // offset delta
		body = kbin.AppendVarintBytes(body, r.key)
		if r.value == nil {
			body = kbin.AppendVarint(body, -1) // null value: tombstone
		} else {
			body = kbin.AppendVarintBytes(body, r.value)
		}
		body = kbin.AppendVarint(body, 0) // no headers
		b = kbin.AppendVarint(b, int32(len(body)))
		b = append(b, body...)
	}
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)                    // base offset: set by the log
	be.PutUint32(b[8:], uint32(len(b)-12))    // batch length
	be.PutUint32(b[12:], 0)                   // partition leader epoch: set by the log
	b[16] = 2                                 // magic
	be.PutUint16(b[21:], 0)                   // attributes: uncompressed, not transactional
	be.PutUint32(b[23:], uint32(len(recs)-1)) // last offset delta
	be.PutUint64(b[27:], uint64(ts))          // base timestamp
	be.PutUint64(b[35:], uint64(ts))          // max timestamp
	be.PutUint64(b[43:], ^uint64(0))          // producer id -1
	be.PutUint16(b[51:], 0xffff)              // producer epoch -1
	be.PutUint32(b[53:], 0xffffffff)          // base sequence -1
	be.PutUint32(b[57:], uint32(len(recs)))   // record count
	be.PutUint32(b[17:], crc32.Checksum(b[21:], crcTable))
	return b
}

var (
	errTruncated  = errors.New("txn: truncated batch")
	errMalformed  = errors.New("txn: malformed record")
	errCompressed = errors.New("txn: compressed batch in " + TopicName)
)

// decodeBatches calls fn for each record of the v2 batches in data, with
// its offset; value is nil for a tombstone. Control batches are skipped;
// compressed batches (never written by this package) are skipped and
// reported with errCompressed after the rest was decoded.
func decodeBatches(data []byte, fn func(offset int64, key, value []byte)) (last int64, err error) {
	last = -1
	var skipped error
	for len(data) >= 61 {
		base := int64(binary.BigEndian.Uint64(data[0:]))
		length := int(int32(binary.BigEndian.Uint32(data[8:])))
		if length < 49 || 12+length > len(data) {
			return last, errTruncated
		}
		batch := data[:12+length]
		data = data[12+length:]
		last = base + int64(int32(binary.BigEndian.Uint32(batch[23:])))
		if batch[16] != 2 {
			return last, errMalformed
		}
		attrs := binary.BigEndian.Uint16(batch[21:])
		if attrs&0x20 != 0 { // control batch
			continue
		}
		if attrs&0x7 != 0 {
			skipped = errCompressed
			continue
		}
		count := int(int32(binary.BigEndian.Uint32(batch[57:])))
		r := kbin.Reader{Src: batch[61:]}
		for i := 0; i < count && r.Ok(); i++ {
			n := r.Varint()
			if n < 0 || int(n) > len(r.Src) {
				return last, errMalformed
			}
			rec := kbin.Reader{Src: r.Span(int(n))}
			rec.Int8()
			rec.Varlong()
			delta := rec.Varint()
			key := rec.VarintBytes()
			value := rec.VarintBytes()
			if !rec.Ok() {
				return last, errMalformed
			}
			fn(base+int64(delta), key, value)
		}
		if !r.Ok() {
			return last, errMalformed
		}
	}
	return last, skipped
}

// txnKey encodes TransactionLogKey v0.
func txnKey(id string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version, k.TransactionalID = 0, id
	return k.AppendTo(nil)
}

// persisted is the part of a transactional id's state that its record
// carries.
type persisted struct {
	pid, prevPID, nextPID int64
	epoch                 int16
	timeoutMs             int32
	state                 State
	parts                 map[TopicPartition]struct{}
	startMs, lastUpdateMs int64
	tv                    int16 // client transaction version (0, 1, 2)
}

// sortedParts returns the partitions ordered by topic then partition.
func sortedParts(parts map[TopicPartition]struct{}) []TopicPartition {
	out := make([]TopicPartition, 0, len(parts))
	for tp := range parts {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// txnValue encodes TransactionLogValue v0 or v1 (flexible) of s.
func txnValue(s *persisted, flexible bool) []byte {
	v := kmsg.NewTxnMetadataValue()
	if flexible {
		v.Version = 1
		v.PreviousProducerID, v.NextProducerID, v.ClientTransactionVersion = s.prevPID, s.nextPID, s.tv
	}
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis = s.pid, s.epoch, s.timeoutMs
	v.State = kmsg.TransactionState(s.state)
	v.LastUpdateTimestamp, v.StartTimestamp = s.lastUpdateMs, s.startMs
	if s.state != StateEmpty { // Kafka writes a null partition list for Empty
		v.Topics = []kmsg.TxnMetadataValueTopic{}
		for _, tp := range sortedParts(s.parts) {
			if n := len(v.Topics); n > 0 && v.Topics[n-1].Topic == tp.Topic {
				v.Topics[n-1].Partitions = append(v.Topics[n-1].Partitions, tp.Partition)
				continue
			}
			t := kmsg.NewTxnMetadataValueTopic()
			t.Topic, t.Partitions = tp.Topic, []int32{tp.Partition}
			v.Topics = append(v.Topics, t)
		}
	}
	return v.AppendTo(nil)
}

// decodeValue reads a TransactionLogValue (v0 or v1).
func decodeValue(b []byte) (persisted, error) {
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(b); err != nil {
		return persisted{}, err
	}
	if v.Version < 0 || v.Version > 1 {
		return persisted{}, errors.New("txn: unknown TransactionLogValue version")
	}
	if v.State < 0 || v.State > kmsg.TransactionState(StatePrepareEpochFence) {
		return persisted{}, errors.New("txn: unknown transaction state id")
	}
	s := persisted{pid: v.ProducerID, prevPID: v.PreviousProducerID, nextPID: v.NextProducerID,
		epoch: v.ProducerEpoch, timeoutMs: v.TimeoutMillis, state: State(v.State),
		parts: map[TopicPartition]struct{}{}, startMs: v.StartTimestamp, lastUpdateMs: v.LastUpdateTimestamp,
		tv: v.ClientTransactionVersion}
	if s.state != StateEmpty {
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				s.parts[TopicPartition{t.Topic, p}] = struct{}{}
			}
		}
	}
	return s, nil
}
