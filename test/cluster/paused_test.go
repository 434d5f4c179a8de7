package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterPausedController stops the active controller with SIGSTOP for
// longer than the election timeout plus the broker session timeout:
// another voter must take over, creates must keep working, and only the
// paused broker may be fenced. After
// SIGCONT the old controller must rejoin as a follower, never acknowledge
// a create as a stale leader that the cluster then lacks, and show all the
// metadata created meanwhile.
func TestClusterPausedController(t *testing.T) {
	c := newCluster(t, 3)
	old, epoch := c.activeController(30 * time.Second)
	rest := c.others(old)
	adm := kadm.NewClient(c.client(c.addrs(rest...)))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	want := []string{"before"}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "before"); err != nil {
		t.Fatal(err)
	}

	pausedAt := time.Now()
	old.pause()
	leader, newEpoch := c.activeController(20 * time.Second)
	if newEpoch <= epoch {
		t.Fatalf("node %d leads at epoch %d after node %d (epoch %d) was paused", leader.id, newEpoch, old.id, epoch)
	}
	t.Logf("node %d paused (controller at epoch %d); node %d took over at epoch %d after %s",
		old.id, epoch, leader.id, newEpoch, time.Since(pausedAt).Round(time.Millisecond))
	// Creates sent to the node that is neither the old nor the new
	// controller (it forwards them): each must succeed within a few
	// attempts while the old controller stays paused.
	var via *node
	for _, nd := range rest {
		if nd != leader {
			via = nd
		}
	}
	// Paused past the new controller's session timeout: the paused broker
	// is fenced, the others must not be.
	pauseUntil := time.Now().Add(sessionTimeout + time.Second)
	for i := 0; time.Now().Before(pauseUntil) || i < 3; i++ {
		name := fmt.Sprintf("during-%d", i)
		start := time.Now()
		if err := createVia(via, name, 3, 15*time.Second); err != nil {
			t.Fatalf("create %s via node %d while node %d is paused (%s into the pause): %v",
				name, via.id, old.id, time.Since(pausedAt).Round(time.Millisecond), err)
		}
		if d := time.Since(start); d > time.Second {
			t.Logf("create %s via node %d took %s", name, via.id, d.Round(time.Millisecond))
		}
		want = append(want, name)
		time.Sleep(200 * time.Millisecond)
	}
	// Only the paused broker may have been fenced.
	for _, nd := range rest {
		for _, line := range strings.Split(nd.output(), "\n") {
			if strings.Contains(line, "fencing broker") && !strings.Contains(line, fmt.Sprintf("broker=%d ", old.id)) {
				t.Errorf("node %d fenced a live broker while node %d was paused: %s", nd.id, old.id, line)
			}
		}
	}

	// Resume it and at once ask it to create a topic: a stale leader must
	// not acknowledge what the cluster does not keep.
	old.resume()
	resumedAt := time.Now()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "after-resume", 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 15000
	resp, err := ask[*kmsg.CreateTopicsResponse](old.directClient(), 35*time.Second, req)
	switch {
	case err != nil:
		t.Logf("create sent to node %d right after SIGCONT: %v after %s", old.id, err, time.Since(resumedAt).Round(time.Millisecond))
	case len(resp.Topics) != 1:
		t.Fatalf("CreateTopics answered %d topics", len(resp.Topics))
	case resp.Topics[0].ErrorCode != 0:
		t.Logf("create sent to node %d right after SIGCONT: %v after %s", old.id, kerr.ErrorForCode(resp.Topics[0].ErrorCode), time.Since(resumedAt).Round(time.Millisecond))
	default:
		t.Logf("create sent to node %d right after SIGCONT acknowledged after %s", old.id, time.Since(resumedAt).Round(time.Millisecond))
		want = append(want, "after-resume")
	}

	// It rejoins as a follower of the new leader.
	if l, e := c.activeController(20 * time.Second); l != leader || e != newEpoch {
		t.Errorf("after SIGCONT: node %d leads at epoch %d; want node %d still at epoch %d", l.id, e, leader.id, newEpoch)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "after"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "after")

	// Every node, old one included, shows everything and lists every
	// broker, with every partition led.
	rejoined := func(nd *node) error {
		v, err := c.metadataFrom(nd.directClient())
		if err != nil {
			return err
		}
		if len(v.brokers) != len(c.nodes) {
			return fmt.Errorf("node %d lists brokers %v", nd.id, v.brokers)
		}
		for _, name := range want {
			tv, ok := v.topics[name]
			if !ok || tv.err != 0 || len(tv.leaders) == 0 {
				return fmt.Errorf("node %d: topic %s: %v %+v", nd.id, name, ok, tv)
			}
			for p, l := range tv.leaders {
				if l < 0 {
					return fmt.Errorf("node %d: %s partition %d has no leader", nd.id, name, p)
				}
			}
		}
		return nil
	}
	for _, nd := range c.nodes {
		var first string
		if err := eventually(15*time.Second, func() error {
			err := rejoined(nd)
			if err != nil && first == "" {
				first = fmt.Sprintf("%s after SIGCONT: %v", time.Since(resumedAt).Round(time.Millisecond), err)
			}
			return err
		}); err != nil {
			t.Error(err)
		}
		if first != "" {
			t.Logf("waited for node %d; first answer %s", nd.id, first)
		}
	}
	t.Logf("node %d rejoined; all %d topics on every node %s after SIGCONT", old.id, len(want), time.Since(resumedAt).Round(time.Millisecond))
	c.checkAlive()
}

// createVia sends CreateTopics to nd's client listener itself (which
// forwards it to the active controller), retrying failed attempts (2 s
// each) until timeout. TOPIC_ALREADY_EXISTS after a failed attempt counts
// as created: that attempt did it.
func createVia(nd *node, name string, partitions int32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var errs []string
	for attempt := 0; ; attempt++ {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 2000
		resp, err := ask[*kmsg.CreateTopicsResponse](nd.directClient(), 2*time.Second, req)
		if err == nil && len(resp.Topics) == 1 {
			code := resp.Topics[0].ErrorCode
			if code == 0 || (attempt > 0 && code == kerr.TopicAlreadyExists.Code) {
				return nil
			}
			err = kerr.ErrorForCode(code)
		}
		errs = append(errs, fmt.Sprint(err))
		if time.Now().After(deadline) {
			return fmt.Errorf("%d attempts failed: %s", len(errs), strings.Join(errs, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
