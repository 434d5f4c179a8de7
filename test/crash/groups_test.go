package crash

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/test/testenv"
)

// TestGroupStateSurvivesKill commits offsets with a live group, kills the
// broker with SIGKILL, and checks after the restart that the committed
// offsets and the group's membership metadata are intact, and that the
// member carries on in its generation without rejoining from scratch.
func TestGroupStateSurvivesKill(t *testing.T) {
	root := t.TempDir()
	s := &server{t: t, bin: buildBinary(t), dir: filepath.Join(root, "data"), addr: testenv.FreeAddr(t)}
	s.start()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.kill()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	pc, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.DefaultProduceTopic("gk"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	adm := kadm.NewClient(pc)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "gk"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 0; i < 90; i++ {
		recs = append(recs, &kgo.Record{Value: []byte{byte(i)}})
	}
	if err := pc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cc, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ConsumerGroup("gk-group"), kgo.ConsumeTopics("gk"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	got := 0
	for got < 60 {
		fs := cc.PollRecords(ctx, 60-got)
		if ctx.Err() != nil {
			t.Fatal("timed out consuming")
		}
		got += len(fs.Records())
	}
	if err := cc.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := adm.DescribeGroups(ctx, "gk-group")
	if err != nil {
		t.Fatal(err)
	}
	want, err := adm.FetchOffsets(ctx, "gk-group")
	if err != nil {
		t.Fatal(err)
	}

	s.kill()
	s.start()
	defer s.stop()

	after, err := adm.DescribeGroups(ctx, "gk-group")
	if err != nil {
		t.Fatal(err)
	}
	b, a := before["gk-group"], after["gk-group"]
	if a.State != "Stable" || len(a.Members) != len(b.Members) || a.Members[0].MemberID != b.Members[0].MemberID {
		t.Fatalf("group after kill -9: state %s members %+v; before: %+v", a.State, a.Members, b.Members)
	}
	if a.Members[0].ClientHost != b.Members[0].ClientHost || a.Members[0].ClientID != b.Members[0].ClientID {
		t.Fatalf("member metadata changed: %+v vs %+v", a.Members[0], b.Members[0])
	}
	gotOffsets, err := adm.FetchOffsets(ctx, "gk-group")
	if err != nil {
		t.Fatal(err)
	}
	want.Each(func(o kadm.OffsetResponse) {
		g, ok := gotOffsets.Lookup("gk", o.Partition)
		if !ok || g.At != o.At {
			t.Errorf("partition %d committed %d before the kill, %d after", o.Partition, o.At, g.At)
		}
	})

	// The member keeps consuming where it committed.
	for got < 90 {
		fs := cc.PollRecords(ctx, 90-got)
		if ctx.Err() != nil {
			t.Fatalf("after restart consumed %d of 90", got)
		}
		got += len(fs.Records())
	}
	if err := cc.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit after restart: %v", err)
	}
	lag, err := adm.Lag(ctx, "gk-group")
	if err != nil {
		t.Fatal(err)
	}
	if l := lag["gk-group"].Lag.Total(); l != 0 {
		t.Fatalf("lag %d after consuming everything", l)
	}
}
