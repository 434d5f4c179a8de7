package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

func broker(t *testing.T) string {
	t.Helper()
	b, err := gregor.Start(gregor.Options{Dir: t.TempDir(), Properties: map[string]string{"gregor.durability": "os"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

// runLine runs one mode and returns the final line's fields.
func runLine(t *testing.T, c config) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, c, &out); err != nil {
		t.Fatalf("%s: %v", c.mode, err)
	}
	line := strings.TrimSpace(out.String())
	if strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "load: mode="+c.mode+" ") {
		t.Fatalf("output %q: want one load: line", line)
	}
	t.Log(line)
	f := map[string]string{}
	for _, w := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(w, "=")
		f[k] = v
	}
	return f
}

func num(t *testing.T, f map[string]string, k string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(f[k], 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", k, f[k], err)
	}
	return v
}

func endOffsets(t *testing.T, addr, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil || ends.Error() != nil {
		t.Fatal(err, ends.Error())
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

func small(addr, mode, topic string) config {
	c := defaults()
	c.mode, c.brokers, c.topic = mode, []string{addr}, topic
	c.recordSize, c.partitions, c.producers, c.bufferBytes = 200, 4, 3, 256<<10
	c.duration = 0
	return c
}

// Produce delivers exactly -records, split over several producers, and
// consume reads back exactly what is there, in records and bytes; the
// broker's CPU is measured (the embedded broker is this process).
func TestProduceThenConsume(t *testing.T) {
	addr := broker(t)
	for _, acks := range []string{"all", "1"} {
		c := small(addr, "produce", "p-acks"+acks)
		c.acks, c.records, c.brokerPIDs = acks, 5001, []int{os.Getpid()}
		f := runLine(t, c)
		if num(t, f, "records") != 5001 || num(t, f, "bytes") != 5001*200 || f["acks"] != acks {
			t.Fatalf("acks=%s: line %v: want 5001 records of 200 B", acks, f)
		}
		if got := endOffsets(t, addr, c.topic); got != 5001 {
			t.Fatalf("acks=%s: end offsets sum to %d, want 5001", acks, got)
		}
		if num(t, f, "ack_p99_ms") <= 0 || num(t, f, "ack_p50_ms") > num(t, f, "ack_p99_ms") {
			t.Fatalf("acks=%s: ack latency p50 %s p99 %s", acks, f["ack_p50_ms"], f["ack_p99_ms"])
		}
		if num(t, f, "cpu_seconds") <= 0 || num(t, f, "broker_cpu_seconds") < 0 || f["broker_cpu_seconds_per_gib"] == "" ||
			num(t, f, "broker_user_cpu_seconds_per_gib") > num(t, f, "broker_cpu_seconds_per_gib") {
			t.Fatalf("acks=%s: cpu figures missing: %v", acks, f)
		}
	}
	for _, consumers := range []int{1, 3} {
		c := small(addr, "consume", "p-acks1")
		c.consumers = consumers
		f := runLine(t, c)
		if num(t, f, "records") != 5001 || num(t, f, "bytes") != 5001*200 || num(t, f, "consumers") != float64(consumers) {
			t.Fatalf("%d consumers read %v, want 5001 records of 200 B", consumers, f)
		}
	}
	// The raw client reads the same records, with small fetches that
	// end in partial batches, and stops at the end offsets; with -passes,
	// it reads them that many times.
	for _, consumers := range []int{1, 3} {
		for _, passes := range []int{1, 3} {
			c := small(addr, "consume-raw", "p-acks1")
			c.consumers, c.fetchMaxPartitionBytes, c.fetchMaxBytes, c.passes = consumers, 3000, 10000, passes
			f := runLine(t, c)
			if n := 5001 * float64(passes); num(t, f, "records") != n || num(t, f, "bytes") != n*200 || f["client"] != "raw" {
				t.Fatalf("raw, %d consumers, %d passes: read %v, want %v records of 200 B", consumers, passes, f, n)
			}
		}
	}
	// The raw producer delivers exactly -records too, idempotent or not,
	// in full batches and a shorter last request, and its records read
	// back like any others.
	for _, acks := range []string{"all", "1"} {
		c := small(addr, "produce-raw", "raw-acks"+acks)
		c.acks, c.records, c.batchBytes, c.brokerPIDs = acks, 5001, 16<<10, []int{os.Getpid()}
		f := runLine(t, c)
		if num(t, f, "records") != 5001 || num(t, f, "bytes") != 5001*200 || f["client"] != "raw" ||
			f["idempotent"] != strconv.FormatBool(acks == "all") {
			t.Fatalf("raw, acks=%s: line %v: want 5001 records of 200 B", acks, f)
		}
		if got := endOffsets(t, addr, c.topic); got != 5001 {
			t.Fatalf("raw, acks=%s: end offsets sum to %d, want 5001", acks, got)
		}
		c = small(addr, "consume", c.topic)
		if f := runLine(t, c); num(t, f, "records") != 5001 || num(t, f, "bytes") != 5001*200 {
			t.Fatalf("raw, acks=%s: read back %v, want 5001 records of 200 B", acks, f)
		}
	}
	// A record count stops consumers early.
	c := small(addr, "consume", "p-acksall")
	c.records = 1000
	if f := runLine(t, c); num(t, f, "records") < 1000 || num(t, f, "records") > 5001 {
		t.Fatalf("-records 1000 read %s", f["records"])
	}
}

// Produce by duration at a rate stops in time and sends about that rate.
func TestProduceDurationRate(t *testing.T) {
	addr := broker(t)
	c := small(addr, "produce", "rate")
	c.duration, c.rate = 500*time.Millisecond, 2000
	f := runLine(t, c)
	if n := num(t, f, "records"); n < 800 || n > 1002 {
		t.Fatalf("500 ms at 2000/s sent %v records", n)
	}
	if got := endOffsets(t, addr, "rate"); float64(got) != num(t, f, "records") {
		t.Fatalf("end offsets %d, line says %s", got, f["records"])
	}
}

// e2e loses nothing (run fails otherwise) and reports latencies.
func TestE2E(t *testing.T) {
	addr := broker(t)
	c := small(addr, "e2e", "e2e")
	c.producers, c.consumers, c.rate, c.duration, c.warmup, c.acks = 2, 2, 2000, time.Second, 0, "all"
	f := runLine(t, c)
	if num(t, f, "records") != 2000 {
		t.Fatalf("records %s, want 2000", f["records"])
	}
	for _, k := range []string{"e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "e2e_max_ms", "ack_p50_ms"} {
		if num(t, f, k) <= 0 {
			t.Fatalf("%s = %s, want > 0", k, f[k])
		}
	}
	if num(t, f, "e2e_p50_ms") > num(t, f, "e2e_p99_ms") || num(t, f, "e2e_p99_ms") > num(t, f, "e2e_max_ms") {
		t.Fatalf("percentiles out of order: %v", f)
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/128 {
			t.Errorf("q%v = %v, want %v within 1/128", c.q, got, c.want)
		}
	}
	for v := uint64(1); v < 1<<62; v = v*3 + 1 {
		if b := bucket(v); upper(b) < v || b > 0 && upper(b-1) >= v {
			t.Fatalf("value %d in bucket %d [.., %d]", v, b, upper(b))
		}
	}
}
