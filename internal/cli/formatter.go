package cli

// The console consumer's record formatter. It reproduces Kafka's
// DefaultMessageFormatter byte for byte: optional fields in the fixed order
// timestamp, partition, offset, delivery, epoch, headers, key, value, each
// followed by key.separator while another field follows and by
// line.separator after the last one.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

type messageFormatter struct {
	printTimestamp, printKey, printValue, printPartition bool
	printOffset, printDelivery, printEpoch, printHeaders bool

	keySeparator, lineSeparator, headersSeparator, nullLiteral []byte

	keyDeser, valueDeser, headersDeser deserializer
}

// formatterProperties are the property names the formatter understands.
var formatterProperties = map[string]bool{
	"print.timestamp": true, "print.key": true, "print.value": true, "print.partition": true,
	"print.offset": true, "print.delivery": true, "print.epoch": true, "print.headers": true,
	"key.separator": true, "line.separator": true, "headers.separator": true, "null.literal": true,
	"key.deserializer": true, "value.deserializer": true, "headers.deserializer": true,
}

// newMessageFormatter configures a formatter from --property values. Like
// Kafka, a boolean is true only if it says "true" (any case).
func newMessageFormatter(props map[string]string) (*messageFormatter, error) {
	f := &messageFormatter{
		printValue:       true,
		keySeparator:     []byte("\t"),
		lineSeparator:    []byte("\n"),
		headersSeparator: []byte(","),
		nullLiteral:      []byte("null"),
	}
	flag := func(name string, dst *bool) {
		if v, ok := props[name]; ok {
			*dst = strings.EqualFold(strings.TrimSpace(v), "true")
		}
	}
	flag("print.timestamp", &f.printTimestamp)
	flag("print.key", &f.printKey)
	flag("print.value", &f.printValue)
	flag("print.partition", &f.printPartition)
	flag("print.offset", &f.printOffset)
	flag("print.delivery", &f.printDelivery)
	flag("print.epoch", &f.printEpoch)
	flag("print.headers", &f.printHeaders)
	bytesProp := func(name string, dst *[]byte) {
		if v, ok := props[name]; ok {
			*dst = []byte(v)
		}
	}
	bytesProp("key.separator", &f.keySeparator)
	bytesProp("line.separator", &f.lineSeparator)
	bytesProp("headers.separator", &f.headersSeparator)
	bytesProp("null.literal", &f.nullLiteral)
	var err error
	if f.keyDeser, err = lookupDeserializer(props["key.deserializer"]); err != nil {
		return nil, fmt.Errorf("key.deserializer: %w", err)
	}
	if f.valueDeser, err = lookupDeserializer(props["value.deserializer"]); err != nil {
		return nil, fmt.Errorf("value.deserializer: %w", err)
	}
	if f.headersDeser, err = lookupDeserializer(props["headers.deserializer"]); err != nil {
		return nil, fmt.Errorf("headers.deserializer: %w", err)
	}
	return f, nil
}

// appendRecord appends r's formatted bytes to buf.
func (f *messageFormatter) appendRecord(buf []byte, r *kgo.Record) ([]byte, error) {
	// sep writes the key separator if any later field is printed, else the
	// line separator; more lists the later fields.
	sep := func(more ...bool) {
		for _, m := range more {
			if m {
				buf = append(buf, f.keySeparator...)
				return
			}
		}
		buf = append(buf, f.lineSeparator...)
	}
	var err error
	if f.printTimestamp {
		switch r.Attrs.TimestampType() {
		case 0:
			buf = append(buf, "CreateTime:"...)
			buf = strconv.AppendInt(buf, r.Timestamp.UnixMilli(), 10)
		case 1:
			buf = append(buf, "LogAppendTime:"...)
			buf = strconv.AppendInt(buf, r.Timestamp.UnixMilli(), 10)
		default:
			buf = append(buf, "NO_TIMESTAMP"...)
		}
		sep(f.printPartition, f.printOffset, f.printDelivery, f.printEpoch, f.printHeaders, f.printKey, f.printValue)
	}
	if f.printPartition {
		buf = append(buf, "Partition:"...)
		buf = strconv.AppendInt(buf, int64(r.Partition), 10)
		sep(f.printOffset, f.printDelivery, f.printEpoch, f.printHeaders, f.printKey, f.printValue)
	}
	if f.printOffset {
		buf = append(buf, "Offset:"...)
		buf = strconv.AppendInt(buf, r.Offset, 10)
		sep(f.printDelivery, f.printEpoch, f.printHeaders, f.printKey, f.printValue)
	}
	if f.printDelivery {
		// Delivery counts exist only for share groups.
		buf = append(buf, "Delivery:NOT_PRESENT"...)
		sep(f.printEpoch, f.printHeaders, f.printKey, f.printValue)
	}
	if f.printEpoch {
		buf = append(buf, "Epoch:"...)
		if r.LeaderEpoch >= 0 {
			buf = strconv.AppendInt(buf, int64(r.LeaderEpoch), 10)
		} else {
			buf = append(buf, "NOT_PRESENT"...)
		}
		sep(f.printHeaders, f.printKey, f.printValue)
	}
	if f.printHeaders {
		if len(r.Headers) == 0 {
			buf = append(buf, "NO_HEADERS"...)
		}
		for i, h := range r.Headers {
			if i > 0 {
				buf = append(buf, f.headersSeparator...)
			}
			buf = append(buf, h.Key...)
			buf = append(buf, ':')
			if buf, err = f.appendField(buf, f.headersDeser, h.Value); err != nil {
				return nil, fmt.Errorf("header %s: %w", h.Key, err)
			}
		}
		sep(f.printKey, f.printValue)
	}
	if f.printKey {
		if buf, err = f.appendField(buf, f.keyDeser, r.Key); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		sep(f.printValue)
	}
	if f.printValue {
		if buf, err = f.appendField(buf, f.valueDeser, r.Value); err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		buf = append(buf, f.lineSeparator...)
	}
	return buf, nil
}

func (f *messageFormatter) appendField(buf []byte, d deserializer, b []byte) ([]byte, error) {
	if b == nil {
		return append(buf, f.nullLiteral...), nil
	}
	if d == nil {
		return append(buf, b...), nil
	}
	return d(buf, b)
}

// deserializer appends the printed form of b to buf; nil means "as is".
type deserializer func(buf, b []byte) ([]byte, error)

// lookupDeserializer maps the Java deserializer class names Kafka's console
// consumer accepts onto their printed forms. Only the classes that ship with
// the Java client exist here.
func lookupDeserializer(class string) (deserializer, error) {
	class = strings.TrimSpace(class)
	if class == "" {
		return nil, nil
	}
	name := class[strings.LastIndexByte(class, '.')+1:]
	fixed := func(n int, render func([]byte) []byte) deserializer {
		return func(buf, b []byte) ([]byte, error) {
			if len(b) != n {
				return nil, fmt.Errorf("size of data received by %s is not %d", name, n)
			}
			return append(buf, render(b)...), nil
		}
	}
	switch name {
	case "StringDeserializer", "ByteArrayDeserializer", "BytesDeserializer", "ByteBufferDeserializer", "UUIDDeserializer":
		return nil, nil
	case "VoidDeserializer":
		return func(buf, b []byte) ([]byte, error) {
			return nil, errors.New("VoidDeserializer got data, expected null")
		}, nil
	case "ShortDeserializer":
		return fixed(2, func(b []byte) []byte { return strconv.AppendInt(nil, int64(int16(binary.BigEndian.Uint16(b))), 10) }), nil
	case "IntegerDeserializer":
		return fixed(4, func(b []byte) []byte { return strconv.AppendInt(nil, int64(int32(binary.BigEndian.Uint32(b))), 10) }), nil
	case "LongDeserializer":
		return fixed(8, func(b []byte) []byte { return strconv.AppendInt(nil, int64(binary.BigEndian.Uint64(b)), 10) }), nil
	case "FloatDeserializer":
		return fixed(4, func(b []byte) []byte {
			return []byte(javaDouble(float64(math.Float32frombits(binary.BigEndian.Uint32(b))), 32))
		}), nil
	case "DoubleDeserializer":
		return fixed(8, func(b []byte) []byte { return []byte(javaDouble(math.Float64frombits(binary.BigEndian.Uint64(b)), 64)) }), nil
	}
	known := []string{"StringDeserializer", "ByteArrayDeserializer", "BytesDeserializer", "ByteBufferDeserializer",
		"UUIDDeserializer", "VoidDeserializer", "ShortDeserializer", "IntegerDeserializer", "LongDeserializer",
		"FloatDeserializer", "DoubleDeserializer"}
	sort.Strings(known)
	return nil, fmt.Errorf("unsupported deserializer %s (supported: %s)", class, strings.Join(known, ", "))
}

// javaDouble prints a float the way Java's Double.toString does for the
// common cases: always with a fractional part ("1.0", "0.5").
func javaDouble(v float64, bits int) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-3 || abs >= 1e7) {
		s := strconv.FormatFloat(v, 'E', -1, bits)
		mant, exp, _ := strings.Cut(s, "E")
		if !strings.Contains(mant, ".") {
			mant += ".0"
		}
		e, _ := strconv.Atoi(exp)
		return mant + "E" + strconv.Itoa(e)
	}
	s := strconv.FormatFloat(v, 'f', -1, bits)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
