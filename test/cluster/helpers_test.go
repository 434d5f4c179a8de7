// Package cluster runs three real `gregor serve` processes as a combined
// broker+controller cluster (the Raft metadata quorum) on 127.0.0.1 and
// injects faults into them: kill -9 of the active controller while an
// admin workload runs, kill -9 and restart of a broker holding partitions,
// SIGSTOP/SIGCONT of the active controller, and a Jepsen-style campaign
// against partition replication. Each test checks, node by
// node, that what was acknowledged survives.
//
// TestReplicationJepsen (replication_test.go) routes every link of the
// cluster through internal/faultnet and runs a campaign of mixed faults
// against replicated partitions under producers and consumers.
//
// GREGOR_CLUSTER_KILLS sets the number of controller kills of
// TestClusterControllerFailover (default 3; `make cluster-faults` runs 20).
// GREGOR_REPL_FAULTS sets the number of faults of TestReplicationJepsen
// (default 5; `make repl-faults` runs 50), GREGOR_REPL_SEED its seed.
// GREGOR_CLUSTER_LOG_LEVEL sets the nodes' --log-level (default info);
// GREGOR_CLUSTER_LOGS names a directory to write every node's whole output
// to (by default it is only shown, abridged, when a test fails);
// GREGOR_BIN uses a prebuilt binary instead of building one.
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/test/testenv"
)

// Timing of the test clusters: a broker that stops heartbeating is fenced
// after sessionTimeout.
const (
	sessionTimeout    = 3 * time.Second
	heartbeatInterval = 500 * time.Millisecond
	startTimeout      = 45 * time.Second
)

// syncBuffer is an output buffer written by a process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *syncBuffer) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Len()
}

// node is one combined broker+controller process of a cluster.
type node struct {
	t     *testing.T
	c     *cluster
	id    int32
	addr  string // PLAINTEXT (client) listener
	ctrl  string // CONTROLLER listener (raft and controller APIs)
	props string // its server.properties
	dir   string // its log.dirs

	out *syncBuffer // output of every run of this node, runs separated

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current run exited
	runs   int
	from   int  // offset in out where the current run's output begins
	killed bool // the harness ended the current run on purpose
	paused bool

	ctrlCl, directCl *kgo.Client
}

// cluster is three nodes sharing one cluster id.
type cluster struct {
	t     *testing.T
	bin   string
	nodes []*node
}

// newCluster writes the properties of n voters (extra lines appended to
// each, "key=value"), formats their dirs with one cluster id and starts
// them all, waiting until every node serves clients. Everything is killed
// when the test ends; if it failed, each node's output is logged.
func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	return newClusterWith(t, n, clusterOpts{extra: extra})
}

// clusterOpts extends newCluster, for tests that route a node's traffic
// through proxies (internal/faultnet) or need per-node properties.
type clusterOpts struct {
	extra []string // lines appended to every node's properties
	// prepare, if set, runs once every node's addresses are chosen and
	// before any properties are written (to start proxies to them).
	prepare func(c *cluster)
	// props, if set, gives one node's own properties: a key already
	// written (controller.quorum.voters, listeners, advertised.listeners,
	// listener.security.protocol.map, inter.broker.listener.name, ...)
	// takes the new value in place, any other key is appended after extra.
	props func(nd *node) map[string]string
}

// newClusterWith is newCluster with options.
func newClusterWith(t *testing.T, n int, o clusterOpts) *cluster {
	t.Helper()
	extra := o.extra
	c := &cluster{t: t, bin: testenv.Binary(t)}
	root := t.TempDir()
	var voters []string
	for i := 1; i <= n; i++ {
		nd := &node{t: t, c: c, id: int32(i), addr: testenv.FreeAddr(t), ctrl: testenv.FreeAddr(t),
			dir: filepath.Join(root, fmt.Sprintf("node-%d", i)), out: &syncBuffer{}}
		nd.props = filepath.Join(root, fmt.Sprintf("server-%d.properties", i))
		voters = append(voters, fmt.Sprintf("%d@%s", i, nd.ctrl))
		c.nodes = append(c.nodes, nd)
	}
	if o.prepare != nil {
		o.prepare(c)
	}
	for _, nd := range c.nodes {
		lines := []string{
			"process.roles=broker,controller",
			fmt.Sprintf("node.id=%d", nd.id),
			"controller.quorum.voters=" + strings.Join(voters, ","),
			fmt.Sprintf("listeners=PLAINTEXT://%s,CONTROLLER://%s", nd.addr, nd.ctrl),
			"advertised.listeners=PLAINTEXT://" + nd.addr,
			"controller.listener.names=CONTROLLER",
			"inter.broker.listener.name=PLAINTEXT",
			"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"log.dirs=" + nd.dir,
			"gregor.http.listener=",
			fmt.Sprintf("broker.session.timeout.ms=%d", sessionTimeout.Milliseconds()),
			fmt.Sprintf("broker.heartbeat.interval.ms=%d", heartbeatInterval.Milliseconds()),
			"group.initial.rebalance.delay.ms=0",
		}
		lines = append(lines, extra...)
		if o.props != nil {
			lines = overrideProps(lines, o.props(nd))
		}
		if err := os.WriteFile(nd.props, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := strings.TrimSpace(c.run("storage", "random-uuid"))
	for _, nd := range c.nodes {
		c.run("storage", "format", "-t", id, "-c", nd.props)
	}
	t.Cleanup(c.cleanup)
	for _, nd := range c.nodes {
		nd.start()
	}
	for _, nd := range c.nodes {
		nd.waitServing()
	}
	return c
}

// overrideProps sets props in lines ("key=value"): a key present takes
// the new value where it is, the others are appended in key order.
func overrideProps(lines []string, props map[string]string) []string {
	done := map[string]bool{}
	for i, line := range lines {
		k, _, _ := strings.Cut(line, "=")
		if v, ok := props[k]; ok {
			lines[i] = k + "=" + v
			done[k] = true
		}
	}
	var rest []string
	for k := range props {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		lines = append(lines, k+"="+props[k])
	}
	return lines
}

// run runs a gregor subcommand and returns its output.
func (c *cluster) run(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("gregor %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cleanup kills every node and, if the test failed, logs their output. A
// node that printed a panic or a race report fails the test.
func (c *cluster) cleanup() {
	for _, nd := range c.nodes {
		nd.kill()
		for _, cl := range []*kgo.Client{nd.ctrlCl, nd.directCl} {
			if cl != nil {
				cl.Close()
			}
		}
	}
	for _, nd := range c.nodes {
		out := nd.out.String()
		for _, bad := range []string{"panic:", "fatal error:", "WARNING: DATA RACE"} {
			if strings.Contains(out, bad) {
				c.t.Errorf("node %d printed %q", nd.id, bad)
			}
		}
	}
	if dir := os.Getenv("GREGOR_CLUSTER_LOGS"); dir != "" {
		for _, nd := range c.nodes {
			name := filepath.Join(dir, fmt.Sprintf("%s-node-%d.log", strings.ReplaceAll(c.t.Name(), "/", "_"), nd.id))
			if err := os.WriteFile(name, []byte(nd.out.String()), 0o644); err != nil {
				c.t.Error(err)
			}
		}
	}
	if c.t.Failed() {
		for _, nd := range c.nodes {
			c.t.Logf("node %d output (%d runs; last 16 KiB, without per-topic lines):\n%s", nd.id, nd.runs, tail(digest(nd.out.String()), 16<<10))
		}
	}
}

// digest drops the per-operation info lines of the workload from a
// node's output, leaving what tells a failure's story.
func digest(out string) string {
	var keep []string
	dropped := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="created topic"`) || strings.Contains(line, `msg="deleted topic"`) ||
			strings.Contains(line, `msg="altered topic configs"`) {
			dropped++
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n") + fmt.Sprintf("\n(%d created/deleted/altered topic lines left out)", dropped)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// start runs the node (a new run of the same dir) without waiting.
func (nd *node) start() {
	nd.t.Helper()
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil && !nd.exitedLocked() {
		nd.t.Fatalf("node %d: start while running", nd.id)
	}
	nd.runs++
	fmt.Fprintf(nd.out, "\n===== node %d run %d, %s =====\n", nd.id, nd.runs, time.Now().Format("15:04:05.000"))
	nd.from = nd.out.Len()
	level := os.Getenv("GREGOR_CLUSTER_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	cmd := exec.Command(nd.c.bin, "serve", "-c", nd.props, "--log-level", level)
	cmd.Stdout, cmd.Stderr = nd.out, nd.out
	if err := cmd.Start(); err != nil {
		nd.t.Fatalf("start node %d: %v", nd.id, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(nd.out, "===== node %d exited: %v =====\n", nd.id, err)
		close(done)
	}()
	nd.cmd, nd.done, nd.killed, nd.paused = cmd, done, false, false
}

func (nd *node) exitedLocked() bool {
	select {
	case <-nd.done:
		return true
	default:
		return false
	}
}

// running reports whether the current run has not exited (it may be
// paused).
func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil && !nd.exitedLocked()
}

// live reports whether the node runs and is not paused.
func (nd *node) live() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil && !nd.exitedLocked() && !nd.paused
}

// output is what the current run printed so far.
func (nd *node) output() string {
	nd.mu.Lock()
	from := nd.from
	nd.mu.Unlock()
	return nd.out.String()[from:]
}

// waitServing waits for the current run's start banner: the node is in the
// quorum, registered and unfenced, and serves clients.
func (nd *node) waitServing() {
	nd.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(nd.output(), " started in ") {
		if !nd.running() {
			nd.t.Fatalf("node %d exited at start:\n%s", nd.id, tail(nd.output(), 8<<10))
		}
		if time.Now().After(deadline) {
			nd.t.Fatalf("node %d not serving after %s:\n%s", nd.id, startTimeout, tail(nd.output(), 8<<10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restart starts the node again and waits until it serves.
func (nd *node) restart() {
	nd.t.Helper()
	nd.start()
	nd.waitServing()
}

// signal sends sig to the current run.
func (nd *node) signal(sig syscall.Signal) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil && !nd.exitedLocked() {
		_ = nd.cmd.Process.Signal(sig)
	}
}

// kill ends the current run with SIGKILL and waits for it to exit.
// Killing a node that is not running is harmless.
func (nd *node) kill() {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	if cmd == nil {
		nd.mu.Unlock()
		return
	}
	nd.killed = true
	_ = cmd.Process.Signal(syscall.SIGKILL)
	nd.mu.Unlock()
	<-done
	nd.mu.Lock()
	nd.paused = false
	nd.mu.Unlock()
}

// terminate stops the current run with SIGTERM (a clean shutdown) and
// waits up to timeout for it to exit; it reports whether it did. A run
// ended this way counts as ended by the harness.
func (nd *node) terminate(timeout time.Duration) bool {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	if cmd == nil {
		nd.mu.Unlock()
		return true
	}
	nd.killed = true
	_ = cmd.Process.Signal(syscall.SIGTERM)
	nd.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// pause stops the process with SIGSTOP; resume continues it.
func (nd *node) pause() {
	nd.signal(syscall.SIGSTOP)
	nd.mu.Lock()
	nd.paused = true
	nd.mu.Unlock()
}

func (nd *node) resume() {
	nd.signal(syscall.SIGCONT)
	nd.mu.Lock()
	nd.paused = false
	nd.mu.Unlock()
}

// checkAlive fails the test if a node exited that the test did not kill.
func (c *cluster) checkAlive() {
	c.t.Helper()
	for _, nd := range c.nodes {
		nd.mu.Lock()
		died := nd.cmd != nil && !nd.killed && nd.exitedLocked()
		nd.mu.Unlock()
		if died {
			c.t.Fatalf("node %d exited on its own:\n%s", nd.id, tail(nd.output(), 8<<10))
		}
	}
}

// others are the nodes other than these.
func (c *cluster) others(not ...*node) []*node {
	var out []*node
next:
	for _, nd := range c.nodes {
		for _, x := range not {
			if nd == x {
				continue next
			}
		}
		out = append(out, nd)
	}
	return out
}

// addrs are the client listeners of nodes (all nodes when none given).
func (c *cluster) addrs(nodes ...*node) []string {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.addr)
	}
	return out
}

// client is a franz-go client with the given seeds, closed at the end of
// the test.
func (c *cluster) client(seeds []string, opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// ctrlClient and directClient are the node's own clients of its
// controller and client listeners: SeedBrokers()[0] is that listener and
// nothing else. Made once, closed with the cluster.
func (nd *node) ctrlClient() *kgo.Client {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.ctrlCl == nil {
		nd.ctrlCl = newDirect(nd.t, nd.ctrl)
	}
	return nd.ctrlCl
}

func (nd *node) directClient() *kgo.Client {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.directCl == nil {
		nd.directCl = newDirect(nd.t, nd.addr)
	}
	return nd.directCl
}

func newDirect(t *testing.T, addr string) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// ask sends req to the client's seed listener itself (not routed by the
// client), with a timeout.
func ask[R kmsg.Response](cl *kgo.Client, timeout time.Duration, req kmsg.Request) (R, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var zero R
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return zero, err
	}
	return resp.(R), nil
}

// quorumView is a voter's answer to DescribeQuorum on its controller
// listener. Only the leader answers without an error (a follower says
// NOT_LEADER_OR_FOLLOWER, without naming the leader).
type quorumView struct {
	isLeader bool
	epoch    int32
	hw       int64
	voters   map[int32]int64 // log end offset per voter
}

func (v quorumView) String() string {
	if !v.isLeader {
		return "not leader"
	}
	return fmt.Sprintf("leader at epoch %d, high watermark %d, voters' log ends %v", v.epoch, v.hw, v.voters)
}

// quorumState asks the node's controller listener DescribeQuorum.
func (nd *node) quorumState() (quorumView, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	resp, err := ask[*kmsg.DescribeQuorumResponse](nd.ctrlClient(), 2*time.Second, req)
	if err != nil {
		return quorumView{}, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return quorumView{}, fmt.Errorf("DescribeQuorum answered %d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if resp.ErrorCode != 0 || p.ErrorCode != 0 {
		return quorumView{}, nil
	}
	if p.LeaderID != nd.id {
		return quorumView{}, fmt.Errorf("answered DescribeQuorum as the leader, naming %d", p.LeaderID)
	}
	v := quorumView{isLeader: true, epoch: p.LeaderEpoch, hw: p.HighWatermark, voters: map[int32]int64{}}
	for _, r := range p.CurrentVoters {
		v.voters[r.ReplicaID] = r.LogEndOffset
	}
	return v, nil
}

// controllerID is the active controller named in the node's own Metadata
// answer.
func (nd *node) controllerID() (int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := ask[*kmsg.MetadataResponse](nd.directClient(), 2*time.Second, req)
	if err != nil {
		return -1, err
	}
	return resp.ControllerID, nil
}

// activeController waits until exactly one live voter says it leads the
// quorum and every live node names it as the controller in Metadata, and
// returns it with its epoch (raft term).
func (c *cluster) activeController(timeout time.Duration) (*node, int32) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	prev := ""
	for {
		c.checkAlive()
		var leaders []*node
		var epoch int32
		var views []string
		for _, nd := range c.nodes {
			if !nd.live() {
				continue
			}
			v, err := nd.quorumState()
			if err != nil {
				views = append(views, fmt.Sprintf("node %d: %v", nd.id, err))
				continue
			}
			views = append(views, fmt.Sprintf("node %d: %v", nd.id, v))
			if v.isLeader {
				leaders = append(leaders, nd)
				epoch = v.epoch
			}
		}
		if len(leaders) == 1 {
			agree := true
			for _, nd := range c.nodes {
				if !nd.live() {
					continue
				}
				id, err := nd.controllerID()
				views = append(views, fmt.Sprintf("node %d names controller %d (%v)", nd.id, id, err))
				if err != nil || id != leaders[0].id {
					agree = false
				}
			}
			if agree {
				if waited := time.Since(deadline.Add(-timeout)); waited > 2*time.Second {
					c.t.Logf("agreed on controller node %d after %s; the answer before: %s", leaders[0].id, waited.Round(time.Millisecond), prev)
				}
				return leaders[0], epoch
			}
		}
		prev = strings.Join(views, "; ")
		if time.Now().After(deadline) {
			c.t.Fatalf("no agreed active controller after %s (last: %s)", timeout, prev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitQuorumCaughtUp waits until the active controller reports every
// voter's log at its high watermark (no workload may run meanwhile).
func (c *cluster) waitQuorumCaughtUp(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		leader, _ := c.activeController(timeout)
		v, err := leader.quorumState()
		if err == nil && v.isLeader && len(v.voters) == len(c.nodes) {
			ok := true
			for _, leo := range v.voters {
				if leo < v.hw {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("quorum not caught up after %s: node %d: %v %v", timeout, leader.id, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// topicView is one node's own Metadata answer about a topic.
type topicView struct {
	err     int16
	leaders map[int32]int32 // partition → leader (-1: none)
}

// brokerView is a node's own Metadata answer: the brokers it lists and
// the topics it knows (all topics).
type brokerView struct {
	brokers map[int32]string
	topics  map[string]topicView
}

// metadataFrom asks nd's client listener itself for the metadata of all
// topics (topics nil) or of the given ones.
func (c *cluster) metadataFrom(cl *kgo.Client, topics ...string) (brokerView, error) {
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		for _, tp := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(tp)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := ask[*kmsg.MetadataResponse](cl, 5*time.Second, req)
	if err != nil {
		return brokerView{}, err
	}
	v := brokerView{brokers: map[int32]string{}, topics: map[string]topicView{}}
	for _, b := range resp.Brokers {
		v.brokers[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	for _, tp := range resp.Topics {
		if tp.Topic == nil {
			continue
		}
		tv := topicView{err: tp.ErrorCode, leaders: map[int32]int32{}}
		for _, p := range tp.Partitions {
			tv.leaders[p.Partition] = p.Leader
		}
		v.topics[*tp.Topic] = tv
	}
	return v, nil
}

// topicConfigFrom asks the listener of cl itself for one config of a
// topic: its value, or an error.
func topicConfigFrom(cl *kgo.Client, topic, name string) (string, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{name}
	req.Resources = append(req.Resources, rr)
	resp, err := ask[*kmsg.DescribeConfigsResponse](cl, 5*time.Second, req)
	if err != nil {
		return "", err
	}
	if len(resp.Resources) != 1 {
		return "", fmt.Errorf("DescribeConfigs answered %d resources", len(resp.Resources))
	}
	r := resp.Resources[0]
	if r.ErrorCode != 0 {
		return "", fmt.Errorf("DescribeConfigs %s: error %d", topic, r.ErrorCode)
	}
	for _, cfg := range r.Configs {
		if cfg.Name == name && cfg.Value != nil {
			return *cfg.Value, nil
		}
	}
	return "", fmt.Errorf("DescribeConfigs %s: no %s", topic, name)
}

// eventually polls f until it returns nil or the timeout passes, then
// returns f's last error.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
