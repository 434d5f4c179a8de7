package broker

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The log cleaner's broker properties (Kafka's log.cleaner.*). The
// per-topic compaction settings (min.cleanable.dirty.ratio,
// min/max.compaction.lag.ms, delete.retention.ms) are topic configs whose
// broker defaults are log.cleaner.min.cleanable.ratio,
// log.cleaner.min/max.compaction.lag.ms and log.cleaner.delete.retention.ms
// (topic_configs.go); they reach the cleaner per log through
// storage.LogConfig. The properties here configure the cleaner as a whole.

// cleanerSettings is the cleaner's broker-wide configuration, field for
// field what storage.CleanerConfig takes.
type cleanerSettings struct {
	// Enable: log.cleaner.enable. Off, no log is compacted, not even
	// __consumer_offsets and __transaction_state.
	Enable bool
	// Threads: log.cleaner.threads, logs cleaned at once (0: none).
	Threads int
	// DedupeBufferSize: log.cleaner.dedupe.buffer.size, bytes of key
	// index shared by all threads; it bounds the cleaner's memory.
	DedupeBufferSize int64
	// IOMaxBytesPerSecond: log.cleaner.io.max.bytes.per.second, read plus
	// write throttle of all threads together.
	IOMaxBytesPerSecond float64
	// Backoff: log.cleaner.backoff.ms, the sleep when no log needs cleaning.
	Backoff time.Duration
}

// cleanerPropDefs are the properties behind cleanerSettings, with Kafka's
// types, defaults and checks. log.cleaner.dedupe.buffer.size and
// log.cleaner.io.max.bytes.per.second must also be positive here (Kafka
// declares no bound, and a cleaner with no buffer or no bandwidth would
// never finish a log).
var cleanerPropDefs = []topicConfigDef{
	{name: "log.cleaner.enable", typ: kmsg.ConfigTypeBoolean, def: "true", check: checkBool},
	{name: "log.cleaner.threads", typ: kmsg.ConfigTypeInt, def: "1", check: checkIntRange(0, math.MaxInt32)},
	{name: "log.cleaner.dedupe.buffer.size", typ: kmsg.ConfigTypeLong, def: "134217728", check: checkMinLong(1)},
	{name: "log.cleaner.io.max.bytes.per.second", typ: kmsg.ConfigTypeDouble, def: "1.7976931348623157E308", check: checkPositiveDouble},
	{name: "log.cleaner.backoff.ms", typ: kmsg.ConfigTypeLong, def: "15000", check: checkMinLong(0)},
}

func checkPositiveDouble(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return errNotDouble
	}
	if !(f > 0) {
		return fmt.Errorf("value must be above 0")
	}
	return nil
}

// cleanerConfig reads the cleaner's properties (dynamic broker configs,
// then server.properties and flags, then Kafka's defaults) and checks them
// like the topic configs; a bad value is an error, on which the broker
// refuses to start, as Kafka does.
//
// It also checks the broker defaults of the per-topic compaction settings
// (log.cleaner.min.cleanable.ratio, ...), which topicLogConfig would
// otherwise quietly replace by storage's defaults.
func (b *Broker) cleanerConfig() (cleanerSettings, error) {
	val := map[string]string{}
	for i := range cleanerPropDefs {
		def := &cleanerPropDefs[i]
		v, _, ok := b.brokerProp(def.name)
		if !ok {
			v = def.def
		}
		v = strings.TrimSpace(v)
		if err := def.check(v); err != nil {
			return cleanerSettings{}, fmt.Errorf("Invalid value %s for configuration %s: %v", v, def.name, err)
		}
		val[def.name] = v
	}
	for _, name := range []string{"min.cleanable.dirty.ratio", "min.compaction.lag.ms", "max.compaction.lag.ms", "delete.retention.ms"} {
		def := topicConfigByName[name]
		for _, syn := range def.synonyms {
			if v, _, ok := b.brokerProp(syn); ok {
				if err := def.check(v); err != nil {
					return cleanerSettings{}, fmt.Errorf("Invalid value %s for configuration %s: %v", v, syn, err)
				}
			}
		}
	}
	if err := b.checkCompactionLags(nil); err != nil {
		return cleanerSettings{}, fmt.Errorf("broker defaults: %v", err)
	}
	// The checks above make these parse.
	threads, _ := strconv.Atoi(val["log.cleaner.threads"])
	dedupe, _ := strconv.ParseInt(val["log.cleaner.dedupe.buffer.size"], 10, 64)
	io, _ := strconv.ParseFloat(val["log.cleaner.io.max.bytes.per.second"], 64)
	backoff, _ := strconv.ParseInt(val["log.cleaner.backoff.ms"], 10, 64)
	return cleanerSettings{
		Enable:              strings.EqualFold(val["log.cleaner.enable"], "true"),
		Threads:             threads,
		DedupeBufferSize:    dedupe,
		IOMaxBytesPerSecond: io,
		Backoff:             time.Duration(min(backoff, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond,
	}, nil
}
