package storage

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Sparse indexes, kept in memory and written to the Kafka-format .index and
// .timeindex files when a segment is rolled or closed (see doc.go). They are
// rebuilt by recovery, so the hot path never writes or fsyncs them.

const (
	offsetIndexEntrySize = 8  // int32 relative offset, int32 position
	timeIndexEntrySize   = 12 // int64 timestamp, int32 relative offset
)

// offsetEntry maps the last offset of a batch (relative to the segment base)
// to the file position where that batch starts.
type offsetEntry struct {
	rel int32
	pos int32
}

// timeEntry says: every record at or below offset base+rel has a timestamp
// <= ts, and the batch whose last offset is base+rel holds a record with
// exactly ts.
type timeEntry struct {
	ts  int64
	rel int32
}

// lookupOffset returns the position of the last indexed batch whose last
// offset is <= rel, or 0. Scanning forward from there finds the batch
// containing rel.
func lookupOffset(idx []offsetEntry, rel int64) int64 {
	i := sort.Search(len(idx), func(i int) bool { return int64(idx[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(idx[i-1].pos)
}

// lookupPosition returns the position of the last indexed batch that starts
// at or before pos, or 0.
func lookupPosition(idx []offsetEntry, pos int64) int64 {
	i := sort.Search(len(idx), func(i int) bool { return int64(idx[i].pos) > pos })
	if i == 0 {
		return 0
	}
	return int64(idx[i-1].pos)
}

// lookupTimeBelow returns the relative offset of the last entry whose
// timestamp is strictly below ts, or -1. All records at or below it are older
// than ts.
func lookupTimeBelow(idx []timeEntry, ts int64) int64 {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].ts >= ts })
	if i == 0 {
		return -1
	}
	return int64(idx[i-1].rel)
}

func encodeOffsetIndex(dst []byte, idx []offsetEntry) []byte {
	for _, e := range idx {
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.rel))
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.pos))
	}
	return dst
}

func encodeTimeIndex(dst []byte, idx []timeEntry) []byte {
	for _, e := range idx {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.rel))
	}
	return dst
}

// decodeOffsetIndex parses and sanity-checks an .index file against the
// segment's size: whole entries, offsets and positions strictly increasing,
// positions inside the log.
func decodeOffsetIndex(b []byte, logSize int64) ([]offsetEntry, error) {
	if len(b)%offsetIndexEntrySize != 0 {
		return nil, fmt.Errorf("index size %d is not a multiple of %d", len(b), offsetIndexEntrySize)
	}
	idx := make([]offsetEntry, 0, len(b)/offsetIndexEntrySize)
	for i := 0; i < len(b); i += offsetIndexEntrySize {
		e := offsetEntry{
			rel: int32(binary.BigEndian.Uint32(b[i:])),
			pos: int32(binary.BigEndian.Uint32(b[i+4:])),
		}
		if e.rel < 0 || e.pos < 0 || int64(e.pos)+minBatchSize > logSize {
			return nil, fmt.Errorf("index entry %d (%d, %d) outside a log of %d bytes", len(idx), e.rel, e.pos, logSize)
		}
		if n := len(idx); n > 0 && (e.rel <= idx[n-1].rel || e.pos <= idx[n-1].pos) {
			return nil, fmt.Errorf("index entry %d (%d, %d) not after (%d, %d)", n, e.rel, e.pos, idx[n-1].rel, idx[n-1].pos)
		}
		idx = append(idx, e)
	}
	return idx, nil
}

// decodeTimeIndex parses and sanity-checks a .timeindex file.
func decodeTimeIndex(b []byte) ([]timeEntry, error) {
	if len(b)%timeIndexEntrySize != 0 {
		return nil, fmt.Errorf("time index size %d is not a multiple of %d", len(b), timeIndexEntrySize)
	}
	idx := make([]timeEntry, 0, len(b)/timeIndexEntrySize)
	for i := 0; i < len(b); i += timeIndexEntrySize {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i:])),
			rel: int32(binary.BigEndian.Uint32(b[i+8:])),
		}
		if e.rel < 0 {
			return nil, fmt.Errorf("time index entry %d has offset %d", len(idx), e.rel)
		}
		if n := len(idx); n > 0 && (e.ts <= idx[n-1].ts || e.rel < idx[n-1].rel) {
			return nil, fmt.Errorf("time index entry %d (%d, %d) not after (%d, %d)", n, e.ts, e.rel, idx[n-1].ts, idx[n-1].rel)
		}
		idx = append(idx, e)
	}
	return idx, nil
}
