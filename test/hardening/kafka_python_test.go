package hardening

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// kpScript is a kafka-python producer and consumer (assign, no group) of
// one topic, driven over stdin: "round N" produces N records with acks=all
// and reads them back, answering "ok <total consumed>" or "error ...".
// Both clients connect (and make one round trip) before the script says
// "ready", as long-lived clients are connected before trouble starts.
const kpScript = `
import sys
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
boot, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=boot)
admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
admin.close()
p = KafkaProducer(bootstrap_servers=boot, acks='all', retries=5, request_timeout_ms=20000)
c = KafkaConsumer(bootstrap_servers=boot, consumer_timeout_ms=20000, fetch_max_wait_ms=200)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek_to_beginning(tp)
sent = consumed = 0
def round(n):
    global sent, consumed
    for i in range(n):
        p.send(topic, b'kafka-python %d' % sent).get(timeout=20)
        sent += 1
    for m in c:
        if m.value != b'kafka-python %d' % consumed:
            raise Exception('read %r at %d' % (m.value, consumed))
        consumed += 1
        if consumed == sent:
            break
    if consumed != sent:
        raise Exception('consumed %d of %d' % (consumed, sent))
round(1)
print('ready', flush=True)
for line in sys.stdin:
    cmd = line.split()
    try:
        round(int(cmd[1]))
        print('ok %d' % consumed, flush=True)
    except Exception as e:
        print('error %s' % e, flush=True)
`

// kpClient is a running kpScript.
type kpClient struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startKafkaPython starts the kafka-python clients, or skips the test when
// kafka-python is missing outside CI (make deps installs it; in CI its
// absence is a failure).
func startKafkaPython(t *testing.T, addr, topic string) *kpClient {
	t.Helper()
	if err := exec.Command("python3", "-c", "import kafka").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kafka-python is not installed for python3 (make deps installs it)")
		}
		t.Skip("kafka-python is not installed for python3 (run make deps)")
	}
	cmd := exec.Command("python3", "-c", kpScript, addr, topic)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &kpClient{t: t, cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	if line := k.line(60 * time.Second); line != "ready" {
		t.Fatalf("kafka-python clients did not start: %q\n%s", line, stderr.String())
	}
	return k
}

func (k *kpClient) line(timeout time.Duration) string {
	got := make(chan string, 1)
	go func() {
		if k.out.Scan() {
			got <- k.out.Text()
		} else {
			got <- "EOF"
		}
	}()
	select {
	case l := <-got:
		return l
	case <-time.After(timeout):
		return "timeout"
	}
}

// round produces and consumes n records through kafka-python and fails
// the test if they do not come back in order.
func (k *kpClient) round(n int) {
	k.t.Helper()
	if _, err := fmt.Fprintf(k.in, "round %d\n", n); err != nil {
		k.t.Fatalf("kafka-python: %v", err)
	}
	if l := k.line(90 * time.Second); !strings.HasPrefix(l, "ok ") {
		k.t.Fatalf("kafka-python round of %d: %s", n, l)
	}
}
