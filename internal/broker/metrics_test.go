package broker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/internal/config"
)

// scrape gathers the broker's metrics as /metrics would serve them.
func scrape(t *testing.T, b *Broker) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the value of the series of name whose labels include want
// (label=value pairs); ok is false if there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsProduceConsumeAndLag(t *testing.T) {
	b := fetchTestBroker(t)
	ctx := fetchTestCtx(t)
	cl := fetchTestClient(t, b, kgo.ConsumeTopics("orders"), kgo.DefaultProduceTopic("orders"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	fetchCreateTopic(t, cl, "orders", 2)

	var recs []*kgo.Record
	var sent int
	for i := range 100 {
		r := &kgo.Record{Value: []byte(strings.Repeat("x", 100)), Partition: int32(i % 2)}
		recs = append(recs, r)
		sent += 100
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < 100 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	// A group that has read 30 of partition 0's 50 records and nothing of
	// partition 1 commits, then goes away: lag 20 and 50.
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 30, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "orders", Partition: 1, At: 0, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "billing", offs); err != nil {
		t.Fatal(err)
	}

	mfs := scrape(t, b)
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		v, ok := value(mfs, name, labels...)
		if !ok {
			t.Errorf("%s%v: no series", name, labels)
		} else if v != want {
			t.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
	}
	atLeast := func(name string, floor float64, labels ...string) {
		t.Helper()
		v, ok := value(mfs, name, labels...)
		if !ok || v < floor {
			t.Errorf("%s%v = %v (present %v), want >= %v", name, labels, v, ok, floor)
		}
	}
	check("kafka_server_brokertopicmetrics_messagesin_total", 100, "topic", "orders")
	check("kafka_server_brokertopicmetrics_messagesin_total", 100, "topic", "")
	atLeast("kafka_server_brokertopicmetrics_bytesin_total", float64(sent), "topic", "orders")
	atLeast("kafka_server_brokertopicmetrics_bytesout_total", float64(sent), "topic", "orders")
	atLeast("kafka_server_brokertopicmetrics_totalproducerequests_total", 1, "topic", "orders")
	atLeast("kafka_network_requestmetrics_requests_total", 1, "request", "Produce")
	atLeast("kafka_network_requestmetrics_requests_total", 1, "request", "FetchConsumer")
	atLeast("kafka_network_requestmetrics_totaltimems", 1, "request", "Produce")
	atLeast("kafka_log_log_size", 50*100, "topic", "orders", "partition", "0")
	check("kafka_log_log_logendoffset", 50, "topic", "orders", "partition", "1")
	check("kafka_consumergroup_current_offset", 30, "consumergroup", "billing", "topic", "orders", "partition", "0")
	check("kafka_consumergroup_lag", 20, "consumergroup", "billing", "topic", "orders", "partition", "0")
	check("kafka_consumergroup_lag", 50, "consumergroup", "billing", "topic", "orders", "partition", "1")
	check("kafka_controller_kafkacontroller_activecontrollercount", 1)
	check("kafka_server_replicamanager_underreplicatedpartitions", 0)
	check("kafka_topic_partitions", 2, "topic", "orders")
	parts, _ := value(mfs, "kafka_server_replicamanager_partitioncount")
	leaders, _ := value(mfs, "kafka_server_replicamanager_leadercount")
	if parts < 2 || leaders != parts {
		t.Errorf("partitioncount %v, leadercount %v: want >= 2 and equal", parts, leaders)
	}
	atLeast("gregor_storage_fsync_seconds", 1)
	atLeast("gregor_storage_group_commit_batch_size", 1)

	// The exposition is what Prometheus's own checker accepts.
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	names := make([]string, 0, len(mfs))
	for n := range mfs {
		names = append(names, n)
	}
	for _, n := range names {
		if err := enc.Encode(mfs[n]); err != nil {
			t.Fatal(err)
		}
	}
	promtoolCheck(t, buf.Bytes())
}

func TestMetricsWithoutPartitionLabels(t *testing.T) {
	b := fetchTestBroker(t, "gregor.metrics.partition.labels", "false")
	ctx := fetchTestCtx(t)
	cl := fetchTestClient(t, b, kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetchCreateTopic(t, cl, "t", 4)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 0, LeaderEpoch: -1})
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, "g", offs); err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, b)
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == "partition" {
					t.Errorf("%s has a partition label with gregor.metrics.partition.labels=false", name)
				}
			}
		}
	}
	if v, ok := value(mfs, "kafka_log_log_size", "topic", "t"); !ok || v <= 0 {
		t.Errorf("kafka_log_log_size{topic=t} = %v, %v: want the topic's total", v, ok)
	}
	if v, ok := value(mfs, "kafka_consumergroup_lag", "consumergroup", "g", "topic", "t"); !ok || v != 1 {
		t.Errorf("kafka_consumergroup_lag{g,t} = %v, %v: want the topic's lag, 1", v, ok)
	}
}

// promtoolCheck runs `promtool check metrics` when promtool is installed
// (test/compat/install.sh installs it; in CI its absence fails).
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (run test/compat/install.sh)")
		}
		t.Log("promtool not installed; skipping `promtool check metrics` (apt-get install prometheus)")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// logCapture keeps the messages and api attributes of log records.
type logCapture struct {
	mu   sync.Mutex
	recs []string // "LEVEL msg api"
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	api := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "api" {
			api = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, r.Level.String()+" "+r.Message+" "+api)
	l.mu.Unlock()
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }
func (l *logCapture) count(entry string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r == entry {
			n++
		}
	}
	return n
}

// The request log: slow requests at INFO above the threshold, every
// request at DEBUG with threshold 0, none below the threshold.
func TestSlowRequestLog(t *testing.T) {
	for _, tc := range []struct {
		slowMs       string
		want, notLog string
	}{
		{"0", "DEBUG request Produce", "INFO slow request Produce"},
		{"600000", "", "INFO slow request Produce"},
	} {
		lc := &logCapture{}
		ld := config.NewLoader()
		ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
		ld.Set("advertised.listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
		ld.Set("log.dirs", t.TempDir(), config.SourceFlag)
		ld.Set("gregor.request.log.slow.ms", tc.slowMs, config.SourceFlag)
		cfg, err := ld.Resolve()
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(cfg, slog.New(lc))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		cl := fetchTestClient(t, b, kgo.DefaultProduceTopic("slow"), kgo.AllowAutoTopicCreation())
		if err := cl.ProduceSync(fetchTestCtx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		b.Close()
		if tc.want != "" && lc.count(tc.want) == 0 {
			t.Errorf("gregor.request.log.slow.ms=%s: no %q record", tc.slowMs, tc.want)
		}
		if lc.count(tc.notLog) != 0 {
			t.Errorf("gregor.request.log.slow.ms=%s: a fast request logged as %q", tc.slowMs, tc.notLog)
		}
	}
	// A request slower than the threshold: a JoinGroup waits out the
	// initial rebalance delay.
	lc := &logCapture{}
	ld := config.NewLoader()
	ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	ld.Set("advertised.listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	ld.Set("log.dirs", t.TempDir(), config.SourceFlag)
	ld.Set("gregor.request.log.slow.ms", "100", config.SourceFlag)
	ld.Set("group.initial.rebalance.delay.ms", "300", config.SourceFlag)
	cfg, _ := ld.Resolve()
	b, err := New(cfg, slog.New(lc))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl := fetchTestClient(t, b, kgo.ConsumerGroup("slowpokes"), kgo.ConsumeTopics("slow"), kgo.AllowAutoTopicCreation())
	pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
	cl.PollRecords(pctx, 1) // joins, waiting ~300 ms for the rebalance delay
	pcancel()
	deadline := time.Now().Add(10 * time.Second)
	for lc.count("INFO slow request JoinGroup") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if lc.count("INFO slow request JoinGroup") == 0 {
		t.Error("a JoinGroup that waited 300 ms was not logged as slow (threshold 100 ms)")
	}
	// A long poll that waits as long as it asked to is not slow: idle
	// consumers (franz-go waits 5 s by default) would otherwise fill the log.
	fc := fetchTestClient(t, b, kgo.ConsumeTopics("slow"), kgo.FetchMaxWait(400*time.Millisecond))
	fctx, fcancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	fc.PollFetches(fctx) // nothing to read: long polls of 400 ms
	fcancel()
	if n := lc.count("INFO slow request Fetch"); n != 0 {
		t.Errorf("%d idle long polls logged as slow", n)
	}
}

// The log cleaner's metrics, under the JMX exporter's names of Kafka's
// LogCleaner and LogCleanerManager gauges: after a compacted topic with
// many updates of few keys is cleaned, they show the pass.
func TestMetricsLogCleaner(t *testing.T) {
	b := fetchTestBroker(t, "log.cleaner.backoff.ms", "50")
	ctx := fetchTestCtx(t)
	cl := fetchTestClient(t, b, kgo.DefaultProduceTopic("c"))
	cfg := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"} {
		cfg[k] = kadm.StringPtr(v)
	}
	if res, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, cfg, "c"); err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	mfs := scrape(t, b)
	if v, ok := value(mfs, "kafka_log_logcleaner_deadthreadcount"); !ok || v != 0 {
		t.Fatalf("deadthreadcount = %v, %v; want 0", v, ok)
	}
	if v, _ := value(mfs, "gregor_log_cleaner_passes_total"); v != 0 {
		t.Fatalf("%v passes before anything was written", v)
	}
	for i := 0; i < 400; i++ {
		r := &kgo.Record{Key: []byte(strings.Repeat("k", 1+i%4)), Value: bytes.Repeat([]byte("v"), 100)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mfs = scrape(t, b)
		if v, _ := value(mfs, "gregor_log_cleaner_passes_total"); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cleaning pass within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	read, _ := value(mfs, "gregor_log_cleaner_records_read_total")
	kept, _ := value(mfs, "gregor_log_cleaner_records_kept_total")
	if read == 0 || kept == 0 || kept >= read {
		t.Errorf("records read %v, kept %v: want some of many updates of 4 keys dropped", read, kept)
	}
	if v, ok := value(mfs, "kafka_log_logcleaner_cleaner_recopy_percent"); !ok || v <= 0 || v >= 100 {
		t.Errorf("cleaner_recopy_percent = %v, %v; want between 0 and 100", v, ok)
	}
	if v, ok := value(mfs, "kafka_log_logcleaner_max_buffer_utilization_percent"); !ok || v <= 0 {
		t.Errorf("max_buffer_utilization_percent = %v, %v; want > 0", v, ok)
	}
	if v, ok := value(mfs, "kafka_log_logcleanermanager_time_since_last_run_seconds"); !ok || v > 20 {
		t.Errorf("time_since_last_run_seconds = %v, %v", v, ok)
	}
	if v, ok := value(mfs, "kafka_log_logcleanermanager_max_dirty_percent"); !ok || v < 0 || v > 100 {
		t.Errorf("max_dirty_percent = %v, %v", v, ok)
	}
	if v, ok := value(mfs, "kafka_log_logcleanermanager_uncleanable_partitions"); !ok || v != 0 {
		t.Errorf("uncleanable_partitions = %v, %v; want 0", v, ok)
	}
}
