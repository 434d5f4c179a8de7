package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const (
	configTopic = "cf-config"
	configName  = "retention.ms"
	configBase  = 3_600_000 // retention.ms = configBase + counter
)

// ledger records what the workload was told. Names are never reused, so
// an acknowledged create must stay (until an acknowledged delete) and an
// acknowledged delete must never come back. An operation that failed may
// or may not have happened: its topic is not checked.
type ledger struct {
	mu          sync.Mutex
	created     map[string]int32 // acknowledged creates → partitions
	createUnk   map[string]bool  // creates that failed (outcome unknown)
	createExist map[string]bool  // creates answered TOPIC_ALREADY_EXISTS
	deleted     map[string]bool  // acknowledged deletes
	deleteUnk   map[string]bool  // deletes that failed (outcome unknown)
	createTimes []opTime         // acknowledged creates, in order
	cfgAcked    []int64          // acknowledged config values, in order
	cfgTried    []int64          // every config value sent, in order
	errs        map[string]int   // failures by error text
}

type opTime struct{ sent, acked time.Time }

func newLedger() *ledger {
	return &ledger{created: map[string]int32{}, createUnk: map[string]bool{}, createExist: map[string]bool{}, deleted: map[string]bool{},
		deleteUnk: map[string]bool{}, errs: map[string]int{}}
}

func (l *ledger) fail(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := err.Error()
	if i := strings.Index(msg, "dial tcp"); i >= 0 {
		msg = msg[:i] + "dial tcp ..."
	}
	l.errs[op+": "+msg]++
}

// deletable picks an acknowledged live topic to delete.
func (l *ledger) deletable(rng *rand.Rand) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var live []string
	for name := range l.created {
		if !l.deleted[name] && !l.deleteUnk[name] {
			live = append(live, name)
		}
	}
	if len(live) == 0 {
		return ""
	}
	sort.Strings(live)
	return live[rng.Intn(len(live))]
}

// firstCreateAfter is the first acknowledged create sent at or after t.
func (l *ledger) firstCreateAfter(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.createTimes {
		if !o.sent.Before(t) {
			return o.acked, true
		}
	}
	return time.Time{}, false
}

// workload runs creates+deletes and config changes until ctx ends.
func runWorkload(ctx context.Context, adm *kadm.Client, l *ledger) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // creates, and a delete every third create
		defer wg.Done()
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		for i := 0; ctx.Err() == nil; i++ {
			name := fmt.Sprintf("cf-%05d", i)
			parts := int32(1 + i%3)
			sent := time.Now()
			octx, cancel := context.WithTimeout(ctx, 40*time.Second)
			_, err := adm.CreateTopic(octx, parts, 1, nil, name)
			cancel()
			acked := time.Now()
			l.mu.Lock()
			if err == nil {
				l.created[name] = parts
				l.createTimes = append(l.createTimes, opTime{sent, acked})
			} else {
				l.createUnk[name] = true
				// Each name is sent once: "already exists" means an
				// attempt that failed on the way (a retry by the client
				// or the forwarding broker) did create it.
				if errors.Is(err, kerr.TopicAlreadyExists) {
					l.createExist[name] = true
				}
			}
			l.mu.Unlock()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				l.fail("create", err)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if i%3 == 2 {
				if victim := l.deletable(rng); victim != "" {
					octx, cancel := context.WithTimeout(ctx, 40*time.Second)
					_, err := adm.DeleteTopic(octx, victim)
					cancel()
					l.mu.Lock()
					if err == nil {
						l.deleted[victim] = true
					} else {
						l.deleteUnk[victim] = true
					}
					l.mu.Unlock()
					if err != nil && ctx.Err() == nil {
						l.fail("delete", err)
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	go func() { // config changes of one topic, a counter as the value
		defer wg.Done()
		for v := int64(1); ctx.Err() == nil; v++ {
			l.mu.Lock()
			l.cfgTried = append(l.cfgTried, v)
			l.mu.Unlock()
			val := strconv.FormatInt(configBase+v, 10)
			octx, cancel := context.WithTimeout(ctx, 40*time.Second)
			rs, err := adm.AlterTopicConfigs(octx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: configName, Value: &val}}, configTopic)
			cancel()
			if err == nil {
				for _, r := range rs {
					if r.Err != nil {
						err = r.Err
					}
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				l.fail("alter config", err)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			l.mu.Lock()
			l.cfgAcked = append(l.cfgAcked, v)
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return &wg
}

func kills() int {
	if v := os.Getenv("GREGOR_CLUSTER_KILLS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return 3
}

// TestClusterControllerFailover kills the active controller with SIGKILL
// again and again, restarting it each time, while a client talking to all
// three nodes creates topics, deletes some and changes a topic config.
// Afterwards every node, asked on its own, must show every acknowledged
// create (not deleted since), none of the acknowledged deletes, and the
// last acknowledged config value.
func TestClusterControllerFailover(t *testing.T) {
	k := kills()
	c := newCluster(t, 3)
	cl := c.client(c.addrs())
	adm := kadm.NewClient(cl)
	{
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := adm.CreateTopic(ctx, 1, 1, nil, configTopic)
		cancel()
		if err != nil {
			t.Fatalf("create %s: %v", configTopic, err)
		}
	}

	l := newLedger()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	wg := runWorkload(ctx, adm, l)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))

	var failovers []time.Duration
	var killedIDs []string
	for i := 0; i < k; i++ {
		// Let the workload run against a whole cluster for a moment.
		time.Sleep(time.Duration(300+rng.Intn(700)) * time.Millisecond)
		leader, epoch := c.activeController(30 * time.Second)
		killedAt := time.Now()
		leader.kill()
		killedIDs = append(killedIDs, fmt.Sprint(leader.id))
		var ackedAt time.Time
		if err := eventually(60*time.Second, func() error {
			c.checkAlive()
			var ok bool
			if ackedAt, ok = l.firstCreateAfter(killedAt); !ok {
				return errors.New("no create acknowledged yet")
			}
			return nil
		}); err != nil {
			t.Fatalf("kill %d (node %d, controller at epoch %d): no CreateTopics acknowledged within 60s of the kill; workload errors: %v",
				i+1, leader.id, epoch, l.errSummary())
		}
		d := ackedAt.Sub(killedAt)
		failovers = append(failovers, d)
		t.Logf("kill %d: node %d (controller, epoch %d) killed; next CreateTopics acknowledged after %s",
			i+1, leader.id, epoch, d.Round(time.Millisecond))
		leader.restart()
	}
	// Let the restarted node take part in a few more operations.
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	c.checkAlive()
	c.waitQuorumCaughtUp(30 * time.Second)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.created) == 0 || len(l.cfgAcked) == 0 {
		t.Fatalf("workload had no success: %d creates, %d config changes acknowledged", len(l.created), len(l.cfgAcked))
	}
	lastCfg := l.cfgAcked[len(l.cfgAcked)-1]
	// A config change sent after the last acknowledged one failed, yet may
	// have been applied: its value is a legitimate final value too.
	okCfg := map[string]bool{strconv.FormatInt(configBase+lastCfg, 10): true}
	for _, v := range l.cfgTried {
		if v > lastCfg {
			okCfg[strconv.FormatInt(configBase+v, 10)] = true
		}
	}

	lostTopics, resurrected := map[string]bool{}, map[string]bool{}
	for _, nd := range c.nodes {
		dcl := nd.directClient()
		var lost, back []string
		var cfgVal string
		// A node may apply the last records a moment after the leader
		// counts them: poll a few seconds, then judge the last answer.
		err := eventually(10*time.Second, func() error {
			lost, back = nil, nil
			v, err := c.metadataFrom(dcl)
			if err != nil {
				return err
			}
			for name := range l.created {
				if l.deleted[name] || l.deleteUnk[name] {
					continue
				}
				if tv, ok := v.topics[name]; !ok || tv.err != 0 || len(tv.leaders) != int(l.created[name]) {
					lost = append(lost, fmt.Sprintf("%s(%+v)", name, tv))
				}
			}
			for name := range l.createExist {
				if tv, ok := v.topics[name]; !l.deleteUnk[name] && (!ok || tv.err != 0) {
					lost = append(lost, fmt.Sprintf("%s(answered TOPIC_ALREADY_EXISTS)", name))
				}
			}
			for name := range l.deleted {
				if _, ok := v.topics[name]; ok {
					back = append(back, name)
				}
			}
			if cfgVal, err = topicConfigFrom(dcl, configTopic, configName); err != nil {
				return err
			}
			if len(lost) > 0 || len(back) > 0 || !okCfg[cfgVal] {
				return fmt.Errorf("node %d: %d lost, %d resurrected, %s=%s", nd.id, len(lost), len(back), configName, cfgVal)
			}
			return nil
		})
		sort.Strings(lost)
		sort.Strings(back)
		for _, x := range lost {
			lostTopics[strings.SplitN(x, "(", 2)[0]] = true
		}
		for _, x := range back {
			resurrected[x] = true
		}
		if err != nil {
			t.Errorf("node %d: %v", nd.id, err)
			if len(lost) > 0 {
				t.Errorf("node %d: acknowledged creates missing: %s", nd.id, strings.Join(first(lost, 20), " "))
			}
			if len(back) > 0 {
				t.Errorf("node %d: acknowledged deletes present: %s", nd.id, strings.Join(first(back, 20), " "))
			}
			if cfgVal != "" && !okCfg[cfgVal] {
				t.Errorf("node %d: %s of %s is %s; last acknowledged value %d", nd.id, configName, configTopic, cfgVal, configBase+lastCfg)
			}
		}
		if cfgVal == strconv.FormatInt(configBase+lastCfg, 10) {
			t.Logf("node %d: %d topics checked, %s=%s (the last acknowledged)", nd.id, len(l.created)+len(l.deleted), configName, cfgVal)
		} else {
			t.Logf("node %d: %d topics checked, %s=%s (last acknowledged %d)", nd.id, len(l.created)+len(l.deleted), configName, cfgVal, configBase+lastCfg)
		}
	}

	slices.Sort(failovers)
	t.Logf("%d kills of the active controller (nodes %s)", k, strings.Join(killedIDs, ","))
	t.Logf("failover, kill → next acknowledged CreateTopics: median %s, max %s, all %v",
		failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond), roundAll(failovers))
	t.Logf("acknowledged: %d creates, %d deletes, %d config changes; failed (outcome unknown): %d creates (%d of them answered TOPIC_ALREADY_EXISTS), %d deletes, %d config changes",
		len(l.created), len(l.deleted), len(l.cfgAcked), len(l.createUnk), len(l.createExist), len(l.deleteUnk), len(l.cfgTried)-len(l.cfgAcked))
	t.Logf("lost: %d, resurrected: %d", len(lostTopics), len(resurrected))
	if s := l.errSummaryLocked(); s != "" {
		t.Logf("workload errors: %s", s)
	}
}

func (l *ledger) errSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errSummaryLocked()
}

func (l *ledger) errSummaryLocked() string {
	var out []string
	for e, n := range l.errs {
		out = append(out, fmt.Sprintf("%d× %s", n, e))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... (%d more)", len(s)-n))
	}
	return s
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
