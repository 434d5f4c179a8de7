package main

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"hash/crc32"
	"io"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 200; i++ {
		v = append(v, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 100}, {99, 198}, {100, 200}, {0.1, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%v of 1..200 = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v", got)
	}
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{0, 1}, {-3, 1}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {0.013, 0.02}, {250, 500}, {1000, 1000},
	} {
		if got := niceStep(c.in); math.Abs(got-c.want) > 1e-12*c.want {
			t.Errorf("niceStep(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestFormatTick(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 0.5: "0.5", 0.002: "0.002", 12: "12", 1500: "1500", 2e6: "2e+06", 0.1 + 0.2: "0.3"} {
		if got := formatTick(in); got != want {
			t.Errorf("formatTick(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestSizeName(t *testing.T) {
	for in, want := range map[int]string{100: "100 B", 1024: "1 KiB", 10240: "10 KiB", 102400: "100 KiB", 1500: "1500 B", 1 << 20: "1 MiB"} {
		if got := sizeName(in); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", in, got, want)
		}
	}
}

// The SVG is well-formed XML, and the x scale is logarithmic: 10 lies
// halfway between 1 and 100.
func TestFigure(t *testing.T) {
	f := figure{title: "a <b> & c", xLabel: "x", x: []float64{1, 10, 100}, xTicks: []string{"1", "10", "100"},
		panels: []panel{
			{title: "one", series: []series{{y: []float64{1, 2, 3}}}},
			{title: "two", series: []series{{name: "p50", y: []float64{0, 0, 0}}, {name: "p99", y: []float64{1, math.NaN(), 5}}}},
		}}
	d := xml.NewDecoder(bytes.NewReader(f.svg()))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
	}
	pos := f.xScale(0, 200)
	if a, b, c := pos(1), pos(10), pos(100); math.Abs((b-a)-(c-b)) > 1e-9 || a >= c {
		t.Errorf("x positions %v %v %v are not log-spaced", a, b, c)
	}
}

// recordBatch's length and CRC-32C are right, and the record inside
// decodes to the value.
func TestRecordBatch(t *testing.T) {
	value := []byte("hello, broker")
	b := recordBatch(value)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if int(rb.Length) != len(b)-12 {
		t.Errorf("length %d, want %d", rb.Length, len(b)-12)
	}
	if want := int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))); rb.CRC != want || binary.BigEndian.Uint32(b[17:]) != uint32(want) {
		t.Errorf("CRC %x, want %x", rb.CRC, want)
	}
	var r kmsg.Record
	if err := r.ReadFrom(rb.Records); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Value, value) || r.Key != nil || rb.NumRecords != 1 {
		t.Errorf("record %+v in batch of %d", r, rb.NumRecords)
	}
}
