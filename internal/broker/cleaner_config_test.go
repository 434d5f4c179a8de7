package broker

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/storage"
)

func TestCleanerConfigDefaultsAndOverrides(t *testing.T) {
	b := netStartBroker(t)
	got, err := b.cleanerConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := cleanerSettings{Enable: true, Threads: 1, DedupeBufferSize: 128 << 20, IOMaxBytesPerSecond: math.MaxFloat64, Backoff: 15 * time.Second}
	if got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}

	b = netStartBroker(t, "log.cleaner.enable=false", "log.cleaner.threads=3", "log.cleaner.dedupe.buffer.size=1048576",
		"log.cleaner.io.max.bytes.per.second=5e6", "log.cleaner.backoff.ms=250")
	got, err = b.cleanerConfig()
	if err != nil {
		t.Fatal(err)
	}
	want = cleanerSettings{Enable: false, Threads: 3, DedupeBufferSize: 1 << 20, IOMaxBytesPerSecond: 5e6, Backoff: 250 * time.Millisecond}
	if got != want {
		t.Fatalf("overridden %+v, want %+v", got, want)
	}
}

// A broker with a cleaner property Kafka would refuse does not start, and
// says which property.
func TestCleanerConfigRefusesBadValues(t *testing.T) {
	for _, c := range []struct{ props []string }{
		{[]string{"log.cleaner.threads=-1"}},
		{[]string{"log.cleaner.enable=yes"}},
		{[]string{"log.cleaner.backoff.ms=-5"}},
		{[]string{"log.cleaner.dedupe.buffer.size=0"}},
		{[]string{"log.cleaner.io.max.bytes.per.second=fast"}},
		{[]string{"log.cleaner.min.cleanable.ratio=1.5"}},
		{[]string{"log.cleaner.delete.retention.ms=-1"}},
		{[]string{"log.cleaner.min.compaction.lag.ms=10", "log.cleaner.max.compaction.lag.ms=5"}},
	} {
		ld := config.NewLoader()
		ld.Set("log.dirs", t.TempDir(), config.SourceFlag)
		ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
		for _, p := range c.props {
			k, v, _ := strings.Cut(p, "=")
			ld.Set(k, v, config.SourceFlag)
		}
		cfg, err := ld.Resolve()
		if err != nil {
			continue // refused even earlier: fine
		}
		b, err := New(cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			b.Close()
			t.Errorf("%v: broker started", c.props)
			continue
		}
		name, _, _ := strings.Cut(c.props[0], "=")
		if !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), "compaction.lag") {
			t.Errorf("%v: error %q does not name the property", c.props, err)
		}
	}
}

// The compaction topic configs are checked like Kafka's and reach the
// partition's storage.LogConfig, from the topic or the broker default.
func TestCompactionTopicConfigs(t *testing.T) {
	b := netStartBroker(t, "log.cleaner.delete.retention.ms=1234")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	s := kadm.StringPtr
	for _, bad := range []map[string]*string{
		{"min.cleanable.dirty.ratio": s("1.5")},
		{"min.cleanable.dirty.ratio": s("-0.1")},
		{"min.cleanable.dirty.ratio": s("NaN")},
		{"min.compaction.lag.ms": s("-1")},
		{"max.compaction.lag.ms": s("0")},
		{"delete.retention.ms": s("-1")},
		{"min.compaction.lag.ms": s("10"), "max.compaction.lag.ms": s("5")},
	} {
		r, err := adm.CreateTopic(ctx, 1, 1, bad, "bad")
		if err == nil {
			err = r.Err
		}
		if !strings.Contains(err.Error(), kerr.InvalidConfig.Message) {
			t.Errorf("create with %v: %v, want INVALID_CONFIG", bad, err)
		}
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy": s("compact"), "min.cleanable.dirty.ratio": s("0.01"),
		"min.compaction.lag.ms": s("100"), "max.compaction.lag.ms": s("60000"),
	}, "c"); err != nil {
		t.Fatal(err)
	}
	lc := b.store.Get("c", 0).Config()
	want := storage.DefaultLogConfig()
	if !lc.Compact || lc.Delete || lc.MinCleanableRatio != 0.01 || lc.MinCompactionLagMs != 100 || lc.MaxCompactionLagMs != 60000 || lc.DeleteRetentionMs != 1234 {
		t.Fatalf("log config %+v; want compact only, ratio 0.01, lags 100/60000, delete.retention.ms 1234 from the broker default", lc)
	}
	if want.MinCleanableRatio != 0.5 {
		t.Fatalf("storage default ratio %v changed; update this test", want.MinCleanableRatio)
	}

	// Altering to a lag pair that conflicts is refused; a good change applies.
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "min.compaction.lag.ms", Value: s("70000")}}, "c")
	if err == nil {
		err = rs[0].Err
	}
	if err == nil || !strings.Contains(err.Error(), kerr.InvalidConfig.Message) {
		t.Fatalf("min.compaction.lag.ms above max.compaction.lag.ms: %v, want INVALID_CONFIG", err)
	}
	rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "min.cleanable.dirty.ratio", Value: s("0.9")},
		{Op: kadm.SetConfig, Name: "delete.retention.ms", Value: s("10")},
	}, "c")
	if err == nil {
		err = rs[0].Err
	}
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lc = b.store.Get("c", 0).Config()
		if lc.MinCleanableRatio == 0.9 && lc.DeleteRetentionMs == 10 && lc.MinCompactionLagMs == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after alter: %+v", lc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
