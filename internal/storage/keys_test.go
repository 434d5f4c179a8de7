package storage

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
)

// keylessOf appends records to a new compacted log and returns the
// positions Append refused as keyless (nil if it took them), or its other
// error. A refusal stores nothing.
func keylessOf(t *testing.T, records []byte) ([]int32, error) {
	t.Helper()
	s := newEnv(t).open()
	defer s.Close()
	cfg := testCfg()
	cfg.Compact, cfg.Delete = true, false
	l := mustCreate(t, s, "keys", cfg)
	_, err := l.Append(records)
	var ke *KeylessError
	if errors.As(err, &ke) {
		if !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("a KeylessError is not an ErrInvalidRecord")
		}
		if l.LogEndOffset() != 0 {
			t.Errorf("log end %d after a refused append", l.LogEndOffset())
		}
		return ke.Positions, nil
	}
	return nil, err
}

// keyedBatch builds a v2 batch whose i-th record has keys[i] as its key
// (nil: a null key, as a producer sends a record without one) and a small
// value, compressed with codec.
func keyedBatch(t *testing.T, codec int, keys [][]byte) []byte {
	t.Helper()
	var recs []byte
	for i, k := range keys {
		body := []byte{0}                   // attributes
		body = binary.AppendVarint(body, 0) // timestamp delta
		body = binary.AppendVarint(body, int64(i))
		if k == nil {
			body = binary.AppendVarint(body, -1)
		} else {
			body = binary.AppendVarint(body, int64(len(k)))
			body = append(body, k...)
		}
		body = binary.AppendVarint(body, 3)
		body = append(body, "val"...)
		body = binary.AppendVarint(body, 1) // one header, so the skip crosses it
		body = binary.AppendVarint(body, 1)
		body = append(body, 'h')
		body = binary.AppendVarint(body, -1)
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	recs, err := compressRecords(codec, recs)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, batchHeaderSize, batchHeaderSize+len(recs))
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(batchHeaderSize-logOverhead+len(recs)))
	b[offMagic] = 2
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(codec))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(len(keys)-1))
	binary.BigEndian.PutUint64(b[offProducerID:], ^uint64(0))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], 0xffff)
	binary.BigEndian.PutUint32(b[offBaseSequence:], 0xffffffff)
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(len(keys)))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

func TestAppendCompactedRefusesKeyless(t *testing.T) {
	k := func(s string) []byte { return []byte(s) }
	cases := []struct {
		name string
		keys [][]byte
		want []int32
	}{
		{"all keyed", [][]byte{k("a"), k("b"), k("c")}, nil},
		{"empty key is a key", [][]byte{{}, k("b")}, nil},
		{"one keyless", [][]byte{k("a"), nil, k("c")}, []int32{1}},
		{"first and last keyless", [][]byte{nil, k("b"), nil}, []int32{0, 2}},
		{"single keyless", [][]byte{nil}, []int32{0}},
	}
	codecs := map[string]int{"none": codecNone, "gzip": codecGzip, "snappy": codecSnappy, "lz4": codecLZ4, "zstd": codecZstd}
	for _, c := range cases {
		for cname, codec := range codecs {
			t.Run(c.name+"/"+cname, func(t *testing.T) {
				got, err := keylessOf(t, keyedBatch(t, codec, c.keys))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, c.want) {
					t.Fatalf("keyless records %v, want %v", got, c.want)
				}
			})
		}
	}
}

func TestAppendCompactedCountsKeylessAcrossBatches(t *testing.T) {
	two := append(keyedBatch(t, codecNone, [][]byte{[]byte("a"), nil}), keyedBatch(t, codecGzip, [][]byte{nil, []byte("d")})...)
	got, err := keylessOf(t, two)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("keyless records %v, want %v", got, want)
	}
}

// A log that does not compact takes keyless records.
func TestAppendKeylessWithoutCompaction(t *testing.T) {
	s := newEnv(t).open()
	defer s.Close()
	l := mustCreate(t, s, "del", testCfg())
	mustAppend(t, l, keyedBatch(t, codecGzip, [][]byte{nil, []byte("b")}))
}

// A damaged batch is refused for its damage, never with a verdict about
// keys.
func TestAppendCompactedDamageIsNotAboutKeys(t *testing.T) {
	good := keyedBatch(t, codecNone, [][]byte{nil, []byte("b")})

	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	if _, err := keylessOf(t, badCRC); !errors.Is(err, ErrCorruptMessage) {
		t.Errorf("bad CRC: %v, want ErrCorruptMessage", err)
	}

	if _, err := keylessOf(t, good[:len(good)-3]); !errors.Is(err, ErrCorruptMessage) {
		t.Errorf("truncated batch: %v, want ErrCorruptMessage", err)
	}

	// A key length below -1, with a valid CRC.
	bad := slices.Clone(good)
	i := batchHeaderSize + 1 + 1 + 1 + 1 // record length, attributes, timestamp and offset deltas
	if bad[i] != 0x01 {                  // zigzag -1
		t.Fatalf("test batch layout changed: byte %#x at the first key length", bad[i])
	}
	bad[i] = 0x03 // zigzag -2
	binary.BigEndian.PutUint32(bad[offCRC:], crc32.Checksum(bad[offAttributes:], castagnoli))
	if _, err := keylessOf(t, bad); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("key length -2: %v, want ErrInvalidRecord", err)
	}

	// A compressed payload that does not decode (zstd checks its frame's
	// checksum), under a valid batch CRC.
	zs := keyedBatch(t, codecZstd, [][]byte{nil, []byte("b")})
	zs[len(zs)-2] ^= 0xff
	binary.BigEndian.PutUint32(zs[offCRC:], crc32.Checksum(zs[offAttributes:], castagnoli))
	if _, err := keylessOf(t, zs); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("undecodable zstd: %v, want ErrInvalidRecord", err)
	}
}
