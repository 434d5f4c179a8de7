package broker

// The Fetch response encoder for zero-copy fetch: it writes a response as
// kmsg would, byte for byte (fetch_encode_test.go checks that against
// kmsg for every version served), except that the records of a partition
// read from a segment are left out of the buffer. In their place the
// encoding is split: the writer sends the bytes before them, then the
// records straight from the segment file to the socket (sendfile), then
// the rest. Only the record bytes are spliced; their length prefix, and
// every other field, is in the buffer.

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

// responsePiece is part of an encoded response: bytes of the encoding
// buffer, or records to send from a segment file.
type responsePiece struct {
	b  []byte
	fr storage.FileRange // when fr.Size > 0
}

// appendFetchResponse appends the whole response frame (size, header,
// body) to dst. file returns the segment range holding the records of
// resp.Topics[ti].Partitions[pi], or a range of size 0 when the records
// are the partition's RecordBatches. It returns the grown buffer and the
// pieces to write, in order; their byte pieces point into that buffer.
func appendFetchResponse(dst []byte, corr int32, resp *kmsg.FetchResponse, file func(ti, pi int) storage.FileRange) ([]byte, []responsePiece) {
	type cut struct {
		at int // position in dst where the spliced records go
		fr storage.FileRange
	}
	var cuts []cut
	start := len(dst)
	v := resp.Version
	flex := v >= 12
	arrayLen := func(n int) {
		if flex {
			dst = kbin.AppendCompactArrayLen(dst, n)
		} else {
			dst = kbin.AppendArrayLen(dst, n)
		}
	}

	dst = append(dst, 0, 0, 0, 0) // frame size, set at the end
	dst = kbin.AppendInt32(dst, corr)
	if flex {
		dst = append(dst, 0) // response header v1: no tagged fields
	}
	if v >= 1 {
		dst = kbin.AppendInt32(dst, resp.ThrottleMillis)
	}
	if v >= 7 {
		dst = kbin.AppendInt16(dst, resp.ErrorCode)
		dst = kbin.AppendInt32(dst, resp.SessionID)
	}
	arrayLen(len(resp.Topics))
	for ti := range resp.Topics {
		t := &resp.Topics[ti]
		switch {
		case v >= 13:
			dst = kbin.AppendUuid(dst, t.TopicID)
		case flex:
			dst = kbin.AppendCompactString(dst, t.Topic)
		default:
			dst = kbin.AppendString(dst, t.Topic)
		}
		arrayLen(len(t.Partitions))
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			if v >= 4 {
				dst = kbin.AppendInt64(dst, p.LastStableOffset)
			}
			if v >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if v >= 4 {
				if flex {
					dst = kbin.AppendCompactNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
				} else {
					dst = kbin.AppendNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
				}
				for _, a := range p.AbortedTransactions {
					dst = kbin.AppendInt64(dst, a.ProducerID)
					dst = kbin.AppendInt64(dst, a.FirstOffset)
					if flex {
						dst = append(dst, 0)
					}
				}
			}
			if v >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			if fr := file(ti, pi); fr.Size > 0 {
				if flex {
					dst = kbin.AppendUvarint(dst, uint32(fr.Size)+1)
				} else {
					dst = kbin.AppendInt32(dst, int32(fr.Size))
				}
				cuts = append(cuts, cut{len(dst), fr})
			} else if flex {
				dst = kbin.AppendCompactNullableBytes(dst, p.RecordBatches)
			} else {
				dst = kbin.AppendNullableBytes(dst, p.RecordBatches)
			}
			if flex {
				dst = appendFetchPartitionTags(dst, p)
			}
		}
		if flex {
			dst = append(dst, 0)
		}
	}
	if flex {
		if len(resp.Brokers) == 0 {
			dst = append(dst, 0)
		} else {
			dst = append(dst, 1)
			dst = appendTagged(dst, 0, func(dst []byte) []byte {
				dst = kbin.AppendCompactArrayLen(dst, len(resp.Brokers))
				for _, b := range resp.Brokers {
					dst = kbin.AppendInt32(dst, b.NodeID)
					dst = kbin.AppendCompactString(dst, b.Host)
					dst = kbin.AppendInt32(dst, b.Port)
					dst = kbin.AppendCompactNullableString(dst, b.Rack)
					dst = append(dst, 0)
				}
				return dst
			})
		}
	}

	size := len(dst) - start - 4
	for _, c := range cuts {
		size += c.fr.Size
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(size))
	pieces := make([]responsePiece, 0, 2*len(cuts)+1)
	from := start
	for _, c := range cuts {
		if c.at > from {
			pieces = append(pieces, responsePiece{b: dst[from:c.at]})
		}
		pieces = append(pieces, responsePiece{fr: c.fr})
		from = c.at
	}
	if len(dst) > from {
		pieces = append(pieces, responsePiece{b: dst[from:]})
	}
	return dst, pieces
}

// appendFetchPartitionTags appends a partition's tagged fields (v12+):
// DivergingEpoch (0), CurrentLeader (1) and SnapshotId (2), each only when
// it is not its default, as kmsg writes them.
func appendFetchPartitionTags(dst []byte, p *kmsg.FetchResponseTopicPartition) []byte {
	diverging := p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1
	leader := p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1
	snapshot := p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1
	n := 0
	for _, b := range []bool{diverging, leader, snapshot} {
		if b {
			n++
		}
	}
	dst = kbin.AppendUvarint(dst, uint32(n))
	if diverging {
		dst = appendTagged(dst, 0, func(dst []byte) []byte {
			dst = kbin.AppendInt32(dst, p.DivergingEpoch.Epoch)
			dst = kbin.AppendInt64(dst, p.DivergingEpoch.EndOffset)
			return append(dst, 0)
		})
	}
	if leader {
		dst = appendTagged(dst, 1, func(dst []byte) []byte {
			dst = kbin.AppendInt32(dst, p.CurrentLeader.LeaderID)
			dst = kbin.AppendInt32(dst, p.CurrentLeader.LeaderEpoch)
			return append(dst, 0)
		})
	}
	if snapshot {
		dst = appendTagged(dst, 2, func(dst []byte) []byte {
			dst = kbin.AppendInt64(dst, p.SnapshotID.EndOffset)
			dst = kbin.AppendInt32(dst, p.SnapshotID.Epoch)
			return append(dst, 0)
		})
	}
	return dst
}

// appendTagged appends one tagged field: its tag, its size, then what
// body appends.
func appendTagged(dst []byte, tag uint32, body func([]byte) []byte) []byte {
	dst = kbin.AppendUvarint(dst, tag)
	b := body(nil)
	dst = kbin.AppendUvarint(dst, uint32(len(b)))
	return append(dst, b...)
}
