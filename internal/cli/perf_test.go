package cli_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	dateRE    = regexp.MustCompile(`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}:\d{3}`)
	decimalRE = regexp.MustCompile(`\d+\.(\d+)`)
	integerRE = regexp.MustCompile(`\d+`)
)

// maskNumbers keeps the shape of measured numbers: "12345.6" becomes
// "N.d" and "7" becomes "N", so the golden file pins Kafka's layout and
// precision but not the speed of the machine.
func maskNumbers(s string) string {
	s = dateRE.ReplaceAllString(s, "<DATE>")
	s = decimalRE.ReplaceAllStringFunc(s, func(m string) string {
		return "N." + strings.Repeat("d", len(m)-strings.IndexByte(m, '.')-1)
	})
	return integerRE.ReplaceAllString(s, "N")
}

func TestProducerPerf(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "perf", "--partitions", "2"))
	// The seed's form: bootstrap.servers and tuning in --producer-props,
	// several values after one flag.
	r := s.run("producer-perf-test", "--topic", "perf", "--num-records", "20000", "--record-size", "100",
		"--throughput", "10000", "--reporting-interval", "500ms",
		"--producer-props", "bootstrap.servers="+s.b.Addr(), "acks=1", "batch.size=16384", "linger.ms=5", "compression.type=lz4")
	mustOK(t, r)
	lines := splitLines(r.stdout)
	if len(lines) < 3 {
		t.Fatalf("want window lines and a total, got:\n%s", r.stdout)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "20000 records sent, ") {
		t.Fatalf("total line %q does not count 20000 records", last)
	}
	windowRE := regexp.MustCompile(`^\d+ records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), \d+\.\d ms avg latency, \d+\.\d ms max latency\.$`)
	totalRE := regexp.MustCompile(`^\d+ records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), \d+\.\d\d ms avg latency, \d+\.\d\d ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$`)
	sum := 0
	for _, l := range lines[:len(lines)-1] {
		if !windowRE.MatchString(l) {
			t.Fatalf("window line %q is not in Kafka's format", l)
		}
		n, _ := strconv.Atoi(strings.Fields(l)[0])
		sum += n
	}
	if !totalRE.MatchString(last) {
		t.Fatalf("total line %q is not in Kafka's format", last)
	}
	// At 10000 records/s, 20000 records take about two seconds.
	if sum == 0 || sum > 20000 {
		t.Fatalf("window lines count %d records", sum)
	}

	// One line per shape is enough for the golden file.
	r.stdout = strings.Join([]string{maskNumbers(lines[0]), maskNumbers(last)}, "\n") + "\n"
	s.tr.Reset()
	s.record(r, "")
	// A run this short may take under a millisecond, which Kafka's
	// arithmetic turns into "Infinity records/sec": check it apart.
	short := runCLI(t, context.Background(), "", "perf", "--bootstrap-server", b.Addr(), "--topic", "perf", "--num-records", "5",
		"--payload-monotonic", "--throughput", "-1", "-X", "acks=0")
	mustOK(t, short)
	if !strings.HasPrefix(short.stdout, "5 records sent, ") {
		t.Fatalf("monotonic payloads: %q", short.stdout)
	}
	s.run("perf", "--topic", "perf", "--num-records", "10", "--throughput", "-1")
	s.run("perf", "--topic", "perf", "--num-records", "0", "--record-size", "10", "--throughput", "-1")
	s.run("perf", "--topic", "perf", "--num-records", "10", "--record-size", "10")
	s.run("perf", "--topic", "perf", "--num-records", "10", "--record-size", "10", "--throughput", "-1", "--producer-props", "acks=2")
	checkGolden(t, "producer_perf", maskNumbers(s.mask(s.tr.String())))
}

func TestConsumerPerf(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "perf", "--partitions", "2"))
	mustOK(t, s.run("producer-perf-test", "--topic", "perf", "--num-records", "3000", "--record-size", "50", "--throughput", "-1",
		"--producer-props", "bootstrap.servers="+s.b.Addr()))
	r := s.run("consumer-perf-test", "--topic", "perf", "--messages", "3000")
	mustOK(t, r)
	lines := splitLines(r.stdout)
	if len(lines) != 2 {
		t.Fatalf("want a header and one line:\n%s", r.stdout)
	}
	f := strings.Split(lines[1], ", ")
	if len(f) != 10 || f[4] != "3000" || f[2] != "0.1431" {
		t.Fatalf("line %q: want 3000 records, 0.1431 MB", lines[1])
	}
	s.run("consumer-perf-test", "--topic", "perf", "--messages", "5000", "--timeout", "1500", "--group", "pg", "--hide-header")
	s.run("consumer-perf-test", "--topic", "perf", "--messages", "10", "--show-detailed-stats", "--date-format", "yyyy-MM-dd HH:mm:ss:SSS")
	s.run("consumer-perf-test", "--topic", "nosuch", "--messages", "10")
	s.run("consumer-perf-test", "--topic", "perf")
	// A fetch time of 0 ms gives Kafka's "Infinity"; mask it like a number.
	checkGolden(t, "consumer_perf", maskNumbers(strings.ReplaceAll(s.mask(s.tr.String()), "Infinity", "0.0000")))
}
