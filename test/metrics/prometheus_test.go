// Package metrics has a real Prometheus scrape a real `gregor serve` and
// compares what PromQL says with what Kafka's tools report: the message
// rate of producer-perf-test and the lag of consumer-groups --describe.
//
// GREGOR_PROM_RATE_WINDOW sets the rate() window (default 15s, so the test
// takes about half a minute); with 1m the producer runs 70 s and the query
// is exactly the dashboards' rate(...[1m]).
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gregorhq/gregor/test/testenv"
)

const hint = "apt-get install prometheus, or run test/compat/install.sh"

// startPrometheus scrapes target every second and returns its base URL.
func startPrometheus(t *testing.T, target string) string {
	bin := testenv.Need(t, hint, "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gregor
    static_configs:
      - targets: [%q]
`, target)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	testenv.Start(t, "prometheus", bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	base := "http://" + addr
	testenv.WaitHTTP(t, base+"/-/ready", 60*time.Second)
	return base
}

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant PromQL query evaluated at at.
func query(t *testing.T, base, q string, at time.Time) []promResult {
	t.Helper()
	u := base + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Error  string
		Data   struct{ Result []promResult }
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s %s", q, err, r.Error, body)
	}
	return r.Data.Result
}

func (r promResult) float(t *testing.T) float64 {
	s, _ := r.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("value %v: %v", r.Value, err)
	}
	return v
}

func TestPrometheusScrapesGregor(t *testing.T) {
	testenv.Need(t, hint, "prometheus")
	window := 15 * time.Second
	if w := os.Getenv("GREGOR_PROM_RATE_WINDOW"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			t.Fatal(err)
		}
		window = d
	}
	b := testenv.Serve(t)
	prom := startPrometheus(t, strings.TrimPrefix(b.HTTP, "http://"))

	b.Run(t, "topics", "--bootstrap-server", b.Addr, "--create", "--topic", "perf", "--partitions", "3")

	// A steady, throttled producer for the window plus margins on both
	// sides; the query's window lies inside the run.
	const rate = 2000
	run := window + 10*time.Second
	began := time.Now()
	out := b.Run(t, "producer-perf-test", "--topic", "perf", "--num-records", strconv.Itoa(int(run.Seconds())*rate),
		"--record-size", "100", "--throughput", strconv.Itoa(rate), "--producer-props", "bootstrap.servers="+b.Addr, "acks=all")
	ended := time.Now()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := regexp.MustCompile(`^(\d+) records sent, ([\d.]+) records/sec`).FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("producer-perf-test output:\n%s", out)
	}
	reported, _ := strconv.ParseFloat(m[2], 64)
	t.Logf("producer-perf-test: %s records in %s, %.1f records/sec", m[1], ended.Sub(began).Round(time.Millisecond), reported)

	// Evaluate one scrape before the producer finished, so the window
	// holds only steady producing.
	at := ended.Add(-1500 * time.Millisecond)
	time.Sleep(2 * time.Second) // let the last scrapes land
	q := fmt.Sprintf(`rate(kafka_server_brokertopicmetrics_messagesin_total{topic="perf"}[%s])`, promDuration(window))
	res := query(t, prom, q, at)
	if len(res) != 1 {
		t.Fatalf("%s: %d series, want 1: %+v", q, len(res), res)
	}
	got := res[0].float(t)
	t.Logf("%s = %.1f", q, got)
	if math.Abs(got-reported)/reported > 0.10 {
		t.Errorf("Prometheus rate %.1f/s vs producer-perf-test %.1f/s: more than 10%% apart", got, reported)
	}
	// The broker-wide series (no topic label, as the JMX exporter has it)
	// agrees.
	all := query(t, prom, fmt.Sprintf(`rate(kafka_server_brokertopicmetrics_messagesin_total{topic=""}[%s])`, promDuration(window)), at)
	if len(all) != 1 || math.Abs(all[0].float(t)-got) > 0.01*got {
		t.Errorf("broker-wide messagesin rate %+v, topic rate %.1f", all, got)
	}

	// A group that committed part of the topic and is gone: the lag
	// Prometheus scraped is the lag consumer-groups --describe shows.
	b.Run(t, "consumer-groups", "--bootstrap-server", b.Addr, "--group", "reporting", "--topic", "perf",
		"--reset-offsets", "--to-offset", "1000", "--execute")
	time.Sleep(2500 * time.Millisecond) // two scrapes
	describe := b.Run(t, "consumer-groups", "--bootstrap-server", b.Addr, "--describe", "--group", "reporting")
	want := map[string]float64{}
	for _, line := range strings.Split(describe, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == "reporting" && f[1] == "perf" {
			lag, err := strconv.ParseFloat(f[5], 64)
			if err != nil {
				t.Fatalf("describe line %q", line)
			}
			want[f[2]] = lag
		}
	}
	if len(want) != 3 {
		t.Fatalf("consumer-groups --describe:\n%s", describe)
	}
	lags := query(t, prom, `kafka_consumergroup_lag{consumergroup="reporting",topic="perf"}`, time.Now())
	if len(lags) != 3 {
		t.Fatalf("kafka_consumergroup_lag: %+v", lags)
	}
	for _, r := range lags {
		p := r.Metric["partition"]
		if got := r.float(t); got != want[p] {
			t.Errorf("partition %s: kafka_consumergroup_lag %v, consumer-groups --describe LAG %v", p, got, want[p])
		}
	}
	t.Logf("consumer-groups --describe:\n%s", describe)

	// What Prometheus scraped passes promtool's lint.
	promtool := testenv.Need(t, hint, "promtool")
	resp, err := http.Get(b.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = resp.Body
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// promDuration formats d as PromQL wants it (whole seconds).
func promDuration(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) + "s" }
