package cli

// gregor producer-perf-test (alias perf): kafka-producer-perf-test.sh.
//
// Sends --num-records records of --record-size random capital letters (or
// lines of --payload-file, or increasing numbers with --payload-monotonic)
// at up to --throughput records/s, measuring each record's latency from
// send to acknowledgement. Every 5 s it prints Kafka's window line
//
//	N records sent, X records/sec (Y MB/sec), Z ms avg latency, W ms max latency.
//
// and at the end the total with the 50th/95th/99th/99.9th percentiles,
// computed as Kafka does from at most 500,000 sampled latencies.
// --producer-props takes Kafka producer properties (acks, batch.size,
// linger.ms, compression.type, bootstrap.servers, ...); as in Kafka, several
// may follow one --producer-props.
//
// Transactions are on, as in Kafka, when --transactional-id,
// --transaction-duration-ms or a transactional.id property is given: the
// id is the flag's, else the property's, else performance-producer-<uuid>;
// a transaction begins before the first record after a commit and is
// committed (after its records are flushed) once a record is sent
// --transaction-duration-ms (default 3000) after it began, and at the end.

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultTransactionMs is Kafka's transaction length when transactions
// are on and --transaction-duration-ms is not given.
const defaultTransactionMs = 3000

type producerPerfOptions struct {
	conn connFlags

	topic            string
	numRecords       int64
	recordSize       int
	payloadFile      string
	payloadDelimiter string
	payloadMonotonic bool
	throughput       float64
	producerProps    []string
	producerConfig   string
	printMetrics     bool
	transactionalID  string
	transactionMs    int64
	transactions     bool // set by run from the flags and properties
	reportInterval   time.Duration
}

func (o *producerPerfOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "")
	f.StringVar(&o.topic, "topic", "", "the topic to produce to (required)")
	f.Int64Var(&o.numRecords, "num-records", 0, "number of records to send (required)")
	f.IntVar(&o.recordSize, "record-size", 0, "record size in bytes (one of --record-size, --payload-file, --payload-monotonic)")
	f.StringVar(&o.payloadFile, "payload-file", "", "send random lines of this UTF-8 file")
	f.StringVar(&o.payloadDelimiter, "payload-delimiter", `\n`, "payload delimiter for --payload-file")
	f.BoolVar(&o.payloadMonotonic, "payload-monotonic", false, "payloads are the increasing record numbers")
	f.Float64Var(&o.throughput, "throughput", 0, "at most this many records/s; -1 for no limit (required)")
	f.StringArrayVar(&o.producerProps, "producer-props", nil, "producer properties k=v, e.g. bootstrap.servers=localhost:9092 acks=1 batch.size=65536 linger.ms=5")
	f.StringVar(&o.producerConfig, "producer.config", "", "producer properties file")
	f.BoolVar(&o.printMetrics, "print-metrics", false, "accepted for compatibility (Java client metrics are not available)")
	f.StringVar(&o.transactionalID, "transactional-id", "", "produce in transactions with this transactional id (wins over a transactional.id property)")
	f.Int64Var(&o.transactionMs, "transaction-duration-ms", defaultTransactionMs, "commit the transaction once it is this old (turns transactions on)")
	f.DurationVar(&o.reportInterval, "reporting-interval", 5*time.Second, "how often to print the window line")
	_ = f.MarkHidden("reporting-interval")
}

func newProducerPerfCommand() *cobra.Command {
	o := &producerPerfOptions{}
	cmd := &cobra.Command{
		Use:     "producer-perf-test --topic T --num-records N --record-size B --throughput R [--producer-props k=v ...]",
		Aliases: []string{"perf"},
		Short:   "Measure produce throughput and latency (kafka-producer-perf-test.sh)",
		Example: `  gregor producer-perf-test --topic perf --num-records 1000000 --record-size 100 --throughput -1 \
      --producer-props bootstrap.servers=localhost:9092 acks=1 batch.size=65536 linger.ms=5`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// --producer-props k=v k2=v2: pflag takes one value per flag, so
			// the rest arrive as arguments.
			for _, a := range args {
				if !strings.Contains(a, "=") || !cmd.Flags().Changed("producer-props") {
					return fmt.Errorf("unexpected argument %q", a)
				}
				o.producerProps = append(o.producerProps, a)
			}
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// perfStats is Kafka's ProducerPerformance.Stats: totals, the current
// window, and sampled latencies for the percentiles.
type perfStats struct {
	mu                                 sync.Mutex
	start, windowStart                 time.Time
	sampling                           int64
	latencies                          []int
	iteration                          int64
	count, bytes, totalLatency         int64
	maxLatency                         int
	windowCount, windowBytes, windowTL int64
	windowMax                          int
	interval                           time.Duration
	emit                               func(string)
}

func newPerfStats(numRecords int64, interval time.Duration, emit func(string)) *perfStats {
	sampling := numRecords / min(numRecords, 500000)
	now := time.Now()
	return &perfStats{
		start: now, windowStart: now, sampling: sampling,
		latencies: make([]int, 0, numRecords/sampling+1), interval: interval, emit: emit,
	}
}

func (s *perfStats) record(latency, bytes int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.bytes += int64(bytes)
	s.totalLatency += int64(latency)
	s.maxLatency = max(s.maxLatency, latency)
	s.windowCount++
	s.windowBytes += int64(bytes)
	s.windowTL += int64(latency)
	s.windowMax = max(s.windowMax, latency)
	if s.iteration%s.sampling == 0 {
		s.latencies = append(s.latencies, latency)
	}
	s.iteration++
	if now.Sub(s.windowStart) >= s.interval {
		s.emit(s.windowLine(now))
		s.windowStart = now
		s.windowCount, s.windowBytes, s.windowTL, s.windowMax = 0, 0, 0, 0
	}
}

func (s *perfStats) windowLine(now time.Time) string {
	ms := float64(now.Sub(s.windowStart).Milliseconds())
	return fmt.Sprintf("%d records sent, %s records/sec (%s MB/sec), %s ms avg latency, %s ms max latency.",
		s.windowCount, javaFixed(1000*float64(s.windowCount)/ms, 1), javaFixed(1000*float64(s.windowBytes)/ms/(1024*1024), 2),
		javaFixed(float64(s.windowTL)/float64(s.windowCount), 1), javaFixed(float64(s.windowMax), 1))
}

func (s *perfStats) totalLine(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := float64(now.Sub(s.start).Milliseconds())
	lat := slices.Clone(s.latencies)
	slices.Sort(lat)
	pct := func(p float64) int {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)))]
	}
	return fmt.Sprintf("%d records sent, %s records/sec (%s MB/sec), %s ms avg latency, %s ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.",
		s.count, javaFixed(1000*float64(s.count)/ms, 1), javaFixed(1000*float64(s.bytes)/ms/(1024*1024), 2),
		javaFixed(float64(s.totalLatency)/float64(s.count), 2), javaFixed(float64(s.maxLatency), 2),
		pct(0.5), pct(0.95), pct(0.99), pct(0.999))
}

// javaFixed formats like Java's %.Nf, including its words for the
// non-finite values a zero elapsed time produces.
func javaFixed(v float64, prec int) string {
	switch {
	case v != v:
		return "NaN"
	case v > 1e308:
		return "Infinity"
	case v < -1e308:
		return "-Infinity"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// payloads yields the record values.
type payloads struct {
	size      int
	pool      []byte // random capital letters to slice records from
	lines     [][]byte
	monotonic bool
	rng       *rand.Rand
}

func (o *producerPerfOptions) payloads(out io.Writer) (*payloads, error) {
	p := &payloads{rng: rand.New(rand.NewPCG(0, 0))}
	switch {
	case o.recordSize > 0:
		p.size = o.recordSize
		p.pool = make([]byte, max(1<<20, 4*o.recordSize))
		for i := range p.pool {
			p.pool[i] = byte('A' + p.rng.IntN(26))
		}
	case o.payloadFile != "":
		if abs, err := filepath.Abs(o.payloadFile); err == nil {
			fmt.Fprintf(out, "Reading payloads from: %s\n", abs)
		}
		data, err := os.ReadFile(o.payloadFile)
		if err != nil {
			return nil, err
		}
		delim := strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\r`, "\r").Replace(o.payloadDelimiter)
		for _, l := range strings.Split(string(data), delim) {
			if l != "" {
				p.lines = append(p.lines, []byte(l))
			}
		}
		if len(p.lines) == 0 {
			return nil, fmt.Errorf("%s holds no payloads", o.payloadFile)
		}
		fmt.Fprintf(out, "Number of messages read: %d\n", len(p.lines))
	case o.payloadMonotonic:
		p.monotonic = true
	}
	return p, nil
}

// next returns record i's value. Record values are never mutated after the
// send, so slices of the shared pool are safe.
func (p *payloads) next(i int64) []byte {
	switch {
	case p.pool != nil:
		off := p.rng.IntN(len(p.pool) - p.size + 1)
		return p.pool[off : off+p.size]
	case p.lines != nil:
		return p.lines[p.rng.IntN(len(p.lines))]
	}
	return []byte(strconv.FormatInt(i, 10))
}

func (o *producerPerfOptions) run(cmd *cobra.Command) error {
	sources := 0
	for _, b := range []bool{o.recordSize > 0, o.payloadFile != "", o.payloadMonotonic} {
		if b {
			sources++
		}
	}
	changed := cmd.Flags().Changed
	switch {
	case o.topic == "":
		return errors.New("--topic is required")
	case !changed("num-records"):
		return errors.New("--num-records is required")
	case o.numRecords <= 0:
		return errors.New("--num-records should be greater than zero")
	case changed("record-size") && o.recordSize <= 0:
		return errors.New("--record-size should be greater than zero")
	case sources != 1:
		return errors.New("exactly one of --record-size, --payload-file or --payload-monotonic is required")
	case !changed("throughput"):
		return errors.New("--throughput is required (-1 for no limit)")
	case o.throughput == 0:
		return errors.New("--throughput 0 would send nothing; use -1 for no limit")
	case changed("transaction-duration-ms") && o.transactionMs <= 0:
		return errors.New("--transaction-duration-ms should be greater than zero")
	}
	o.conn.configFile = o.producerConfig
	props, seeds, err := o.conn.clientProps(o.producerProps)
	if err != nil {
		return err
	}
	_, idProp := props["transactional.id"]
	o.transactions = changed("transaction-duration-ms") || changed("transactional-id") || idProp
	if o.transactions {
		switch {
		case changed("transactional-id"):
			props["transactional.id"] = o.transactionalID
		case !idProp:
			props["transactional.id"] = "performance-producer-" + randomKafkaUUID()
		}
	}
	if _, ok := props["client.id"]; !ok {
		props["client.id"] = "perf-producer-client"
	}
	// franz-go fails a record bigger than its batch limit; the Java client
	// gives it a batch of its own. Keep batch.size at least one record.
	if v, ok := props["batch.size"]; ok && o.recordSize > 0 {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n < o.recordSize+512 {
			props["batch.size"] = strconv.Itoa(o.recordSize + 512)
		}
	}
	gen, err := o.payloads(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if o.printMetrics {
		fmt.Fprintln(cmd.ErrOrStderr(), "gregor: --print-metrics: Java client metrics are not available; ignoring")
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := newClientFromProps(ctx, cmd, props, seeds, kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer cl.Close()

	out := cmd.OutOrStdout()
	bar := newProgressBar(out, isTerminal(out), o.numRecords, "records")
	defer bar.finish()
	stats := newPerfStats(o.numRecords, o.reportInterval, bar.println)
	var (
		errMu    sync.Mutex
		firstErr error
		failed   int64
	)
	start := time.Now()
	var sent int64
	txn := perfTxn{cl: cl, every: time.Duration(o.transactionMs) * time.Millisecond}
	for i := int64(0); i < o.numRecords && ctx.Err() == nil; i++ {
		value := gen.next(i)
		if o.transactions {
			if err := txn.begin(); err != nil {
				return err
			}
		}
		sendStart := time.Now()
		n := len(value)
		cl.Produce(ctx, &kgo.Record{Topic: o.topic, Value: value}, func(r *kgo.Record, err error) {
			now := time.Now()
			if err != nil {
				errMu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				return
			}
			stats.record(int(now.Sub(sendStart).Milliseconds()), n, now)
		})
		sent = i + 1
		if o.transactions {
			if err := txn.maybeCommit(ctx, sendStart); err != nil {
				return err
			}
		}
		if sent%1024 == 0 {
			stats.mu.Lock()
			bar.set(stats.count, stats.bytes)
			stats.mu.Unlock()
		}
		throttle(o.throughput, sent, start)
	}
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return fmt.Errorf("waiting for the last records: %w", err)
	}
	if o.transactions && ctx.Err() == nil {
		if err := txn.commit(fctx); err != nil {
			return err
		}
	}
	bar.finish()
	if stats.count > 0 {
		fmt.Fprintln(out, stats.totalLine(time.Now()))
	}
	if firstErr != nil {
		if errors.Is(firstErr, context.Canceled) && ctx.Err() != nil {
			return nil // Ctrl-C: the records in flight were abandoned
		}
		return fmt.Errorf("%d of %d records failed; the first error: %w", failed, sent, firstErr)
	}
	return nil
}

// throttle sleeps while more than rate records/s have been sent since start;
// a negative rate means no limit.
func throttle(rate float64, sent int64, start time.Time) {
	if rate <= 0 {
		return
	}
	due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
	if d := time.Until(due); d >= time.Millisecond {
		time.Sleep(d)
	}
}

// perfTxn is the perf test's transaction cycle: begin before a record when
// none is open, commit once a record is sent every after the beginning.
type perfTxn struct {
	cl    *kgo.Client
	every time.Duration
	open  bool
	began time.Time
}

func (t *perfTxn) begin() error {
	if t.open {
		return nil
	}
	if err := t.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	t.open, t.began = true, time.Now()
	return nil
}

func (t *perfTxn) maybeCommit(ctx context.Context, sent time.Time) error {
	if !t.open || sent.Sub(t.began) < t.every {
		return nil
	}
	return t.commit(ctx)
}

// commit flushes the transaction's records (franz-go ends a transaction
// only with nothing buffered, as the Java producer's commit flushes too)
// and commits; a record that failed turns the commit into an abort, which
// is reported.
func (t *perfTxn) commit(ctx context.Context) error {
	if !t.open {
		return nil
	}
	t.open = false
	if err := t.cl.Flush(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	if err := t.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// randomKafkaUUID is a random id in Kafka's Uuid text form: 16 bytes in
// unpadded URL-safe base64.
func randomKafkaUUID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
