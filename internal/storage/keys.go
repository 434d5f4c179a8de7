package storage

import "fmt"

// KeylessRecords returns the positions of the records that have a null
// key in records (one or more v2 batches, as a producer sends them),
// counted from the first record of records; nil if every record has a key.
//
// A compacted log keeps the latest record per key, so a record without a
// key can never be cleaned: Kafka refuses such records on a compacted topic
// (INVALID_RECORD, one record error per keyless record), and the broker
// asks this before it appends. Compressed batches are decompressed to read
// the keys. Control batches are skipped: they are written by the broker
// and always carry a key.
//
// A batch that fails its CRC or does not parse returns an error wrapping
// ErrCorruptMessage or ErrInvalidRecord; Log.Append refuses the same batch
// for the same reason, so a caller may leave the verdict to it.
func KeylessRecords(records []byte) ([]int32, error) {
	var keyless []int32
	index := int32(0)
	for rest := records; len(rest) > 0; {
		b, h, err := nextBatch(rest)
		if err != nil {
			return nil, err
		}
		rest = rest[len(b):]
		if err := checkShape(b, &h); err != nil {
			return nil, err
		}
		if h.isControl() {
			index += h.recordCount
			continue
		}
		if keyless, err = appendKeyless(keyless, b, &h, index); err != nil {
			return nil, err
		}
		index += h.recordCount
	}
	return keyless, nil
}

// appendKeyless appends to dst the positions (first + i) of the batch's
// keyless records. It reads each record up to its key length and skips the
// rest by the record's length prefix.
func appendKeyless(dst []int32, b []byte, h *batchHeader, first int32) ([]int32, error) {
	s, release, err := openRecords(b, h)
	if err != nil {
		return nil, fmt.Errorf("%w: records do not decompress: %v", ErrInvalidRecord, err)
	}
	defer release()
	for i := int32(0); i < h.recordCount; i++ {
		length, _, err := readVarint(s)
		if err != nil || length <= 0 || length > maxDecompressed {
			return nil, fmt.Errorf("%w: record %d: bad length", ErrInvalidRecord, i)
		}
		r := recordWalker{s: s, left: length, ok: true}
		r.take(1)  // attributes
		r.varint() // timestamp delta
		r.varint() // offset delta
		keyLen := r.varint()
		if !r.ok || keyLen < -1 {
			return nil, fmt.Errorf("%w: record %d is malformed", ErrInvalidRecord, i)
		}
		if keyLen < 0 {
			dst = append(dst, first+i)
		}
		r.take(r.left) // key, value and headers
		if !r.ok {
			return nil, fmt.Errorf("%w: record %d is truncated", ErrInvalidRecord, i)
		}
	}
	return dst, nil
}
