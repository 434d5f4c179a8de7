package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// One Metadata request naming more missing topics than one CreateTopics
// may create (gregor.max.partitions.per.request) creates none of them and
// answers POLICY_VIOLATION at once; a request within the limit still
// auto-creates.
func TestMetadataAutoCreateLimit(t *testing.T) {
	b := netStartBroker(t, "gregor.max.partitions.per.request=100")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ask := func(n int, prefix string) *kmsg.MetadataResponse {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		for i := 0; i < n; i++ {
			rt := kmsg.NewMetadataRequestTopic()
			name := fmt.Sprintf("%s-%d", prefix, i)
			rt.Topic = &name
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := ask(101, "many")
	for _, rt := range resp.Topics {
		if rt.ErrorCode != kerr.PolicyViolation.Code {
			t.Fatalf("topic %s: %v, want POLICY_VIOLATION", *rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
	if n := len(b.catalog.all()); n != 0 {
		t.Fatalf("%d topics created by a refused request", n)
	}
	resp = ask(100, "few")
	for _, rt := range resp.Topics {
		if rt.ErrorCode != 0 {
			t.Fatalf("topic %s within the limit: %v", *rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
	if n := len(b.catalog.all()); n != 100 {
		t.Fatalf("%d topics auto-created, want 100", n)
	}
}
