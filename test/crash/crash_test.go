// Package crash kills a real `gregor serve` process with SIGKILL while
// acks=all producers run, restarts it, and checks that every acknowledged
// record is still readable at its acknowledged offset, with no duplicates.
// A consumer runs during every cycle; after each restart, every offset it
// was served before the kill must still exist, holding the same record
// (the high watermark never passes what a crash can take back). Note that
// kill -9 keeps the page cache, so this checks what a process crash can
// break (recovery dropping a served tail), not power loss.
// It then damages the tail of the active segments (garbage appended, a
// batch torn in half) and checks recovery serves no corrupt bytes.
//
// GREGOR_CRASH_CYCLES sets the number of kill cycles (default 20);
// GREGOR_BIN uses a prebuilt binary instead of building one.
package crash

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/test/testenv"
)

const topic = "crash"

type server struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	log  *os.File
	// extra are more serve flags (e.g. --override key=value).
	extra []string
}

func buildBinary(t *testing.T) string {
	if bin := os.Getenv("GREGOR_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "gregor")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/gregor").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func (s *server) start() {
	s.t.Helper()
	var err error
	s.log, err = os.OpenFile(filepath.Join(s.dir, "..", "broker.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd = exec.Command(s.bin, append([]string{"serve", "--data-dir", s.dir,
		"--listeners", "PLAINTEXT://" + s.addr, "--log-level", "warn"}, s.extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("broker did not start; see %s", s.log.Name())
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.log.Close()
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.t.Error("broker did not stop on SIGTERM within 20s")
		s.kill()
		return
	}
	s.log.Close()
}

type ack struct {
	partition int32
	offset    int64
}

func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	cycles := 20
	if v := os.Getenv("GREGOR_CRASH_CYCLES"); v != "" {
		cycles, _ = strconv.Atoi(v)
	}
	root := t.TempDir()
	s := &server{t: t, bin: buildBinary(t), dir: filepath.Join(root, "data"), addr: testenv.FreeAddr(t)}
	s.start()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.kill()
		}
	})
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(admin).CreateTopic(context.Background(), 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	var mu sync.Mutex
	acked := map[string]ack{} // value → where it was acknowledged
	failed := 0
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	consumed := map[ack]string{} // the last record served per partition, each cycle
	high := map[int32]int64{}    // highest offset served per partition

	for cycle := 0; cycle < cycles; cycle++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.DefaultProduceTopic(topic),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond),
			kgo.RecordRetries(20), kgo.RecordDeliveryTimeout(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for p := 0; p < 3; p++ {
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					val := fmt.Sprintf("c%d-p%d-%d", cycle, p, i)
					cl.Produce(context.Background(), &kgo.Record{Key: []byte(val), Value: []byte(val)}, func(r *kgo.Record, err error) {
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							failed++
							return
						}
						acked[string(r.Value)] = ack{r.Partition, r.Offset}
					})
					if i%50 == 49 {
						time.Sleep(time.Millisecond)
					}
				}
			}(p)
		}
		consumerDone := consume(t, s.addr, high, consumed, stop)
		time.Sleep(time.Duration(200+rng.Intn(1300)) * time.Millisecond)
		s.kill()
		close(stop)
		wg.Wait()
		<-consumerDone // everything it saw was served before the kill
		s.start()
		checkSeenSurvived(t, s.addr, high)
		// Records in flight at the kill are retried against the new
		// process (the idempotent producer dedupes what did survive).
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		_ = cl.Flush(ctx)
		cancel()
		cl.Close()
	}
	mu.Lock()
	t.Logf("%d kill -9 cycles, %d records acknowledged, %d failed (never acknowledged)", cycles, len(acked), failed)
	mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}

	t.Logf("consumers were served records up to offsets %v before the kills", high)
	verify(t, s.addr, acked, consumed)
	s.stop()

	// Damage the active segments: garbage after the last batch of
	// partition 0, a batch torn in half at the end of partition 1.
	tornAt := damageTails(t, s.dir)
	s.start()
	defer s.stop()
	keep := map[string]ack{}
	for v, a := range acked {
		if a.partition == 1 && a.offset >= tornAt {
			continue // deliberately destroyed above
		}
		keep[v] = a
	}
	verify(t, s.addr, keep, nil)

	// The log continues at the right offsets after recovery: the torn
	// batch is gone and partition 1 ends where it began.
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := ends.Lookup(topic, 1); e.Offset != tornAt {
		t.Errorf("partition 1 ends at %d after recovery, want %d (start of the torn batch)", e.Offset, tornAt)
	}
	for p := int32(0); p < 2; p++ {
		e, _ := ends.Lookup(topic, p)
		r, err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: []byte("after-recovery")}).First()
		if err != nil {
			t.Fatalf("produce after recovery: %v", err)
		}
		if r.Offset != e.Offset {
			t.Errorf("partition %d: new record at offset %d, want %d", p, r.Offset, e.Offset)
		}
	}
}

// consume reads the topic from where the last cycle's consumer stopped
// until stop, recording the highest offset it is served per partition and
// the record there. The returned channel is closed once it has stopped;
// only then may the maps be read.
func consume(t *testing.T, addr string, high map[int32]int64, consumed map[ack]string, stop chan struct{}) chan struct{} {
	t.Helper()
	start := map[int32]kgo.Offset{}
	for p := int32(0); p < 4; p++ {
		if h, ok := high[p]; ok {
			start[p] = kgo.NewOffset().At(h + 1)
		} else {
			start[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stop
		cancel()
	}()
	go func() {
		defer close(done)
		defer cl.Close()
		last := map[int32]*kgo.Record{}
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				if l := last[r.Partition]; l == nil || r.Offset > l.Offset {
					last[r.Partition] = r
				}
			})
		}
		for p, r := range last {
			consumed[ack{p, r.Offset}] = string(r.Value)
			high[p] = r.Offset
		}
	}()
	return done
}

// checkSeenSurvived checks, after a restart, that every partition still
// reaches the highest offset a consumer was served before the kill.
func checkSeenSurvived(t *testing.T, addr string, high map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, h := range high {
		if e, _ := ends.Lookup(topic, p); e.Offset <= h {
			t.Errorf("partition %d ends at %d after kill -9, but a consumer was served offset %d before it", p, e.Offset, h)
		}
	}
}

// verify reads the whole topic and checks every acknowledged record, and
// every record a consumer was served during the kill cycles.
func verify(t *testing.T, addr string, acked map[string]ack, consumed map[ack]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	got := map[ack]string{}
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for n := int64(0); n < want; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", n, want)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			n++
			got[ack{r.Partition, r.Offset}] = string(r.Value)
			seen[string(r.Value)]++
		})
	}
	lost := 0
	for v, a := range acked {
		if got[a] != v {
			if lost < 10 {
				t.Errorf("acknowledged %q at partition %d offset %d, found %q", v, a.partition, a.offset, got[a])
			}
			lost++
		}
	}
	var dups []string
	for v, n := range seen {
		if n > 1 {
			dups = append(dups, v)
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("%d values stored more than once, e.g. %v", len(dups), dups[:min(5, len(dups))])
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(acked))
	}
	changed := 0
	for a, v := range consumed {
		if got[a] != v {
			if changed < 10 {
				t.Errorf("a consumer was served %q at partition %d offset %d; after the kills it holds %q", v, a.partition, a.offset, got[a])
			}
			changed++
		}
	}
	if changed > 0 {
		t.Fatalf("%d of %d records served to consumers vanished or changed", changed, len(consumed))
	}
	t.Logf("verified %d acknowledged records among %d stored", len(acked), want)
}

// damageTails appends garbage to partition 0's active segment and cuts
// partition 1's last batch in half. It returns the base offset of the torn
// batch.
func damageTails(t *testing.T, dir string) int64 {
	t.Helper()
	last := func(p int) string {
		segs, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%s-%d", topic, p), "*.log"))
		sort.Strings(segs)
		if len(segs) == 0 {
			t.Fatalf("no segments for partition %d", p)
		}
		return segs[len(segs)-1]
	}
	f, err := os.OpenFile(last(0), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 300)
	rand.Read(garbage)
	f.Write(garbage)
	f.Close()

	seg := last(1)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Walk the batches to find the last one (skipping preallocated zeros).
	pos, lastPos := 0, -1
	var lastBase int64
	for pos+12 <= len(data) {
		length := int(int32(uint32(data[pos+8])<<24 | uint32(data[pos+9])<<16 | uint32(data[pos+10])<<8 | uint32(data[pos+11])))
		if length <= 0 || pos+12+length > len(data) {
			break
		}
		lastPos = pos
		lastBase = int64(0)
		for i := 0; i < 8; i++ {
			lastBase = lastBase<<8 | int64(data[pos+i])
		}
		pos += 12 + length
	}
	if lastPos < 0 {
		t.Fatal("no batch in partition 1")
	}
	cut := lastPos + (pos-lastPos)/2
	if err := os.Truncate(seg, int64(cut)); err != nil {
		t.Fatal(err)
	}
	return lastBase
}
