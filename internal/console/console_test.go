package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

func startConsole(t *testing.T, admin bool) (*httptest.Server, *kadm.Client, *kgo.Client) {
	t.Helper()
	b, err := gregor.Start(gregor.Options{Dir: t.TempDir(), Properties: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := New(Options{Brokers: []string{b.Addr()}, Admin: admin, Version: "test", SampleInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return srv, kadm.NewClient(cl), cl
}

func post(t *testing.T, srv *httptest.Server, path string, form url.Values, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Do not follow the redirect: its query carries the outcome.
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if loc := resp.Header.Get("Location"); loc != "" {
		u, _ := url.Parse(loc)
		if e := u.Query().Get("err"); e != "" {
			return resp.StatusCode, "err: " + e
		}
		return resp.StatusCode, "ok: " + u.Query().Get("ok")
	}
	return resp.StatusCode, string(body)
}

func TestReadOnlyByDefault(t *testing.T) {
	srv, adm, _ := startConsole(t, false)
	code, body := post(t, srv, "/topics", url.Values{"name": {"x"}, "partitions": {"1"}})
	if code != http.StatusForbidden {
		t.Errorf("create topic on a read-only console: %d %s", code, body)
	}
	ctx := context.Background()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("x") {
		t.Error("a read-only console created a topic")
	}
}

func TestAdminActions(t *testing.T) {
	srv, adm, cl := startConsole(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A form posted from another site is refused.
	if code, _ := post(t, srv, "/topics", url.Values{"name": {"evil"}, "partitions": {"1"}}, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", code)
	}

	if _, out := post(t, srv, "/topics", url.Values{"name": {"audit"}, "partitions": {"2"}, "configs": {"retention.ms=3600000"}}); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("create topic: %s", out)
	}
	td, err := adm.ListTopics(ctx, "audit")
	if err != nil || len(td["audit"].Partitions) != 2 {
		t.Fatalf("created topic: %v %+v", err, td)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "audit")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := rc.On("audit", nil); configValue(r, "retention.ms") != "3600000" {
		t.Errorf("retention.ms of the created topic = %q", configValue(r, "retention.ms"))
	}

	if _, out := post(t, srv, "/topics/audit/configs", url.Values{"key": {"retention.ms"}, "value": {"7200000"}}); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("alter config: %s", out)
	}
	rc, _ = adm.DescribeTopicConfigs(ctx, "audit")
	if r, _ := rc.On("audit", nil); configValue(r, "retention.ms") != "7200000" {
		t.Errorf("retention.ms after altering = %q", configValue(r, "retention.ms"))
	}

	var recs []*kgo.Record
	for range 10 {
		recs = append(recs, &kgo.Record{Topic: "audit", Partition: 0, Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, out := post(t, srv, "/topics/audit/delete-records", url.Values{"partition": {"0"}, "before": {"4"}}); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("delete records: %s", out)
	}
	starts, _ := adm.ListStartOffsets(ctx, "audit")
	if o, _ := starts.Lookup("audit", 0); o.Offset != 4 {
		t.Errorf("log start offset after deleting records before 4: %d", o.Offset)
	}

	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "audit", Partition: 0, At: 9, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "auditors", offs); err != nil {
		t.Fatal(err)
	}
	if _, out := post(t, srv, "/groups/auditors/reset-offsets", url.Values{"topic": {"audit"}, "to": {"earliest"}}); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("reset offsets: %s", out)
	}
	fetched, err := adm.FetchOffsets(ctx, "auditors")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := fetched.Lookup("audit", 0); o.At != 4 {
		t.Errorf("committed offset after reset to earliest: %d, want 4", o.At)
	}

	// The group page shows the lag the reset made: 10 - 4 on partition 0.
	resp, err := http.Get(srv.URL + "/groups/auditors")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="group-lag-total">6<`) {
		t.Errorf("group page after reset lacks total lag 6:\n%s", body)
	}
}

func TestShowBytes(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		format string
		kind   string
		text   string
	}{
		{[]byte(`{"a":1}`), "auto", "json", "{\n  \"a\": 1\n}"},
		{[]byte(`{"a":1}`), "text", "utf-8", `{"a":1}`},
		{[]byte("héllo"), "auto", "utf-8", "héllo"},
		{[]byte{0xff, 0x00}, "auto", "hex", "00000000  ff 00                                             |..|\n"},
		{[]byte("ab"), "hex", "hex", "00000000  61 62                                             |ab|\n"},
	} {
		got := show(tc.in, tc.format)
		if got.Kind != tc.kind || got.Text != tc.text {
			t.Errorf("show(%q, %s) = %s %q, want %s %q", tc.in, tc.format, got.Kind, got.Text, tc.kind, tc.text)
		}
	}
	if !show(nil, "auto").Null {
		t.Error("a null key must show as null")
	}
}
