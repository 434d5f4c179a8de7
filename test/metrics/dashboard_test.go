package metrics

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/gregorhq/gregor/test/testenv"
)

// The shipped Grafana dashboard is well-formed and queries only metric
// names that gregor serves, once it has a topic, traffic and a group.
func TestGrafanaDashboardQueriesServedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/gregor.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/gregor.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}

	b := testenv.Serve(t)
	b.Run(t, "producer-perf-test", "--topic", "dash", "--num-records", "1000", "--record-size", "100",
		"--throughput", "-1", "--producer-props", "bootstrap.servers="+b.Addr)
	b.Run(t, "consumer-perf-test", "--bootstrap-server", b.Addr, "--topic", "dash", "--messages", "500", "--group", "dash-readers")
	b.Run(t, "consumer-groups", "--bootstrap-server", b.Addr, "--group", "dash-readers", "--topic", "dash",
		"--reset-offsets", "--to-offset", "500", "--execute")

	resp, err := http.Get(b.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	served := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		// "# TYPE name kind": histograms and summaries also serve
		// name_bucket/_sum/_count.
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					served[f[2]+s] = true
				}
			}
		}
	}
	name := regexp.MustCompile(`\b(?:kafka|gregor|go|process)_[a-z0-9_]+\b`)
	seen := 0
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			seen++
			if !served[n] {
				t.Errorf("dashboard queries %s, which /metrics does not serve (in %s)", n, e)
			}
		}
	}
	if seen < 20 {
		t.Errorf("only %d metric references found in %d queries", seen, len(exprs))
	}
}
