package cli

// gregor consumer-perf-test: kafka-consumer-perf-test.sh. Consumes
// --messages records in a group (perf-consumer-NNNNN unless --group) from
// the earliest offset (--from-latest for the latest) and prints Kafka's
// header and one CSV line:
//
//	start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
//
// or, with --show-detailed-stats, one line per --reporting-interval. It
// stops early when no record arrives for --timeout ms.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

type consumerPerfOptions struct {
	conn connFlags

	topic             string
	messages          int64
	group             string
	fetchSize         int32
	fromLatest        bool
	timeoutMs         int64
	reportingInterval int64
	dateFormat        string
	hideHeader        bool
	detailed          bool
	printMetrics      bool
}

func (o *consumerPerfOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "consumer.config")
	f.StringVar(&o.topic, "topic", "", "the topic to consume (required)")
	f.Int64Var(&o.messages, "messages", 0, "number of records to consume (required)")
	f.StringVar(&o.group, "group", "", "consumer group (default perf-consumer-NNNNN)")
	f.Int32Var(&o.fetchSize, "fetch-size", 1024*1024, "max.partition.fetch.bytes")
	f.BoolVar(&o.fromLatest, "from-latest", false, "without a committed offset, start at the latest record rather than the earliest")
	f.Int64Var(&o.timeoutMs, "timeout", 10000, "stop when no record arrives for this many milliseconds")
	f.Int64Var(&o.reportingInterval, "reporting-interval", 5000, "milliseconds between --show-detailed-stats lines")
	f.StringVar(&o.dateFormat, "date-format", "yyyy-MM-dd HH:mm:ss:SSS", "Java SimpleDateFormat pattern for the time columns")
	f.BoolVar(&o.hideHeader, "hide-header", false, "do not print the header line")
	f.BoolVar(&o.detailed, "show-detailed-stats", false, "print a line every --reporting-interval instead of one at the end")
	f.BoolVar(&o.printMetrics, "print-metrics", false, "accepted for compatibility (Java client metrics are not available)")
	f.Int("socket-buffer-size", 2*1024*1024, "accepted for compatibility")
	f.Int("threads", 1, "accepted for compatibility")
	f.Int("num-fetch-threads", 1, "accepted for compatibility")
	for _, n := range []string{"socket-buffer-size", "threads", "num-fetch-threads"} {
		_ = f.MarkHidden(n)
	}
}

func newConsumerPerfCommand() *cobra.Command {
	o := &consumerPerfOptions{}
	cmd := &cobra.Command{
		Use:     "consumer-perf-test --topic T --messages N",
		Short:   "Measure consume throughput (kafka-consumer-perf-test.sh)",
		Example: `  gregor consumer-perf-test --bootstrap-server localhost:9092 --topic perf --messages 1000000`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	return cmd
}

// javaDateLayout converts the SimpleDateFormat letters people use into a Go
// time layout; quoted text stays literal.
func javaDateLayout(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' {
			j := strings.IndexByte(p[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("date format %q: unterminated quote", p)
			}
			if j == 0 {
				b.WriteByte('\'')
			}
			b.WriteString(p[i+1 : i+1+j])
			i += j + 2
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
			i++
			continue
		}
		n := 1
		for i+n < len(p) && p[i+n] == c {
			n++
		}
		i += n
		var s string
		switch c {
		case 'y':
			s = "2006"
			if n == 2 {
				s = "06"
			}
		case 'M':
			s = map[int]string{1: "1", 2: "01", 3: "Jan"}[min(n, 4)]
			if n >= 4 {
				s = "January"
			}
		case 'd':
			s = map[bool]string{true: "2", false: "02"}[n == 1]
		case 'H':
			s = "15"
		case 'h':
			s = map[bool]string{true: "3", false: "03"}[n == 1]
		case 'm':
			s = map[bool]string{true: "4", false: "04"}[n == 1]
		case 's':
			s = map[bool]string{true: "5", false: "05"}[n == 1]
		case 'S':
			// Go only takes fractional seconds after '.' or ',', and Java's
			// S is a millisecond count; formatDate fills the placeholder.
			s = "\x00" + string(rune('0'+min(n, 9)))
		case 'a':
			s = "PM"
		case 'E':
			s = map[bool]string{true: "Mon", false: "Monday"}[n <= 3]
		case 'Z':
			s = "-0700"
		case 'X':
			s = map[int]string{1: "Z07", 2: "Z0700"}[min(n, 3)]
			if n >= 3 {
				s = "Z07:00"
			}
		case 'z':
			s = "MST"
		default:
			return "", fmt.Errorf("date format %q: pattern letter %q is not supported", p, c)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// formatDate formats t with a layout from javaDateLayout.
func formatDate(layout string, t time.Time) string {
	if i := strings.IndexByte(layout, 0); i >= 0 {
		n := int(layout[i+1] - '0')
		ms := fmt.Sprintf("%0*d", n, t.Nanosecond()/int(time.Millisecond))
		return formatDate(layout[:i], t) + ms + formatDate(layout[i+2:], t)
	}
	return t.Format(layout)
}

func (o *consumerPerfOptions) run(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	switch {
	case o.topic == "":
		return errors.New("--topic is required")
	case !changed("messages"):
		return errors.New("--messages is required")
	case o.reportingInterval <= 0:
		return errors.New("reporting interval must be greater than 0")
	}
	layout, err := javaDateLayout(o.dateFormat)
	if err != nil {
		return err
	}
	props, seeds, err := o.conn.clientProps()
	if err != nil {
		return err
	}
	group := o.group
	if group == "" {
		if g := props["group.id"]; g != "" {
			group = g
		} else {
			group = fmt.Sprintf("perf-consumer-%d", rand.IntN(100000))
		}
	}
	props["group.id"] = group
	props["max.partition.fetch.bytes"] = strconv.Itoa(int(o.fetchSize))
	props["auto.offset.reset"] = "earliest"
	if o.fromLatest {
		props["auto.offset.reset"] = "latest"
	}
	if _, ok := props["client.id"]; !ok {
		props["client.id"] = "perf-consumer-client"
	}
	if o.printMetrics {
		fmt.Fprintln(cmd.ErrOrStderr(), "gregor: --print-metrics: Java client metrics are not available; ignoring")
	}

	// Rebalance time is measured as Kafka's listener does: from the start
	// (or a revocation) until partitions are assigned.
	var (
		joinMu       sync.Mutex
		joinStart    = time.Now()
		joinTotal    time.Duration
		joinInWindow time.Duration
	)
	opts := []kgo.Opt{
		kgo.ConsumeTopics(o.topic),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) {
			joinMu.Lock()
			joinStart = time.Now()
			joinMu.Unlock()
		}),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			joinMu.Lock()
			d := time.Since(joinStart)
			joinTotal += d
			joinInWindow += d
			joinMu.Unlock()
		}),
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	startT := time.Now()
	joinMu.Lock()
	joinStart = startT
	joinMu.Unlock()
	cl, err := newClientFromProps(ctx, cmd, props, seeds, opts...)
	if err != nil {
		return err
	}
	if err := checkTopic(ctx, cl, o.topic, 0, false); err != nil {
		cl.Close()
		return err
	}
	if !o.hideHeader {
		if o.detailed {
			fmt.Fprintln(out, "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
		} else {
			fmt.Fprintln(out, "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
		}
	}
	bar := newProgressBar(out, isTerminal(out), o.messages, "records")
	var messages, bytes, lastMessages, lastBytes int64
	timeout := time.Duration(o.timeoutMs) * time.Millisecond
	interval := time.Duration(o.reportingInterval) * time.Millisecond
	lastReport, lastConsumed := startT, startT
	now := startT
	for messages < o.messages && now.Sub(lastConsumed) <= timeout && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		fs := cl.PollRecords(pctx, int(min(o.messages-messages, 100000)))
		cancel()
		now = time.Now()
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && fetchErr == nil {
				fetchErr = fmt.Errorf("consuming %s partition %d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			bar.finish()
			cl.Close()
			return fetchErr
		}
		recs := fs.Records()
		if len(recs) > 0 {
			lastConsumed = now
		}
		for _, r := range recs {
			messages++
			bytes += int64(len(r.Key) + len(r.Value))
			if now.Sub(lastReport) >= interval {
				if o.detailed {
					joinMu.Lock()
					jw := joinInWindow
					joinInWindow = 0
					joinMu.Unlock()
					bar.println(o.progressLine(layout, now, lastReport, messages, lastMessages, bytes, lastBytes, jw))
				}
				lastReport, lastMessages, lastBytes = now, messages, bytes
			}
		}
		bar.set(messages, bytes)
	}
	end := time.Now()
	bar.finish()
	if messages < o.messages && ctx.Err() == nil {
		fmt.Fprintf(out, "WARNING: Exiting before consuming the expected number of messages: timeout (%d ms) exceeded. You can use the --timeout option to increase the timeout.\n", o.timeoutMs)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cl.CommitUncommittedOffsets(closeCtx)
	cl.Close()
	if !o.detailed {
		joinMu.Lock()
		join := joinTotal
		joinMu.Unlock()
		elapsed := end.Sub(startT).Seconds()
		fetchMs := end.Sub(startT).Milliseconds() - join.Milliseconds()
		mb := float64(bytes) / (1024 * 1024)
		fmt.Fprintf(out, "%s, %s, %s, %s, %d, %s, %d, %d, %s, %s\n",
			formatDate(layout, startT), formatDate(layout, end),
			javaFixed(mb, 4), javaFixed(mb/elapsed, 4), messages, javaFixed(float64(messages)/elapsed, 4),
			join.Milliseconds(), fetchMs,
			javaFixed(mb/(float64(fetchMs)/1000), 4), javaFixed(float64(messages)/(float64(fetchMs)/1000), 4))
	}
	return nil
}

// progressLine is one --show-detailed-stats line.
func (o *consumerPerfOptions) progressLine(layout string, now, last time.Time, msgs, lastMsgs, bytes, lastBytes int64, join time.Duration) string {
	elapsedMs := float64(now.Sub(last).Milliseconds())
	totalMB := float64(bytes) / (1024 * 1024)
	intervalMB := float64(bytes-lastBytes) / (1024 * 1024)
	fetchMs := now.Sub(last).Milliseconds() - join.Milliseconds()
	fetchMBs, fetchMsgs := 0.0, 0.0
	if fetchMs > 0 {
		fetchMBs = 1000 * intervalMB / float64(fetchMs)
		fetchMsgs = 1000 * float64(msgs-lastMsgs) / float64(fetchMs)
	}
	return fmt.Sprintf("%s, %d, %s, %s, %d, %s, %d, %d, %s, %s",
		formatDate(layout, now), 0, javaFixed(totalMB, 4), javaFixed(1000*intervalMB/elapsedMs, 4),
		msgs, javaFixed(float64(msgs-lastMsgs)/elapsedMs*1000, 4),
		join.Milliseconds(), fetchMs, javaFixed(fetchMBs, 4), javaFixed(fetchMsgs, 4))
}
