// Package console drives the web console of a real `gregor serve` with
// headless Chromium (chromedp), against a broker holding topics, data and
// a kafka-python consumer group that read part of a topic and left. It
// checks what a person would look at — the group's lag and its chart, a
// message's key and value in the browser — and saves a screenshot of
// every page under test/console/artifacts/ (git-ignored; the README's
// screenshots in docs/ are copies).
package console

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/test/testenv"
)

const (
	records  = 300
	consumed = 120 // by the kafka-python group before it leaves
)

// lagging runs a kafka-python 2.0.2 consumer in group billing that reads
// consumed records of orders, commits and closes.
const lagging = `
import sys
from kafka import KafkaConsumer
c = KafkaConsumer("orders", bootstrap_servers=sys.argv[1], group_id="billing",
                  client_id="billing-reporter", auto_offset_reset="earliest",
                  enable_auto_commit=False, max_poll_records=10, consumer_timeout_ms=20000)
want, n = int(sys.argv[2]), 0
while n < want:
    batch = c.poll(timeout_ms=1000, max_records=want - n)
    for recs in batch.values():
        n += len(recs)
c.commit()
c.close()
print(n)
`

func TestConsoleInChromium(t *testing.T) {
	chromium := testenv.Need(t, "apt-get install chromium, or run test/compat/install.sh", "chromium", "chromium-browser", "google-chrome")
	python := testenv.Need(t, "python3 with kafka-python 2.0.2: run test/compat/install.sh", "python3")
	if out, err := exec.Command(python, "-c", "import kafka; print(kafka.__version__)").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("kafka-python not importable (run test/compat/install.sh): %v %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := testenv.Serve(t, "--override", "gregor.console.sample.interval.ms=500")

	// Topics and data: orders (3 partitions) with keyed JSON records and
	// a header, payments (1 partition) with text.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for name, parts := range map[string]int32{"orders": 3, "payments": 1, "clicks": 2} {
		if res, err := adm.CreateTopic(ctx, parts, 1, nil, name); err != nil || res.Err != nil {
			t.Fatalf("create %s: %v %v", name, err, res.Err)
		}
	}
	var recs []*kgo.Record
	for i := range records {
		v, _ := json.Marshal(map[string]any{"id": i, "customer": fmt.Sprintf("c-%d", i), "total": 10 + i})
		recs = append(recs, &kgo.Record{Topic: "orders", Partition: int32(i % 3), Key: []byte(fmt.Sprintf("order-%d", i)), Value: v,
			Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("checkout")}}})
	}
	for i := range 50 {
		recs = append(recs, &kgo.Record{Topic: "payments", Key: []byte(fmt.Sprintf("pay-%d", i)), Value: []byte(fmt.Sprintf("paid %d.00 EUR", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Live traffic while the pages are looked at, for the throughput
	// charts and the topics' message rates.
	live, stopLive := context.WithCancel(ctx)
	liveDone := make(chan struct{})
	defer func() { stopLive(); <-liveDone }()
	go func() {
		defer close(liveDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; live.Err() == nil; i++ {
			batch := make([]*kgo.Record, 0, 20)
			for j := range 20 + 10*(i/20%3) {
				batch = append(batch, &kgo.Record{Topic: "clicks", Value: []byte(fmt.Sprintf(`{"page":"/p/%d"}`, j))})
			}
			_ = cl.ProduceSync(live, batch...).FirstErr()
			select {
			case <-live.Done():
			case <-tick.C:
			}
		}
	}()

	out, err := exec.CommandContext(ctx, python, "-c", lagging, b.Addr, strconv.Itoa(consumed)).CombinedOutput()
	if err != nil {
		t.Fatalf("kafka-python consumer: %v\n%s", err, out)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if n < consumed {
		t.Fatalf("kafka-python consumer read %q records, want %d", out, consumed)
	}
	wantLag := records - n
	// The console shows what Kafka's own tool shows.
	describe := b.Run(t, "consumer-groups", "--bootstrap-server", b.Addr, "--describe", "--group", "billing")
	cliLag := 0
	for _, line := range strings.Split(describe, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == "billing" {
			l, _ := strconv.Atoi(f[5])
			cliLag += l
		}
	}
	if cliLag != wantLag {
		t.Fatalf("consumer-groups --describe totals lag %d, want %d:\n%s", cliLag, wantLag, describe)
	}

	// A group with a live member, to show members and assignments.
	member, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup("click-counters"), kgo.ConsumeTopics("clicks"),
		kgo.ClientID("click-counter-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	memberCtx, memberStop := context.WithCancel(ctx)
	memberDone := make(chan struct{})
	defer func() { memberStop(); <-memberDone }()
	go func() {
		defer close(memberDone)
		for memberCtx.Err() == nil {
			member.PollFetches(memberCtx)
		}
	}()

	artifacts, _ := filepath.Abs("artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	step := func(name string) (context.Context, context.CancelFunc) {
		return context.WithTimeout(bctx, 30*time.Second)
	}
	// Steps share the tab; the first Run starts the browser, with no
	// timeout of its own (chromedp's rule).
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	do := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := step(name)
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, scancel := step(sel)
		defer scancel()
		q, _ := json.Marshal(sel)
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%s) || {innerText: "(missing)"}).innerText`, q)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	poll := func(what, expr string, timeout time.Duration) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, timeout+5*time.Second)
		defer scancel()
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		sctx, scancel := step(name)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	time.Sleep(2 * time.Second) // samples of the live traffic

	// Overview: the cluster id, and the throughput chart drawn.
	do("overview", chromedp.Navigate(b.HTTP+"/"), chromedp.WaitVisible(css("#cluster-id")))
	poll("the throughput chart", `document.querySelector("#throughput-chart canvas") !== null`, 15*time.Second)
	clusterID := text("#cluster-id")
	shot("overview")
	if len(strings.TrimSpace(clusterID)) < 20 {
		t.Errorf("overview shows cluster id %q", clusterID)
	}

	// Topics: both listed.
	do("topics", chromedp.Navigate(b.HTTP+"/topics"), chromedp.WaitVisible(css("#topics")))
	topics := text("#topics")
	shot("topics")
	if !strings.Contains(topics, "orders") || !strings.Contains(topics, "payments") {
		t.Errorf("topics page:\n%s", topics)
	}
	for _, line := range strings.Split(topics, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "clicks" && (strings.HasPrefix(f[len(f)-1], "0.0/s") || !strings.HasSuffix(f[len(f)-1], "/s")) {
			t.Errorf("topics page shows no message rate for clicks, which is being produced to: %q", line)
		}
		if len(f) > 0 && f[0] == "orders" && strings.Contains(line, " 0 B") {
			t.Errorf("topics page shows orders empty: %q", line)
		}
	}

	// A topic's message browser, seeking partition 1 from offset 0: the
	// first message there is order-1, its JSON value pretty-printed.
	do("topic", chromedp.Navigate(b.HTTP+"/topics/orders?partition=1&offset=0&limit=5"),
		chromedp.WaitVisible(css("#message-table")))
	poll("the topic's rate chart", `document.querySelector(".chart canvas") !== null`, 15*time.Second)
	first := "#message-table tbody tr:first-child "
	key, value, headers, parts := text(first+"td.key"), text(first+"td.value"), text(first+"td.headers"), text("#partitions")
	shot("topic")
	if strings.TrimSpace(key) != "order-1" {
		t.Errorf("first message key %q, want order-1", key)
	}
	if !strings.Contains(value, `"customer": "c-1"`) || !strings.Contains(value, `"id": 1,`) {
		t.Errorf("first message value %q: want order 1's JSON, pretty-printed", value)
	}
	if !strings.Contains(headers, "source") || !strings.Contains(headers, "checkout") {
		t.Errorf("first message headers %q", headers)
	}
	if !strings.Contains(parts, "100") {
		t.Errorf("partitions table lacks the end offsets (100 each):\n%s", parts)
	}

	// Seek by timestamp through the form: a time before everything shows
	// the first message of the chosen partition.
	do("seek", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => {
			const f = document.querySelector("form.browse");
			f.elements.offset.value = "";
			f.elements.timestamp.value = "2000-01-01T00:00:00Z";
			f.elements.partition.value = "2";
			return true;
		})()`)(ctx, tg)
		return err
	}), chromedp.Click(css(`form.browse button`)))
	poll("order-2 after seeking partition 2 by timestamp",
		`(document.querySelector("#message-table tbody tr:first-child td.key") || {innerText: ""}).innerText.trim() === "order-2"`, 10*time.Second)

	// Hex display.
	do("hex", chromedp.Navigate(b.HTTP+"/topics/payments?partition=0&offset=3&limit=1&format=hex"),
		chromedp.WaitVisible(css("#message-table")))
	hexValue := text(first + "td.value")
	if !strings.Contains(hexValue, "70 61 69 64") { // "paid"
		t.Errorf("hex value %q", hexValue)
	}

	// Groups: billing listed, Empty, with its lag.
	do("groups", chromedp.Navigate(b.HTTP+"/groups"), chromedp.WaitVisible(css("#groups")))
	groups := text("#groups")
	shot("groups")
	if !strings.Contains(groups, "billing") || !strings.Contains(groups, "Empty") || !strings.Contains(groups, strconv.Itoa(wantLag)) {
		t.Errorf("groups page lacks billing, Empty, lag %d:\n%s", wantLag, groups)
	}

	// The group: the lag a person reads, per partition, and the chart
	// with samples in it.
	do("group", chromedp.Navigate(b.HTTP+"/groups/billing"), chromedp.WaitVisible(css("#group-lag-total")))
	// The chart redraws every 10 s; reload once samples have accumulated.
	time.Sleep(1500 * time.Millisecond)
	do("group reload", chromedp.Navigate(b.HTTP+"/groups/billing"), chromedp.WaitVisible(css("#group-lag-total")))
	poll("the lag chart with samples", `Number(document.querySelector("#lag-chart").dataset.points || 0) >= 2 && document.querySelector("#lag-chart canvas") !== null`, 20*time.Second)
	lagTotal, lagTable := text("#group-lag-total"), text("#lag-table")
	shot("group")
	if strings.TrimSpace(lagTotal) != strconv.Itoa(wantLag) {
		t.Errorf("group page shows total lag %q, want %d (consumer-groups --describe)", lagTotal, wantLag)
	}
	if !strings.Contains(lagTable, "orders") {
		t.Errorf("lag table:\n%s", lagTable)
	}
	t.Logf("lag %s; screenshots in %s", strings.TrimSpace(lagTotal), artifacts)

	// A live group: its member, with the client id and the partitions
	// assigned to it.
	var members string
	for deadline := time.Now().Add(20 * time.Second); ; {
		do("live group", chromedp.Navigate(b.HTTP+"/groups/click-counters"), chromedp.WaitVisible(css("#group-state")))
		if members = text("#members"); strings.TrimSpace(text("#group-state")) == "Stable" && strings.Contains(members, "clicks: 0,1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("click-counters never showed Stable with its member:\n%s", members)
		}
		time.Sleep(500 * time.Millisecond)
	}
	shot("group-live")
	if !strings.Contains(members, "click-counter-1") || !strings.Contains(members, "clicks: 0,1") {
		t.Errorf("members of click-counters:\n%s", members)
	}

	// Read-only by default: admin actions are refused.
	sctx, scancel := step("read-only")
	defer scancel()
	forms, err := chromedp.Run(sctx, chromedp.Evaluate[int](`document.querySelectorAll("form.admin").length`))
	if err != nil {
		t.Fatal(err)
	}
	if forms != 0 {
		t.Errorf("%d admin forms shown with gregor.console.admin.enable=false", forms)
	}
}
