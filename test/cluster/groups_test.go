package cluster

// Consumer groups across the death of their coordinator: a franz-go group
// and a kafka-python group consume a replicated topic, committing after
// every batch, while the node coordinating the franz-go group (the leader
// of its __consumer_offsets partition) is killed with SIGKILL and later
// restarted. Both groups must consume every record, and no committed
// offset may go backwards (none lost).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const groupRecords = 3000

// kafkaPython is a python with kafka-python installed: test/compat's
// kafka-python 3.x venv, or the system's python3-kafka.
func kafkaPython(t *testing.T) string {
	venv, _ := filepath.Abs("../compat/.venv-kafka-python3/bin/python")
	for _, py := range []string{venv, "/usr/bin/python3"} {
		if _, err := os.Stat(py); err == nil && exec.Command(py, "-c", "import kafka").Run() == nil {
			return py
		}
	}
	msg := "kafka-python not installed (bash test/compat/install.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

const kafkaPythonGroup = `
import logging, sys, time
from kafka import KafkaConsumer
logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
boot, topic, group, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = KafkaConsumer(topic, bootstrap_servers=boot.split(","), group_id=group, enable_auto_commit=False,
                  auto_offset_reset="earliest", request_timeout_ms=20000, session_timeout_ms=10000,
                  heartbeat_interval_ms=1000, retry_backoff_ms=200)
seen = set()
deadline = time.time() + 150
assigned = None
while len(seen) < want and time.time() < deadline:
    batch = c.poll(timeout_ms=500)
    if c.assignment() != assigned:
        assigned = c.assignment()
        print("assigned", sorted(tp.partition for tp in assigned), flush=True)
    for recs in batch.values():
        for r in recs:
            seen.add(r.value)
    if batch:
        while True:
            try:
                c.commit()
                break
            except Exception as e:
                print("commit retry:", e, flush=True)
                time.sleep(0.5)
                if time.time() > deadline:
                    break
    print("seen", len(seen), flush=True)
c.close()
print("done", len(seen), flush=True)
`

func TestGroupsSurviveCoordinatorDeath(t *testing.T) {
	py := kafkaPython(t)
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl := c.client(c.addrs(), kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(cl)
	const topic = "groups-repl"
	if _, err := adm.CreateTopic(ctx, 6, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	waitFullISR(t, ctx, adm, topic, 3)
	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("v%05d", i))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, groupRecords)
	// Every node knows the topic before kafka-python asks any of them: its
	// range assignor gives nothing for a topic missing from the leader's
	// metadata, and it refreshes that only every 5 minutes.
	for _, nd := range c.nodes {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp, err := ask[*kmsg.MetadataResponse](nd.directClient(), 2*time.Second, req)
			if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d does not know %s after 30 s: %v", nd.id, topic, err)
			}
		}
	}

	// kafka-python's group runs in its own process throughout.
	script := filepath.Join(t.TempDir(), "group.py")
	if err := os.WriteFile(script, []byte(kafkaPythonGroup), 0o644); err != nil {
		t.Fatal(err)
	}
	// Both groups hash to the same __consumer_offsets partition, so one
	// kill takes both coordinators.
	pyGroup := sameOffsetsPartition("kgo-group", "kp-group")
	pyCmd := exec.CommandContext(ctx, py, script, strings.Join(c.addrs(), ","), topic, pyGroup, fmt.Sprint(2*groupRecords))
	pyOut, _ := pyCmd.StdoutPipe()
	pyCmd.Stderr = pyCmd.Stdout
	if err := pyCmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pyLines []string
	var pyMu sync.Mutex
	pyDone := make(chan struct{})
	go func() {
		defer close(pyDone)
		sc := bufio.NewScanner(pyOut)
		for sc.Scan() {
			pyMu.Lock()
			pyLines = append(pyLines, sc.Text())
			pyMu.Unlock()
		}
	}()

	// franz-go's group, committing after each poll.
	const group = "kgo-group"
	gc := c.client(c.addrs(), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(10*time.Second))
	seen := map[string]bool{}
	committed := map[int32]int64{} // the highest offset ever committed per partition
	consume := func(until int) {
		t.Helper()
		for len(seen) < until {
			fs := gc.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("franz-go group consumed %d of %d", len(seen), until)
			}
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
			if err := gc.CommitUncommittedOffsets(ctx); err != nil {
				t.Logf("commit: %v (retried with the next one)", err)
			}
		}
	}
	consume(groupRecords / 2)
	checkCommitted := func(when string) {
		t.Helper()
		var offs kadm.OffsetResponses
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			// Right after the kill the client may still dial the dead
			// coordinator; it finds the new one on a retry.
			// A fresh client each time: franz-go keeps a dead coordinator
			// cached until its metadata drops the node.
			fresh := kadm.NewClient(c.client(c.addrs()))
			offs, err = fresh.FetchOffsets(ctx, group)
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("fetch offsets %s: %v", when, err)
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.At < committed[o.Partition] {
				t.Errorf("%s: committed offset of partition %d went back from %d to %d", when, o.Partition, committed[o.Partition], o.At)
			}
			committed[o.Partition] = max(committed[o.Partition], o.At)
		})
	}
	checkCommitted("before the kill")

	// Both groups are consuming when their coordinator dies.
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pyMu.Lock()
		joined := slices.ContainsFunc(pyLines, func(l string) bool { return strings.HasPrefix(l, "assigned [") && l != "assigned []" })
		pyMu.Unlock()
		if joined {
			break
		}
		if time.Now().After(deadline) {
			pyMu.Lock()
			out := strings.Join(pyLines, "\n")
			pyMu.Unlock()
			t.Fatalf("the kafka-python group got no partitions within 90 s:\n%s", tail(out, 4<<10))
		}
	}
	coord := findCoordinator(t, ctx, cl, group)
	if pc := findCoordinator(t, ctx, cl, pyGroup); pc != coord {
		t.Fatalf("coordinators of %s (%d) and %s (%d) differ", group, coord, pyGroup, pc)
	}
	t.Logf("killing node %d, the coordinator of %s and %s", coord, group, pyGroup)
	victim := c.nodes[coord-1]
	victim.kill()
	produce(groupRecords, groupRecords)
	consume(2 * groupRecords)
	checkCommitted("after the kill")
	victim.restart()
	checkCommitted("after the restart")

	select {
	case <-pyDone:
	case <-ctx.Done():
	}
	_ = pyCmd.Wait()
	pyMu.Lock()
	last := ""
	if len(pyLines) > 0 {
		last = pyLines[len(pyLines)-1]
	}
	out := strings.Join(pyLines, "\n")
	pyMu.Unlock()
	if last != fmt.Sprintf("done %d", 2*groupRecords) {
		t.Fatalf("kafka-python group did not consume every record; its output begins:\n%s\n...\nand ends:\n%s", head(out, 4<<10), tail(out, 4<<10))
	}
	t.Logf("franz-go group consumed %d distinct records, kafka-python group %d, across the coordinator's kill", len(seen), 2*groupRecords)
	c.checkAlive()
}

// findCoordinator asks FindCoordinator for a group's coordinator.
func findCoordinator(t *testing.T, ctx context.Context, cl *kgo.Client, group string) int32 {
	t.Helper()
	for ctx.Err() == nil {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = group
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			return resp.NodeID
		}
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		t.Logf("FindCoordinator: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("no coordinator")
	return -1
}

// sameOffsetsPartition returns prefix-N, the first such group id whose
// __consumer_offsets partition (Kafka's abs(hashCode) % 50) is group's.
func sameOffsetsPartition(group, prefix string) string {
	part := func(s string) int32 {
		var h int32
		for _, r := range s { // Java's String.hashCode over UTF-16; ASCII here
			h = 31*h + int32(r)
		}
		if h < 0 {
			h = -h
		}
		return h % 50
	}
	for i := 0; ; i++ {
		if g := fmt.Sprintf("%s-%d", prefix, i); part(g) == part(group) {
			return g
		}
	}
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
