package storage

import (
	"log/slog"
	"math"
	"time"
)

// TimestampType is a topic's message.timestamp.type.
type TimestampType int8

const (
	// CreateTime keeps the producer's timestamps.
	CreateTime TimestampType = 0
	// LogAppendTime stamps every batch with the broker's clock on append.
	LogAppendTime TimestampType = 1
)

func (t TimestampType) String() string {
	if t == LogAppendTime {
		return "LogAppendTime"
	}
	return "CreateTime"
}

// LogConfig are the per-partition settings. Field comments give the Kafka
// topic config each one mirrors.
type LogConfig struct {
	SegmentBytes       int64         // segment.bytes (default 1 GiB)
	SegmentMs          int64         // segment.ms (default 7 days)
	SegmentIndexBytes  int           // segment.index.bytes (10 MiB): max index size, roll when full
	IndexIntervalBytes int           // index.interval.bytes (4096)
	RetentionMs        int64         // retention.ms (-1 = infinite)
	RetentionBytes     int64         // retention.bytes (-1 = infinite)
	MaxMessageBytes    int           // max.message.bytes (1048588)
	TimestampType      TimestampType // message.timestamp.type
	FlushMessages      int64         // flush.messages: fsync when this many messages are unflushed (math.MaxInt64 = never)
	FlushMs            int64         // flush.ms: fsync when data is this old (math.MaxInt64 = never)
	// Compact: cleanup.policy contains compact: the log cleaner keeps the
	// latest record of each key (cleaner.go). Retention by time/bytes
	// applies only when Delete is also set.
	Compact bool
	Delete  bool // cleanup.policy contains delete
	// Compaction tuning (cleaner.go).
	MinCleanableRatio  float64 // min.cleanable.dirty.ratio (0.5)
	MinCompactionLagMs int64   // min.compaction.lag.ms (0)
	MaxCompactionLagMs int64   // max.compaction.lag.ms (MaxInt64)
	DeleteRetentionMs  int64   // delete.retention.ms (1 day): how long tombstones and markers outlive cleaning
	// Preallocate: preallocate. Unlike Kafka (which only extends the file
	// length), Gregor zero-fills the active segment 1 MiB ahead of the writer:
	// page-cache pages and disk blocks then exist before the data arrives, so
	// appends and especially fdatasync are cheaper (no block allocation or
	// file-size change per fsync). Default true; see doc.go.
	Preallocate bool
}

// DefaultLogConfig returns Kafka's defaults (except Preallocate, see above).
func DefaultLogConfig() LogConfig {
	return LogConfig{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 60 * 60 * 1000,
		SegmentIndexBytes:  10 << 20,
		IndexIntervalBytes: 4096,
		RetentionMs:        7 * 24 * 60 * 60 * 1000,
		RetentionBytes:     -1,
		MaxMessageBytes:    1048588,
		TimestampType:      CreateTime,
		FlushMessages:      math.MaxInt64,
		FlushMs:            math.MaxInt64,
		Delete:             true,
		Preallocate:        true,
		MinCleanableRatio:  0.5,
		MaxCompactionLagMs: math.MaxInt64,
		DeleteRetentionMs:  24 * 60 * 60 * 1000,
	}
}

// sanitized returns cfg with unusable values replaced, so a bad AlterConfigs
// value can never make the log divide by zero or roll on every append.
func (cfg LogConfig) sanitized() LogConfig {
	def := DefaultLogConfig()
	if cfg.SegmentBytes < minBatchSize {
		cfg.SegmentBytes = def.SegmentBytes
	}
	// Index entries hold int32 file positions (Kafka's segment.bytes is an
	// int too).
	cfg.SegmentBytes = min(cfg.SegmentBytes, math.MaxInt32)
	if cfg.SegmentMs <= 0 {
		cfg.SegmentMs = def.SegmentMs
	}
	if cfg.SegmentIndexBytes < 4*timeIndexEntrySize {
		cfg.SegmentIndexBytes = 4 * timeIndexEntrySize
	}
	if cfg.IndexIntervalBytes < 0 {
		cfg.IndexIntervalBytes = def.IndexIntervalBytes
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = def.MaxMessageBytes
	}
	if cfg.FlushMessages <= 0 {
		cfg.FlushMessages = 1
	}
	if cfg.FlushMs < 0 {
		cfg.FlushMs = 0
	}
	return cfg
}

// Options configure a Store.
type Options struct {
	Dir    string // the log dir (created if missing)
	Logger *slog.Logger
	Now    func() time.Time // injectable clock; nil = time.Now
	FS     FS               // nil = the operating system
	// ProducerIDExpiration drops idempotent-producer state that has not been
	// used for this long (Kafka's producer.id.expiration.ms). Applied by
	// EnforceRetention. Zero means Kafka's default, 24h; negative disables.
	// Addition to the agreed API.
	ProducerIDExpiration time.Duration
	// LogConfig, if set, gives the configuration of each partition found by
	// Open (recovery then rebuilds indexes with the topic's
	// index.interval.bytes). nil means DefaultLogConfig(); either way the
	// broker can change it later with SetConfig. Addition to the agreed API.
	LogConfig func(topic string, partition int32) LogConfig
	// Adopt, if set, decides what Open does with each partition directory
	// it finds, given the topic id from its partition.metadata (zero if
	// unreadable): load it, delete it (a create that never completed, a
	// deletion a crash interrupted) or set it aside as stray. nil loads
	// every directory. The broker passes its topic catalog here, so only
	// partitions of fully created topics are served.
	Adopt func(topic string, partition int32, topicID [16]byte) Adoption
	// AcceptGaps, if set, reports whether recovery of a partition may
	// accept a hole between segments (offsets in it are lost) instead of
	// opening the partition offline (gregor.recovery.accept.gaps).
	AcceptGaps func(topic string, partition int32) bool
	// Observer, if set, is told how long each fsync of a log took and how
	// many durability waits each group-commit round released, for the
	// broker's metrics. Fsynced is called by whichever goroutine fsyncs
	// (the syncer, flush.ms housekeeping) while it holds that log's
	// syncMu, Round by the syncer: both must be quick, lock-free, and
	// never call back into the Store.
	Observer SyncObserver
}

// SyncObserver receives group-commit measurements (Options.Observer).
type SyncObserver interface {
	// Fsynced reports one log's fsync (its rolled segments, directory and
	// active segment) and how long it took.
	Fsynced(d time.Duration)
	// Round reports one group-commit round: how many logs it fsynced and
	// how many WaitDurable callers it released.
	Round(logs, released int)
}

// Adoption is Options.Adopt's verdict on a partition directory.
type Adoption int

const (
	// AdoptLoad loads the partition.
	AdoptLoad Adoption = iota
	// AdoptDelete renames the directory to Kafka's topic-N.<uuid>-delete
	// form and removes it: its data was never acknowledged as a topic, or
	// its topic was deleted.
	AdoptDelete
	// AdoptStray renames the directory to topic-N.<uuid>-stray (as Kafka
	// does with logs the metadata does not know) and leaves it for the
	// operator: nothing is deleted that might still matter.
	AdoptStray
)
