// Command load is a franz-go load generator for Kafka-protocol brokers that
// spends little CPU per byte, so that on a small machine the broker, not the
// load generator, limits the throughput (Kafka's Java ProducerPerformance
// needs about as much CPU as the broker it measures).
//
//	go run ./bench/load -mode produce -brokers 127.0.0.1:9092 -topic t -acks all -duration 10s
//	go run ./bench/load -mode consume -brokers 127.0.0.1:9092 -topic t
//	go run ./bench/load -mode e2e -brokers 127.0.0.1:9092 -topic lat -rate 20000 -duration 10s
//
// Modes:
//
//   - produce: -producers clients (each with its own connections) send
//     -record-size byte records as fast as the broker acknowledges them, or at
//     -rate records/s in total, for -duration or until -records were
//     acknowledged. Values are slices of one block of random bytes made before
//     the clock starts (incompressible, and nothing is allocated per record:
//     each producer recycles a fixed set of records, which also bounds what it
//     has buffered to -buffer-bytes). Ack latency is from the Produce call to
//     the acknowledgement.
//   - consume: -consumers clients split the topic's partitions between them
//     (direct assignment, no group) and read from the start until the end
//     offsets listed before the clock starts, or until -records, or for
//     -duration. Bytes are the values' lengths.
//   - e2e: -producers send at -rate records/s in total on a fixed schedule
//     while -consumers in the same process read the records back; latency is
//     from each record's scheduled send time (written in its first 8 bytes)
//     to its arrival, so a stalled producer cannot hide a stall (no
//     coordinated omission). Every record must arrive exactly once.
//
// The topic is created with -partitions and -rf when missing. The clock
// starts when every client has connected and ends at the last
// acknowledgement (produce), the last record read (consume, e2e). The one
// line on stdout, e.g.
//
//	load: mode=produce records=N bytes=B seconds=S records_per_sec=R mib_per_sec=M ... cpu_seconds=C cpu_seconds_per_gib=G broker_cpu_seconds=X broker_cpu_seconds_per_gib=Y
//
// counts value bytes (keys and headers are empty). cpu_seconds is what this
// process used in the interval (getrusage); broker_cpu_seconds is the CPU
// the -broker-pid processes used in it (utime+stime from /proc/PID/stat, 10
// ms resolution). Per GiB of values, CPU is the efficiency figure that stays
// put on a busy machine where throughput does not. Exits 1 on any produce
// or fetch error, and in e2e mode on a lost, duplicated or corrupted record.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

type config struct {
	mode        string
	brokers     []string
	topic       string
	producers   int
	consumers   int
	recordSize  int
	partitions  int
	rf          int
	acks        string
	idempotent  bool
	linger      time.Duration
	batchBytes  int
	compression string
	maxInflight int
	bufferBytes int
	duration    time.Duration
	records     int64
	passes      int
	rate        float64
	warmup      time.Duration
	drain       time.Duration

	fetchMaxBytes          int
	fetchMaxPartitionBytes int
	fetchMaxWait           time.Duration

	brokerPIDs []int
}

func defaults() config {
	return config{
		mode:                   "produce",
		brokers:                []string{"127.0.0.1:9092"},
		topic:                  "load",
		producers:              4,
		consumers:              1,
		recordSize:             1024,
		partitions:             8,
		rf:                     1,
		acks:                   "1",
		idempotent:             true,
		linger:                 5 * time.Millisecond,
		batchBytes:             1 << 20,
		compression:            "none",
		maxInflight:            5,
		bufferBytes:            16 << 20,
		duration:               10 * time.Second,
		warmup:                 time.Second,
		drain:                  30 * time.Second,
		passes:                 1,
		fetchMaxBytes:          50 << 20,
		fetchMaxPartitionBytes: 4 << 20,
		fetchMaxWait:           500 * time.Millisecond,
	}
}

// pidList is a repeatable, comma-separated -broker-pid.
type pidList struct{ pids *[]int }

func (p pidList) String() string {
	if p.pids == nil {
		return ""
	}
	s := make([]string, len(*p.pids))
	for i, v := range *p.pids {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (p pidList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("bad pid %q", f)
		}
		*p.pids = append(*p.pids, n)
	}
	return nil
}

func main() {
	c := defaults()
	brokers := flag.String("brokers", strings.Join(c.brokers, ","), "bootstrap servers, comma separated")
	flag.StringVar(&c.mode, "mode", c.mode, "produce, produce-raw (batches built once: the cheapest client), consume, consume-raw (no record decoding: the cheapest client) or e2e")
	flag.StringVar(&c.topic, "topic", c.topic, "topic (created when missing)")
	flag.IntVar(&c.producers, "producers", c.producers, "producer clients (produce, e2e; e2e defaults to 1)")
	flag.IntVar(&c.consumers, "consumers", c.consumers, "consumer clients (consume, e2e), at most one per partition")
	flag.IntVar(&c.recordSize, "record-size", c.recordSize, "value bytes per record (e2e: at least 16)")
	flag.IntVar(&c.partitions, "partitions", c.partitions, "partitions of a topic this creates")
	flag.IntVar(&c.rf, "rf", c.rf, "replication factor of a topic this creates")
	flag.StringVar(&c.acks, "acks", c.acks, "0, 1 or all")
	flag.BoolVar(&c.idempotent, "idempotent", c.idempotent, "idempotent producer when -acks all (then -max-inflight does not apply)")
	flag.DurationVar(&c.linger, "linger", c.linger, "producer linger (e2e defaults to 0)")
	flag.IntVar(&c.batchBytes, "batch-bytes", c.batchBytes, "largest record batch (kgo.ProducerBatchMaxBytes)")
	flag.StringVar(&c.compression, "compression", c.compression, "none, gzip, snappy, lz4 or zstd")
	flag.IntVar(&c.maxInflight, "max-inflight", c.maxInflight, "produce requests in flight per broker when not idempotent")
	flag.IntVar(&c.bufferBytes, "buffer-bytes", c.bufferBytes, "record bytes each producer may have unacknowledged")
	flag.DurationVar(&c.duration, "duration", c.duration, "how long to run (0: until -records; consume defaults to 0, reading to the end offsets)")
	flag.Int64Var(&c.records, "records", 0, "records to produce / consume in total (0: by -duration, or the end offsets when consuming)")
	flag.IntVar(&c.passes, "passes", c.passes, "consume-raw without -records: read the partitions from start to end this many times")
	flag.Float64Var(&c.rate, "rate", 0, "records per second in total (0: unlimited; e2e: required)")
	flag.DurationVar(&c.warmup, "warmup", c.warmup, "e2e: records due in this leading part are left out of the percentiles")
	flag.DurationVar(&c.drain, "drain", c.drain, "wait this long after the last send for the last acks (e2e: records) to arrive")
	flag.IntVar(&c.fetchMaxBytes, "fetch-max-bytes", c.fetchMaxBytes, "kgo.FetchMaxBytes")
	flag.IntVar(&c.fetchMaxPartitionBytes, "fetch-max-partition-bytes", c.fetchMaxPartitionBytes, "kgo.FetchMaxPartitionBytes")
	flag.DurationVar(&c.fetchMaxWait, "fetch-max-wait", c.fetchMaxWait, "kgo.FetchMaxWait")
	cpuProfile := flag.String("cpuprofile", "", "write this process's CPU profile to this file")
	flag.Var(pidList{&c.brokerPIDs}, "broker-pid", "broker process id whose CPU to measure (repeatable, or comma separated)")
	flag.Parse()
	c.brokers = strings.Split(*brokers, ",")
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.mode == "e2e" && !set["producers"] {
		c.producers = 1
	}
	if c.mode == "e2e" && !set["linger"] {
		c.linger = 0
	}
	if (c.mode == "consume" || c.mode == "consume-raw") && !set["duration"] {
		c.duration = 0
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), c, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// result is one run's outcome; line formats it.
type result struct {
	records, bytes     int64
	wall, cpu, brokerC time.Duration
	brokerUser         time.Duration // of brokerC, the user-space part
	lat                *hist         // produce: ack latency; e2e: end to end
	ack                *hist         // e2e: ack latency
	settings           []kv
}

type kv struct{ k, v string }

func run(ctx context.Context, c config, w io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	var (
		r   *result
		err error
	)
	switch c.mode {
	case "produce":
		r, err = produce(ctx, c)
	case "consume":
		r, err = consume(ctx, c)
	case "consume-raw":
		r, err = consumeRaw(ctx, c)
	case "produce-raw":
		r, err = produceRaw(ctx, c)
	case "e2e":
		r, err = e2e(ctx, c)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, r.line(c))
	return err
}

func (c *config) check() error {
	switch {
	case c.mode != "produce" && c.mode != "produce-raw" && c.mode != "consume" && c.mode != "consume-raw" && c.mode != "e2e":
		return fmt.Errorf("-mode %q: want produce, produce-raw, consume, consume-raw or e2e", c.mode)
	case c.topic == "":
		return errors.New("-topic is required")
	case c.producers < 1 || c.consumers < 1:
		return errors.New("-producers and -consumers must be at least 1")
	case c.recordSize < 0 || c.mode == "e2e" && c.recordSize < 16:
		return errors.New("-record-size must be at least 0 (e2e: 16)")
	case c.rate < 0:
		return errors.New("-rate must not be negative")
	case c.passes < 1:
		return errors.New("-passes must be at least 1")
	case c.passes > 1 && (c.mode != "consume-raw" || c.records > 0):
		return errors.New("-passes is for -mode consume-raw without -records")
	case c.mode == "e2e" && c.rate == 0:
		return errors.New("e2e needs a -rate")
	case c.mode != "consume" && c.mode != "consume-raw" && c.duration <= 0 && c.records <= 0:
		return errors.New("-duration or -records is required")
	}
	return nil
}

func (r *result) line(c config) string {
	secs := r.wall.Seconds()
	gib := float64(r.bytes) / (1 << 30)
	f := []kv{{"mode", c.mode}, {"records", strconv.FormatInt(r.records, 10)},
		{"bytes", strconv.FormatInt(r.bytes, 10)}, {"seconds", fmt.Sprintf("%.3f", secs)},
		{"records_per_sec", fmt.Sprintf("%.0f", float64(r.records)/secs)},
		{"mib_per_sec", fmt.Sprintf("%.2f", float64(r.bytes)/(1<<20)/secs)}}
	f = append(f, r.settings...)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	switch c.mode {
	case "produce", "produce-raw":
		f = append(f, kv{"ack_p50_ms", ms(r.lat.quantile(0.50))}, kv{"ack_p99_ms", ms(r.lat.quantile(0.99))},
			kv{"ack_max_ms", ms(r.lat.max)})
	case "e2e":
		f = append(f, kv{"e2e_p50_ms", ms(r.lat.quantile(0.50))}, kv{"e2e_p99_ms", ms(r.lat.quantile(0.99))},
			kv{"e2e_p999_ms", ms(r.lat.quantile(0.999))}, kv{"e2e_max_ms", ms(r.lat.max)},
			kv{"e2e_avg_ms", ms(r.lat.mean())},
			kv{"ack_p50_ms", ms(r.ack.quantile(0.50))}, kv{"ack_p99_ms", ms(r.ack.quantile(0.99))})
	}
	perGiB := func(d time.Duration) string {
		if gib == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", d.Seconds()/gib)
	}
	f = append(f, kv{"cpu_seconds", fmt.Sprintf("%.3f", r.cpu.Seconds())}, kv{"cpu_seconds_per_gib", perGiB(r.cpu)})
	if len(c.brokerPIDs) > 0 {
		f = append(f, kv{"broker_cpu_seconds", fmt.Sprintf("%.2f", r.brokerC.Seconds())},
			kv{"broker_cpu_seconds_per_gib", perGiB(r.brokerC)},
			kv{"broker_user_cpu_seconds_per_gib", perGiB(r.brokerUser)})
	}
	var b strings.Builder
	b.WriteString("load:")
	for _, x := range f {
		fmt.Fprintf(&b, " %s=%s", x.k, x.v)
	}
	return b.String()
}
