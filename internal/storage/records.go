package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// This file walks the records inside a batch. Only the ListOffsets paths
// (OffsetForTimestamp, MaxTimestamp) need it: appends and fetches treat
// batches as opaque bytes.

const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLZ4    = 3
	codecZstd   = 4

	// maxDecompressed bounds what a single batch may expand to when Gregor
	// decompresses it, so a compression bomb costs an error, not the heap.
	maxDecompressed = 256 << 20
)

// recordStream yields the bytes of a batch's records section.
type recordStream interface {
	ReadByte() (byte, error)
	Discard(n int) (int, error)
}

// sliceStream is a recordStream over an uncompressed slice.
type sliceStream struct {
	b []byte
	i int
}

func (s *sliceStream) ReadByte() (byte, error) {
	if s.i >= len(s.b) {
		return 0, io.ErrUnexpectedEOF
	}
	c := s.b[s.i]
	s.i++
	return c, nil
}

func (s *sliceStream) Discard(n int) (int, error) {
	if n < 0 || n > len(s.b)-s.i {
		s.i = len(s.b)
		return 0, io.ErrUnexpectedEOF
	}
	s.i += n
	return n, nil
}

var (
	gzipPool  sync.Pool // *gzip.Reader
	lz4Pool   = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	zstdPool  sync.Pool // *zstd.Decoder
	bufioPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}
	bufPool   = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
)

// getBuf returns a pooled buffer of length n.
func getBuf(n int) *[]byte {
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	*bp = (*bp)[:n]
	return bp
}

func putBuf(bp *[]byte) {
	if cap(*bp) > 8<<20 {
		return // don't pin huge buffers
	}
	bufPool.Put(bp)
}

// limitedReader fails (instead of returning EOF) past maxDecompressed bytes.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: batch decompresses to more than %d bytes", ErrCorruption, maxDecompressed)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// openRecords returns a stream over the (decompressed) records of batch and
// a function that returns pooled resources.
func openRecords(batch []byte, h *batchHeader) (recordStream, func(), error) {
	body := batch[batchHeaderSize:]
	switch h.compression() {
	case codecNone:
		return &sliceStream{b: body}, func() {}, nil
	case codecSnappy:
		// Snappy cannot stream here (xerial framing); bound the size first.
		n, err := snappyDecodedLen(body)
		if err != nil {
			return nil, nil, err
		}
		bp := getBuf(n)
		out, err := xerial.DecodeCapped((*bp)[:0], body)
		if err != nil {
			putBuf(bp)
			return nil, nil, fmt.Errorf("%w: snappy: %v", ErrCorruption, err)
		}
		return &sliceStream{b: out}, func() { putBuf(bp) }, nil
	}
	var (
		r       io.Reader
		release func()
	)
	src := bytes.NewReader(body)
	switch h.compression() {
	case codecGzip:
		zr, _ := gzipPool.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(src)
		} else {
			err = zr.Reset(src)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %v", ErrCorruption, err)
		}
		r, release = zr, func() { gzipPool.Put(zr) }
	case codecLZ4:
		lr := lz4Pool.Get().(*lz4.Reader)
		lr.Reset(src)
		r, release = lr, func() { lz4Pool.Put(lr) }
	case codecZstd:
		// Batches are small: decoding a whole frame at once is several
		// times faster than zstd's streaming reader.
		zd, _ := zstdPool.Get().(*zstd.Decoder)
		if zd == nil {
			var err error
			zd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(maxDecompressed))
			if err != nil {
				return nil, nil, err
			}
		}
		bp := getBuf(0)
		out, err := zd.DecodeAll(body, (*bp)[:0])
		zstdPool.Put(zd)
		if err != nil {
			putBuf(bp)
			return nil, nil, fmt.Errorf("%w: zstd: %v", ErrCorruption, err)
		}
		*bp = out
		return &sliceStream{b: out}, func() { putBuf(bp) }, nil
	default:
		return nil, nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorruption, h.compression())
	}
	br := bufioPool.Get().(*bufio.Reader)
	br.Reset(&limitedReader{r: r, n: maxDecompressed})
	return br, func() {
		br.Reset(nil)
		bufioPool.Put(br)
		release()
	}, nil
}

// snappyDecodedLen sums the decoded sizes of a raw or xerial-framed snappy
// payload without decoding it.
func snappyDecodedLen(src []byte) (int, error) {
	bad := func(err error) (int, error) { return 0, fmt.Errorf("%w: snappy: %v", ErrCorruption, err) }
	xerialMagic := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}
	if len(src) < 16 || !bytes.Equal(src[:8], xerialMagic) {
		n, err := s2.DecodedLen(src)
		if err != nil {
			return bad(err)
		}
		if n > maxDecompressed {
			return bad(errors.New("too large"))
		}
		return n, nil
	}
	total := 0
	for pos := 16; pos < len(src); {
		if len(src)-pos < 4 {
			return bad(errors.New("truncated chunk header"))
		}
		size := int(binary.BigEndian.Uint32(src[pos:]))
		pos += 4
		if size < 0 || size > len(src)-pos {
			return bad(errors.New("chunk overruns input"))
		}
		n, err := s2.DecodedLen(src[pos : pos+size])
		if err != nil {
			return bad(err)
		}
		total += n
		if total > maxDecompressed {
			return bad(errors.New("too large"))
		}
		pos += size
	}
	return total, nil
}

func readVarint(r recordStream) (int64, int, error) {
	var ux uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, i, err
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // more than 64 bits, as binary.Varint rejects
		}
		ux |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(ux>>1) ^ -int64(ux&1), i + 1, nil
		}
	}
	return 0, binary.MaxVarintLen64, errors.New("varint overflow")
}

// recordStamp is one record's position and timestamp.
type recordStamp struct {
	offset    int64
	timestamp int64
}

// walkRecords calls fn for each record of the batch in order until fn
// returns false. For LogAppendTime batches every record carries the batch's
// maxTimestamp, as Kafka defines it.
func walkRecords(batch []byte, h *batchHeader, fn func(recordStamp) bool) error {
	if h.logAppendTime() {
		for d := int64(0); d <= int64(h.lastOffsetDelta); d++ {
			if !fn(recordStamp{h.baseOffset + d, h.maxTimestamp}) {
				return nil
			}
		}
		return nil
	}
	s, release, err := openRecords(batch, h)
	if err != nil {
		return err
	}
	defer release()
	for i := int32(0); i < h.recordCount; i++ {
		length, _, err := readVarint(s)
		if err != nil || length < 0 || length > maxDecompressed {
			return fmt.Errorf("%w: record %d of batch at offset %d: bad length", ErrCorruption, i, h.baseOffset)
		}
		if _, err := s.ReadByte(); err != nil { // attributes
			return fmt.Errorf("%w: record %d truncated", ErrCorruption, i)
		}
		tsDelta, n1, err := readVarint(s)
		if err != nil {
			return fmt.Errorf("%w: record %d truncated", ErrCorruption, i)
		}
		offDelta, n2, err := readVarint(s)
		if err != nil {
			return fmt.Errorf("%w: record %d truncated", ErrCorruption, i)
		}
		rest := length - 1 - int64(n1) - int64(n2)
		if rest < 0 {
			return fmt.Errorf("%w: record %d overruns its length", ErrCorruption, i)
		}
		if !fn(recordStamp{h.baseOffset + offDelta, h.baseTimestamp + tsDelta}) {
			return nil
		}
		if _, err := s.Discard(int(rest)); err != nil {
			return fmt.Errorf("%w: record %d truncated", ErrCorruption, i)
		}
	}
	return nil
}
