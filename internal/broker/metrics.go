package broker

// Metrics with the names Kafka users' dashboards already query: the JMX
// exporter's standard Kafka rules (kafka_server_brokertopicmetrics_*,
// kafka_network_requestmetrics_*, kafka_server_replicamanager_*,
// kafka_log_log_*, kafka_controller_kafkacontroller_*) and kafka_exporter's
// (kafka_consumergroup_*, kafka_topic_*, kafka_brokers), plus Gregor's own
// group-commit measurements (gregor_storage_*), which Kafka has no
// equivalent of.
//
// The hot path pays only atomic adds: per-topic counters are reached
// through a sync.Map entry made once per topic, request counts through an
// array indexed by API key and version, and latencies through
// prometheus.Histogram (lock-free). Everything else — log sizes, partition
// counts, consumer group lag — is computed when /metrics is scraped, from
// the same state the Kafka APIs read.
//
// Deviations from the JMX names: request latency is one histogram per
// request type, kafka_network_requestmetrics_totaltimems_bucket/_sum/_count
// (milliseconds, as TotalTimeMs), where the JMX exporter gives percentiles
// as gauges; its _count has the JMX exporter's name and meaning. Two
// LogCleanerManager gauges are renamed so `promtool check metrics` passes:
// time-since-last-run-ms is ..._time_since_last_run_seconds (in seconds)
// and uncleanable-partitions-count is ..._uncleanable_partitions. Fetch
// requests are counted as request="FetchConsumer", as Kafka names a
// consumer's fetch in RequestMetrics.

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// topicStats are one topic's BrokerTopicMetrics counters.
type topicStats struct {
	messagesIn    atomic.Uint64
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64
	produceReqs   atomic.Uint64
	failedProduce atomic.Uint64
	fetchReqs     atomic.Uint64
	failedFetch   atomic.Uint64
}

// maxMetricVersion bounds the request versions counted one by one; a
// higher version (none is served today) counts as this one.
const maxMetricVersion = 31

// requestStats are one API's RequestMetrics.
type requestStats struct {
	name     string
	versions [maxMetricVersion + 1]atomic.Uint64
	latency  prometheus.Histogram // milliseconds, as Kafka's TotalTimeMs
}

// brokerMetrics is what the request path updates. The zero value is not
// usable; see newBrokerMetrics.
type brokerMetrics struct {
	topics   sync.Map // topic name → *topicStats; entries are never replaced
	requests []*requestStats
	all      topicStats // the same counters without a topic label

	// sentFromFile counts record bytes sent with sendfile (zero-copy
	// fetch), copied those sent through the response buffer.
	sentFromFile, copiedOut atomic.Uint64

	fsync     prometheus.Histogram // seconds per log fsync
	roundLogs prometheus.Histogram // logs fsynced per group-commit round
	released  prometheus.Histogram // durability waits released per round
}

// latencyBucketsMs cover a loopback ApiVersions (tens of µs) to a long
// poll or a slow fsync (seconds).
var latencyBucketsMs = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}

func newBrokerMetrics() *brokerMetrics {
	m := &brokerMetrics{}
	maxKey := int16(0)
	for k := range apis {
		maxKey = max(maxKey, k)
	}
	m.requests = make([]*requestStats, maxKey+1)
	for k := range apis {
		name := kmsg.NameForKey(k)
		if k == 1 {
			name = "FetchConsumer"
		}
		m.requests[k] = &requestStats{
			name: name,
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:        "kafka_network_requestmetrics_totaltimems",
				Help:        "Time from a request's arrival to its response being written, in milliseconds (Kafka's TotalTimeMs).",
				ConstLabels: prometheus.Labels{"request": name},
				Buckets:     latencyBucketsMs,
			}),
		}
	}
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gregor_storage_fsync_seconds",
		Help:    "Duration of one partition log's fsync (rolled segments, directory and active segment).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. 3.3s
	})
	m.roundLogs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gregor_storage_group_commit_logs",
		Help:    "Partition logs fsynced by one group-commit round.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
	})
	m.released = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gregor_storage_group_commit_batch_size",
		Help:    "Durability waits (acks=all produces, offset commits) released by one group-commit round.",
		Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
	})
	return m
}

// topic returns a topic's counters, made on first use.
func (m *brokerMetrics) topic(name string) *topicStats {
	if ts, ok := m.topics.Load(name); ok {
		return ts.(*topicStats)
	}
	ts, _ := m.topics.LoadOrStore(name, &topicStats{})
	return ts.(*topicStats)
}

// produced counts one topic of a Produce request.
func (m *brokerMetrics) produced(ts *topicStats, messages, bytes uint64, failed bool) {
	ts.produceReqs.Add(1)
	m.all.produceReqs.Add(1)
	if failed {
		ts.failedProduce.Add(1)
		m.all.failedProduce.Add(1)
	}
	if messages > 0 {
		ts.messagesIn.Add(messages)
		ts.bytesIn.Add(bytes)
		m.all.messagesIn.Add(messages)
		m.all.bytesIn.Add(bytes)
	}
}

// fetched counts one topic of a Fetch response.
func (m *brokerMetrics) fetched(ts *topicStats, bytes uint64, failed bool) {
	ts.fetchReqs.Add(1)
	m.all.fetchReqs.Add(1)
	if failed {
		ts.failedFetch.Add(1)
		m.all.failedFetch.Add(1)
	}
	if bytes > 0 {
		ts.bytesOut.Add(bytes)
		m.all.bytesOut.Add(bytes)
	}
}

// answered counts a request whose response was written (or, for acks=0,
// dropped) after d.
func (m *brokerMetrics) answered(key, version int16, d time.Duration) {
	if key < 0 || int(key) >= len(m.requests) || m.requests[key] == nil {
		return
	}
	rs := m.requests[key]
	rs.versions[min(max(version, 0), maxMetricVersion)].Add(1)
	rs.latency.Observe(float64(d) / float64(time.Millisecond))
}

// Fsynced implements storage.SyncObserver.
func (m *brokerMetrics) Fsynced(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// Round implements storage.SyncObserver.
func (m *brokerMetrics) Round(logs, released int) {
	m.roundLogs.Observe(float64(logs))
	m.released.Observe(float64(released))
}

// Scrape-time descriptions. The broker-wide BrokerTopicMetrics series are
// exposed with topic="", which Prometheus stores as no topic label at all:
// the JMX exporter's series for the MBean without a topic key.
var (
	descTopic = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("kafka_server_brokertopicmetrics_"+name, help, []string{"topic"}, nil)
	}
	descMessagesIn    = descTopic("messagesin_total", "Messages appended (Kafka's MessagesInPerSec count); topic=\"\" is the broker total.")
	descBytesIn       = descTopic("bytesin_total", "Record batch bytes appended by producers (BytesInPerSec); topic=\"\" is the broker total.")
	descBytesOut      = descTopic("bytesout_total", "Record batch bytes sent to consumers (BytesOutPerSec); topic=\"\" is the broker total.")
	descProduceReqs   = descTopic("totalproducerequests_total", "Produce requests per topic (TotalProduceRequestsPerSec); topic=\"\" is the broker total.")
	descFailedProduce = descTopic("failedproducerequests_total", "Produce requests with a failed partition (FailedProduceRequestsPerSec).")
	descFetchReqs     = descTopic("totalfetchrequests_total", "Fetch requests per topic (TotalFetchRequestsPerSec); topic=\"\" is the broker total.")
	descFailedFetch   = descTopic("failedfetchrequests_total", "Fetch requests with a failed partition (FailedFetchRequestsPerSec).")

	descSentFromFile = prometheus.NewDesc("gregor_fetch_sendfile_bytes_total", "Record bytes fetched that went from segment files to sockets with sendfile (zero-copy).", nil, nil)
	descCopiedOut    = prometheus.NewDesc("gregor_fetch_copied_bytes_total", "Record bytes fetched that were copied into the response (small reads).", nil, nil)

	descRequests = prometheus.NewDesc("kafka_network_requestmetrics_requests_total",
		"Requests answered, by request type and version (RequestsPerSec).", []string{"request", "version"}, nil)

	descPartitionCount    = prometheus.NewDesc("kafka_server_replicamanager_partitioncount", "Partitions on this broker.", nil, nil)
	descLeaderCount       = prometheus.NewDesc("kafka_server_replicamanager_leadercount", "Partitions this broker leads.", nil, nil)
	descUnderReplicated   = prometheus.NewDesc("kafka_server_replicamanager_underreplicatedpartitions", "Partitions whose ISR is smaller than their replica set.", nil, nil)
	descUnderMinISR       = prometheus.NewDesc("kafka_server_replicamanager_underminisrpartitioncount", "Partitions whose ISR is below min.insync.replicas.", nil, nil)
	descOfflineReplicas   = prometheus.NewDesc("kafka_server_replicamanager_offlinereplicacount", "Replicas on this broker that are offline.", nil, nil)
	descBrokerState       = prometheus.NewDesc("kafka_server_kafkaserver_brokerstate", "Kafka's broker state: 3 is RUNNING.", nil, nil)
	descActiveController  = prometheus.NewDesc("kafka_controller_kafkacontroller_activecontrollercount", "1 on the active controller.", nil, nil)
	descOfflinePartitions = prometheus.NewDesc("kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions without a leader.", nil, nil)
	descGlobalTopics      = prometheus.NewDesc("kafka_controller_kafkacontroller_globaltopiccount", "Topics in the cluster.", nil, nil)
	descGlobalPartitions  = prometheus.NewDesc("kafka_controller_kafkacontroller_globalpartitioncount", "Partitions in the cluster.", nil, nil)

	// Kafka's kafka.server:type=FetchSessionCache MBeans.
	descFetchSessions       = prometheus.NewDesc("kafka_server_fetchsessioncache_numincrementalfetchsessions", "Incremental fetch sessions cached (KIP-227).", nil, nil)
	descFetchSessionParts   = prometheus.NewDesc("kafka_server_fetchsessioncache_numincrementalfetchpartitionscached", "Partitions cached over all incremental fetch sessions.", nil, nil)
	descFetchSessionEvicted = prometheus.NewDesc("kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total", "Incremental fetch sessions evicted to make room for new ones (IncrementalFetchSessionEvictionsPerSec count).", nil, nil)

	descLogSize      = prometheus.NewDesc("kafka_log_log_size", "Bytes of a partition's log on disk (Log Size).", []string{"topic", "partition"}, nil)
	descLogEnd       = prometheus.NewDesc("kafka_log_log_logendoffset", "A partition's log end offset.", []string{"topic", "partition"}, nil)
	descLogStart     = prometheus.NewDesc("kafka_log_log_logstartoffset", "A partition's log start offset.", []string{"topic", "partition"}, nil)
	descTopicLogSize = prometheus.NewDesc("kafka_log_log_size", "Bytes of a topic's logs on disk (per-partition series are off).", []string{"topic"}, nil)

	descBrokers         = prometheus.NewDesc("kafka_brokers", "Brokers in the cluster (kafka_exporter).", nil, nil)
	descTopicPartitions = prometheus.NewDesc("kafka_topic_partitions", "Partitions of a topic (kafka_exporter).", []string{"topic"}, nil)
	descTopicCurrent    = prometheus.NewDesc("kafka_topic_partition_current_offset", "A partition's high watermark (kafka_exporter).", []string{"topic", "partition"}, nil)
	descTopicOldest     = prometheus.NewDesc("kafka_topic_partition_oldest_offset", "A partition's log start offset (kafka_exporter).", []string{"topic", "partition"}, nil)

	descGroupCurrent = prometheus.NewDesc("kafka_consumergroup_current_offset", "A group's committed offset of a partition (kafka_exporter).", []string{"consumergroup", "topic", "partition"}, nil)
	descGroupLag     = prometheus.NewDesc("kafka_consumergroup_lag", "High watermark minus the group's committed offset (kafka_exporter).", []string{"consumergroup", "topic", "partition"}, nil)
	// Without per-partition series, lag is summed per topic under the
	// same name. (kafka_exporter's *_sum names are not used: promtool
	// rejects a _sum suffix on a gauge.)
	descGroupTopicLag = prometheus.NewDesc("kafka_consumergroup_lag", "A group's lag summed over a topic's partitions (per-partition series are off).", []string{"consumergroup", "topic"}, nil)
	descGroupMembers  = prometheus.NewDesc("kafka_consumergroup_members", "Members of a group (kafka_exporter).", []string{"consumergroup"}, nil)
)

// Collector returns the broker's metrics for a Prometheus registry. It is
// unchecked (Describe sends nothing) because the series depend on the
// topics and groups of the moment.
// The log cleaner's, as the JMX exporter names Kafka's LogCleaner and
// LogCleanerManager gauges, plus Gregor's running totals.
var (
	descCleanerBuffer   = prometheus.NewDesc("kafka_log_logcleaner_max_buffer_utilization_percent", "How full the offset map (log.cleaner.dedupe.buffer.size) was in the last pass that cleaned.", nil, nil)
	descCleanerRecopy   = prometheus.NewDesc("kafka_log_logcleaner_cleaner_recopy_percent", "Bytes written per byte read, in percent, in the last pass that cleaned.", nil, nil)
	descCleanerTime     = prometheus.NewDesc("kafka_log_logcleaner_max_clean_time_secs", "Duration of the last pass that cleaned.", nil, nil)
	descCleanerDead     = prometheus.NewDesc("kafka_log_logcleaner_deadthreadcount", "Cleaner threads that died (0 or 1).", nil, nil)
	descCleanerDirty    = prometheus.NewDesc("kafka_log_logcleanermanager_max_dirty_percent", "The largest dirty share of the cleanable part of a compacted log, in percent.", nil, nil)
	descCleanerSince    = prometheus.NewDesc("kafka_log_logcleanermanager_time_since_last_run_seconds", "Seconds since the last pass that cleaned (since start if none).", nil, nil)
	descUncleanable     = prometheus.NewDesc("kafka_log_logcleanermanager_uncleanable_partitions", "Partitions the cleaner failed on and skips until restart.", nil, nil)
	descUncleanableSize = prometheus.NewDesc("kafka_log_logcleanermanager_uncleanable_bytes", "Bytes of the partitions the cleaner skips.", nil, nil)
	descCleanerPasses   = prometheus.NewDesc("gregor_log_cleaner_passes_total", "Cleaning passes that rewrote a log.", nil, nil)
	descCleanerRead     = prometheus.NewDesc("gregor_log_cleaner_read_bytes_total", "Bytes of segments the cleaner rewrote.", nil, nil)
	descCleanerWritten  = prometheus.NewDesc("gregor_log_cleaner_written_bytes_total", "Bytes of the segments it wrote in their place.", nil, nil)
	descCleanerRecsIn   = prometheus.NewDesc("gregor_log_cleaner_records_read_total", "Records in the segments the cleaner rewrote.", nil, nil)
	descCleanerRecsKept = prometheus.NewDesc("gregor_log_cleaner_records_kept_total", "Records it kept.", nil, nil)
	descCleanerMarkers  = prometheus.NewDesc("gregor_log_cleaner_markers_removed_total", "Transaction markers removed after delete.retention.ms.", nil, nil)
)

func (b *Broker) Collector() prometheus.Collector { return (*collector)(b) }

type collector Broker

func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b := (*Broker)(c)
	m := b.metrics
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	topicCounters := func(name string, ts *topicStats) {
		counter(descMessagesIn, ts.messagesIn.Load(), name)
		counter(descBytesIn, ts.bytesIn.Load(), name)
		counter(descBytesOut, ts.bytesOut.Load(), name)
		counter(descProduceReqs, ts.produceReqs.Load(), name)
		counter(descFailedProduce, ts.failedProduce.Load(), name)
		counter(descFetchReqs, ts.fetchReqs.Load(), name)
		counter(descFailedFetch, ts.failedFetch.Load(), name)
	}
	topicCounters("", &m.all)
	m.topics.Range(func(k, v any) bool {
		name := k.(string)
		if b.catalog.get(name) == nil {
			// Deleted: Kafka removes a topic's metrics with it. A topic
			// made again under the name starts from zero.
			m.topics.Delete(name)
			return true
		}
		topicCounters(name, v.(*topicStats))
		return true
	})

	for _, rs := range m.requests {
		if rs == nil {
			continue
		}
		var total uint64
		for v := range rs.versions {
			if n := rs.versions[v].Load(); n > 0 {
				counter(descRequests, n, rs.name, strconv.Itoa(v))
				total += n
			}
		}
		if total > 0 {
			// No histogram (some 20 series) for an API never called.
			ch <- rs.latency
		}
	}
	counter(descSentFromFile, m.sentFromFile.Load())
	counter(descCopiedOut, m.copiedOut.Load())
	ch <- m.fsync
	ch <- m.roundLogs
	ch <- m.released

	if cm := b.store.CleanerMetrics(); cm.Enabled {
		gauge(descCleanerBuffer, cm.BufferUtilizationPercent)
		gauge(descCleanerRecopy, cm.RecopyPercent)
		gauge(descCleanerTime, cm.CleanTime.Seconds())
		dead := 0.0
		if cm.Dead {
			dead = 1
		}
		gauge(descCleanerDead, dead)
		gauge(descCleanerDirty, cm.MaxDirtyPercent)
		last := cm.LastRun
		if last.IsZero() {
			last = cm.Started
		}
		gauge(descCleanerSince, time.Since(last).Seconds())
		gauge(descUncleanable, float64(cm.UncleanablePartitions))
		gauge(descUncleanableSize, float64(cm.UncleanableBytes))
		counter(descCleanerPasses, uint64(cm.Passes))
		counter(descCleanerRead, uint64(cm.BytesRead))
		counter(descCleanerWritten, uint64(cm.BytesWritten))
		counter(descCleanerRecsIn, uint64(cm.RecordsRead))
		counter(descCleanerRecsKept, uint64(cm.RecordsKept))
		counter(descCleanerMarkers, uint64(cm.MarkersRemoved))
	}

	// Partitions and logs, from the catalog's published topics.
	perPartition := b.cfg.MetricsPartitionLabels
	topics := b.catalog.all()
	parts, offline, leading, underReplicated, underMinISR := 0, 0, 0, 0, 0
	globalParts, leaderless := 0, 0
	for _, t := range topics {
		gauge(descTopicPartitions, float64(t.Partitions), t.Name)
		var size int64
		for p := int32(0); p < t.Partitions; p++ {
			globalParts++
			if t.leaderOf(p) < 0 {
				leaderless++
			}
			l := b.store.Get(t.Name, p)
			if l == nil {
				continue
			}
			parts++
			if l.Offline() != nil {
				offline++
				continue
			}
			if b.leads(t, p) {
				leading++
				// Kafka counts these on the leader.
				if pi := t.partition(p); pi != nil {
					if len(pi.ISR) < len(pi.Replicas) {
						underReplicated++
					}
					if r := b.replicas.get(t.Name, p); r != nil {
						if under, _, _ := r.underMinISR(); under {
							underMinISR++
						}
					}
				}
			}
			s := l.Size()
			size += s
			if perPartition {
				ps := strconv.Itoa(int(p))
				gauge(descLogSize, float64(s), t.Name, ps)
				gauge(descLogEnd, float64(l.LogEndOffset()), t.Name, ps)
				gauge(descLogStart, float64(l.LogStartOffset()), t.Name, ps)
				gauge(descTopicCurrent, float64(l.HighWatermark()), t.Name, ps)
				gauge(descTopicOldest, float64(l.LogStartOffset()), t.Name, ps)
			}
		}
		if !perPartition {
			gauge(descTopicLogSize, float64(size), t.Name)
		}
	}
	if b.store.Failure() != nil {
		offline, leading = parts, 0
	}
	// The controller's gauges are non-zero on the active controller only,
	// as in Kafka; kafka_brokers counts live brokers.
	gauge(descPartitionCount, float64(parts))
	gauge(descLeaderCount, float64(leading))
	gauge(descUnderReplicated, float64(underReplicated))
	gauge(descUnderMinISR, float64(underMinISR))
	gauge(descOfflineReplicas, float64(offline))
	state := 1.0 // STARTING
	if b.serving() {
		state = 3 // RUNNING
	}
	gauge(descBrokerState, state)
	sessions, cached, evicted := b.fetchSessions.stats()
	gauge(descFetchSessions, float64(sessions))
	gauge(descFetchSessionParts, float64(cached))
	counter(descFetchSessionEvicted, evicted)
	if b.qnode.IsLeader() {
		gauge(descActiveController, 1)
		gauge(descOfflinePartitions, float64(max(leaderless, offline)))
		gauge(descGlobalTopics, float64(len(topics)))
		gauge(descGlobalPartitions, float64(globalParts))
	} else {
		gauge(descActiveController, 0)
		gauge(descOfflinePartitions, 0)
		gauge(descGlobalTopics, 0)
		gauge(descGlobalPartitions, 0)
	}
	gauge(descBrokers, float64(max(b.liveBrokers(), 1)))

	b.collectGroups(gauge, perPartition)
}

// collectGroups computes consumer group lag at scrape time: each group's
// committed offsets against the partitions' high watermarks, as
// kafka_exporter and `consumer-groups --describe` compute it.
func (b *Broker) collectGroups(gauge func(*prometheus.Desc, float64, ...string), perPartition bool) {
	for _, gs := range b.groups.List() {
		gauge(descGroupMembers, float64(len(b.groups.Describe(gs.ID).Members)), gs.ID)
		for t, ps := range b.groups.CommittedOffsets(gs.ID, nil) {
			var lagSum int64
			found := false
			for p, fo := range ps {
				l := b.store.Get(t, p)
				if l == nil || !fo.Found || fo.Offset < 0 {
					continue
				}
				lag := max(l.HighWatermark()-fo.Offset, 0)
				lagSum += lag
				found = true
				if perPartition {
					ps := strconv.Itoa(int(p))
					gauge(descGroupCurrent, float64(fo.Offset), gs.ID, t, ps)
					gauge(descGroupLag, float64(lag), gs.ID, t, ps)
				}
			}
			if found && !perPartition {
				gauge(descGroupTopicLag, float64(lagSum), gs.ID, t)
			}
		}
	}
}
