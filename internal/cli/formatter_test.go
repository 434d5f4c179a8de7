package cli

// Unit tests for the pieces that reproduce Kafka's tools byte for byte:
// DefaultMessageFormatter, LineMessageReader, --add-config parsing, the
// date and duration parsers, and the terminal progress bar.

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMessageFormatter(t *testing.T) {
	rec := &kgo.Record{
		Key: []byte("k"), Value: []byte("v"), Partition: 2, Offset: 41, LeaderEpoch: 3,
		Timestamp: time.UnixMilli(1651480349866),
		Headers:   []kgo.RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h2"}},
	}
	nullRec := &kgo.Record{Offset: 1, LeaderEpoch: -1, Timestamp: time.UnixMilli(5)}
	tests := []struct {
		name  string
		props map[string]string
		rec   *kgo.Record
		want  string
	}{
		{"default", nil, rec, "v\n"},
		{"key", map[string]string{"print.key": "true"}, rec, "k\tv\n"},
		{"every field", map[string]string{
			"print.timestamp": "true", "print.partition": "true", "print.offset": "true", "print.delivery": "true",
			"print.epoch": "true", "print.headers": "true", "print.key": "true",
		}, rec, "CreateTime:1651480349866\tPartition:2\tOffset:41\tDelivery:NOT_PRESENT\tEpoch:3\th1:x,h2:null\tk\tv\n"},
		{"no value, custom separators", map[string]string{
			"print.value": "false", "print.key": "TRUE", "print.offset": "true", "key.separator": " | ", "line.separator": ";",
		}, rec, "Offset:41 | k;"},
		{"nothing but the timestamp", map[string]string{"print.value": "false", "print.timestamp": "true"}, rec, "CreateTime:1651480349866\n"},
		{"nulls", map[string]string{"print.key": "true", "print.headers": "true", "print.epoch": "true", "null.literal": "∅"}, nullRec, "Epoch:NOT_PRESENT\tNO_HEADERS\t∅\t∅\n"},
		{"headers separator", map[string]string{"print.headers": "true", "headers.separator": "; "}, rec, "h1:x; h2:null\tv\n"},
		{"not quite true", map[string]string{"print.key": "yes"}, rec, "v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newMessageFormatter(tt.props)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.appendRecord(nil, tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDeserializers(t *testing.T) {
	tests := []struct {
		class string
		in    []byte
		want  string
	}{
		{"org.apache.kafka.common.serialization.StringDeserializer", []byte("héllo"), "héllo"},
		{"org.apache.kafka.common.serialization.LongDeserializer", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "-1"},
		{"org.apache.kafka.common.serialization.IntegerDeserializer", []byte{0, 0, 1, 0}, "256"},
		{"org.apache.kafka.common.serialization.ShortDeserializer", []byte{0x80, 0}, "-32768"},
		{"org.apache.kafka.common.serialization.DoubleDeserializer", []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, "1.0"},
		{"org.apache.kafka.common.serialization.FloatDeserializer", []byte{0x3f, 0, 0, 0}, "0.5"},
		{"org.apache.kafka.common.serialization.DoubleDeserializer", []byte{0x41, 0x6e, 0x84, 0x80, 0, 0, 0, 0}, "1.6E7"},
	}
	for _, tt := range tests {
		d, err := lookupDeserializer(tt.class)
		if err != nil {
			t.Fatal(err)
		}
		f := &messageFormatter{nullLiteral: []byte("null")}
		got, err := f.appendField(nil, d, tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.class, err)
		}
		if string(got) != tt.want {
			t.Errorf("%s(%x) = %q, want %q", tt.class, tt.in, got, tt.want)
		}
	}
	d, _ := lookupDeserializer("IntegerDeserializer")
	if _, err := d(nil, []byte{1, 2}); err == nil {
		t.Error("IntegerDeserializer took 2 bytes")
	}
	if _, err := lookupDeserializer("com.example.Mine"); err == nil {
		t.Error("unknown deserializer accepted")
	}
}

func TestLineReader(t *testing.T) {
	r, err := newLineReader("t", map[string]string{
		"parse.key": "true", "parse.headers": "true", "key.separator": "::", "null.marker": "-",
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.parse("a:1,b:-,c:x:y\tk::v::w")
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Key) != "k" || string(rec.Value) != "v::w" || len(rec.Headers) != 3 ||
		rec.Headers[1].Value != nil || string(rec.Headers[2].Value) != "x:y" {
		t.Fatalf("parsed %+v", rec)
	}
	rec, err = r.parse("-\t-::-")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key != nil || rec.Value != nil || rec.Headers != nil {
		t.Fatalf("null marker: %+v", rec)
	}
	if _, err := r.parse("no delimiter"); err == nil || !strings.Contains(err.Error(), "line number 3") {
		t.Fatalf("missing delimiter: %v", err)
	}

	plain, _ := newLineReader("t", nil)
	rec, _ = plain.parse("a\tb")
	if rec.Key != nil || string(rec.Value) != "a\tb" {
		t.Fatalf("plain line: %+v", rec)
	}
	empty, _ := plain.parse("")
	if empty.Value == nil || len(empty.Value) != 0 {
		t.Fatalf("an empty line is an empty, non-null value: %+v", empty)
	}
	lenient, _ := newLineReader("t", map[string]string{"parse.key": "true", "ignore.error": "true"})
	rec, err = lenient.parse("just a value")
	if err != nil || rec.Key != nil || string(rec.Value) != "just a value" {
		t.Fatalf("ignore.error: %+v %v", rec, err)
	}
	if _, err := newLineReader("t", map[string]string{"headers.delimiter": ",", "headers.separator": ","}); err == nil {
		t.Fatal("equal delimiter and separator accepted")
	}
}

func TestParseAddConfig(t *testing.T) {
	got, err := parseAddConfig("a=1, b = [x,y] ,c=,d=e=f")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "b": "x,y", "c": "", "d": "e=f"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"a", "=1", "a b=1"} {
		if _, err := parseAddConfig(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseDatetime(t *testing.T) {
	for in, want := range map[string]int64{
		"2024-05-01T10:00:00.000":       1714557600000,
		"2024-05-01T10:00:00.250Z":      1714557600250,
		"2024-05-01T18:00:00.000+08:00": 1714557600000,
		"2024-05-01T18:00:00.000+0800":  1714557600000,
		"2024-05-01T10:00:00":           1714557600000,
	} {
		got, err := parseDatetime(in)
		if err != nil || got.UnixMilli() != want {
			t.Errorf("%s: got %v (%d) %v, want %d", in, got, got.UnixMilli(), err, want)
		}
	}
	if _, err := parseDatetime("2024-05-01 10:00"); err == nil {
		t.Error("a time without T accepted")
	}
}

func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT1H":         time.Hour,
		"P1DT2H3M4.5S": 26*time.Hour + 3*time.Minute + 4500*time.Millisecond,
		"-PT30M":       -30 * time.Minute,
		"pt15s":        15 * time.Second,
	} {
		got, err := parseISODuration(in)
		if err != nil || got != want {
			t.Errorf("%s: got %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1H", "P", "PT1D", "P1H", "PTxS"} {
		if _, err := parseISODuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestJavaDateLayout(t *testing.T) {
	ts := time.Date(2024, 5, 1, 9, 8, 7, 45*int(time.Millisecond), time.UTC)
	for pattern, want := range map[string]string{
		"yyyy-MM-dd HH:mm:ss:SSS":   "2024-05-01 09:08:07:045",
		"yy/M/d h:mm a":             "24/5/1 9:08 AM",
		"yyyy-MM-dd'T'HH:mm:ss.SSS": "2024-05-01T09:08:07.045",
		"EEE, d MMM yyyy":           "Wed, 1 May 2024",
	} {
		layout, err := javaDateLayout(pattern)
		if err != nil {
			t.Fatalf("%s: %v", pattern, err)
		}
		if got := formatDate(layout, ts); got != want {
			t.Errorf("%s: got %q, want %q", pattern, got, want)
		}
	}
	if _, err := javaDateLayout("yyyy-QQ"); err == nil {
		t.Error("an unknown pattern letter was accepted")
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	off := newProgressBar(&buf, false, 100, "records")
	off.set(50, 5000)
	off.println("plain line")
	off.finish()
	if buf.String() != "plain line\n" {
		t.Fatalf("disabled bar wrote %q", buf.String())
	}

	buf.Reset()
	on := newProgressBar(&buf, true, 100, "records")
	on.set(50, 5<<20)
	on.println("window line")
	on.finish()
	out := buf.String()
	// The line prints on a clean row, the bar is redrawn after it, and
	// finish erases it, leaving the cursor at the start of a clean row.
	if !strings.Contains(out, "window line\n\r\033[K[===============>              ]  50% 50/100 records") {
		t.Fatalf("bar output %q", out)
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("bar not erased at the end: %q", out)
	}
}

func TestClientOpts(t *testing.T) {
	if _, _, err := clientOpts(map[string]string{"acks": "1", "enable.idempotence": "true"}); err == nil {
		t.Error("idempotence with acks=1 accepted")
	}
	_, ignored, err := clientOpts(map[string]string{"acks": "all", "linger.ms": "5", "key.serializer": "x", "made.up": "1"})
	if err != nil || len(ignored) != 1 || ignored[0] != "made.up" {
		t.Errorf("got ignored %v, %v", ignored, err)
	}
	for _, bad := range []map[string]string{
		{"linger.ms": "soon"}, {"compression.type": "brotli"}, {"auto.offset.reset": "middle"},
		{"security.protocol": "SSL"}, {"sasl.mechanism": "PLAIN"}, {"partition.assignment.strategy": "fair"},
	} {
		if _, _, err := clientOpts(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	f := &connFlags{settings: []string{"brokers=h1:1,h2:2"}}
	_, seeds, err := f.clientProps()
	if err != nil || len(seeds) != 2 || seeds[1] != "h2:2" {
		t.Errorf("-X brokers: %v %v", seeds, err)
	}
	f = &connFlags{bootstrap: "a:1", settings: []string{"bootstrap.servers=b:2"}}
	if _, seeds, _ := f.clientProps(); seeds[0] != "a:1" {
		t.Errorf("--bootstrap-server should win, got %v", seeds)
	}
}
