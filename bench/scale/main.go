// Command scale measures how one Gregor broker behaves as things grow, as
// three curves, and prints each as a markdown table (and, with -svg-dir,
// draws each as an SVG of small line plots, log-scale x):
//
//   - partitions: one topic of N partitions on a fresh broker per N. At
//     each N: the broker's CPU with no clients; the round trip of -metadata
//     Metadata requests for the topic (p50, p99); produce MB/s of 1 KiB
//     records (acks=1, one franz-go client, its default sticky
//     partitioner); RSS, peak RSS and open fds after that; the broker's CPU
//     while one consumer (franz-go, no group, fetch sessions) idles on all
//     N partitions from their ends with nothing produced, and its Fetch
//     count; then SIGTERM, the time to exit, a restart on the same data
//     directory and the time from launch to the first acknowledged acks=all
//     produce (as bench/startup measures it), and the RSS after that.
//   - connections: C raw TCP connections to one broker (each one
//     connection, Kafka protocol encoded with kmsg, so the client side
//     stays cheap), sending one-record acks=1 Produce requests at a fixed
//     total rate split between them to an 8-partition topic: ack latency
//     p50/p99, broker CPU, RSS and open fds.
//   - record size: produce MB/s, records/s and broker CPU per GiB at each
//     record size, 8 partitions, acks=1, a fresh broker per size.
//
// Usage, from the repository root:
//
//	go build -o /tmp/gregor-scale ./cmd/gregor
//	go run ./bench/scale -bin /tmp/gregor-scale -svg-dir bench/scale
//
// Brokers are `gregor serve` child processes on fresh directories under
// one temporary directory (removed at the end), listening on -addr only,
// with HTTP off and gregor.durability=os (-fsync for fsync). This process
// raises its soft open-file limit to the hard one first and the brokers
// inherit it; gregor.max.partitions is set to the largest N plus 50.
// Broker CPU is utime+stime from /proc/PID/stat (10 ms ticks); client CPU
// is this process's own, from getrusage, so a reader can see whether the
// client could have been the bottleneck. Every broker started is stopped
// with SIGTERM and waited for, also on an interrupt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type config struct {
	bin, addr, svgDir string
	curves            map[string]bool
	partitions        []int
	connections       []int
	recordSizes       []int
	fsync             bool
	extra             []string

	warmup, produceDur   time.Duration
	idleDur, fetchWarmup time.Duration
	fetchMaxWait         time.Duration
	metadataRequests     int
	connRate, connSize   int
	connDur              time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "./gregor", "gregor binary")
	flag.StringVar(&c.addr, "addr", "127.0.0.1:19931", "the brokers' client listener (one broker at a time)")
	flag.StringVar(&c.svgDir, "svg-dir", "", "write partitions.svg, connections.svg and record-size.svg here (none when empty)")
	curves := flag.String("curves", "partitions,connections,record-size", "curves to measure, comma separated")
	parts := flag.String("partitions", "1,10,100,1000,10000", "partition counts of the partitions curve")
	conns := flag.String("connections", "1,10,100,1000", "connection counts of the connections curve")
	sizes := flag.String("record-sizes", "100,1024,10240,102400", "record value sizes in bytes of the record-size curve")
	flag.BoolVar(&c.fsync, "fsync", false, "gregor.durability=fsync instead of os")
	extra := flag.String("broker-args", "", "more key=value properties for every broker, space separated (each becomes --override)")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured produce time before each produce measurement")
	flag.DurationVar(&c.produceDur, "produce-duration", 5*time.Second, "measured time of each produce throughput run")
	flag.DurationVar(&c.idleDur, "idle-duration", 10*time.Second, "measured time of the no-clients and idle-consumer CPU readings")
	flag.DurationVar(&c.fetchWarmup, "fetch-warmup", 3*time.Second, "unmeasured time after the idle consumer starts")
	flag.DurationVar(&c.fetchMaxWait, "fetch-max-wait", 500*time.Millisecond, "the idle consumer's kgo.FetchMaxWait")
	flag.IntVar(&c.metadataRequests, "metadata", 200, "Metadata requests timed at each partition count")
	flag.IntVar(&c.connRate, "conn-rate", 2000, "connections curve: records a second, in total over all connections")
	flag.IntVar(&c.connSize, "conn-record-size", 1024, "connections curve: record value bytes")
	flag.DurationVar(&c.connDur, "conn-duration", 5*time.Second, "connections curve: measured time at each count (after -warmup)")
	flag.Parse()

	var err error
	c.curves = map[string]bool{}
	for _, s := range strings.Split(*curves, ",") {
		switch s = strings.TrimSpace(s); s {
		case "partitions", "connections", "record-size":
			c.curves[s] = true
		case "":
		default:
			fail(fmt.Errorf("-curves: unknown curve %q", s))
		}
	}
	if c.partitions, err = intList(*parts); err != nil {
		fail(fmt.Errorf("-partitions: %w", err))
	}
	if c.connections, err = intList(*conns); err != nil {
		fail(fmt.Errorf("-connections: %w", err))
	}
	if c.recordSizes, err = intList(*sizes); err != nil {
		fail(fmt.Errorf("-record-sizes: %w", err))
	}
	c.extra = strings.Fields(*extra)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, c)
	cancel()
	stopAll()
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

// intList parses "1,10,100" into ascending positive ints.
func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%d: the list must ascend", n)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, c config) error {
	nofile, err := raiseNofile()
	if err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	root, err := os.MkdirTemp("", "gregor-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	durability := "os"
	if c.fsync {
		durability = "fsync"
	}
	maxParts := 50
	if len(c.partitions) > 0 {
		maxParts += c.partitions[len(c.partitions)-1]
	}
	overrides := append([]string{"gregor.durability=" + durability, "gregor.max.partitions=" + strconv.Itoa(maxParts)}, c.extra...)
	fmt.Printf("gregor.durability=%s, RLIMIT_NOFILE %d, %s\n\n", durability, nofile, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	newBroker := func(name string) *broker {
		return &broker{bin: c.bin, dataDir: filepath.Join(root, name), addr: c.addr, overrides: overrides}
	}
	if c.curves["partitions"] {
		if err := partitionsCurve(ctx, c, newBroker); err != nil {
			return fmt.Errorf("partitions curve: %w", err)
		}
	}
	if c.curves["connections"] {
		if err := connectionsCurve(ctx, c, newBroker("connections")); err != nil {
			return fmt.Errorf("connections curve: %w", err)
		}
	}
	if c.curves["record-size"] {
		if err := recordSizeCurve(ctx, c, newBroker); err != nil {
			return fmt.Errorf("record-size curve: %w", err)
		}
	}
	return nil
}

// startBroker starts b and waits for it to list its own node in Metadata
// through a franz-go client, which is returned (the caller closes it).
func startBroker(ctx context.Context, b *broker) (*kgo.Client, error) {
	if err := b.start(); err != nil {
		return nil, err
	}
	if _, err := b.waitListening(2 * time.Minute); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return nil, err
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		err := cl.Ping(ctx)
		if err == nil {
			return cl, nil
		}
		if ctx.Err() != nil || time.Since(start) > time.Minute {
			cl.Close()
			return nil, fmt.Errorf("broker not answering: %w", err)
		}
	}
}

// createTopic creates topic with parts partitions and returns how long
// that took. The broker gets three minutes (10,000 partitions took up to
// 25 s here); should the client still retry the request, the retry's
// TOPIC_ALREADY_EXISTS is success, the broker being fresh.
func createTopic(ctx context.Context, cl *kgo.Client, topic string, parts int) (time.Duration, error) {
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(180_000)
	t0 := time.Now()
	res, err := adm.CreateTopic(ctx, int32(parts), 1, nil, topic)
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		progress("%s: TOPIC_ALREADY_EXISTS on a fresh broker (a retried CreateTopics); counted as created", topic)
		err = nil
	}
	return time.Since(t0), err
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func writeSVG(c config, name string, f figure) error {
	if c.svgDir == "" {
		return nil
	}
	if err := os.MkdirAll(c.svgDir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(c.svgDir, name)
	if err := os.WriteFile(p, f.svg(), 0o644); err != nil {
		return err
	}
	progress("wrote %s", p)
	return nil
}

func ms(d time.Duration) float64           { return float64(d) / float64(time.Millisecond) }
func mib(n int64) float64                  { return float64(n) / (1 << 20) }
func perSec(d, wall time.Duration) float64 { return ms(d) / wall.Seconds() } // ms of CPU per second
