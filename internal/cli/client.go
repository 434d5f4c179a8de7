package cli

// The client side shared by every tool: connection flags, Kafka client
// properties (from a properties file, the tool's own property flags and -X)
// mapped onto franz-go options, and the fail-fast connection check.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/internal/config"
)

const (
	defaultBootstrap = "localhost:9092"
	// defaultConnectTimeout bounds the first contact with the cluster, so an
	// unreachable broker is reported in seconds rather than after retries.
	defaultConnectTimeout = 5 * time.Second
	// adminTimeout bounds each admin tool's whole conversation.
	adminTimeout = 30 * time.Second
)

// connFlags are the connection flags every client command accepts.
type connFlags struct {
	bootstrap  string
	brokerList string   // Kafka's pre-2.5 spelling, still in many tutorials
	settings   []string // -X key=value, rpk style; wins over everything else
	configFile string   // --command-config / --producer.config / --consumer.config
}

// AddFlags registers the connection flags; configFlag names the properties
// file flag the matching Kafka script uses ("command-config", …).
func (f *connFlags) AddFlags(fs *pflag.FlagSet, configFlag string) {
	fs.StringVar(&f.bootstrap, "bootstrap-server", "", "the broker(s) to connect to, host:port[,host:port] (default "+defaultBootstrap+")")
	fs.StringVar(&f.brokerList, "broker-list", "", "legacy name of --bootstrap-server")
	_ = fs.MarkHidden("broker-list")
	fs.StringArrayVarP(&f.settings, "X", "X", nil, "client setting key=value with Kafka's client property names, e.g. -X client.id=me (repeatable)")
	if configFlag != "" {
		fs.StringVar(&f.configFile, configFlag, "", "properties file with client settings")
	}
}

// clientProps gathers the client properties in increasing precedence: the
// properties file, the tool's own key=value flags (extra), then -X. It
// returns the properties and the seed brokers. --bootstrap-server beats a
// bootstrap.servers property, as in Kafka's tools.
func (f *connFlags) clientProps(extra ...[]string) (map[string]string, []string, error) {
	props := map[string]string{}
	if f.configFile != "" {
		fileProps, err := config.ReadPropertiesFile(f.configFile)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range fileProps {
			props[k] = v
		}
	}
	for _, list := range extra {
		if err := mergeKeyValues(props, list); err != nil {
			return nil, nil, err
		}
	}
	xs := map[string]string{}
	if err := mergeKeyValues(xs, f.settings); err != nil {
		return nil, nil, fmt.Errorf("-X %w", err)
	}
	for k, v := range xs {
		if _, known := clientSettings[k]; !known && !ignoredClientSettings[k] && k != "bootstrap.servers" && k != "brokers" {
			return nil, nil, fmt.Errorf("-X %s: unknown client setting; -X takes Kafka client property names such as client.id, acks, linger.ms, batch.size, compression.type, group.id, auto.offset.reset", k)
		}
		if k == "brokers" { // rpk's name
			k = "bootstrap.servers"
		}
		props[k] = v
	}
	var seeds string
	switch {
	case f.bootstrap != "":
		seeds = f.bootstrap
	case props["bootstrap.servers"] != "":
		seeds = props["bootstrap.servers"]
	case f.brokerList != "":
		seeds = f.brokerList
	default:
		seeds = defaultBootstrap
	}
	delete(props, "bootstrap.servers")
	var list []string
	for _, s := range strings.Split(seeds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return nil, nil, errors.New("no bootstrap server given")
	}
	for _, s := range list {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, nil, fmt.Errorf("bad bootstrap server %q: want host:port", s)
		}
	}
	return props, list, nil
}

// mergeKeyValues adds key=value pairs to m.
func mergeKeyValues(m map[string]string, kvs []string) error {
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("%q: want key=value", kv)
		}
		m[k] = v
	}
	return nil
}

// settingFn turns one property value into franz-go options.
type settingFn func(v string) ([]kgo.Opt, error)

func msSetting[O kgo.Opt](apply func(time.Duration) O) settingFn {
	return func(v string) ([]kgo.Opt, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("want milliseconds, got %q", v)
		}
		return []kgo.Opt{apply(time.Duration(n) * time.Millisecond)}, nil
	}
}

func int32Setting[O kgo.Opt](min int64, apply func(int32) O) settingFn {
	return func(v string) ([]kgo.Opt, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || n < min {
			return nil, fmt.Errorf("want an integer >= %d, got %q", min, v)
		}
		return []kgo.Opt{apply(int32(n))}, nil
	}
}

func boolSetting(ifTrue, ifFalse func() kgo.Opt) settingFn {
	return func(v string) ([]kgo.Opt, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %q", v)
		}
		if b && ifTrue != nil {
			return []kgo.Opt{ifTrue()}, nil
		}
		if !b && ifFalse != nil {
			return []kgo.Opt{ifFalse()}, nil
		}
		return nil, nil
	}
}

// clientSettings maps Kafka client property names onto franz-go. Names not
// here are refused with -X and reported (then ignored) elsewhere, since a
// property file written for the Java client may hold Java-only settings.
var clientSettings = map[string]settingFn{
	"client.id": func(v string) ([]kgo.Opt, error) { return []kgo.Opt{kgo.ClientID(v)}, nil },
	"client.rack": func(v string) ([]kgo.Opt, error) {
		return []kgo.Opt{kgo.Rack(v)}, nil
	},
	"socket.connection.setup.timeout.ms": msSetting(kgo.DialTimeout),
	"connections.max.idle.ms":            msSetting(kgo.ConnIdleTimeout),
	"metadata.max.age.ms":                msSetting(kgo.MetadataMaxAge),
	"retry.backoff.ms": msSetting(func(d time.Duration) kgo.Opt {
		return kgo.RetryBackoffFn(func(int) time.Duration { return d })
	}),
	"request.timeout.ms": msSetting(kgo.ProduceRequestTimeout),
	"default.api.timeout.ms": msSetting(func(d time.Duration) kgo.Opt {
		return kgo.RetryTimeout(d)
	}),
	"allow.auto.create.topics": boolSetting(func() kgo.Opt { return kgo.AllowAutoTopicCreation() }, nil),

	// Producer.
	"acks":       nil, // handled with enable.idempotence in clientOpts
	"linger.ms":  msSetting(kgo.ProducerLinger),
	"batch.size": int32Setting(1, kgo.ProducerBatchMaxBytes),
	"buffer.memory": func(v string) ([]kgo.Opt, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("want bytes, got %q", v)
		}
		return []kgo.Opt{kgo.MaxBufferedBytes(int(n))}, nil
	},
	"compression.type":    compressionSetting,
	"max.request.size":    int32Setting(1, kgo.BrokerMaxWriteBytes),
	"retries":             int32Setting(0, func(n int32) kgo.Opt { return kgo.RecordRetries(int(n)) }),
	"delivery.timeout.ms": msSetting(kgo.RecordDeliveryTimeout),
	"enable.idempotence":  nil, // handled with acks
	"transactional.id": func(v string) ([]kgo.Opt, error) {
		if v == "" {
			return nil, errors.New("want a non-empty transactional id")
		}
		return []kgo.Opt{kgo.TransactionalID(v)}, nil
	},
	"transaction.timeout.ms":                msSetting(kgo.TransactionTimeout),
	"max.in.flight.requests.per.connection": nil, // handled with acks

	// Consumer.
	"group.id":          func(v string) ([]kgo.Opt, error) { return []kgo.Opt{kgo.ConsumerGroup(v)}, nil },
	"group.instance.id": func(v string) ([]kgo.Opt, error) { return []kgo.Opt{kgo.InstanceID(v)}, nil },
	"auto.offset.reset": func(v string) ([]kgo.Opt, error) {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "earliest":
			return []kgo.Opt{kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, nil
		case "latest":
			return []kgo.Opt{kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd())}, nil
		case "none":
			return []kgo.Opt{kgo.ConsumeResetOffset(kgo.NoResetOffset())}, nil
		}
		return nil, fmt.Errorf("want earliest, latest or none, got %q", v)
	},
	"enable.auto.commit":        boolSetting(nil, func() kgo.Opt { return kgo.DisableAutoCommit() }),
	"auto.commit.interval.ms":   msSetting(kgo.AutoCommitInterval),
	"session.timeout.ms":        msSetting(kgo.SessionTimeout),
	"heartbeat.interval.ms":     msSetting(kgo.HeartbeatInterval),
	"max.poll.interval.ms":      msSetting(kgo.RebalanceTimeout),
	"fetch.max.wait.ms":         msSetting(kgo.FetchMaxWait),
	"fetch.min.bytes":           int32Setting(1, kgo.FetchMinBytes),
	"fetch.max.bytes":           int32Setting(1, kgo.FetchMaxBytes),
	"max.partition.fetch.bytes": int32Setting(1, kgo.FetchMaxPartitionBytes),
	"isolation.level": func(v string) ([]kgo.Opt, error) {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "read_uncommitted":
			return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadUncommitted())}, nil
		case "read_committed":
			return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}, nil
		}
		return nil, fmt.Errorf("want read_uncommitted or read_committed, got %q", v)
	},
	"partition.assignment.strategy": func(v string) ([]kgo.Opt, error) {
		var bs []kgo.GroupBalancer
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if i := strings.LastIndexByte(s, '.'); i >= 0 { // Java class names
				s = s[i+1:]
			}
			switch strings.ToLower(s) {
			case "range", "rangeassignor":
				bs = append(bs, kgo.RangeBalancer())
			case "roundrobin", "roundrobinassignor":
				bs = append(bs, kgo.RoundRobinBalancer())
			case "sticky", "stickyassignor":
				bs = append(bs, kgo.StickyBalancer())
			case "cooperative-sticky", "cooperativestickyassignor":
				bs = append(bs, kgo.CooperativeStickyBalancer())
			default:
				return nil, fmt.Errorf("unknown assignor %q (range, roundrobin, sticky, cooperative-sticky)", s)
			}
		}
		return []kgo.Opt{kgo.Balancers(bs...)}, nil
	},
}

// ignoredClientSettings are Java client settings with no meaning here; they
// are accepted silently so that Kafka property files work unchanged.
var ignoredClientSettings = map[string]bool{
	"key.serializer": true, "value.serializer": true,
	"key.deserializer": true, "value.deserializer": true,
	"send.buffer.bytes": true, "receive.buffer.bytes": true,
	"max.block.ms": true, "check.crcs": true,
	"client.dns.lookup": true, "reconnect.backoff.ms": true, "reconnect.backoff.max.ms": true,
	"metrics.sample.window.ms": true, "metrics.num.samples": true, "metrics.recording.level": true,
	"interceptor.classes": true, "partitioner.class": true, "metric.reporters": true,
	"security.protocol": true, // checked in clientOpts
}

func compressionSetting(v string) ([]kgo.Opt, error) {
	c, err := compressionCodec(v)
	if err != nil {
		return nil, err
	}
	return []kgo.Opt{kgo.ProducerBatchCompression(c)}, nil
}

func compressionCodec(v string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression codec %q (none, gzip, snappy, lz4, zstd)", v)
}

// clientOpts maps properties onto franz-go options. Unknown names are
// returned in ignored so the caller can warn about them.
func clientOpts(props map[string]string) (opts []kgo.Opt, ignored []string, err error) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := props[k]
		fn, known := clientSettings[k]
		switch {
		case k == "security.protocol":
			if p := strings.ToUpper(strings.TrimSpace(v)); p != "PLAINTEXT" {
				return nil, nil, fmt.Errorf("security.protocol=%s is not supported; Gregor speaks PLAINTEXT", v)
			}
		case strings.HasPrefix(k, "sasl.") || strings.HasPrefix(k, "ssl."):
			return nil, nil, fmt.Errorf("%s: SASL and TLS are not supported; Gregor speaks PLAINTEXT", k)
		case !known:
			if !ignoredClientSettings[k] {
				ignored = append(ignored, k)
			}
		case fn != nil:
			o, err := fn(v)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", k, err)
			}
			opts = append(opts, o...)
		}
	}
	ackOpts, err := acksOpts(props)
	if err != nil {
		return nil, nil, err
	}
	return append(opts, ackOpts...), ignored, nil
}

// acksOpts resolves acks, enable.idempotence,
// max.in.flight.requests.per.connection and transactional.id together:
// franz-go, like the Java client, only writes idempotently with acks=all,
// so a weaker acks turns idempotence off unless it was asked for
// explicitly; and a transactional producer is an idempotent one, so a
// transactional.id with idempotence off (asked for, or implied by acks) is
// refused with the Java client's words.
func acksOpts(props map[string]string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	idem := true
	acks, hasAcks := props["acks"]
	if hasAcks {
		switch strings.ToLower(strings.TrimSpace(acks)) {
		case "all", "-1":
			opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		case "1":
			opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
			idem = false
		case "0":
			opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
			idem = false
		default:
			return nil, fmt.Errorf("acks: want all, -1, 0 or 1, got %q", acks)
		}
	}
	if v, ok := props["enable.idempotence"]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("enable.idempotence: want true or false, got %q", v)
		}
		if b && !idem {
			return nil, errors.New("enable.idempotence=true needs acks=all")
		}
		idem = b
	}
	if _, txn := props["transactional.id"]; txn {
		if !idem {
			return nil, errors.New("Cannot set a transactional.id without also enabling idempotence.")
		}
		if _, ok := props["transaction.timeout.ms"]; !ok {
			// The Java producer's default; franz-go's own is 40 s.
			opts = append(opts, kgo.TransactionTimeout(time.Minute))
		}
	}
	if !idem {
		opts = append(opts, kgo.DisableIdempotentWrite())
		if v, ok := props["max.in.flight.requests.per.connection"]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("max.in.flight.requests.per.connection: want a positive integer, got %q", v)
			}
			opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(n))
		}
	}
	return opts, nil
}

// newClient builds a franz-go client from the connection flags and checks,
// within the connect timeout, that the cluster answers. Options in extra
// come last and so win.
func newClient(ctx context.Context, cmd *cobra.Command, f *connFlags, propLists [][]string, extra ...kgo.Opt) (*kgo.Client, error) {
	props, seeds, err := f.clientProps(propLists...)
	if err != nil {
		return nil, err
	}
	return newClientFromProps(ctx, cmd, props, seeds, extra...)
}

// connectTimeoutFor is the first-contact bound: the Java client's
// socket.connection.setup.timeout.ms when the properties set it.
func connectTimeoutFor(props map[string]string) time.Duration {
	if v, ok := props["socket.connection.setup.timeout.ms"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return time.Duration(n) * time.Millisecond
		}
	}
	return defaultConnectTimeout
}

// newUncheckedClient builds the franz-go client without contacting the
// cluster, and returns the connect timeout the properties ask for. The
// caller checks the connection its own way: newClientFromProps with a
// Metadata ping, which a KRaft controller listener does not serve.
func newUncheckedClient(cmd *cobra.Command, props map[string]string, seeds []string, extra ...kgo.Opt) (*kgo.Client, time.Duration, error) {
	connectTimeout := connectTimeoutFor(props)
	opts, ignored, err := clientOpts(props)
	if err != nil {
		return nil, 0, err
	}
	for _, k := range ignored {
		fmt.Fprintf(cmd.ErrOrStderr(), "gregor: ignoring unknown client property %s\n", k)
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(connectTimeout),
	}
	cl, err := kgo.NewClient(append(append(base, opts...), extra...)...)
	if err != nil {
		return nil, 0, err
	}
	return cl, connectTimeout, nil
}

func newClientFromProps(ctx context.Context, cmd *cobra.Command, props map[string]string, seeds []string, extra ...kgo.Opt) (*kgo.Client, error) {
	cl, connectTimeout, err := newUncheckedClient(cmd, props, seeds, extra...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot connect to %s: %v", strings.Join(seeds, ","), connectError(err))
	}
	return cl, nil
}

// adminClient is kadm with its franz-go client at hand for the requests
// kadm does not wrap.
type adminClient struct {
	*kadm.Client
	cl *kgo.Client
}

// newAdmin is newClient for the admin tools.
func newAdmin(ctx context.Context, cmd *cobra.Command, f *connFlags) (*adminClient, error) {
	cl, err := newClient(ctx, cmd, f, nil)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(adminTimeout / time.Millisecond))
	return &adminClient{Client: adm, cl: cl}, nil
}

// connectError strips franz-go's wrapping down to the network error a user
// can act on ("dial tcp 127.0.0.1:9092: connect: connection refused").
func connectError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("no answer (timed out)")
	}
	return err
}

// kafkaError renders a Kafka error with the broker's message when there is
// one (the message alone reads best: "Unable to replicate the partition 3
// time(s): ..."); errors.Is still sees the error code.
func kafkaError(err error, msg string) error {
	if err == nil {
		return nil
	}
	if msg == "" || strings.Contains(err.Error(), msg) {
		return err
	}
	return &brokerError{err: err, msg: msg}
}

type brokerError struct {
	err error
	msg string
}

func (e *brokerError) Error() string { return e.msg }
func (e *brokerError) Unwrap() error { return e.err }

// adminContext is the context for one admin command.
func adminContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), adminTimeout)
}
