package hardening

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A member whose metadata is too large for __consumer_offsets used to be
// answered OK while the group could not be saved (only a log line said
// so). Now SyncGroup carries Kafka's error and the broker keeps serving
// other groups.
func TestGroupTooLargeToStoreIsAnError(t *testing.T) {
	s := newServer(t)
	s.start()
	defer s.stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.RequestTimeoutOverhead(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	meta := bytes.Repeat([]byte{'m'}, 10<<20)
	join := func(member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID = "huge", member
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta
		req.Protocols = []kmsg.JoinGroupRequestProtocol{p}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		return resp
	}
	r := join("")
	if err := kerr.ErrorForCode(r.ErrorCode); err != kerr.MemberIDRequired {
		t.Fatalf("first join: %v", err)
	}
	r = join(r.MemberID)
	if r.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "huge", r.MemberID, r.Generation
	sa := kmsg.NewSyncGroupRequestGroupAssignment()
	sa.MemberID, sa.MemberAssignment = r.MemberID, []byte{0, 0}
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{sa}
	sr, err := sync.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if err := kerr.ErrorForCode(sr.ErrorCode); err != kerr.UnknownServerError {
		t.Fatalf("sync of a group too large to store: %v, want UNKNOWN_SERVER_ERROR", err)
	}
	if len(sr.MemberAssignment) != 0 {
		t.Fatal("an assignment that was not stored was handed out")
	}

	// A normal consumer group on the same broker works.
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.DefaultProduceTopic("ok"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ConsumerGroup("normal"), kgo.ConsumeTopics("ok"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollRecords(ctx, 1)
	if errs := fs.Errors(); len(errs) > 0 {
		t.Fatalf("normal group: %v", errs)
	}
	if fs.NumRecords() != 1 {
		t.Fatalf("normal group consumed %d records", fs.NumRecords())
	}
}
