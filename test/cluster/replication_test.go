package cluster

// TestReplicationJepsen: a fault campaign against partition replication.
//
// Three nodes whose every link goes through internal/faultnet proxies:
// controller traffic pairwise ("i->j": node i to j's controller listener),
// client traffic per broker ("client-j"), and replication traffic
// pairwise ("repl-i->j": follower i fetching from leader j). For the
// latter each broker j has one replication listener per follower i, named
// Ri and advertised at "repl-i->j", and broker i's
// inter.broker.listener.name is Ri, so its fetcher dials every leader on
// the listener meant for it. Isolating a node from its peers then cuts
// all of its inter-node traffic, both ways, while clients still reach it.
//
// Workload, all along: idempotent acks=all producers writing unique values
// ("p<id>-<seq>") to a topic with replication factor 3 and
// min.insync.replicas=2, recording what was acknowledged (partition,
// offset) and what failed; consumers assigned every partition from the
// start, recording every (partition, offset, value) they were served.
//
// Faults (GREGOR_REPL_FAULTS, default 5; the first five are one of each
// kind in a random order): kill -9 of a partition leader, kill -9 of any
// node, SIGSTOP of a leader for ~10 s, a leader cut off from the other
// nodes (not from clients) for 10-15 s, a clean bounce (SIGTERM, restart).
// After each, the cluster must heal within a bound: every node serving,
// one agreed controller, every partition led with all three replicas in
// sync as every node sees it, and acknowledgements flowing again.
//
// At the end, with everything healed and the producers flushed, a fresh
// consumer reads every partition from the start, and:
//   - every acknowledged value is in the log at the offset it was
//     acknowledged at (lost: nowhere; misplaced: elsewhere);
//   - no value is in the log twice (duplicated);
//   - no two reads of one offset returned different values (inconsistent);
//   - nothing a consumer was served is missing from the final log at its
//     offset (vanished: it was served above a high watermark that was not
//     one);
//   - the log holds only values the producers sent (foreign), without
//     holes;
//   - every node's copy of every partition, read from its segment files,
//     is the final log (replicas differing).
//
// GREGOR_REPL_SEED fixes the fault schedule's random seed;
// GREGOR_REPL_KINDS (e.g. "pause-leader,isolate-leader") draws only from
// those kinds.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/faultnet"
	"github.com/gregorhq/gregor/test/testenv"
)

const (
	replTopic      = "jepsen"
	replPartitions = 3
	replProducers  = 2
	replConsumers  = 2
	replLagMax     = 5 * time.Second // replica.lag.time.max.ms
	replHealBound  = 90 * time.Second
	replInflight   = 64                    // per producer and partition
	replPace       = 15 * time.Millisecond // between a producer's rounds
)

// Fault kinds.
const (
	faultKillLeader = "kill-leader"
	faultKillAny    = "kill-random"
	faultPause      = "pause-leader"
	faultIsolate    = "isolate-leader"
	faultBounce     = "bounce"
)

var faultKinds = []string{faultKillLeader, faultKillAny, faultPause, faultIsolate, faultBounce}

func replFaults() int {
	if v := os.Getenv("GREGOR_REPL_FAULTS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n
		}
	}
	return 5
}

// replKinds are the fault kinds to draw from: GREGOR_REPL_KINDS (comma
// separated, to chase one kind of bug) or all.
func replKinds(t *testing.T) []string {
	v := os.Getenv("GREGOR_REPL_KINDS")
	if v == "" {
		return faultKinds
	}
	var out []string
	for _, k := range strings.Split(v, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(faultKinds, k) {
			t.Fatalf("GREGOR_REPL_KINDS: %q is not one of %v", k, faultKinds)
		}
		out = append(out, k)
	}
	return out
}

// valueKey packs "p<id>-<seq>" into one number (id in the top bits, seq+1
// below, so 0 is never a value).
func valueKey(v string) (uint64, bool) {
	rest, ok := strings.CutPrefix(v, "p")
	if !ok {
		return 0, false
	}
	a, b, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	id, err1 := strconv.ParseUint(a, 10, 16)
	seq, err2 := strconv.ParseUint(b, 10, 40)
	if err1 != nil || err2 != nil || seq+1 >= 1<<40 {
		return 0, false
	}
	return id<<40 | (seq + 1), true
}

func keyString(k uint64) string {
	if k == 0 {
		return "nothing"
	}
	return fmt.Sprintf("p%d-%d", k>>40, k&(1<<40-1)-1)
}

// ackInfo is where a value was acknowledged.
type ackInfo struct {
	p   int32
	off int64
}

// prodLedger is what the producers were told.
type prodLedger struct {
	mu     sync.Mutex
	sent   int
	acked  map[uint64]ackInfo
	failed map[uint64]bool
	errs   map[string]int
	nAcked atomic.Int64
}

func (l *prodLedger) result(k uint64, r *kgo.Record, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed[k] = true
		msg := err.Error()
		if i := strings.Index(msg, "dial tcp"); i >= 0 {
			msg = msg[:i] + "dial tcp ..."
		}
		l.errs[msg]++
		return
	}
	l.acked[k] = ackInfo{r.Partition, r.Offset}
	l.nAcked.Add(1)
}

// produce writes unique values round-robin over the partitions, at most
// replInflight unanswered per partition, until ctx ends.
func produce(ctx context.Context, cl *kgo.Client, id int, l *prodLedger) {
	var inflight [replPartitions]atomic.Int32
	seq := 0
	for ctx.Err() == nil {
		for p := int32(0); p < replPartitions; p++ {
			if inflight[p].Load() >= replInflight {
				continue
			}
			v := fmt.Sprintf("p%d-%d", id, seq)
			seq++
			k, _ := valueKey(v)
			inflight[p].Add(1)
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			// The records' own context is not ctx: ending the workload
			// stops new records, then Flush waits for those in flight.
			cl.Produce(context.Background(), &kgo.Record{Topic: replTopic, Partition: p, Value: []byte(v)},
				func(r *kgo.Record, err error) {
					inflight[p].Add(-1)
					l.result(k, r, err)
				})
		}
		select {
		case <-ctx.Done():
		case <-time.After(replPace):
		}
	}
}

// sightings is what one consumer was served: per partition, the value at
// each offset (0: not seen).
type sightings struct {
	name      string
	mu        sync.Mutex
	vals      [replPartitions][]uint64
	n         int
	conflicts []string // one offset served with two values
	foreign   []string
	errs      map[string]int
	dataLoss  []string // franz-go's ErrDataLoss reports
}

func newSightings(name string) *sightings {
	return &sightings{name: name, errs: map[string]int{}}
}

func (s *sightings) add(p int32, off int64, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	k, ok := valueKey(v)
	if !ok {
		s.foreign = append(s.foreign, fmt.Sprintf("%d@%d=%q", p, off, v))
		return
	}
	if p < 0 || p >= replPartitions || off < 0 {
		s.foreign = append(s.foreign, fmt.Sprintf("%d@%d=%q (no such partition or offset)", p, off, v))
		return
	}
	vs := s.vals[p]
	if int64(len(vs)) <= off {
		grown := make([]uint64, off+1, max(off+1, int64(2*len(vs))))
		copy(grown, vs)
		vs = grown
		s.vals[p] = vs
	}
	switch vs[off] {
	case 0:
		vs[off] = k
	case k:
	default:
		s.conflicts = append(s.conflicts, fmt.Sprintf("%d@%d: %s then %s", p, off, keyString(vs[off]), v))
	}
}

// at is the value seen at p@off (0: none).
func (s *sightings) at(p int32, off int64) uint64 {
	if off < int64(len(s.vals[p])) {
		return s.vals[p][off]
	}
	return 0
}

func replConsumerClient(c *cluster, seeds []string) *kgo.Client {
	offs := map[int32]kgo.Offset{}
	for p := int32(0); p < replPartitions; p++ {
		offs[p] = kgo.NewOffset().AtStart()
	}
	return c.client(seeds,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{replTopic: offs}),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
}

// consume records everything cl is served until ctx ends.
func consume(ctx context.Context, cl *kgo.Client, s *sightings) {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, p int32, err error) {
			if ctx.Err() != nil {
				return
			}
			var dl *kgo.ErrDataLoss
			s.mu.Lock()
			if errors.As(err, &dl) {
				s.dataLoss = append(s.dataLoss, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			}
			s.errs[fmt.Sprintf("partition %d: %v", p, err)]++
			s.mu.Unlock()
		})
		fs.EachRecord(func(r *kgo.Record) { s.add(r.Partition, r.Offset, string(r.Value)) })
	}
}

// replNet is the cluster's faultnet and the names of its links.
type replNet struct {
	net  *faultnet.Net
	repl map[int32]map[int32]string // node j → follower i → j's real listener Ri
}

func (rn *replNet) link(t *testing.T, name, target string) string {
	p, err := rn.net.Add(name, target)
	if err != nil {
		t.Fatal(err)
	}
	return p.Addr()
}

// newReplCluster starts three nodes with every link through rn.
func newReplCluster(t *testing.T) (*cluster, *replNet) {
	rn := &replNet{net: faultnet.NewNet(), repl: map[int32]map[int32]string{}}
	t.Cleanup(func() { _ = rn.net.Close() })
	links := map[string]string{} // link name → its address
	prepare := func(c *cluster) {
		for _, j := range c.nodes {
			rn.repl[j.id] = map[int32]string{}
			links[fmt.Sprintf("client-%d", j.id)] = rn.link(t, fmt.Sprintf("client-%d", j.id), j.addr)
			for _, i := range c.others(j) {
				rn.repl[j.id][i.id] = testenv.FreeAddr(t)
				name := fmt.Sprintf("%d->%d", i.id, j.id)
				links[name] = rn.link(t, name, j.ctrl)
				name = fmt.Sprintf("repl-%d->%d", i.id, j.id)
				links[name] = rn.link(t, name, rn.repl[j.id][i.id])
			}
		}
	}
	var c *cluster
	props := func(nd *node) map[string]string {
		voters := []string{fmt.Sprintf("%d@%s", nd.id, nd.ctrl)}
		lst := []string{"PLAINTEXT://" + nd.addr, "CONTROLLER://" + nd.ctrl}
		adv := []string{"PLAINTEXT://" + links[fmt.Sprintf("client-%d", nd.id)]}
		protos := []string{"PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"}
		for _, o := range c.nodes {
			protos = append(protos, fmt.Sprintf("R%d:PLAINTEXT", o.id))
			if o == nd {
				continue
			}
			voters = append(voters, fmt.Sprintf("%d@%s", o.id, links[fmt.Sprintf("%d->%d", nd.id, o.id)]))
			lst = append(lst, fmt.Sprintf("R%d://%s", o.id, rn.repl[nd.id][o.id]))
			adv = append(adv, fmt.Sprintf("R%d://%s", o.id, links[fmt.Sprintf("repl-%d->%d", o.id, nd.id)]))
		}
		sort.Strings(voters)
		return map[string]string{
			"controller.quorum.voters":       strings.Join(voters, ","),
			"listeners":                      strings.Join(lst, ","),
			"advertised.listeners":           strings.Join(adv, ","),
			"listener.security.protocol.map": strings.Join(protos, ","),
			"inter.broker.listener.name":     fmt.Sprintf("R%d", nd.id),
			"replica.lag.time.max.ms":        strconv.FormatInt(replLagMax.Milliseconds(), 10),
		}
	}
	c = newClusterWith(t, 3, clusterOpts{prepare: func(cc *cluster) { c = cc; prepare(cc) }, props: props})
	return c, rn
}

// clientSeeds are the client links.
func (rn *replNet) clientSeeds(c *cluster) []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, rn.net.Link(fmt.Sprintf("client-%d", nd.id)).Addr())
	}
	return out
}

// isolate cuts every inter-node link of node id, both ways; its client
// link stays.
func (rn *replNet) isolate(id int32) error {
	return rn.net.Isolate(fmt.Sprintf("%d->*", id), fmt.Sprintf("*->%d", id),
		fmt.Sprintf("repl-%d->*", id))
}

// partView is one partition as a node's Metadata describes it.
type partView struct {
	leader, epoch int32
	isr, replicas []int32
}

func (v partView) String() string {
	return fmt.Sprintf("leader %d epoch %d isr %v", v.leader, v.epoch, v.isr)
}

// topicPartitions asks nd's client listener itself about the topic.
func topicPartitions(nd *node) ([]partView, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(replTopic)
	req.Topics = append(req.Topics, rt)
	resp, err := ask[*kmsg.MetadataResponse](nd.directClient(), 3*time.Second, req)
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		return nil, fmt.Errorf("metadata of %s: %+v", replTopic, resp.Topics)
	}
	out := make([]partView, replPartitions)
	seen := 0
	for _, p := range resp.Topics[0].Partitions {
		if p.Partition < 0 || p.Partition >= replPartitions {
			continue
		}
		isr := slices.Clone(p.ISR)
		slices.Sort(isr)
		out[p.Partition] = partView{leader: p.Leader, epoch: p.LeaderEpoch, isr: isr, replicas: p.Replicas}
		seen++
	}
	if seen != replPartitions {
		return nil, fmt.Errorf("metadata of %s: %d partitions", replTopic, seen)
	}
	return out, nil
}

// campaign is the running test's state.
type campaign struct {
	t      *testing.T
	c      *cluster
	rn     *replNet
	rng    *rand.Rand
	start  time.Time
	ledger *prodLedger
}

func (cp *campaign) logf(format string, args ...any) {
	cp.t.Helper()
	cp.t.Logf("[%7.1fs] %s", time.Since(cp.start).Seconds(), fmt.Sprintf(format, args...))
}

// healed waits until every node serves, one controller is agreed on, and
// every node sees every partition led, the same leader and epoch, with
// all three replicas in the ISR. It returns the partitions' view.
func (cp *campaign) healed(timeout time.Duration) []partView {
	cp.t.Helper()
	begin := time.Now()
	deadline := begin.Add(timeout)
	cp.c.activeController(timeout)
	var last string
	for {
		var views [][]partView
		var notes []string
		ok := true
		for _, nd := range cp.c.nodes {
			if !nd.live() {
				ok = false
				notes = append(notes, fmt.Sprintf("node %d not live", nd.id))
				continue
			}
			v, err := topicPartitions(nd)
			if err != nil {
				ok = false
				notes = append(notes, fmt.Sprintf("node %d: %v", nd.id, err))
				continue
			}
			notes = append(notes, fmt.Sprintf("node %d: %v", nd.id, v))
			views = append(views, v)
		}
		if ok {
			for p := 0; p < replPartitions; p++ {
				for _, v := range views {
					pv := v[p]
					if pv.leader < 0 || len(pv.isr) != len(cp.c.nodes) || pv.leader != views[0][p].leader || pv.epoch != views[0][p].epoch {
						ok = false
					}
				}
			}
		}
		if ok {
			if d := time.Since(begin); d > 10*time.Second {
				cp.logf("healed after %s; before: %s", d.Round(time.Millisecond), last)
			}
			return views[0]
		}
		last = strings.Join(notes, "; ")
		if time.Now().After(deadline) {
			cp.t.Fatalf("not healed after %s (network: %s): %s", timeout, cp.rn.net.String(), last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// progress waits until n more records are acknowledged.
func (cp *campaign) progress(n int64, timeout time.Duration) {
	cp.t.Helper()
	from := cp.ledger.nAcked.Load()
	deadline := time.Now().Add(timeout)
	for cp.ledger.nAcked.Load() < from+n {
		if time.Now().After(deadline) {
			cp.ledger.mu.Lock()
			errs := fmt.Sprint(cp.ledger.errs)
			cp.ledger.mu.Unlock()
			cp.t.Fatalf("healed, but only %d acknowledgements in %s (produce errors so far: %s)",
				cp.ledger.nAcked.Load()-from, timeout, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cp *campaign) nodeByID(id int32) *node {
	for _, nd := range cp.c.nodes {
		if nd.id == id {
			return nd
		}
	}
	cp.t.Fatalf("no node %d", id)
	return nil
}

func (cp *campaign) jitter(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(cp.rng.Int63n(int64(hi-lo)+1))
}

// fault injects one fault of kind and undoes it (restart, resume, heal).
func (cp *campaign) fault(i int, kind string, parts []partView) {
	cp.t.Helper()
	p := cp.rng.Intn(replPartitions)
	leader := cp.nodeByID(parts[p].leader)
	randomNode := cp.c.nodes[cp.rng.Intn(len(cp.c.nodes))]
	switch kind {
	case faultKillLeader, faultKillAny:
		victim := leader
		if kind == faultKillAny {
			victim = randomNode
		}
		down := cp.jitter(time.Second, 6*time.Second)
		cp.logf("fault %d: %s: kill -9 node %d (leader of %v), down %s", i, kind, victim.id, leads(parts, victim.id), down.Round(time.Millisecond))
		victim.kill()
		time.Sleep(down)
		victim.restart()
		cp.logf("fault %d: node %d restarted", i, victim.id)
	case faultPause:
		d := cp.jitter(8*time.Second, 12*time.Second)
		cp.logf("fault %d: %s: SIGSTOP node %d (leader of %v) for %s", i, kind, leader.id, leads(parts, leader.id), d.Round(time.Millisecond))
		leader.pause()
		time.Sleep(d)
		leader.resume()
		cp.logf("fault %d: node %d resumed", i, leader.id)
	case faultIsolate:
		d := cp.jitter(10*time.Second, 15*time.Second)
		if err := cp.rn.isolate(leader.id); err != nil {
			cp.t.Fatal(err)
		}
		cp.logf("fault %d: %s: node %d (leader of %v) cut off from the other nodes for %s (%s)", i, kind, leader.id, leads(parts, leader.id), d.Round(time.Millisecond), cp.rn.net)
		time.Sleep(d)
		cp.rn.net.HealAll()
		cp.logf("fault %d: network healed", i)
	case faultBounce:
		victim := randomNode
		cp.logf("fault %d: %s: SIGTERM node %d (leader of %v)", i, kind, victim.id, leads(parts, victim.id))
		began := time.Now()
		if !victim.terminate(30 * time.Second) {
			cp.t.Errorf("node %d did not stop within 30 s of SIGTERM:\n%s", victim.id, tail(victim.output(), 8<<10))
			victim.kill()
		}
		cp.logf("fault %d: node %d stopped cleanly in %s", i, victim.id, time.Since(began).Round(time.Millisecond))
		victim.restart()
		cp.logf("fault %d: node %d restarted", i, victim.id)
	default:
		cp.t.Fatalf("unknown fault %q", kind)
	}
}

func leads(parts []partView, id int32) []int {
	var out []int
	for p, v := range parts {
		if v.leader == id {
			out = append(out, p)
		}
	}
	return out
}

func TestReplicationJepsen(t *testing.T) {
	nFaults := replFaults()
	seed := time.Now().UnixNano()
	if v := os.Getenv("GREGOR_REPL_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	c, rn := newReplCluster(t)
	cp := &campaign{t: t, c: c, rn: rn, rng: rand.New(rand.NewSource(seed)), start: time.Now(),
		ledger: &prodLedger{acked: map[uint64]ackInfo{}, failed: map[uint64]bool{}, errs: map[string]int{}}}
	cp.logf("seed %d, %d faults; links: %s", seed, nFaults, strings.Join(rn.net.Names(), " "))
	seeds := rn.clientSeeds(c)

	adm := kadm.NewClient(c.client(seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	minISR := "2"
	resp, err := adm.CreateTopic(ctx, replPartitions, 3, map[string]*string{"min.insync.replicas": &minISR}, replTopic)
	cancel()
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", replTopic, err)
	}
	parts := cp.healed(replHealBound)
	cp.logf("topic %s: %v", replTopic, parts)

	// The workload.
	wctx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var prodWG, consWG sync.WaitGroup
	var producers []*kgo.Client
	for id := 0; id < replProducers; id++ {
		cl := c.client(seeds, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RecordDeliveryTimeout(30*time.Second), kgo.MaxBufferedRecords(10*replInflight*replPartitions),
			kgo.ProducerBatchCompression(kgo.NoCompression())) // the replica check reads the segments
		producers = append(producers, cl)
		prodWG.Add(1)
		go func() { defer prodWG.Done(); produce(wctx, cl, id, cp.ledger) }()
	}
	cctx, stopConsumers := context.WithCancel(context.Background())
	defer stopConsumers()
	var consumers []*sightings
	for i := 0; i < replConsumers; i++ {
		s := newSightings(fmt.Sprintf("consumer %d", i))
		consumers = append(consumers, s)
		cl := replConsumerClient(c, seeds)
		consWG.Add(1)
		go func() { defer consWG.Done(); consume(cctx, cl, s) }()
	}
	cp.progress(200, 30*time.Second)
	cp.logf("workload running: %d acknowledged", cp.ledger.nAcked.Load())

	// The campaign.
	byKind := map[string]int{}
	kinds := replKinds(t)
	schedule := slices.Clone(kinds)
	cp.rng.Shuffle(len(schedule), func(i, j int) { schedule[i], schedule[j] = schedule[j], schedule[i] })
	for i := 1; i <= nFaults; i++ {
		kind := kinds[cp.rng.Intn(len(kinds))]
		if i <= len(schedule) {
			kind = schedule[i-1]
		}
		cp.fault(i, kind, parts)
		byKind[kind]++
		c.checkAlive()
		parts = cp.healed(replHealBound)
		cp.progress(100, 30*time.Second)
		cp.logf("fault %d: healed, %d acknowledged so far; %v", i, cp.ledger.nAcked.Load(), parts)
		time.Sleep(cp.jitter(time.Second, 3*time.Second))
	}

	// Stop the workload; every record gets its answer.
	rn.net.HealAll()
	parts = cp.healed(replHealBound)
	stopWork()
	prodWG.Wait()
	for _, cl := range producers {
		fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := cl.Flush(fctx); err != nil {
			t.Errorf("producers' flush: %v", err)
		}
		fcancel()
	}
	// Let the consumers catch up to the end before they stop.
	ends := endOffsets(t, adm)
	_ = eventually(20*time.Second, func() error {
		for _, s := range consumers {
			s.mu.Lock()
			behind := false
			for p := int32(0); p < replPartitions; p++ {
				if int64(len(s.vals[p])) < ends[p] {
					behind = true
				}
			}
			s.mu.Unlock()
			if behind {
				return errors.New("behind")
			}
		}
		return nil
	})
	stopConsumers()
	consWG.Wait()
	cp.logf("workload stopped; end offsets %v; leaders %v", ends, parts)

	// The final read.
	final := newSightings("final read")
	readAll(t, c, seeds, ends, final)

	// Checks.
	l := cp.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	var lost, misplaced, duplicated, inconsistent, vanished, foreign, holes []string
	where := map[uint64]ackInfo{} // value → its offset in the final log
	for p := int32(0); p < replPartitions; p++ {
		for off, k := range final.vals[p] {
			if k == 0 {
				holes = append(holes, fmt.Sprintf("%d@%d: no record in the final read", p, off))
				continue
			}
			if prev, ok := where[k]; ok {
				duplicated = append(duplicated, fmt.Sprintf("%s at %d@%d and %d@%d", keyString(k), prev.p, prev.off, p, off))
				continue
			}
			where[k] = ackInfo{p, int64(off)}
			if _, ok := l.acked[k]; !ok && !l.failed[k] {
				foreign = append(foreign, fmt.Sprintf("%d@%d: %s was never sent or is still unanswered", p, off, keyString(k)))
			}
		}
	}
	foreign = append(foreign, final.foreign...)
	inconsistent = append(inconsistent, final.conflicts...)
	for k, a := range l.acked {
		got, ok := where[k]
		switch {
		case !ok:
			lost = append(lost, fmt.Sprintf("%s acknowledged at %d@%d (final: %s)", keyString(k), a.p, a.off, keyString(final.at(a.p, a.off))))
		case got != a:
			misplaced = append(misplaced, fmt.Sprintf("%s acknowledged at %d@%d, in the log at %d@%d", keyString(k), a.p, a.off, got.p, got.off))
		}
	}
	failedPresent := 0
	for k := range l.failed {
		if _, ok := where[k]; ok {
			failedPresent++
		}
	}
	for _, s := range consumers {
		s.mu.Lock()
		for _, cf := range s.conflicts {
			inconsistent = append(inconsistent, s.name+": "+cf)
		}
		foreign = append(foreign, s.foreign...)
		for p := int32(0); p < replPartitions; p++ {
			for off, k := range s.vals[p] {
				if k == 0 {
					continue
				}
				if f := final.at(p, int64(off)); f != k {
					vanished = append(vanished, fmt.Sprintf("%s saw %s at %d@%d; the final log has %s", s.name, keyString(k), p, off, keyString(f)))
				}
				for _, o := range consumers {
					if o != s {
						if ok := o.at(p, int64(off)); ok != 0 && ok != k {
							inconsistent = append(inconsistent, fmt.Sprintf("%s saw %s at %d@%d, %s saw %s", s.name, keyString(k), p, off, o.name, keyString(ok)))
						}
					}
				}
			}
		}
		s.mu.Unlock()
	}

	// Every replica on disk holds the final log (followers may need a
	// moment for the last fetches).
	var diverged []string
	if err := eventually(15*time.Second, func() error {
		diverged = diverged[:0]
		for _, nd := range c.nodes {
			for p := int32(0); p < replPartitions; p++ {
				disk, err := diskLog(filepath.Join(nd.dir, fmt.Sprintf("%s-%d", replTopic, p)))
				if err != nil {
					diverged = append(diverged, fmt.Sprintf("node %d partition %d: %v", nd.id, p, err))
					continue
				}
				if d := compareReplica(disk, final.vals[p], ends[p]); d != "" {
					diverged = append(diverged, fmt.Sprintf("node %d partition %d: %s", nd.id, p, d))
				}
			}
		}
		if len(diverged) > 0 {
			return errors.New("replicas differ")
		}
		return nil
	}); err != nil {
		cp.logf("replicas on disk differ from the final read: %s", strings.Join(diverged, "; "))
	}

	var byKindS []string
	for _, k := range faultKinds {
		byKindS = append(byKindS, fmt.Sprintf("%s=%d", k, byKind[k]))
	}
	for _, s := range consumers {
		cp.logf("%s: %d records served, errors %v", s.name, s.n, s.errs)
		for _, dl := range s.dataLoss {
			cp.logf("%s: franz-go reported data loss: %s", s.name, dl)
		}
	}
	if len(l.errs) > 0 {
		cp.logf("produce errors: %v", l.errs)
	}
	var traffic []string
	for _, name := range rn.net.Names() {
		st := rn.net.Link(name).Stats()
		traffic = append(traffic, fmt.Sprintf("%s %d conns %d/%d KiB", name, st.Accepted, st.ToTarget>>10, st.ToClient>>10))
	}
	cp.logf("links (connections, KiB to target/back): %s", strings.Join(traffic, "; "))
	t.Logf("SUMMARY replication campaign: %d faults (%s) in %s: sent %d, acked %d, failed %d (%d of them in the log), unanswered %d, final log %d records; lost %d, misplaced %d, duplicated %d, inconsistent %d, vanished %d, foreign %d, holes %d, replicas differing %d",
		nFaults, strings.Join(byKindS, " "), time.Since(cp.start).Round(time.Second), l.sent, len(l.acked), len(l.failed), failedPresent, l.sent-len(l.acked)-len(l.failed),
		len(where), len(lost), len(misplaced), len(duplicated), len(inconsistent), len(vanished), len(foreign), len(holes), len(diverged))
	for _, v := range []struct {
		what string
		list []string
	}{{"lost", lost}, {"misplaced", misplaced}, {"duplicated", duplicated}, {"inconsistent", inconsistent}, {"vanished", vanished}, {"foreign", foreign}, {"holes", holes}, {"replicas differing from the final read", diverged}} {
		if len(v.list) > 0 {
			sort.Strings(v.list)
			t.Errorf("%d %s, e.g.:\n  %s", len(v.list), v.what, strings.Join(v.list[:min(len(v.list), 20)], "\n  "))
		}
	}
	if len(l.acked) == 0 {
		t.Error("nothing was acknowledged")
	}
}

// endOffsets are the partitions' end offsets (high watermarks).
func endOffsets(t *testing.T, adm *kadm.Client) [replPartitions]int64 {
	t.Helper()
	var out [replPartitions]int64
	err := eventually(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lo, err := adm.ListEndOffsets(ctx, replTopic)
		if err != nil {
			return err
		}
		if err := lo.Error(); err != nil {
			return err
		}
		n := 0
		lo.Each(func(o kadm.ListedOffset) {
			if o.Partition >= 0 && o.Partition < replPartitions {
				out[o.Partition] = o.Offset
				n++
			}
		})
		if n != replPartitions {
			return fmt.Errorf("%d end offsets", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	return out
}

// readAll reads every partition from the start to ends with a fresh
// consumer.
func readAll(t *testing.T, c *cluster, seeds []string, ends [replPartitions]int64, s *sightings) {
	t.Helper()
	cl := replConsumerClient(c, seeds)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	next := [replPartitions]int64{}
	done := func() bool {
		for p := range next {
			if next[p] < ends[p] {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("final read: at %v of %v after 2 min (errors %v)", next, ends, s.errs)
		}
		fs.EachError(func(_ string, p int32, err error) {
			s.errs[fmt.Sprintf("partition %d: %v", p, err)]++
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				s.add(r.Partition, r.Offset, string(r.Value))
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
	}
	for p := int32(0); p < replPartitions; p++ {
		if int64(len(s.vals[p])) < ends[p] {
			grown := make([]uint64, ends[p])
			copy(grown, s.vals[p])
			s.vals[p] = grown
		}
	}
}

// diskLog reads a partition directory's segments as they are on disk:
// the value key at each offset (0: no record there). It needs
// uncompressed batches.
func diskLog(dir string) ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names) // zero-padded base offsets
	var out []uint64
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for len(b) >= 12 {
			n := int(binary.BigEndian.Uint32(b[8:12]))
			if n == 0 || len(b) < 12+n {
				break // preallocated zeros or a partial tail
			}
			var batch kmsg.RecordBatch
			if err := batch.ReadFrom(b[:12+n]); err != nil {
				return nil, fmt.Errorf("%s: batch at %d: %v", filepath.Base(name), int64(binary.BigEndian.Uint64(b)), err)
			}
			b = b[12+n:]
			if batch.Attributes&0x20 != 0 {
				continue // a control batch
			}
			if batch.Attributes&0x7 != 0 {
				return nil, fmt.Errorf("%s: compressed batch at %d", filepath.Base(name), batch.FirstOffset)
			}
			recs := batch.Records
			for i := int32(0); i < batch.NumRecords; i++ {
				l, k := binary.Varint(recs)
				if k <= 0 || l < 0 || int64(len(recs)) < int64(k)+l {
					return nil, fmt.Errorf("%s: batch at %d: bad record %d", filepath.Base(name), batch.FirstOffset, i)
				}
				var r kmsg.Record
				if err := r.ReadFrom(recs[:int64(k)+l]); err != nil {
					return nil, fmt.Errorf("%s: batch at %d: record %d: %v", filepath.Base(name), batch.FirstOffset, i, err)
				}
				recs = recs[int64(k)+l:]
				off := batch.FirstOffset + int64(r.OffsetDelta)
				key, ok := valueKey(string(r.Value))
				if !ok {
					return nil, fmt.Errorf("%s: offset %d holds %q", filepath.Base(name), off, r.Value)
				}
				if off < int64(len(out)) {
					return nil, fmt.Errorf("%s: offset %d after offset %d", filepath.Base(name), off, len(out)-1)
				}
				for int64(len(out)) < off {
					out = append(out, 0)
				}
				out = append(out, key)
			}
		}
	}
	return out, nil
}

// compareReplica describes how a replica's log differs from the final
// read up to end ("" if it does not).
func compareReplica(disk, final []uint64, end int64) string {
	if int64(len(disk)) < end {
		return fmt.Sprintf("ends at %d, the final log at %d", len(disk), end)
	}
	for off := int64(0); off < end; off++ {
		if disk[off] != final[off] {
			return fmt.Sprintf("offset %d holds %s, the final read %s", off, keyString(disk[off]), keyString(final[off]))
		}
	}
	if int64(len(disk)) > end {
		return fmt.Sprintf("%d records beyond the final log's end %d", int64(len(disk))-end, end)
	}
	return ""
}
