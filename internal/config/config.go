// Package config holds the broker's configuration: Kafka's property names,
// read from a server.properties file and overridden by GREGOR_* environment
// variables and then by command-line flags.
//
// Precedence, lowest to highest:
//
//  1. built-in defaults (DefaultConfig; zero configuration works),
//  2. the server.properties file, if one is given,
//  3. environment variables: GREGOR_ + the property name upper-cased with
//     dots replaced by underscores (GREGOR_LOG_DIRS=/data sets log.dirs),
//  4. flags: `--override key=value` and the named flags of `gregor serve`.
//
// Unknown property names are kept (Kafka tolerates them too) and logged as
// ignored by the caller, so a real Kafka server.properties can be used as is.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Durability modes for acks=all produce requests.
const (
	// DurabilityFsync acknowledges acks=all only after the data is fsynced
	// (group commit). Gregor's default.
	DurabilityFsync = "fsync"
	// DurabilityOS acknowledges once the data reached the OS page cache,
	// Kafka's default with flush.messages/flush.ms left unset.
	DurabilityOS = "os"
)

// Config is the broker configuration. Field comments name the Kafka property.
type Config struct {
	NodeID              int32    // node.id
	Listeners           []string // listeners, e.g. PLAINTEXT://localhost:9092
	AdvertisedListeners []string // advertised.listeners (defaults to listeners)
	LogDirs             []string // log.dirs (or log.dir)

	NumPartitions            int32 // num.partitions
	DefaultReplicationFactor int16 // default.replication.factor
	AutoCreateTopics         bool  // auto.create.topics.enable
	DeleteTopicEnable        bool  // delete.topic.enable

	LogSegmentBytes         int64  // log.segment.bytes
	LogRollMs               int64  // log.roll.ms / log.roll.hours
	LogRetentionMs          int64  // log.retention.ms / .minutes / .hours
	LogRetentionBytes       int64  // log.retention.bytes
	LogRetentionCheckMs     int64  // log.retention.check.interval.ms
	LogIndexIntervalBytes   int    // log.index.interval.bytes
	LogIndexSizeMaxBytes    int    // log.index.size.max.bytes
	LogFlushMessages        int64  // log.flush.interval.messages
	LogFlushMs              int64  // log.flush.interval.ms
	LogFlushSchedulerMs     int64  // log.flush.scheduler.interval.ms
	LogCleanupPolicy        string // log.cleanup.policy
	LogPreallocate          bool   // log.preallocate
	LogMessageTimestamp     string // log.message.timestamp.type
	MessageMaxBytes         int    // message.max.bytes
	SocketRequestMaxBytes   int    // socket.request.max.bytes
	OffsetsTopicPartitions  int32  // offsets.topic.num.partitions
	OffsetsRetentionMs      int64  // offsets.retention.minutes
	OffsetsRetentionCheckMs int64  // offsets.retention.check.interval.ms
	OffsetMetadataMaxBytes  int    // offset.metadata.max.bytes
	GroupInitialDelayMs     int64  // group.initial.rebalance.delay.ms
	GroupMinSessionMs       int64  // group.min.session.timeout.ms
	GroupMaxSessionMs       int64  // group.max.session.timeout.ms
	// Durability is gregor.durability: "fsync" (default) or "os".
	Durability string

	// SocketSendBufferBytes and SocketReceiveBufferBytes are
	// socket.send.buffer.bytes and socket.receive.buffer.bytes: SO_SNDBUF
	// and SO_RCVBUF of client connections, -1 for the OS default.
	SocketSendBufferBytes    int
	SocketReceiveBufferBytes int

	// Limits (hardening). Kafka's names where Kafka has the setting.
	MaxConnections        int            // max.connections
	MaxConnectionsPerIP   int            // max.connections.per.ip
	MaxConnectionsPerIPOv map[string]int // max.connections.per.ip.overrides (host:count,...)
	ConnectionsMaxIdleMs  int64          // connections.max.idle.ms
	// QueuedMaxRequestBytes is queued.max.request.bytes: the broker-wide
	// budget of request bytes read but not yet answered. Kafka's default is
	// unbounded (-1); Gregor defaults to 256 MiB, safe on a 1-2 GiB machine.
	QueuedMaxRequestBytes int64
	FetchMaxBytes         int   // fetch.max.bytes: cap on one Fetch response
	GroupMaxSize          int   // group.max.size
	MaxPartitionsPerReq   int32 // gregor.max.partitions.per.request (KRaft's fixed 10,000)
	// MaxPartitions is gregor.max.partitions, the broker-wide partition cap;
	// 0 derives it from the file descriptor limit.
	MaxPartitions int32
	// FetchSessionCacheSlots is max.incremental.fetch.session.cache.slots:
	// how many incremental fetch sessions (KIP-227) the broker keeps; 0
	// disables them.
	FetchSessionCacheSlots int
	// KRaft: the cluster's roles and quorum, Kafka's property names.
	ProcessRoles []string // process.roles: "broker", "controller" or both (default both)
	// QuorumVoters is controller.quorum.voters (id@host:port,...): the
	// static voter set. Empty with process.roles including controller
	// means this node alone, the zero-configuration cluster of one.
	QuorumVoters            []Voter
	QuorumBootstrapServers  []string          // controller.quorum.bootstrap.servers
	ControllerListenerNames []string          // controller.listener.names
	InterBrokerListenerName string            // inter.broker.listener.name
	SecurityProtocolMap     map[string]string // listener.security.protocol.map, NAME → protocol
	BrokerRack              string            // broker.rack
	BrokerHeartbeatMs       int64             // broker.heartbeat.interval.ms
	BrokerSessionTimeoutMs  int64             // broker.session.timeout.ms
	// Preferred-leader rebalance on the active controller.
	AutoLeaderRebalance         bool   // auto.leader.rebalance.enable
	LeaderImbalanceCheckSec     int64  // leader.imbalance.check.interval.seconds
	LeaderImbalancePerBrokerPct int    // leader.imbalance.per.broker.percentage
	MetadataLogDir              string // metadata.log.dir (default: the first log dir)
	// MetadataSnapshotBytes is metadata.log.max.record.bytes.between.snapshots:
	// applied metadata bytes that trigger a snapshot of the metadata log.
	MetadataSnapshotBytes int64

	// RecoveryAcceptGaps is gregor.recovery.accept.gaps: partitions
	// ("topic-N", or "*" for all) whose recovery may drop a hole in the
	// log (missing or short middle segment) instead of refusing to serve.
	RecoveryAcceptGaps []string

	// Observability.
	//
	// HTTPListener is gregor.http.listener: host:port of the one HTTP
	// listener serving /metrics, /healthz, /readyz and the console; ""
	// turns it off.
	HTTPListener string
	// MetricsPartitionLabels is gregor.metrics.partition.labels: whether
	// /metrics has series per partition (kafka_log_log_size,
	// kafka_consumergroup_lag, ...). Off, partition series are summed per
	// topic, which bounds the cardinality by the topic count.
	MetricsPartitionLabels bool
	// RequestLogSlowMs is gregor.request.log.slow.ms: requests that take
	// longer are logged, like Kafka's request log; 0 logs every request
	// (at debug level), -1 none.
	RequestLogSlowMs int64
	// ConsoleAdminEnable is gregor.console.admin.enable: whether the web
	// console offers admin actions (create topic, alter configs, reset
	// offsets, delete records). Off, the console is read-only.
	ConsoleAdminEnable bool
	// ConsoleSampleMs is gregor.console.sample.interval.ms: how often the
	// console samples group lag and topic end offsets for its charts (an
	// hour of samples is kept in memory).
	ConsoleSampleMs int64

	// Raw holds every property as finally resolved, including ones this
	// broker does not interpret, for DescribeConfigs.
	Raw map[string]string
	// Sources records where each property in Raw came from.
	Sources map[string]Source
}

// Voter is one entry of controller.quorum.voters.
type Voter struct {
	ID   int32
	Host string
	Port int
}

// Addr is host:port.
func (v Voter) Addr() string { return net.JoinHostPort(v.Host, strconv.Itoa(v.Port)) }

// HasRole reports whether process.roles includes role.
func (c *Config) HasRole(role string) bool {
	for _, r := range c.ProcessRoles {
		if r == role {
			return true
		}
	}
	return false
}

// ListenerProtocol is the security protocol of a listener name, from
// listener.security.protocol.map; "" if the name is not mapped.
func (c *Config) ListenerProtocol(name string) string {
	return c.SecurityProtocolMap[strings.ToUpper(name)]
}

// parseVoters parses controller.quorum.voters: "1@host:9093,2@[::1]:9093".
func parseVoters(s string) ([]Voter, error) {
	var out []Voter
	seen := map[int32]bool{}
	for _, part := range splitList(s) {
		id, addr, ok := strings.Cut(part, "@")
		n, err := strconv.ParseInt(id, 10, 32)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("controller.quorum.voters: %q is not id@host:port", part)
		}
		host, port, err := net.SplitHostPort(addr)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || p <= 0 || p > 65535 || host == "" {
			return nil, fmt.Errorf("controller.quorum.voters: %q is not id@host:port", part)
		}
		if seen[int32(n)] {
			return nil, fmt.Errorf("controller.quorum.voters: voter %d is listed twice", n)
		}
		seen[int32(n)] = true
		out = append(out, Voter{ID: int32(n), Host: host, Port: p})
	}
	return out, nil
}

// Source tells where a property value came from.
type Source int8

// Sources of a property value, lowest precedence first.
const (
	SourceDefault Source = iota
	SourceFile
	SourceEnv
	SourceFlag
)

// defaults are Kafka's documented defaults, except log.dirs and listeners,
// which are chosen for a zero-configuration single node.
var defaults = map[string]string{
	"node.id":                             "1",
	"listeners":                           "PLAINTEXT://localhost:9092",
	"log.dirs":                            "gregor-data",
	"num.partitions":                      "1",
	"default.replication.factor":          "1",
	"auto.create.topics.enable":           "true",
	"delete.topic.enable":                 "true",
	"log.segment.bytes":                   "1073741824",
	"log.roll.hours":                      "168",
	"log.retention.hours":                 "168",
	"log.retention.bytes":                 "-1",
	"log.retention.check.interval.ms":     "300000",
	"log.index.interval.bytes":            "4096",
	"log.index.size.max.bytes":            "10485760",
	"log.flush.interval.messages":         strconv.FormatInt(math.MaxInt64, 10),
	"log.flush.scheduler.interval.ms":     strconv.FormatInt(math.MaxInt64, 10),
	"log.cleanup.policy":                  "delete",
	"log.preallocate":                     "false",
	"log.message.timestamp.type":          "CreateTime",
	"message.max.bytes":                   "1048588",
	"socket.request.max.bytes":            "104857600",
	"offsets.topic.num.partitions":        "50",
	"offsets.retention.minutes":           "10080",
	"offsets.retention.check.interval.ms": "600000",
	"offset.metadata.max.bytes":           "4096",
	"group.initial.rebalance.delay.ms":    "3000",
	"group.min.session.timeout.ms":        "6000",
	"group.max.session.timeout.ms":        "1800000",
	"gregor.durability":                   DurabilityFsync,
	"max.connections":                     "2147483647",
	"max.connections.per.ip":              "2147483647",
	"max.connections.per.ip.overrides":    "",
	"connections.max.idle.ms":             "600000",
	"queued.max.request.bytes":            "268435456",
	"fetch.max.bytes":                     "57671680",
	"group.max.size":                      "2147483647",
	"gregor.max.partitions.per.request":   "10000",
	"gregor.max.partitions":               "0",
	"gregor.recovery.accept.gaps":         "",
	"gregor.http.listener":                "localhost:9644",
	"gregor.metrics.partition.labels":     "true",
	"gregor.request.log.slow.ms":          "5000",
	"gregor.console.admin.enable":         "false",
	"gregor.console.sample.interval.ms":   "5000",
	// Fetch sessions (KIP-227), Kafka's default.
	"max.incremental.fetch.session.cache.slots": "1000",
	// Zero configuration is a combined broker and controller, a cluster
	// of one; Kafka has no default for process.roles.
	"process.roles":                           "broker,controller",
	"controller.quorum.voters":                "",
	"controller.quorum.bootstrap.servers":     "",
	"controller.listener.names":               "CONTROLLER",
	"inter.broker.listener.name":              "",
	"listener.security.protocol.map":          "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
	"broker.rack":                             "",
	"broker.heartbeat.interval.ms":            "2000",
	"broker.session.timeout.ms":               "9000",
	"auto.leader.rebalance.enable":            "true",
	"leader.imbalance.check.interval.seconds": "300",
	"leader.imbalance.per.broker.percentage":  "10",
	"metadata.log.dir":                        "",
	// Kafka's default: a snapshot every 20 MiB of metadata records.
	"metadata.log.max.record.bytes.between.snapshots": "20971520",

	// Kafka's send buffer (100 KiB): with the OS's autotuned one, a
	// zero-copy fetch over loopback moved 25-30 % less and cost the broker
	// and the client more CPU per byte. The receive buffer is the OS's,
	// not Kafka's 100 KiB, which cost produce 40-60 % more broker CPU per
	// byte (bench/README.md, "Socket buffers").
	"socket.send.buffer.bytes":    "102400",
	"socket.receive.buffer.bytes": "-1",
}

// Defaults returns a copy of the built-in default properties.
func Defaults() map[string]string {
	m := make(map[string]string, len(defaults))
	for k, v := range defaults {
		m[k] = v
	}
	return m
}

// Loader accumulates property layers and resolves them into a Config.
type Loader struct {
	props   map[string]string
	sources map[string]Source
}

// NewLoader starts from the built-in defaults.
func NewLoader() *Loader {
	l := &Loader{props: Defaults(), sources: map[string]Source{}}
	for k := range l.props {
		l.sources[k] = SourceDefault
	}
	return l
}

// Set sets one property at the given precedence.
func (l *Loader) Set(key, value string, src Source) {
	key = strings.TrimSpace(key)
	l.props[key] = strings.TrimSpace(value)
	l.sources[key] = src
}

// LoadFile reads a Java-style properties file (key=value or key: value,
// '#' and '!' comments, backslash line continuation).
func (l *Loader) LoadFile(path string) error {
	props, err := ReadPropertiesFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for k, v := range props {
		l.Set(k, v, SourceFile)
	}
	return nil
}

// LoadEnv applies GREGOR_* variables from environ (os.Environ() form).
func (l *Loader) LoadEnv(environ []string) {
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "GREGOR_") || len(k) == len("GREGOR_") {
			continue
		}
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "GREGOR_"), "_", "."))
		l.Set(name, v, SourceEnv)
	}
}

// ReadPropertiesFile reads a Java properties file.
func ReadPropertiesFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	props, err := ParseProperties(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return props, nil
}

// ParseProperties parses the Java properties subset Kafka's files use.
func ParseProperties(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var pending string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == '!') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\")
			continue
		}
		line = pending + line
		pending = ""
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			out[line] = ""
			continue
		}
		out[strings.TrimSpace(line[:i])] = strings.TrimSpace(line[i+1:])
	}
	if pending != "" {
		i := strings.IndexAny(pending, "=:")
		if i >= 0 {
			out[strings.TrimSpace(pending[:i])] = strings.TrimSpace(pending[i+1:])
		}
	}
	return out, sc.Err()
}

// Resolve turns the accumulated properties into a validated Config.
func (l *Loader) Resolve() (*Config, error) {
	p := l.props
	c := &Config{Raw: map[string]string{}, Sources: map[string]Source{}}
	for k, v := range p {
		c.Raw[k] = v
		c.Sources[k] = l.sources[k]
	}
	var errs []error
	geti := func(key string) int64 {
		v, ok := p[key]
		if !ok {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", key, v))
		}
		return n
	}
	getb := func(key string) bool {
		v := strings.ToLower(p[key])
		switch v {
		case "true":
			return true
		case "false", "":
			return false
		}
		errs = append(errs, fmt.Errorf("%s: %q is not a boolean", key, p[key]))
		return false
	}
	// Pick the most specific of several unit variants that was set with
	// the highest precedence (Kafka: ms beats minutes beats hours).
	pickMs := func(ms, minutes, hours string) int64 {
		best, bestSrc := "", Source(-1)
		for _, k := range []string{hours, minutes, ms} {
			if k == "" {
				continue
			}
			if _, ok := p[k]; ok && l.sources[k] >= bestSrc {
				best, bestSrc = k, l.sources[k]
			}
		}
		n := geti(best)
		switch best {
		case hours:
			if n < 0 {
				return -1
			}
			return n * int64(time.Hour/time.Millisecond)
		case minutes:
			if n < 0 {
				return -1
			}
			return n * int64(time.Minute/time.Millisecond)
		}
		return n
	}

	c.NodeID = int32(geti("node.id"))
	if v, ok := p["broker.id"]; ok && l.sources["broker.id"] > l.sources["node.id"] {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("broker.id: %q is not an integer", v))
		}
		c.NodeID = int32(n)
	}
	c.Listeners = splitList(p["listeners"])
	c.AdvertisedListeners = splitList(p["advertised.listeners"])
	if len(c.AdvertisedListeners) == 0 {
		c.AdvertisedListeners = c.Listeners
	}
	dirs := p["log.dirs"]
	if v, ok := p["log.dir"]; ok && l.sources["log.dir"] > l.sources["log.dirs"] {
		dirs = v
	}
	c.LogDirs = splitList(dirs)
	c.NumPartitions = int32(geti("num.partitions"))
	c.DefaultReplicationFactor = int16(geti("default.replication.factor"))
	c.AutoCreateTopics = getb("auto.create.topics.enable")
	c.DeleteTopicEnable = getb("delete.topic.enable")
	c.LogSegmentBytes = geti("log.segment.bytes")
	c.LogRollMs = pickMs("log.roll.ms", "", "log.roll.hours")
	c.LogRetentionMs = pickMs("log.retention.ms", "log.retention.minutes", "log.retention.hours")
	c.LogRetentionBytes = geti("log.retention.bytes")
	c.LogRetentionCheckMs = geti("log.retention.check.interval.ms")
	c.LogIndexIntervalBytes = int(geti("log.index.interval.bytes"))
	c.LogIndexSizeMaxBytes = int(geti("log.index.size.max.bytes"))
	c.LogFlushMessages = geti("log.flush.interval.messages")
	c.LogFlushSchedulerMs = geti("log.flush.scheduler.interval.ms")
	c.LogFlushMs = c.LogFlushSchedulerMs
	if _, ok := p["log.flush.interval.ms"]; ok {
		c.LogFlushMs = geti("log.flush.interval.ms")
	}
	c.LogCleanupPolicy = p["log.cleanup.policy"]
	c.LogPreallocate = getb("log.preallocate")
	c.LogMessageTimestamp = p["log.message.timestamp.type"]
	c.MessageMaxBytes = int(geti("message.max.bytes"))
	c.SocketRequestMaxBytes = int(geti("socket.request.max.bytes"))
	c.SocketSendBufferBytes = int(geti("socket.send.buffer.bytes"))
	c.SocketReceiveBufferBytes = int(geti("socket.receive.buffer.bytes"))
	c.OffsetsTopicPartitions = int32(geti("offsets.topic.num.partitions"))
	c.OffsetsRetentionMs = pickMs("", "offsets.retention.minutes", "")
	c.OffsetsRetentionCheckMs = geti("offsets.retention.check.interval.ms")
	c.OffsetMetadataMaxBytes = int(geti("offset.metadata.max.bytes"))
	c.GroupInitialDelayMs = geti("group.initial.rebalance.delay.ms")
	c.GroupMinSessionMs = geti("group.min.session.timeout.ms")
	c.GroupMaxSessionMs = geti("group.max.session.timeout.ms")
	c.Durability = strings.ToLower(p["gregor.durability"])
	c.MaxConnections = int(geti("max.connections"))
	c.MaxConnectionsPerIP = int(geti("max.connections.per.ip"))
	c.MaxConnectionsPerIPOv = map[string]int{}
	for _, kv := range splitList(p["max.connections.per.ip.overrides"]) {
		// The count follows the last colon: IPv6 hosts contain colons.
		i := strings.LastIndexByte(kv, ':')
		v, err := strconv.Atoi(strings.TrimSpace(kv[i+1:]))
		if i <= 0 || err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("max.connections.per.ip.overrides: %q is not host:count", kv))
			continue
		}
		c.MaxConnectionsPerIPOv[strings.TrimSpace(kv[:i])] = v
	}
	c.ConnectionsMaxIdleMs = geti("connections.max.idle.ms")
	c.QueuedMaxRequestBytes = geti("queued.max.request.bytes")
	c.FetchMaxBytes = int(geti("fetch.max.bytes"))
	c.FetchSessionCacheSlots = int(geti("max.incremental.fetch.session.cache.slots"))
	c.GroupMaxSize = int(geti("group.max.size"))
	c.MaxPartitionsPerReq = int32(geti("gregor.max.partitions.per.request"))
	c.MaxPartitions = int32(geti("gregor.max.partitions"))
	c.RecoveryAcceptGaps = splitList(p["gregor.recovery.accept.gaps"])
	c.HTTPListener = strings.TrimSpace(p["gregor.http.listener"])
	if strings.EqualFold(c.HTTPListener, "off") {
		c.HTTPListener = "" // as --http-addr off
	}
	c.MetricsPartitionLabels = getb("gregor.metrics.partition.labels")
	c.RequestLogSlowMs = geti("gregor.request.log.slow.ms")
	c.ConsoleAdminEnable = getb("gregor.console.admin.enable")
	c.ConsoleSampleMs = geti("gregor.console.sample.interval.ms")
	for _, r := range splitList(p["process.roles"]) {
		c.ProcessRoles = append(c.ProcessRoles, strings.ToLower(r))
	}
	var err error
	if c.QuorumVoters, err = parseVoters(p["controller.quorum.voters"]); err != nil {
		errs = append(errs, err)
	}
	c.QuorumBootstrapServers = splitList(p["controller.quorum.bootstrap.servers"])
	for _, n := range splitList(p["controller.listener.names"]) {
		c.ControllerListenerNames = append(c.ControllerListenerNames, strings.ToUpper(n))
	}
	c.InterBrokerListenerName = strings.ToUpper(strings.TrimSpace(p["inter.broker.listener.name"]))
	c.SecurityProtocolMap = map[string]string{}
	for _, kv := range splitList(p["listener.security.protocol.map"]) {
		name, proto, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.TrimSpace(proto) == "" {
			errs = append(errs, fmt.Errorf("listener.security.protocol.map: %q is not NAME:PROTOCOL", kv))
			continue
		}
		c.SecurityProtocolMap[strings.ToUpper(strings.TrimSpace(name))] = strings.ToUpper(strings.TrimSpace(proto))
	}
	c.BrokerRack = strings.TrimSpace(p["broker.rack"])
	c.BrokerHeartbeatMs = geti("broker.heartbeat.interval.ms")
	c.BrokerSessionTimeoutMs = geti("broker.session.timeout.ms")
	c.AutoLeaderRebalance = getb("auto.leader.rebalance.enable")
	c.LeaderImbalanceCheckSec = geti("leader.imbalance.check.interval.seconds")
	c.LeaderImbalancePerBrokerPct = int(geti("leader.imbalance.per.broker.percentage"))
	if c.LeaderImbalanceCheckSec <= 0 || c.LeaderImbalancePerBrokerPct < 0 || c.LeaderImbalancePerBrokerPct > 100 {
		errs = append(errs, errors.New("leader.imbalance.check.interval.seconds must be at least 1 and leader.imbalance.per.broker.percentage within 0..100"))
	}
	c.MetadataLogDir = strings.TrimSpace(p["metadata.log.dir"])
	if c.MetadataSnapshotBytes = geti("metadata.log.max.record.bytes.between.snapshots"); c.MetadataSnapshotBytes < 1 {
		errs = append(errs, errors.New("metadata.log.max.record.bytes.between.snapshots must be at least 1"))
	}

	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// DefaultConfig returns the zero-configuration broker config.
func DefaultConfig() *Config {
	c, err := NewLoader().Resolve()
	if err != nil {
		panic(err) // the built-in defaults are valid by construction
	}
	return c
}

// Validate checks the values that would otherwise fail later and obscurely.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID < 0 {
		errs = append(errs, errors.New("node.id must be >= 0"))
	}
	if len(c.Listeners) == 0 {
		errs = append(errs, errors.New("listeners must name at least one listener"))
	}
	for _, l := range append(append([]string{}, c.Listeners...), c.AdvertisedListeners...) {
		name, _, err := ParseListener(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch proto := c.ListenerProtocol(name); proto {
		case "PLAINTEXT":
		case "":
			errs = append(errs, fmt.Errorf("listener %q: %s is not in listener.security.protocol.map", l, name))
		default:
			errs = append(errs, fmt.Errorf("listener %q: security protocol %s is not supported yet (only PLAINTEXT)", l, proto))
		}
	}
	errs = append(errs, c.validateRoles()...)
	if len(c.LogDirs) == 0 {
		errs = append(errs, errors.New("log.dirs must name a directory"))
	}
	if c.NumPartitions < 1 {
		errs = append(errs, errors.New("num.partitions must be >= 1"))
	}
	if c.LogSegmentBytes < 14 {
		errs = append(errs, errors.New("log.segment.bytes must be >= 14"))
	}
	if c.MessageMaxBytes < 0 {
		errs = append(errs, errors.New("message.max.bytes must be >= 0"))
	}
	if c.SocketRequestMaxBytes < 1 {
		errs = append(errs, errors.New("socket.request.max.bytes must be >= 1"))
	}
	if c.SocketSendBufferBytes < -1 || c.SocketSendBufferBytes == 0 || c.SocketReceiveBufferBytes < -1 || c.SocketReceiveBufferBytes == 0 {
		errs = append(errs, errors.New("socket.send.buffer.bytes and socket.receive.buffer.bytes must be -1 (the OS default) or positive"))
	}
	if c.LogIndexIntervalBytes < 0 {
		errs = append(errs, errors.New("log.index.interval.bytes must be >= 0"))
	}
	if c.OffsetsTopicPartitions < 1 {
		errs = append(errs, errors.New("offsets.topic.num.partitions must be >= 1"))
	}
	if c.MaxConnections < 0 || c.MaxConnectionsPerIP < 0 {
		errs = append(errs, errors.New("max.connections and max.connections.per.ip must be >= 0"))
	}
	if c.FetchMaxBytes < 0 {
		errs = append(errs, errors.New("fetch.max.bytes must be >= 0"))
	}
	if c.FetchSessionCacheSlots < 0 || c.FetchSessionCacheSlots > 1<<20 {
		errs = append(errs, errors.New("max.incremental.fetch.session.cache.slots must be between 0 and 1048576"))
	}
	if c.GroupMaxSize < 1 {
		errs = append(errs, errors.New("group.max.size must be >= 1"))
	}
	if c.MaxPartitionsPerReq < 1 {
		errs = append(errs, errors.New("gregor.max.partitions.per.request must be >= 1"))
	}
	if c.MaxPartitions < 0 {
		errs = append(errs, errors.New("gregor.max.partitions must be >= 0 (0: derived from the file descriptor limit)"))
	}
	switch c.LogMessageTimestamp {
	case "CreateTime", "LogAppendTime":
	default:
		errs = append(errs, fmt.Errorf("log.message.timestamp.type: %q is not CreateTime or LogAppendTime", c.LogMessageTimestamp))
	}
	if c.HTTPListener != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListener); err != nil {
			errs = append(errs, fmt.Errorf("gregor.http.listener: %q is not host:port (empty or off turns it off)", c.HTTPListener))
		}
	}
	if c.ConsoleSampleMs < 100 {
		errs = append(errs, errors.New("gregor.console.sample.interval.ms must be >= 100"))
	}
	if c.RequestLogSlowMs < -1 {
		errs = append(errs, errors.New("gregor.request.log.slow.ms must be >= -1 (-1: off)"))
	}
	switch c.Durability {
	case DurabilityFsync, DurabilityOS:
	default:
		errs = append(errs, fmt.Errorf("gregor.durability: %q is not fsync or os", c.Durability))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// validateRoles checks process.roles against the quorum settings, with
// Kafka's rules.
func (c *Config) validateRoles() []error {
	var errs []error
	if len(c.ProcessRoles) == 0 {
		return append(errs, errors.New("process.roles must be broker, controller or both"))
	}
	for _, r := range c.ProcessRoles {
		if r != "broker" && r != "controller" {
			errs = append(errs, fmt.Errorf("process.roles: %q is not broker or controller", r))
		}
	}
	inVoters := false
	for _, v := range c.QuorumVoters {
		if v.ID == c.NodeID {
			inVoters = true
		}
	}
	switch {
	case c.HasRole("controller") && len(c.QuorumVoters) > 0 && !inVoters:
		errs = append(errs, fmt.Errorf("node.id %d has the controller role but is not in controller.quorum.voters", c.NodeID))
	case !c.HasRole("controller") && inVoters:
		errs = append(errs, fmt.Errorf("node.id %d is in controller.quorum.voters but process.roles has no controller", c.NodeID))
	case !c.HasRole("controller") && len(c.QuorumVoters) == 0 && len(c.QuorumBootstrapServers) == 0:
		errs = append(errs, errors.New("a broker-only node needs controller.quorum.voters or controller.quorum.bootstrap.servers"))
	}
	if c.HasRole("controller") && len(c.ControllerListenerNames) == 0 {
		errs = append(errs, errors.New("controller.listener.names must name a listener when process.roles includes controller"))
	}
	if c.BrokerHeartbeatMs <= 0 || c.BrokerSessionTimeoutMs <= c.BrokerHeartbeatMs {
		errs = append(errs, errors.New("broker.session.timeout.ms must be larger than broker.heartbeat.interval.ms, which must be > 0"))
	}
	return errs
}

// ParseListener splits "NAME://host:port" into its upper-cased name and
// address. Which security protocol the name means comes from
// listener.security.protocol.map (Config.ListenerProtocol).
func ParseListener(s string) (name, hostport string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", "", fmt.Errorf("config: listener %q is not NAME://host:port", s)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return "", "", fmt.Errorf("config: listener %q: %w", s, err)
	}
	return strings.ToUpper(u.Scheme), u.Host, nil
}

// SortedKeys returns Raw's keys in order, for stable output.
func (c *Config) SortedKeys() []string {
	keys := make([]string, 0, len(c.Raw))
	for k := range c.Raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
