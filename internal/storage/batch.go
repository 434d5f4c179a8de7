package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Byte offsets inside a v2 record batch (see doc.go for the diagram).
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// batchHeaderSize is the v2 header up to the first record.
	batchHeaderSize = 61
	// logOverhead is baseOffset + batchLength: the bytes not counted by
	// batchLength.
	logOverhead = 12
	// minBatchSize is the smallest legal batch (a header with no records).
	minBatchSize = batchHeaderSize

	attrCompressionMask = 0x07
	attrTimestampType   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchHeader is the decoded fixed part of a v2 batch.
type batchHeader struct {
	baseOffset      int64
	length          int32 // batchLength: bytes after the length field
	leaderEpoch     int32
	magic           int8
	crc             uint32
	attributes      int16
	lastOffsetDelta int32
	baseTimestamp   int64
	maxTimestamp    int64
	producerID      int64
	producerEpoch   int16
	baseSequence    int32
	recordCount     int32
}

// parseHeader decodes the 61-byte header; b must hold at least that much.
func parseHeader(b []byte) batchHeader {
	_ = b[batchHeaderSize-1]
	return batchHeader{
		baseOffset:      int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		length:          int32(binary.BigEndian.Uint32(b[offBatchLength:])),
		leaderEpoch:     int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		magic:           int8(b[offMagic]),
		crc:             binary.BigEndian.Uint32(b[offCRC:]),
		attributes:      int16(binary.BigEndian.Uint16(b[offAttributes:])),
		lastOffsetDelta: int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		baseTimestamp:   int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		maxTimestamp:    int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		producerID:      int64(binary.BigEndian.Uint64(b[offProducerID:])),
		producerEpoch:   int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		baseSequence:    int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		recordCount:     int32(binary.BigEndian.Uint32(b[offRecordCount:])),
	}
}

// size is the batch's total size on disk.
func (h *batchHeader) size() int64           { return logOverhead + int64(h.length) }
func (h *batchHeader) lastOffset() int64     { return h.baseOffset + int64(h.lastOffsetDelta) }
func (h *batchHeader) compression() int      { return int(h.attributes & attrCompressionMask) }
func (h *batchHeader) isControl() bool       { return h.attributes&attrControl != 0 }
func (h *batchHeader) isTransactional() bool { return h.attributes&attrTransactional != 0 }
func (h *batchHeader) logAppendTime() bool   { return h.attributes&attrTimestampType != 0 }

// lastSequence is the sequence of the batch's last record, wrapping past
// MaxInt32 to 0 the way Kafka producers do.
func (h *batchHeader) lastSequence() int32 {
	return addSeq(h.baseSequence, h.lastOffsetDelta)
}

func addSeq(seq, delta int32) int32 {
	return int32((int64(seq) + int64(delta)) % (1 << 31))
}

// checkShape validates what can be checked without the producer state:
// length, magic, CRC and count consistency. b is exactly one batch.
func checkShape(b []byte, h *batchHeader) error {
	if h.magic != 2 {
		return fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, h.magic)
	}
	if want := crc32.Checksum(b[offAttributes:], castagnoli); want != h.crc {
		return fmt.Errorf("%w: crc 0x%08x, computed 0x%08x", ErrCorruptMessage, h.crc, want)
	}
	if h.recordCount <= 0 || h.lastOffsetDelta < 0 || int64(h.recordCount) != int64(h.lastOffsetDelta)+1 {
		return fmt.Errorf("%w: recordCount %d, lastOffsetDelta %d", ErrInvalidRecord, h.recordCount, h.lastOffsetDelta)
	}
	return nil
}

// nextBatch splits the first batch off b. It checks the length fields only:
// the caller decides what else to verify.
func nextBatch(b []byte) (batch []byte, h batchHeader, err error) {
	if len(b) < logOverhead {
		return nil, h, fmt.Errorf("%w: %d trailing bytes, a batch needs at least %d", ErrCorruptMessage, len(b), minBatchSize)
	}
	length := int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	if length < minBatchSize-logOverhead {
		return nil, h, fmt.Errorf("%w: batch length %d", ErrCorruptMessage, length)
	}
	size := logOverhead + int64(length)
	if int64(len(b)) < size {
		if len(b) > offMagic && b[offMagic] != 2 {
			return nil, h, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, int8(b[offMagic]))
		}
		return nil, h, fmt.Errorf("%w: batch of %d bytes, only %d present", ErrCorruptMessage, size, len(b))
	}
	return b[:size], parseHeader(b), nil
}

// setLogAppendTime stamps a batch for a LogAppendTime topic the way Kafka
// does: only maxTimestamp and the timestamp-type attribute change (record
// timestamp deltas are left alone; readers use maxTimestamp for every record
// of such a batch), then the CRC is recomputed.
func setLogAppendTime(b []byte, now int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | attrTimestampType
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(now))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// clearLogAppendTime undoes a client-set LogAppendTime bit on a CreateTime
// topic (Kafka rewrites the timestamp type to the topic's).
func clearLogAppendTime(b []byte) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) &^ attrTimestampType
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// verifyStored checks a batch read back from disk: the length chain, magic,
// CRC and that its offsets fit after prevLast. Used by recovery.
func verifyStored(b []byte, h *batchHeader, prevLast int64) error {
	if h.magic != 2 {
		return fmt.Errorf("magic %d", h.magic)
	}
	if want := crc32.Checksum(b[offAttributes:], castagnoli); want != h.crc {
		return fmt.Errorf("crc 0x%08x, computed 0x%08x", h.crc, want)
	}
	if h.lastOffsetDelta < 0 || h.baseOffset <= prevLast || h.baseOffset > maxOffset-int64(h.lastOffsetDelta) {
		return fmt.Errorf("offsets [%d, %d] after %d", h.baseOffset, h.lastOffset(), prevLast)
	}
	return nil
}

const maxOffset = 1<<63 - 1
