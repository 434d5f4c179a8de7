package cli_test

// Shared test helpers: an embedded broker per test, a runner that drives
// the command line in-process through cli.Run, and golden files holding a
// transcript of commands with their stdout, stderr and exit code. Values
// that change from run to run (broker address, topic and member ids,
// timestamps, measured rates) are masked before comparing. Regenerate with
//
//	go test ./internal/cli/ -update

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
	"github.com/gregorhq/gregor/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func newBroker(t *testing.T) *gregor.Broker {
	t.Helper()
	b, err := gregor.Start(gregor.Options{
		Dir:        t.TempDir(),
		Properties: map[string]string{"group.initial.rebalance.delay.ms": "0"},
	})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newClient(t *testing.T, b *gregor.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// result is one command's outcome.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// session runs commands against one broker and records a transcript.
type session struct {
	t     *testing.T
	b     *gregor.Broker
	tr    strings.Builder
	paths map[string]string // text to mask, such as temp file names
}

func newSession(t *testing.T, b *gregor.Broker) *session { return &session{t: t, b: b} }

// run executes "gregor args..." with the broker as bootstrap server
// (unless the args name one) and records it in the transcript.
func (s *session) run(args ...string) result {
	return s.runIn("", args...)
}

func (s *session) runIn(stdin string, args ...string) result {
	s.t.Helper()
	full := args
	if !hasFlag(args, "--bootstrap-server") && !hasFlag(args, "--broker-list") && !hasFlag(args, "--producer-props") && len(args) > 0 && args[0] != "--help" && args[0] != "dump-log" {
		full = append(append([]string{}, args...), "--bootstrap-server", s.b.Addr())
	}
	r := runCLI(s.t, context.Background(), stdin, full...)
	r.args = args
	s.record(r, stdin)
	return r
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func (s *session) record(r result, stdin string) {
	quoted := make([]string, len(r.args))
	for i, a := range r.args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"|*$\\[]") {
			a = "'" + strings.ReplaceAll(a, "\t", `\t`) + "'"
		}
		quoted[i] = a
	}
	fmt.Fprintf(&s.tr, "$ gregor %s\n", strings.Join(quoted, " "))
	if stdin != "" {
		fmt.Fprintf(&s.tr, "[stdin]\n%s", stdin)
		if !strings.HasSuffix(stdin, "\n") {
			s.tr.WriteString("\n")
		}
	}
	if r.stdout != "" {
		fmt.Fprintf(&s.tr, "[stdout]\n%s", r.stdout)
		if !strings.HasSuffix(r.stdout, "\n") {
			s.tr.WriteString("⏎\n") // output without a final newline
		}
	}
	if r.stderr != "" {
		fmt.Fprintf(&s.tr, "[stderr]\n%s", r.stderr)
		if !strings.HasSuffix(r.stderr, "\n") {
			s.tr.WriteString("⏎\n")
		}
	}
	fmt.Fprintf(&s.tr, "[exit %d]\n\n", r.code)
}

// runCLI runs the command line in-process.
func runCLI(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{args: args, stdout: out.String(), stderr: errb.String(), code: code}
}

// masks replace what differs between runs.
var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`TopicId: [A-Za-z0-9_-]{22}`), "TopicId: <TOPIC-ID>"},
	{regexp.MustCompile(`"id": "[A-Za-z0-9_-]{22}"`), `"id": "<TOPIC-ID>"`},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<UUID>"},
	{regexp.MustCompile(`(CreateTime|LogAppendTime):\d+`), "$1:<TS>"},
	{regexp.MustCompile(`console-consumer-\d+\b`), "console-consumer-<N>"},
	{regexp.MustCompile(`perf-consumer-\d+\b`), "perf-consumer-<N>"},
	{regexp.MustCompile(`"port": \d+`), `"port": <PORT>`},
	{regexp.MustCompile(`"log_dirs":\["/[^"]*"\]`), `"log_dirs":["<LOG-DIR>"]`},
}

// maskText has mask replace text with the placeholder.
func (s *session) maskText(text, placeholder string) {
	if s.paths == nil {
		s.paths = map[string]string{}
	}
	s.paths[text] = placeholder
}

func (s *session) mask(text string) string {
	text = strings.ReplaceAll(text, s.b.Addr(), "<BROKER>")
	for k, v := range s.paths {
		text = strings.ReplaceAll(text, k, v)
	}
	for _, m := range masks {
		text = m.re.ReplaceAllString(text, m.with)
	}
	return text
}

// golden compares the masked transcript with testdata/<name>.golden.
func (s *session) golden(name string) {
	s.t.Helper()
	checkGolden(s.t, name, s.mask(s.tr.String()))
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n%s", path, diffLines(string(want), got))
	}
}

// diffLines shows the first lines that differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 15; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// produce sends values to topic partition p with kgo.
func produce(t *testing.T, b *gregor.Broker, topic string, p int32, values ...string) {
	t.Helper()
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

func mustOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("gregor %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	}
}
