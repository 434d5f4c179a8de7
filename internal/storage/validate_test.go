package storage

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func TestMalformedRecordsAreRejected(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	l := mustCreate(t, s, "mr", testCfg())
	good := buildBatch(t, spec(3, 10))
	mutations := map[string]func(b []byte) []byte{
		"record length overruns": func(b []byte) []byte { b[batchHeaderSize] = 0x7e; return b },
		"offset delta not sequential": func(b []byte) []byte {
			// The first record's offset delta follows its length,
			// attributes and timestamp delta (one byte each here).
			b[batchHeaderSize+3] = 2 * 5 // zigzag 5
			return b
		},
		"trailing bytes": func(b []byte) []byte {
			b = append(b, 0, 0, 0)
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
			return b
		},
		"compression bit on plain records": func(b []byte) []byte {
			b[22] |= 1 // gzip
			return b
		},
	}
	for name, mutate := range mutations {
		b := mutate(append([]byte(nil), good...))
		recrcTest(b)
		if _, err := l.Append(b); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err %v, want ErrInvalidRecord", name, err)
		}
	}
	if _, err := l.Append(append([]byte(nil), good...)); err != nil {
		t.Fatalf("good batch: %v", err)
	}
	if l.LogEndOffset() != 3 {
		t.Fatalf("log end %d, want 3: only the good batch is stored", l.LogEndOffset())
	}
}

func TestCheckProducerBatch(t *testing.T) {
	good := buildBatch(t, spec(2, 10))
	if err := CheckProducerBatch(good); err != nil {
		t.Fatalf("good batch: %v", err)
	}
	two := append(append([]byte(nil), good...), good...)
	if err := CheckProducerBatch(two); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("two batches: %v", err)
	}
	off := append([]byte(nil), good...)
	binary.BigEndian.PutUint64(off, 1000)
	if err := CheckProducerBatch(off); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("base offset 1000: %v", err)
	}
	ctl := append([]byte(nil), good...)
	ctl[22] |= 0x20
	if err := CheckProducerBatch(ctl); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("control batch: %v", err)
	}
}

// BenchmarkValidateBatch measures the append path's batch validation: the
// CRC32C and the walk over every record, for 16 records of 1 KiB, per codec.
func BenchmarkValidateBatch(b *testing.B) {
	for _, c := range []struct {
		name  string
		codec int
	}{{"none", codecNone}, {"gzip", codecGzip}, {"snappy", codecSnappy}, {"lz4", codecLZ4}, {"zstd", codecZstd}} {
		b.Run(c.name, func(b *testing.B) {
			sp := spec(16, 1000)
			sp.valueSize, sp.codec = 1024, c.codec
			batch := buildBatch(b, sp)
			b.SetBytes(16 * 1024)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_, h, err := nextBatch(batch)
				if err == nil {
					err = checkShape(batch, &h)
				}
				if err == nil {
					err = validateRecords(batch, &h, nil, 0)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// byteStream is a recordStream that is not a *sliceStream, so validate
// takes the stream path over bytes it could have walked in place.
type byteStream struct{ s sliceStream }

func (b *byteStream) ReadByte() (byte, error)    { return b.s.ReadByte() }
func (b *byteStream) Discard(n int) (int, error) { return b.s.Discard(n) }

// FuzzValidateInPlaceMatchesStream: walking a records section in place
// (uncompressed batches) and through a stream (decompressed ones) accept
// and reject the same bytes, and find the same keyless records.
func FuzzValidateInPlaceMatchesStream(f *testing.F) {
	for _, n := range []int{1, 3} {
		sp := spec(n, 7)
		sp.valueSize = 5
		batch := buildBatch(f, sp)
		f.Add(batch[batchHeaderSize:], int32(n))
	}
	f.Add([]byte{2, 0, 0}, int32(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, int32(1))
	f.Fuzz(func(t *testing.T, body []byte, count int32) {
		if count < 0 || count > 1<<12 {
			return
		}
		var k1, k2 []int32
		in := recordWalker{b: body}
		e1 := in.validate(count, &k1, 10)
		st := recordWalker{s: &byteStream{sliceStream{b: body}}}
		e2 := st.validate(count, &k2, 10)
		if (e1 == nil) != (e2 == nil) || !slices.Equal(k1, k2) {
			t.Fatalf("in place: %v, keyless %v; stream: %v, keyless %v", e1, k1, e2, k2)
		}
	})
}
