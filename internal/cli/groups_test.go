package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

// commitGroup has group g commit offset `at` on topic/partition, as a
// consumer that read that far and stopped (kafka-python's commit()).
func commitGroup(t *testing.T, b *gregor.Broker, g, topic string, p int32, at int64) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, g, os); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// TestGroupLag is the seed's scenario: 10 records, a group that consumed
// and committed 4, then left. --describe must show LAG 6.
func TestGroupLag(t *testing.T) {
	b := newBroker(t)
	produce(t, b, "consumer_test", 0, "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")

	// A real group member reads 4 records, commits, and leaves.
	cl := newClient(t, b, kgo.ConsumerGroup("test-consumer-group"), kgo.ConsumeTopics("consumer_test"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < 4 {
		fs := cl.PollRecords(ctx, 4-len(got))
		if ctx.Err() != nil {
			t.Fatal("timed out consuming")
		}
		got = append(got, fs.Records()...)
	}
	if err := cl.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	s := newSession(t, b)
	r := s.run("consumer-groups", "--describe", "--group", "test-consumer-group")
	mustOK(t, r)
	fields := strings.Fields(strings.Split(strings.TrimSpace(r.stdout), "\n")[1])
	if len(fields) != 9 || fields[3] != "4" || fields[4] != "10" || fields[5] != "6" {
		t.Fatalf("describe row %q: want CURRENT-OFFSET 4, LOG-END-OFFSET 10, LAG 6\n%s", fields, r.stdout)
	}
	mustOK(t, s.run("consumer-groups", "--list"))
	s.golden("groups_lag")
}

func TestConsumerGroups(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "orders", "--partitions", "3"))
	for p := int32(0); p < 3; p++ {
		produce(t, b, "orders", p, "a", "b", "c", "d", "e")
	}
	commitGroup(t, b, "billing", "orders", 0, 2)
	commitGroup(t, b, "billing", "orders", 1, 5)

	// An active member holding all three partitions.
	assigned := make(chan struct{}, 1)
	active := newClient(t, b, kgo.ConsumerGroup("shipping"), kgo.ConsumeTopics("orders"), kgo.ClientID("shipper"),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			select {
			case assigned <- struct{}{}:
			default:
			}
		}))
	go func() {
		for {
			if fs := active.PollFetches(context.Background()); fs.IsClientClosed() {
				return
			}
		}
	}()
	select {
	case <-assigned:
	case <-time.After(20 * time.Second):
		t.Fatal("the active member got no assignment")
	}

	mustOK(t, s.run("consumer-groups", "--list"))
	mustOK(t, s.run("groups", "--list", "--state"))
	mustOK(t, s.run("groups", "--list", "--state", "stable"))
	mustOK(t, s.run("groups", "--list", "--type"))
	mustOK(t, s.run("groups", "--describe", "--group", "billing"))
	mustOK(t, s.run("groups", "--describe", "--group", "shipping"))
	mustOK(t, s.run("groups", "--describe", "--all-groups"))
	mustOK(t, s.run("groups", "--describe", "--group", "shipping", "--members"))
	mustOK(t, s.run("groups", "--describe", "--group", "shipping", "--members", "--verbose"))
	mustOK(t, s.run("groups", "--describe", "--group", "billing", "--members"))
	mustOK(t, s.run("groups", "--describe", "--group", "shipping", "--state"))
	mustOK(t, s.run("groups", "--describe", "--group", "billing", "--state"))
	s.run("groups", "--describe", "--group", "nosuch")

	// Offset resets.
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders", "--to-earliest"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders:1,2", "--to-latest", "--dry-run"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--all-topics", "--shift-by", "-3", "--dry-run"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--all-topics", "--to-offset", "9", "--dry-run"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders", "--to-datetime", "2000-01-01T00:00:00.000", "--dry-run"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders", "--by-duration", "PT1H", "--dry-run"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders", "--to-current", "--dry-run"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders:0", "--to-offset", "1", "--execute"))
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders", "--to-latest", "--export", "--dry-run"))
	plan := filepath.Join(t.TempDir(), "plan.csv")
	s.maskText(plan, "plan.csv")
	if err := os.WriteFile(plan, []byte("orders,2,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustOK(t, s.run("groups", "--reset-offsets", "--group", "billing", "--from-file", plan, "--execute"))
	mustOK(t, s.run("groups", "--describe", "--group", "billing"))
	s.run("groups", "--reset-offsets", "--group", "shipping", "--topic", "orders", "--to-earliest", "--execute")
	s.run("groups", "--reset-offsets", "--group", "billing", "--topic", "orders", "--execute")
	s.run("groups", "--reset-offsets", "--group", "billing", "--to-earliest", "--execute")

	// JSON.
	mustOK(t, s.run("groups", "--list", "--format", "json"))
	mustOK(t, s.run("groups", "--describe", "--group", "billing", "--format", "json"))

	// Deleting offsets and groups.
	mustOK(t, s.run("groups", "--delete-offsets", "--group", "billing", "--topic", "orders:2"))
	s.run("groups", "--delete", "--group", "shipping")
	mustOK(t, s.run("groups", "--delete", "--group", "billing"))
	mustOK(t, s.run("groups", "--list"))
	s.run("groups", "--describe")
	s.run("groups", "--list", "--state", "sleepy")
	s.golden("groups")
}

func TestGroupsDescribeJSON(t *testing.T) {
	b := newBroker(t)
	produce(t, b, "t", 0, "1", "2", "3")
	commitGroup(t, b, "g", "t", 0, 1)
	r := runCLI(t, context.Background(), "", "groups", "--bootstrap-server", b.Addr(), "--describe", "--group", "g", "--format", "json")
	mustOK(t, r)
	var got []struct {
		Group   string `json:"group"`
		State   string `json:"state"`
		Offsets []struct {
			Topic         *string `json:"topic"`
			CurrentOffset *int64  `json:"current_offset"`
			LogEndOffset  *int64  `json:"log_end_offset"`
			Lag           *int64  `json:"lag"`
			ConsumerID    *string `json:"consumer_id"`
		} `json:"offsets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if len(got) != 1 || got[0].State != "Empty" || len(got[0].Offsets) != 1 {
		t.Fatalf("unexpected: %s", r.stdout)
	}
	o := got[0].Offsets[0]
	if *o.Topic != "t" || *o.CurrentOffset != 1 || *o.LogEndOffset != 3 || *o.Lag != 2 || *o.ConsumerID != "-" {
		t.Fatalf("unexpected offsets: %s", r.stdout)
	}
}
