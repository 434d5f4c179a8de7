package cli

// gregor console-consumer (alias consume): kafka-console-consumer.sh.
//
// As in Kafka 4.x: without --group the consumer joins a fresh group named
// console-consumer-NNNNN with auto-commit off; with --partition it reads
// that one partition without a group; --from-beginning applies only where
// the group has no committed offset. Records print through the
// DefaultMessageFormatter rules (formatter.go), and "Processed a total of N
// messages" goes to stderr however the consumer stops: --max-messages,
// --timeout-ms, end of input, or Ctrl-C. Only records that were printed are
// committed, so a restarted consumer in the same group resumes after the
// last printed one.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/internal/config"
)

type consoleConsumerOptions struct {
	conn connFlags

	topic, include     string
	partition          int32
	offset             string
	fromBeginning      bool
	group              string
	maxMessages        int
	timeoutMs          int64
	formatter          string
	properties         []string
	formatterProps     []string
	formatterConfig    string
	consumerProperties []string
	isolationLevel     string
	keyDeserializer    string
	valueDeserializer  string
	skipMessageOnError bool
}

func (o *consoleConsumerOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "consumer.config")
	f.StringVar(&o.topic, "topic", "", "the topic to consume")
	f.StringVar(&o.include, "include", "", "a regular expression of topics to consume")
	f.StringVar(&o.include, "whitelist", "", "legacy name of --include")
	_ = f.MarkHidden("whitelist")
	f.Int32Var(&o.partition, "partition", 0, "consume only this partition (no group); starts at the end unless --offset or --from-beginning")
	f.StringVar(&o.offset, "offset", "", "with --partition: earliest, latest, or an offset (default latest)")
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "without a committed offset, start at the earliest record rather than the latest")
	f.StringVar(&o.group, "group", "", "consumer group id (default: a fresh console-consumer-NNNNN group that commits nothing)")
	f.IntVar(&o.maxMessages, "max-messages", -1, "exit after this many records")
	f.Int64Var(&o.timeoutMs, "timeout-ms", -1, "exit if no record arrives for this many milliseconds")
	f.StringVar(&o.formatter, "formatter", "org.apache.kafka.tools.consumer.DefaultMessageFormatter", "record formatter (only Kafka's DefaultMessageFormatter is available)")
	f.StringArrayVar(&o.properties, "property", nil, "formatter property key=value: print.key, print.value, print.timestamp, print.partition, print.offset, print.headers, print.epoch, key.separator, line.separator, headers.separator, null.literal, key.deserializer, value.deserializer (repeatable)")
	f.StringArrayVar(&o.formatterProps, "formatter-property", nil, "same as --property (Kafka 4.1's name)")
	f.StringVar(&o.formatterConfig, "formatter-config", "", "properties file for the formatter (--property wins)")
	f.StringArrayVar(&o.consumerProperties, "consumer-property", nil, "consumer property key=value, e.g. auto.offset.reset=earliest (repeatable)")
	f.StringVar(&o.isolationLevel, "isolation-level", "", "read_committed or read_uncommitted (default)")
	f.StringVar(&o.keyDeserializer, "key-deserializer", "", "Java deserializer class for keys, e.g. org.apache.kafka.common.serialization.LongDeserializer")
	f.StringVar(&o.valueDeserializer, "value-deserializer", "", "Java deserializer class for values")
	f.BoolVar(&o.skipMessageOnError, "skip-message-on-error", false, "skip a record that cannot be formatted instead of stopping")
	f.Bool("enable-systest-events", false, "accepted for compatibility; does nothing")
	_ = f.MarkHidden("enable-systest-events")
}

func newConsoleConsumerCommand() *cobra.Command {
	o := &consoleConsumerOptions{}
	cmd := &cobra.Command{
		Use:     "console-consumer --topic T [--from-beginning]",
		Aliases: []string{"consume"},
		Short:   "Print records from a topic (kafka-console-consumer.sh)",
		Example: `  gregor console-consumer --bootstrap-server localhost:9092 --topic sanguo --from-beginning
  gregor consume --topic sanguo --group g1 --property print.key=true --property print.offset=true
  gregor consume --topic sanguo --partition 0 --offset 42 --max-messages 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	return cmd
}

// errUnwritable ends the consumer when nobody reads its output any more.
var errUnwritable = errors.New("unable to write to standard out, closing consumer")

func (o *consoleConsumerOptions) run(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	hasPartition := changed("partition")
	switch {
	case (o.topic == "") == (o.include == ""):
		return errors.New("exactly one of --include/--topic is required")
	case hasPartition && o.topic == "":
		return errors.New("the topic is required when partition is specified")
	case hasPartition && o.fromBeginning && o.offset != "":
		return errors.New("options from-beginning and offset cannot be specified together")
	case !hasPartition && o.offset != "":
		return errors.New("the partition is required when offset is specified")
	case o.formatter != "" && !strings.HasSuffix(o.formatter, "DefaultMessageFormatter"):
		return fmt.Errorf("formatter %s is not available; only DefaultMessageFormatter is", o.formatter)
	}
	start, err := o.startOffset(hasPartition)
	if err != nil {
		return err
	}

	fprops := map[string]string{}
	if o.formatterConfig != "" {
		fileProps, err := config.ReadPropertiesFile(o.formatterConfig)
		if err != nil {
			return err
		}
		fprops = fileProps
	}
	if o.keyDeserializer != "" {
		fprops["key.deserializer"] = o.keyDeserializer
	}
	if o.valueDeserializer != "" {
		fprops["value.deserializer"] = o.valueDeserializer
	}
	if err := mergeKeyValues(fprops, append(o.properties, o.formatterProps...)); err != nil {
		return fmt.Errorf("--property %w", err)
	}
	fmtr, err := newMessageFormatter(fprops)
	if err != nil {
		return err
	}

	props, seeds, err := o.conn.clientProps(o.consumerProperties)
	if err != nil {
		return err
	}
	if _, ok := props["client.id"]; !ok {
		props["client.id"] = "console-consumer"
	}
	if o.isolationLevel != "" {
		props["isolation.level"] = o.isolationLevel
	}
	group := o.group
	if g, ok := props["group.id"]; ok {
		if group != "" && g != group {
			return fmt.Errorf("the group ids provided in different places do not match: '%s', '%s'", group, g)
		}
		group = g
	}
	if group != "" && hasPartition {
		return errors.New("options group and partition cannot be specified together")
	}
	var opts []kgo.Opt
	marks := false
	if !hasPartition {
		if group == "" {
			// A throwaway group, as Kafka's tool makes; committing its
			// offsets would only fill the coordinator with dead groups.
			group = fmt.Sprintf("console-consumer-%d", rand.IntN(100000))
			if _, ok := props["enable.auto.commit"]; !ok {
				props["enable.auto.commit"] = "false"
			}
		}
		props["group.id"] = group
		if v, ok := props["auto.offset.reset"]; ok {
			if o.fromBeginning && !strings.EqualFold(v, "earliest") {
				return fmt.Errorf("can't simultaneously specify --from-beginning and 'auto.offset.reset=%s', please remove one option", v)
			}
		} else if o.fromBeginning {
			props["auto.offset.reset"] = "earliest"
		} else {
			props["auto.offset.reset"] = "latest"
		}
		if v := props["enable.auto.commit"]; !strings.EqualFold(strings.TrimSpace(v), "false") {
			// Commit what was printed, not what was fetched.
			marks = true
			opts = append(opts, kgo.AutoCommitMarks())
		}
		if o.topic != "" {
			opts = append(opts, kgo.ConsumeTopics(o.topic))
		} else {
			opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(includePattern(o.include)))
		}
	} else {
		delete(props, "group.id")
		reset := kgo.NewOffset().AtEnd()
		if o.fromBeginning {
			reset = kgo.NewOffset().AtStart()
		}
		if _, ok := props["auto.offset.reset"]; !ok {
			opts = append(opts, kgo.ConsumeResetOffset(reset))
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: {o.partition: start}}))
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := newClientFromProps(ctx, cmd, props, seeds, opts...)
	if err != nil {
		return err
	}
	if o.topic != "" {
		if err := checkTopic(ctx, cl, o.topic, o.partition, hasPartition); err != nil {
			cl.Close()
			return err
		}
	}

	w := bufio.NewWriterSize(cmd.OutOrStdout(), 64*1024)
	count, loopErr := o.consume(ctx, cl, w, cmd.ErrOrStderr(), fmtr, marks)
	if err := w.Flush(); err != nil && loopErr == nil {
		loopErr = errUnwritable
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if marks {
		// Commit the printed records before leaving the group.
		if err := cl.CommitMarkedOffsets(closeCtx); err != nil && loopErr == nil {
			loopErr = fmt.Errorf("commit offsets: %w", err)
		}
	}
	cl.Close()
	fmt.Fprintf(cmd.ErrOrStderr(), "Processed a total of %d messages\n", count)
	return loopErr
}

// startOffset resolves --offset / --from-beginning for --partition.
func (o *consoleConsumerOptions) startOffset(hasPartition bool) (kgo.Offset, error) {
	switch strings.ToLower(o.offset) {
	case "":
		if o.fromBeginning {
			return kgo.NewOffset().AtStart(), nil
		}
		return kgo.NewOffset().AtEnd(), nil
	case "earliest":
		return kgo.NewOffset().AtStart(), nil
	case "latest":
		return kgo.NewOffset().AtEnd(), nil
	}
	n, err := strconv.ParseInt(o.offset, 10, 64)
	if err != nil || n < 0 {
		return kgo.Offset{}, fmt.Errorf("the provided offset value '%s' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long", o.offset)
	}
	return kgo.NewOffset().At(n), nil
}

// includePattern turns Kafka's --include value (Java regex, "," for "or")
// into an anchored Go regular expression.
func includePattern(p string) string {
	p = strings.ReplaceAll(strings.TrimSpace(p), ",", "|")
	p = strings.ReplaceAll(p, " ", "")
	return "^(?:" + strings.Trim(p, `"'`) + ")$"
}

// checkTopic fails fast on a topic (or partition) that does not exist,
// instead of waiting forever for it.
func checkTopic(ctx context.Context, cl *kgo.Client, topic string, partition int32, hasPartition bool) error {
	mctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(mctx, topic)
	if err != nil {
		return err
	}
	td, ok := md.Topics[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic '%s' does not exist", topic)
	}
	if td.Err != nil {
		return fmt.Errorf("topic '%s': %v", topic, td.Err)
	}
	if hasPartition {
		if _, ok := td.Partitions[partition]; !ok {
			return fmt.Errorf("partition %d of topic '%s' does not exist (the topic has %d partitions)", partition, topic, len(td.Partitions))
		}
	}
	return nil
}

// consume prints records until a stop condition and returns how many it
// printed.
func (o *consoleConsumerOptions) consume(ctx context.Context, cl *kgo.Client, w *bufio.Writer, errw io.Writer, f *messageFormatter, marks bool) (int, error) {
	count := 0
	var buf []byte
	for o.maxMessages < 0 || count < o.maxMessages {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.timeoutMs >= 0 {
			pctx, cancel = context.WithTimeout(ctx, time.Duration(o.timeoutMs)*time.Millisecond)
		}
		limit := 10000
		if o.maxMessages >= 0 && o.maxMessages-count < limit {
			limit = o.maxMessages - count
		}
		fs := cl.PollRecords(pctx, limit)
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			return count, nil // Ctrl-C
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			if fetchErr == nil {
				fetchErr = fmt.Errorf("consuming %s partition %d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return count, fetchErr
		}
		recs := fs.Records()
		if len(recs) == 0 && timedOut {
			return count, nil // --timeout-ms: Kafka stops quietly too
		}
		for _, r := range recs {
			if o.maxMessages >= 0 && count >= o.maxMessages {
				break
			}
			var err error
			buf, err = f.appendRecord(buf[:0], r)
			count++ // Kafka counts a record once received, even if skipped
			if err != nil {
				if o.skipMessageOnError {
					fmt.Fprintf(errw, "gregor: skipping record at %s partition %d offset %d: %v\n", r.Topic, r.Partition, r.Offset, err)
					if marks {
						cl.MarkCommitRecords(r)
					}
					continue
				}
				return count, fmt.Errorf("record at %s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			if _, err := w.Write(buf); err != nil {
				return count, errUnwritable
			}
			if marks {
				cl.MarkCommitRecords(r)
			}
		}
		if err := w.Flush(); err != nil {
			return count, errUnwritable
		}
	}
	return count, nil
}
