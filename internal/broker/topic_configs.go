package broker

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

// topicConfigDef describes one topic-level config: its type, the broker
// properties it defaults from (Kafka's "synonyms", most specific first) and
// how to check a value.
type topicConfigDef struct {
	name     string
	typ      kmsg.ConfigType
	synonyms []string
	// def is the value when neither the topic nor the broker sets it.
	def   string
	check func(string) error
	doc   string
}

// Value errors read like Kafka's ConfigDef messages.
var (
	errNotLong   = errors.New("Not a number of type LONG")
	errNotInt    = errors.New("Not a number of type INT")
	errNotDouble = errors.New("Not a number of type DOUBLE")
	errNotBool   = errors.New("Expected value to be either true or false")
)

var (
	checkLong = func(s string) error {
		if _, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil {
			return errNotLong
		}
		return nil
	}
	checkInt = func(s string) error {
		if _, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32); err != nil {
			return errNotInt
		}
		return nil
	}
	checkDouble = func(s string) error {
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return errNotDouble
		}
		return nil
	}
	checkBool = func(s string) error {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "false":
			return nil
		}
		return errNotBool
	}
	checkMinLong = func(min int64) func(string) error {
		return func(s string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return errNotLong
			}
			if n < min {
				return fmt.Errorf("value must be at least %d", min)
			}
			return nil
		}
	}
	checkOneOf = func(opts ...string) func(string) error {
		return func(s string) error {
			for _, o := range opts {
				if s == o {
					return nil
				}
			}
			return fmt.Errorf("value must be one of %s", strings.Join(opts, ", "))
		}
	}
	checkCleanup = func(s string) error {
		for _, p := range strings.Split(s, ",") {
			switch strings.TrimSpace(p) {
			case "delete", "compact":
			default:
				return fmt.Errorf("cleanup.policy must be a list of delete and compact")
			}
		}
		return nil
	}
)

// checkDoubleRange accepts a double in [min, max] (NaN is not in any range).
func checkDoubleRange(min, max float64) func(string) error {
	return func(s string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return errNotDouble
		}
		if !(f >= min && f <= max) {
			return fmt.Errorf("value must be between %g and %g", min, max)
		}
		return nil
	}
}

// checkIntRange accepts an int in [min, max] or one of the extra values.
func checkIntRange(min, max int64, extra ...int64) func(string) error {
	return func(s string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil {
			return errNotInt
		}
		for _, e := range extra {
			if n == e {
				return nil
			}
		}
		if n < min || n > max {
			return fmt.Errorf("Value must be in [%d, %d]", min, max)
		}
		return nil
	}
}

// checkReplicaList accepts Kafka's throttled-replica lists: "", "*", or
// comma-separated partition:broker pairs.
func checkReplicaList(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		p, b, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return errors.New("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")
		}
		if _, err := strconv.Atoi(p); err != nil {
			return errNotInt
		}
		if _, err := strconv.Atoi(b); err != nil {
			return errNotInt
		}
	}
	return nil
}

const maxLongStr = "9223372036854775807"

// topicConfigDefs are the topic configs Kafka 4.1 knows. Those that shape
// the log, including cleanup.policy and the compaction settings the log
// cleaner follows (min.cleanable.dirty.ratio, min/max.compaction.lag.ms,
// delete.retention.ms), are applied through storage.LogConfig
// (topicLogConfig); the rest (compression levels, file.delete.delay.ms,
// the throttled-replica lists read by throttle.go, remote storage) are
// stored and described with no effect of their own on the log.
var topicConfigDefs = []topicConfigDef{
	{name: "cleanup.policy", typ: kmsg.ConfigTypeList, synonyms: []string{"log.cleanup.policy"}, def: "delete", check: checkCleanup,
		doc: "delete (segments are removed by retention.ms and retention.bytes), compact (the log cleaner keeps the latest record of each key; records without a key are refused) or both."},
	{name: "compression.type", typ: kmsg.ConfigTypeString, synonyms: []string{"compression.type"}, def: "producer",
		check: checkOneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
		doc:   "Batches are stored as the producer sent them; recompression is not performed."},
	{name: "compression.gzip.level", typ: kmsg.ConfigTypeInt, synonyms: []string{"compression.gzip.level"}, def: "-1", check: checkIntRange(-1, 9, -1)},
	{name: "compression.lz4.level", typ: kmsg.ConfigTypeInt, synonyms: []string{"compression.lz4.level"}, def: "9", check: checkIntRange(1, 17)},
	{name: "compression.zstd.level", typ: kmsg.ConfigTypeInt, synonyms: []string{"compression.zstd.level"}, def: "3", check: checkIntRange(-131072, 22)},
	{name: "delete.retention.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.cleaner.delete.retention.ms"}, def: "86400000", check: checkMinLong(0),
		doc: "How long a tombstone (a record with a null value) and a transaction marker stay in a compacted log after the cleaner has reached them, so that a consumer reading from the beginning still sees the deletion."},
	{name: "file.delete.delay.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.segment.delete.delay.ms"}, def: "60000", check: checkMinLong(0)},
	{name: "follower.replication.throttled.replicas", typ: kmsg.ConfigTypeList, def: "", check: checkReplicaList},
	{name: "flush.messages", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.flush.interval.messages"}, def: maxLongStr, check: checkMinLong(1)},
	{name: "flush.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.flush.interval.ms"}, def: maxLongStr, check: checkMinLong(0)},
	{name: "index.interval.bytes", typ: kmsg.ConfigTypeInt, synonyms: []string{"log.index.interval.bytes"}, def: "4096", check: checkInt},
	{name: "leader.replication.throttled.replicas", typ: kmsg.ConfigTypeList, def: "", check: checkReplicaList},
	{name: "local.retention.bytes", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.local.retention.bytes"}, def: "-2", check: checkLong},
	{name: "local.retention.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.local.retention.ms"}, def: "-2", check: checkLong},
	{name: "max.compaction.lag.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.cleaner.max.compaction.lag.ms"}, def: maxLongStr, check: checkMinLong(1),
		doc: "A record older than this is compacted even when the log's dirty ratio is below min.cleanable.dirty.ratio."},
	{name: "max.message.bytes", typ: kmsg.ConfigTypeInt, synonyms: []string{"message.max.bytes"}, def: "1048588", check: checkInt},
	{name: "message.timestamp.after.max.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.message.timestamp.after.max.ms"}, def: maxLongStr, check: checkMinLong(0)},
	{name: "message.timestamp.before.max.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.message.timestamp.before.max.ms"}, def: maxLongStr, check: checkMinLong(0)},
	{name: "message.timestamp.type", typ: kmsg.ConfigTypeString, synonyms: []string{"log.message.timestamp.type"}, def: "CreateTime", check: checkOneOf("CreateTime", "LogAppendTime")},
	{name: "min.cleanable.dirty.ratio", typ: kmsg.ConfigTypeDouble, synonyms: []string{"log.cleaner.min.cleanable.ratio"}, def: "0.5", check: checkDoubleRange(0, 1),
		doc: "The cleaner compacts a log once the bytes written since its last cleaning are at least this share of the log (0 to 1)."},
	{name: "min.compaction.lag.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.cleaner.min.compaction.lag.ms"}, def: "0", check: checkMinLong(0),
		doc: "A record younger than this is never compacted away."},
	{name: "min.insync.replicas", typ: kmsg.ConfigTypeInt, synonyms: []string{"min.insync.replicas"}, def: "1", check: checkMinLong(1)},
	{name: "preallocate", typ: kmsg.ConfigTypeBoolean, synonyms: []string{"log.preallocate"}, def: "false", check: checkBool},
	{name: "remote.log.copy.disable", typ: kmsg.ConfigTypeBoolean, def: "false", check: checkBool},
	{name: "remote.log.delete.on.disable", typ: kmsg.ConfigTypeBoolean, def: "false", check: checkBool},
	{name: "remote.storage.enable", typ: kmsg.ConfigTypeBoolean, def: "false", check: checkOneOf("false")},
	{name: "retention.bytes", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.retention.bytes"}, def: "-1", check: checkLong},
	{name: "retention.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.retention.ms", "log.retention.minutes", "log.retention.hours"}, def: "604800000", check: checkMinLong(-1)},
	{name: "segment.bytes", typ: kmsg.ConfigTypeInt, synonyms: []string{"log.segment.bytes"}, def: "1073741824", check: checkMinLong(14)},
	{name: "segment.index.bytes", typ: kmsg.ConfigTypeInt, synonyms: []string{"log.index.size.max.bytes"}, def: "10485760", check: checkMinLong(4)},
	{name: "segment.jitter.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.roll.jitter.ms", "log.roll.jitter.hours"}, def: "0", check: checkMinLong(0)},
	{name: "segment.ms", typ: kmsg.ConfigTypeLong, synonyms: []string{"log.roll.ms", "log.roll.hours"}, def: "604800000", check: checkMinLong(1)},
	{name: "unclean.leader.election.enable", typ: kmsg.ConfigTypeBoolean, synonyms: []string{"unclean.leader.election.enable"}, def: "false", check: checkBool},
}

var topicConfigByName = func() map[string]*topicConfigDef {
	m := map[string]*topicConfigDef{}
	for i := range topicConfigDefs {
		m[topicConfigDefs[i].name] = &topicConfigDefs[i]
	}
	return m
}()

// resolvedConfig is one config's effective value and where it came from.
type resolvedConfig struct {
	value  string
	source kmsg.ConfigSource
	// synonyms, most specific first, as DescribeConfigs v1+ lists them.
	synonyms []configSynonym
}

type configSynonym struct {
	name, value string
	source      kmsg.ConfigSource
}

// brokerSynonymValue converts a broker property into the topic config's
// unit (hours and minutes become milliseconds).
func brokerSynonymValue(name, v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	switch {
	case strings.HasSuffix(name, ".hours"):
		if n < 0 {
			return "-1"
		}
		return strconv.FormatInt(n*3600_000, 10)
	case strings.HasSuffix(name, ".minutes"):
		if n < 0 {
			return "-1"
		}
		return strconv.FormatInt(n*60_000, 10)
	}
	return v
}

// resolveTopicConfig returns the effective value of def for a topic with
// the given overrides.
func (b *Broker) resolveTopicConfig(def *topicConfigDef, overrides map[string]string) resolvedConfig {
	var syn []configSynonym
	if v, ok := overrides[def.name]; ok {
		syn = append(syn, configSynonym{def.name, v, kmsg.ConfigSourceDynamicTopicConfig})
	}
	for _, s := range def.synonyms {
		if v, src, ok := b.brokerProp(s); ok && src != kmsg.ConfigSourceDefaultConfig {
			syn = append(syn, configSynonym{s, v, src})
		}
	}
	// Kafka lists the broker default under the most specific synonym
	// that has a default; we list it under the first synonym.
	if len(def.synonyms) > 0 {
		defName := def.synonyms[0]
		if v, src, ok := b.brokerProp(defName); ok && src == kmsg.ConfigSourceDefaultConfig {
			syn = append(syn, configSynonym{defName, v, kmsg.ConfigSourceDefaultConfig})
		} else {
			syn = append(syn, configSynonym{defName, def.def, kmsg.ConfigSourceDefaultConfig})
		}
	}
	r := resolvedConfig{value: def.def, source: kmsg.ConfigSourceDefaultConfig, synonyms: syn}
	if len(syn) > 0 {
		r.value, r.source = brokerSynonymValue(syn[0].name, syn[0].value), syn[0].source
	}
	return r
}

// validateTopicConfigs checks names and values of topic config overrides.
func validateTopicConfigs(cfgs map[string]*string) error {
	for k, v := range cfgs {
		def := topicConfigByName[k]
		if def == nil {
			return fmt.Errorf("Unknown topic config name: %s", k)
		}
		if v == nil {
			continue
		}
		if err := def.check(*v); err != nil {
			return fmt.Errorf("Invalid value %s for configuration %s: %v", *v, k, err)
		}
	}
	return nil
}

// checkCompactionLags refuses a topic whose effective min.compaction.lag.ms
// (override, else the broker's default) is above its max.compaction.lag.ms,
// as Kafka does; cfgs are the topic's overrides after the change and have
// passed validateTopicConfigs.
func (b *Broker) checkCompactionLags(cfgs map[string]*string) error {
	overrides := map[string]string{}
	for k, v := range cfgs {
		if v != nil {
			overrides[k] = *v
		}
	}
	lag := func(name string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(b.resolveTopicConfig(topicConfigByName[name], overrides).value), 10, 64)
		if err != nil {
			return -1 // a broker default that does not parse: not this request's fault
		}
		return n
	}
	minLag, maxLag := lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms")
	if minLag >= 0 && maxLag >= 0 && minLag > maxLag {
		return fmt.Errorf("min.compaction.lag.ms (%d) is above max.compaction.lag.ms (%d)", minLag, maxLag)
	}
	return nil
}

// topicLogConfig turns a topic's overrides into the storage settings.
func (b *Broker) topicLogConfig(overrides map[string]string) storage.LogConfig {
	get := func(name string) string { return b.resolveTopicConfig(topicConfigByName[name], overrides).value }
	geti := func(name string) int64 {
		n, err := strconv.ParseInt(get(name), 10, 64)
		if err != nil {
			return math.MaxInt64
		}
		return n
	}
	lc := storage.DefaultLogConfig()
	lc.SegmentBytes = geti("segment.bytes")
	lc.SegmentMs = geti("segment.ms")
	lc.SegmentIndexBytes = int(geti("segment.index.bytes"))
	lc.IndexIntervalBytes = int(geti("index.interval.bytes"))
	lc.RetentionMs = geti("retention.ms")
	lc.RetentionBytes = geti("retention.bytes")
	lc.MaxMessageBytes = int(geti("max.message.bytes"))
	lc.FlushMessages = geti("flush.messages")
	lc.FlushMs = geti("flush.ms")
	lc.Preallocate = strings.EqualFold(get("preallocate"), "true")
	if get("message.timestamp.type") == "LogAppendTime" {
		lc.TimestampType = storage.LogAppendTime
	} else {
		lc.TimestampType = storage.CreateTime
	}
	policy := get("cleanup.policy")
	lc.Compact = strings.Contains(policy, "compact")
	lc.Delete = strings.Contains(policy, "delete")
	// Compaction settings (the cleaner reads them per log): a value that
	// fails to parse or is out of range (a broker default set to nonsense
	// in server.properties) keeps storage's default.
	long := func(name string, min int64) (int64, bool) {
		n, err := strconv.ParseInt(strings.TrimSpace(get(name)), 10, 64)
		return n, err == nil && n >= min
	}
	if f, err := strconv.ParseFloat(strings.TrimSpace(get("min.cleanable.dirty.ratio")), 64); err == nil && f >= 0 && f <= 1 {
		lc.MinCleanableRatio = f
	}
	if n, ok := long("min.compaction.lag.ms", 0); ok {
		lc.MinCompactionLagMs = n
	}
	if n, ok := long("max.compaction.lag.ms", 1); ok {
		lc.MaxCompactionLagMs = n
	}
	if n, ok := long("delete.retention.ms", 0); ok {
		lc.DeleteRetentionMs = n
	}
	return lc
}
