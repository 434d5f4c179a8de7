// Package wire frames Kafka requests and responses on a connection.
//
// A Kafka message on the wire is a 4-byte big-endian size followed by that
// many bytes. Requests start with a request header:
//
//	v1: api_key int16 | api_version int16 | correlation_id int32 | client_id nullable string
//	v2: v1 | tagged fields (uvarint count, then tag/size/bytes triples)
//
// Header v2 is used when the request's body version is flexible (KIP-482).
// Responses start with the correlation id (header v0), plus tagged fields
// for flexible responses (header v1) — except ApiVersions, whose response
// header is always v0 so that a client can parse it before it knows what
// the broker supports.
//
// Bodies are encoded and decoded by franz-go's kmsg. Its decoder aliases
// the input buffer for []byte fields, so a frame buffer must not be reused
// while anything decoded from it is still in use.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors that end a connection. None of them is a broker fault.
var (
	ErrFrameTooLarge  = errors.New("wire: frame larger than socket.request.max.bytes")
	ErrFrameNegative  = errors.New("wire: negative frame length")
	ErrFrameTooSmall  = errors.New("wire: frame shorter than a request header")
	ErrBadHeader      = errors.New("wire: malformed request header")
	ErrUnknownAPIKey  = errors.New("wire: unknown api key")
	ErrBadRequestBody = errors.New("wire: malformed request body")
	ErrUnsupported    = errors.New("wire: unsupported api version")
)

// minHeader is api_key + api_version + correlation_id + client_id length.
const minHeader = 2 + 2 + 4 + 2

// FirstChunk is the least ReadFrame lets a frame's buffer hold before any
// of its body has arrived (its first argument may allow more). Larger
// frames grow as their bytes come in, so a header that announces 100 MiB
// and then trickles costs this much, not 100 MiB.
const FirstChunk = 64 << 10

// growFactor is how much a frame's buffer grows each time it fills. A
// frame of n bytes is copied less than n/3 bytes in total while growing,
// and never holds more than growFactor times what has arrived.
const growFactor = 4

// Grow returns a buffer that holds buf's bytes (len(buf) of them) and has
// room for at least want bytes. ReadFrame calls it first with buf nil and
// then each time the buffer is full; want never exceeds size, the frame's
// length. An error ends the read and is returned by ReadFrame. Grow may
// block (the broker waits here for its request-memory budget).
type Grow func(buf []byte, want, size int) ([]byte, error)

// ReadFrame reads one size-prefixed frame and returns its body. The size
// is checked against limit before anything is allocated, so a hostile length
// costs nothing, and the buffer then grows with the bytes that actually
// arrive: first bytes (at least FirstChunk) before any, then by
// growFactor. A caller that passes as first the size of the last frame
// the same peer sent in full (a producer's requests are much alike) reads
// such frames without growing and copying; the peer could have pinned as
// much by sending that frame again. grow nil means plain make.
func ReadFrame(r io.Reader, limit, first int, grow Grow) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	switch {
	case n < 0:
		return nil, ErrFrameNegative
	case int64(n) > int64(limit):
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, limit)
	case n < minHeader:
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooSmall, n)
	}
	if grow == nil {
		grow = growMake
	}
	size := int(n)
	buf, err := grow(nil, min(size, max(first, FirstChunk)), size)
	for err == nil {
		end := min(size, cap(buf))
		var m int
		m, err = io.ReadFull(r, buf[len(buf):end])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		if len(buf) == size {
			return buf, nil
		}
		buf, err = grow(buf, min(size, growFactor*len(buf)), size)
	}
	return nil, err
}

func growMake(buf []byte, want, _ int) ([]byte, error) {
	nb := make([]byte, len(buf), want)
	copy(nb, buf)
	return nb, nil
}

// RequestHeader is a parsed request header.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string // empty when null
	// Flexible reports whether header v2 (and so a flexible body) is used.
	Flexible bool
}

// ParseRequest parses the header of frame and decodes its body into a
// kmsg request of the right kind and version. When the version is not one
// kmsg knows, it returns the header and a nil request with no error for
// ApiVersions (KIP-511 wants an answer), and ErrBadRequestBody otherwise.
//
// serves, if not nil, is asked before the body is decoded: a request the
// broker would refuse anyway is not decoded at all.
//
// kmsg v1.15.1 or later is required: it bounds array lengths by the bytes
// left and stops tagged-field loops at the end of input, so a hostile count
// costs nothing (v1.15.0 looped over a 2^32 tag count for ~30 s).
func ParseRequest(frame []byte, serves func(key, version int16) bool) (RequestHeader, kmsg.Request, error) {
	var h RequestHeader
	if len(frame) < minHeader {
		return h, nil, ErrFrameTooSmall
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, nil, fmt.Errorf("%w: %d", ErrUnknownAPIKey, h.Key)
	}
	known := h.Version >= 0 && h.Version <= req.MaxVersion()
	if known {
		req.SetVersion(h.Version)
		h.Flexible = req.IsFlexible()
	} else {
		// A version newer than we know: a newer client's ApiVersions is
		// flexible, and that is the only API we must answer.
		h.Flexible = h.Key == 18 && h.Version > 0
	}
	r := kbin.Reader{Src: frame[8:]}
	if id := r.NullableString(); id != nil {
		h.ClientID = *id
	}
	if h.Flexible {
		skipTags(&r)
	}
	if !r.Ok() {
		return h, nil, ErrBadHeader
	}
	if !known || (serves != nil && !serves(h.Key, h.Version)) {
		if h.Key == 18 {
			return h, nil, nil
		}
		return h, nil, fmt.Errorf("%w: api %d version %d", ErrUnsupported, h.Key, h.Version)
	}
	if err := req.ReadFrom(r.Src); err != nil {
		// ApiVersions bodies from clients newer than the broker can be
		// unreadable; KIP-511 still wants an answer.
		if h.Key == 18 {
			return h, nil, nil
		}
		return h, nil, fmt.Errorf("%w: api %d version %d: %v", ErrBadRequestBody, h.Key, h.Version, err)
	}
	return h, req, nil
}

func skipTags(r *kbin.Reader) {
	n := r.Uvarint()
	for i := uint32(0); i < n && r.Ok(); i++ {
		r.Uvarint() // tag
		size := r.Uvarint()
		r.Span(int(size))
	}
}

// AppendResponse appends a whole size-prefixed response frame to dst.
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = kbin.AppendInt32(dst, corr)
	// ApiVersions answers with header v0 at every version.
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
