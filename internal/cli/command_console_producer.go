package cli

// gregor console-producer (alias produce): kafka-console-producer.sh.
//
// Each line of standard input is one record, parsed as Kafka's
// LineMessageReader does: with parse.headers=true the line starts with
// "h1:v1,h2:v2" and headers.delimiter, with parse.key=true a key and
// key.separator come next, and the rest is the value; null.marker turns a
// field into null. The producer defaults are the Kafka tool's: acks=-1,
// linger.ms=1000 (--timeout; 0 with --sync), retries=3,
// client.id=console-producer. On a
// terminal a ">" prompt precedes each line. Deviation: batch.size is only
// applied when given, because franz-go rejects a record bigger than a batch
// while the Java client sends it in a batch of its own.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/internal/config"
)

type consoleProducerOptions struct {
	conn connFlags

	topic                   string
	sync                    bool
	compressionCodec        string
	batchSize               int
	maxPartitionMemoryBytes int
	messageSendMaxRetries   int
	retryBackoffMs          int64
	lingerMs                int64
	requestRequiredAcks     string
	requestTimeoutMs        int
	metadataExpiryMs        int64
	maxMemoryBytes          int64
	lineReader              string
	properties              []string
	readerProps             []string
	readerConfig            string
	producerProperties      []string
}

func (o *consoleProducerOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.conn.AddFlags(f, "producer.config")
	f.StringVar(&o.topic, "topic", "", "the topic to produce to (required)")
	f.BoolVar(&o.sync, "sync", false, "send each record synchronously, one at a time")
	f.StringVar(&o.compressionCodec, "compression-codec", "", "none, gzip, snappy, lz4 or zstd (gzip if given without a value)")
	f.Lookup("compression-codec").NoOptDefVal = "gzip"
	f.IntVar(&o.batchSize, "batch-size", 16384, "batch.size (applied only when given)")
	f.IntVar(&o.maxPartitionMemoryBytes, "max-partition-memory-bytes", 16384, "batch.size (applied only when given)")
	f.IntVar(&o.messageSendMaxRetries, "message-send-max-retries", 3, "retries")
	f.Int64Var(&o.retryBackoffMs, "retry-backoff-ms", 100, "retry.backoff.ms")
	f.Int64Var(&o.lingerMs, "timeout", 1000, "linger.ms: how long a record may wait for a fuller batch")
	f.StringVar(&o.requestRequiredAcks, "request-required-acks", "-1", "acks: -1 (all), 1 or 0")
	f.IntVar(&o.requestTimeoutMs, "request-timeout-ms", 1500, "request.timeout.ms")
	f.Int64Var(&o.metadataExpiryMs, "metadata-expiry-ms", 300000, "metadata.max.age.ms")
	f.Int64Var(&o.maxMemoryBytes, "max-memory-bytes", 32*1024*1024, "buffer.memory")
	f.Int64("max-block-ms", 60000, "accepted for compatibility")
	f.Int("socket-buffer-size", 102400, "accepted for compatibility")
	f.StringVar(&o.lineReader, "line-reader", "org.apache.kafka.tools.LineMessageReader", "line reader (only Kafka's LineMessageReader is available)")
	f.StringArrayVar(&o.properties, "property", nil, "reader property key=value: parse.key, key.separator, parse.headers, headers.delimiter, headers.separator, headers.key.separator, null.marker, ignore.error (repeatable)")
	f.StringArrayVar(&o.readerProps, "reader-property", nil, "same as --property (Kafka 4.1's name)")
	f.StringVar(&o.readerConfig, "reader-config", "", "properties file for the line reader (--property wins)")
	f.StringArrayVar(&o.producerProperties, "producer-property", nil, "producer property key=value, e.g. acks=1 (repeatable)")
}

func newConsoleProducerCommand() *cobra.Command {
	o := &consoleProducerOptions{}
	cmd := &cobra.Command{
		Use:     "console-producer --topic T",
		Aliases: []string{"produce"},
		Short:   "Send standard input to a topic, one record per line (kafka-console-producer.sh)",
		Example: `  gregor console-producer --bootstrap-server localhost:9092 --topic sanguo
  printf 'k1:v1\nk2:v2\n' | gregor produce --topic sanguo --property parse.key=true --property key.separator=:`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// --compression-codec takes an optional value; "--compression-codec
			// lz4" leaves lz4 as an argument, which is taken back here.
			if len(args) == 1 && cmd.Flags().Changed("compression-codec") && o.compressionCodec == "gzip" {
				if _, err := compressionCodec(args[0]); err == nil {
					o.compressionCodec, args = args[0], nil
				}
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q", args[0])
			}
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// lineReader is Kafka's LineMessageReader.
type lineReader struct {
	topic                               string
	parseKey, parseHeaders, ignoreError bool
	keySep, headersDelim, headersKeySep string
	headersSep                          *regexp.Regexp
	nullMarker                          string
	hasNullMarker                       bool
	lineNumber                          int
}

func newLineReader(topic string, props map[string]string) (*lineReader, error) {
	r := &lineReader{topic: topic, keySep: "\t", headersDelim: "\t", headersKeySep: ":"}
	isTrue := func(k string) bool { return strings.EqualFold(strings.TrimSpace(props[k]), "true") }
	r.parseKey, r.parseHeaders, r.ignoreError = isTrue("parse.key"), isTrue("parse.headers"), isTrue("ignore.error")
	if v, ok := props["key.separator"]; ok {
		r.keySep = v
	}
	if v, ok := props["headers.delimiter"]; ok {
		r.headersDelim = v
	}
	headersSep := ","
	if v, ok := props["headers.separator"]; ok {
		headersSep = v
	}
	if v, ok := props["headers.key.separator"]; ok {
		r.headersKeySep = v
	}
	r.nullMarker, r.hasNullMarker = props["null.marker"]
	var err error
	if r.headersSep, err = regexp.Compile(headersSep); err != nil {
		return nil, fmt.Errorf("headers.separator: %w", err)
	}
	switch {
	case r.keySep == "":
		return nil, errors.New("key.separator may not be empty")
	case r.headersDelim == headersSep:
		return nil, errors.New("headers.delimiter and headers.separator may not be equal")
	case r.headersDelim == r.headersKeySep:
		return nil, errors.New("headers.delimiter and headers.key.separator may not be equal")
	case headersSep == r.headersKeySep:
		return nil, errors.New("headers.separator and headers.key.separator may not be equal")
	case r.hasNullMarker && r.keySep == r.nullMarker:
		return nil, errors.New("null.marker and key.separator may not be equal")
	case r.hasNullMarker && headersSep == r.nullMarker:
		return nil, errors.New("null.marker and headers.separator may not be equal")
	case r.hasNullMarker && r.headersDelim == r.nullMarker:
		return nil, errors.New("null.marker and headers.delimiter may not be equal")
	case r.hasNullMarker && r.headersKeySep == r.nullMarker:
		return nil, errors.New("null.marker and headers.key.separator may not be equal")
	}
	return r, nil
}

func (r *lineReader) isNull(s string) bool { return r.hasNullMarker && s == r.nullMarker }

// parse turns one input line (without its line ending) into a record.
func (r *lineReader) parse(line string) (*kgo.Record, error) {
	r.lineNumber++
	rec := &kgo.Record{Topic: r.topic}
	rest := line
	cut := func(enabled bool, sep, name string) (string, bool, error) {
		if !enabled {
			return "", false, nil
		}
		i := strings.Index(rest, sep)
		if i < 0 {
			if r.ignoreError {
				return "", false, nil
			}
			return "", false, fmt.Errorf("no %s found on line number %d: '%s'", name, r.lineNumber, line)
		}
		field := rest[:i]
		rest = rest[i+len(sep):]
		return field, true, nil
	}
	headers, hasHeaders, err := cut(r.parseHeaders, r.headersDelim, "headers delimiter")
	if err != nil {
		return nil, err
	}
	key, hasKey, err := cut(r.parseKey, r.keySep, "key separator")
	if err != nil {
		return nil, err
	}
	if hasKey && !r.isNull(key) {
		rec.Key = []byte(key)
	}
	if !r.isNull(rest) {
		rec.Value = []byte(rest)
	}
	if hasHeaders && !r.isNull(headers) {
		for _, pair := range r.headersSep.Split(headers, -1) {
			i := strings.Index(pair, r.headersKeySep)
			if i < 0 {
				if r.ignoreError {
					rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: pair})
					continue
				}
				return nil, fmt.Errorf("no header key separator found in pair '%s' on line number %d", pair, r.lineNumber)
			}
			hk, hv := pair[:i], pair[i+len(r.headersKeySep):]
			if r.isNull(hk) {
				return nil, fmt.Errorf("header keys should not be equal to the null marker '%s' as they can't be null", r.nullMarker)
			}
			h := kgo.RecordHeader{Key: hk}
			if !r.isNull(hv) {
				h.Value = []byte(hv)
			}
			rec.Headers = append(rec.Headers, h)
		}
	}
	return rec, nil
}

// isTerminal reports whether f is an interactive terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (o *consoleProducerOptions) run(cmd *cobra.Command) error {
	if o.topic == "" {
		return errors.New("--topic is required")
	}
	if !strings.HasSuffix(o.lineReader, "LineMessageReader") {
		return fmt.Errorf("line reader %s is not available; only LineMessageReader is", o.lineReader)
	}
	rprops := map[string]string{}
	if o.readerConfig != "" {
		fileProps, err := config.ReadPropertiesFile(o.readerConfig)
		if err != nil {
			return err
		}
		rprops = fileProps
	}
	if err := mergeKeyValues(rprops, append(o.properties, o.readerProps...)); err != nil {
		return fmt.Errorf("--property %w", err)
	}
	reader, err := newLineReader(o.topic, rprops)
	if err != nil {
		return err
	}

	props, seeds, err := o.conn.clientProps(o.producerProperties)
	if err != nil {
		return err
	}
	changed := cmd.Flags().Changed
	_, userLinger := props["linger.ms"]
	// Kafka's rule: an explicit flag beats a producer property; a flag's
	// default only fills a property that is missing.
	merge := func(flag, key, value string) {
		if _, ok := props[key]; !ok || changed(flag) {
			props[key] = value
		}
	}
	merge("timeout", "linger.ms", strconv.FormatInt(o.lingerMs, 10))
	if o.sync && !userLinger && !changed("timeout") {
		// One record at a time: lingering for a fuller batch only adds
		// the default second to every line.
		props["linger.ms"] = "0"
	}
	merge("request-required-acks", "acks", o.requestRequiredAcks)
	merge("request-timeout-ms", "request.timeout.ms", strconv.Itoa(o.requestTimeoutMs))
	merge("message-send-max-retries", "retries", strconv.Itoa(o.messageSendMaxRetries))
	merge("retry-backoff-ms", "retry.backoff.ms", strconv.FormatInt(o.retryBackoffMs, 10))
	merge("max-memory-bytes", "buffer.memory", strconv.FormatInt(o.maxMemoryBytes, 10))
	merge("metadata-expiry-ms", "metadata.max.age.ms", strconv.FormatInt(o.metadataExpiryMs, 10))
	if changed("batch-size") {
		props["batch.size"] = strconv.Itoa(o.batchSize)
	}
	if changed("max-partition-memory-bytes") {
		props["batch.size"] = strconv.Itoa(o.maxPartitionMemoryBytes)
	}
	if changed("compression-codec") || props["compression.type"] == "" {
		props["compression.type"] = o.compressionCodec
		if props["compression.type"] == "" {
			props["compression.type"] = "none"
		}
	}
	if _, ok := props["client.id"]; !ok {
		props["client.id"] = "console-producer"
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The Java producer lets the broker auto-create a missing topic.
	cl, err := newClientFromProps(ctx, cmd, props, seeds, kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer cl.Close()

	stderr := cmd.ErrOrStderr()
	var (
		mu       sync.Mutex
		firstErr error
	)
	report := func(r *kgo.Record, err error) {
		if err == nil {
			return
		}
		err = o.sendError(r, err)
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
		fmt.Fprintf(stderr, "gregor: %v\n", err)
	}

	prompt := isTerminal(cmd.InOrStdin()) && isTerminal(cmd.OutOrStdout())
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewReader(cmd.InOrStdin())
		for {
			if prompt {
				fmt.Fprint(cmd.OutOrStdout(), ">")
			}
			line, err := sc.ReadString('\n')
			if line != "" {
				line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					readErr <- err
				}
				return
			}
		}
	}()

loop:
	for {
		select {
		case <-ctx.Done():
			break loop // Ctrl-C: send what was read, then stop
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			rec, err := reader.parse(line)
			if err != nil {
				return err
			}
			if o.sync {
				res := cl.ProduceSync(ctx, rec)
				report(rec, res.FirstErr())
				continue
			}
			cl.Produce(context.Background(), rec, report)
		}
	}
	select {
	case err := <-readErr:
		return err
	default:
	}
	fctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return fmt.Errorf("flushing records: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return errAlreadyReported
	}
	return nil
}

// sendError words a failed send for the user.
func (o *consoleProducerOptions) sendError(r *kgo.Record, err error) error {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("topic '%s' does not exist (and the broker does not auto-create topics)", r.Topic)
	case errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Errorf("a record of %d bytes is too large for batch.size or the topic's max.message.bytes", len(r.Key)+len(r.Value))
	}
	return fmt.Errorf("error when sending message to topic %s with key: %s, value: %d bytes with error: %v",
		r.Topic, keyOrNull(r.Key), len(r.Value), err)
}

func keyOrNull(k []byte) string {
	if k == nil {
		return "null"
	}
	return fmt.Sprintf("%d bytes", len(k))
}
