package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func frameOf(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func TestReadFrameLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, 1<<20+1), ErrFrameTooLarge},
		{"negative", []byte{0x80, 0, 0, 0}, ErrFrameNegative},
		{"http", []byte("GET / HTTP/1.1\r\n"), ErrFrameTooLarge},
		{"tls", []byte{0x16, 0x03, 0x01, 0x00, 0xa5}, ErrFrameTooLarge},
		{"tiny", frameOf([]byte{0, 1}), ErrFrameTooSmall},
		{"truncated", append(binary.BigEndian.AppendUint32(nil, 50), make([]byte, 20)...), io.ErrUnexpectedEOF},
		{"eof", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocated := false
			_, err := ReadFrame(bytes.NewReader(tt.in), 1<<20, 0, func(buf []byte, want, _ int) ([]byte, error) {
				allocated = true
				return growMake(buf, want, 0)
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if allocated && tt.want != io.ErrUnexpectedEOF {
				t.Fatal("allocated a buffer for a frame that was rejected by its header")
			}
		})
	}
}

// trickle is a reader that hands out at most step bytes per Read, like a
// slow peer, and records how many bytes it has given.
type trickle struct {
	src  []byte
	step int
	read int
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.read == len(r.src) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.src[r.read:])
	r.read += n
	return n, nil
}

// TestReadFrameGrowsWithArrivals checks the slowloris bound: the buffer
// for a frame that announces 10 MiB holds no more than FirstChunk until
// the body actually arrives, and never more than growFactor times what
// has arrived; the frame read in the end is byte for byte what was sent.
func TestReadFrameGrowsWithArrivals(t *testing.T) {
	const size = 10 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	in := append(binary.BigEndian.AppendUint32(nil, size), body...)

	// Only the header and 10 bytes: the buffer stays at FirstChunk.
	short := &trickle{src: in[:14], step: 1}
	var maxWant int
	_, err := ReadFrame(short, size, 0, func(buf []byte, want, _ int) ([]byte, error) {
		maxWant = max(maxWant, want)
		return growMake(buf, want, 0)
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) || maxWant != FirstChunk {
		t.Fatalf("truncated 10 MiB frame: err %v, largest buffer %d, want %d", err, maxWant, FirstChunk)
	}

	r := &trickle{src: in, step: 100 << 10}
	grows := 0
	got, err := ReadFrame(r, size, 0, func(buf []byte, want, _ int) ([]byte, error) {
		grows++
		if arrived := r.read - 4; want > FirstChunk && want > growFactor*arrived {
			t.Fatalf("asked for %d bytes with only %d arrived", want, arrived)
		}
		return growMake(buf, want, 0)
	})
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("err %v, frame equal %v", err, bytes.Equal(got, body))
	}
	t.Logf("10 MiB frame read with %d buffer sizes", grows)

	// A peer that sent a frame this size in full gets its next one in one
	// buffer, copied never; the same header with less allowed still grows,
	// and first never lets a buffer exceed the frame.
	for _, tc := range []struct{ first, wantGrows, wantFirst int }{
		{size, 1, size},
		{size + 1<<20, 1, size},
		{1 << 20, 3, 1 << 20}, // 1 MiB, 4 MiB, 10 MiB
		{0, 5, FirstChunk},
	} {
		r := &trickle{src: in, step: 100 << 10}
		var wants []int
		got, err := ReadFrame(r, size, tc.first, func(buf []byte, want, _ int) ([]byte, error) {
			wants = append(wants, want)
			return growMake(buf, want, 0)
		})
		if err != nil || !bytes.Equal(got, body) || len(wants) != tc.wantGrows || wants[0] != tc.wantFirst {
			t.Fatalf("first %d: err %v, frame equal %v, buffers asked for %v: want %d of them, the first %d",
				tc.first, err, bytes.Equal(got, body), wants, tc.wantGrows, tc.wantFirst)
		}
	}
}

func TestParseRequestRoundTrip(t *testing.T) {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	topic := "t"
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &topic
	req.Topics = append(req.Topics, mt)
	cid := "client-1"
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID(cid)).AppendRequest(nil, req, 42)
	got, err := ReadFrame(bytes.NewReader(frame), 1<<20, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, parsed, err := ParseRequest(got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Key != 3 || h.Version != 12 || h.CorrelationID != 42 || h.ClientID != cid || !h.Flexible {
		t.Fatalf("header %+v", h)
	}
	pm := parsed.(*kmsg.MetadataRequest)
	if len(pm.Topics) != 1 || *pm.Topics[0].Topic != "t" {
		t.Fatalf("body %+v", pm)
	}
}

func TestAppendResponseHeaders(t *testing.T) {
	av := kmsg.NewPtrApiVersionsResponse()
	av.Version = 3 // flexible body, but header v0
	out := AppendResponse(nil, 7, av)
	if binary.BigEndian.Uint32(out[4:]) != 7 {
		t.Fatal("correlation id")
	}
	body := out[8:]
	got := kmsg.NewPtrApiVersionsResponse()
	got.Version = 3
	if err := got.ReadFrom(body); err != nil {
		t.Fatalf("ApiVersions must use header v0: %v", err)
	}
	md := kmsg.NewPtrMetadataResponse()
	md.Version = 12
	out = AppendResponse(nil, 9, md)
	if out[8] != 0 {
		t.Fatal("flexible response needs an empty tag section in its header")
	}
}

// FuzzParseRequest feeds arbitrary frames to the request parser: it must
// never panic, whatever the header or body claims.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 18, 0, 3, 0, 0, 0, 1, 0, 1, 'x', 0, 0, 0, 0},
		{0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff},
		{0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0x75, 0x30, 2, 2, 't', 2, 0, 0, 0, 0, 0, 0, 0},
		{0, 1, 0, 12, 0, 0, 0, 1, 0, 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := ParseRequest(frame, nil)
		if err == nil && req != nil {
			if req.Key() != h.Key || req.GetVersion() != h.Version {
				t.Fatalf("parsed %d v%d as %d v%d", h.Key, h.Version, req.Key(), req.GetVersion())
			}
			// What we decoded must encode again.
			_ = req.AppendTo(nil)
		}
	})
}

// FuzzReadFrame checks the framing layer never panics or over-allocates.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			frame, err := ReadFrame(r, 4096, 0, nil)
			if err != nil {
				return
			}
			if len(frame) > 4096 {
				t.Fatalf("frame of %d bytes passed a 4096 limit", len(frame))
			}
			if len(frame) >= 4 && frame[0] == 0 && frame[1] == 18 {
				_, _, _ = ParseRequest(frame, func(k, v int16) bool { return false })
			}
		}
	})
}

// BenchmarkParseProduceRequest measures framing and decoding one Produce
// request carrying a 16 KiB batch, as the connection reader does.
func BenchmarkParseProduceRequest(b *testing.B) {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks, req.TimeoutMillis = -1, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "bench"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = make([]byte, 16<<10)
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench")).AppendRequest(nil, req, 1)
	buf := make([]byte, len(frame))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		body, err := ReadFrame(bytes.NewReader(frame), 1<<20, 0, func(_ []byte, want, _ int) ([]byte, error) { return buf[:0:want], nil })
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ParseRequest(body, nil); err != nil {
			b.Fatal(err)
		}
	}
}
