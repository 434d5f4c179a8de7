package crash

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/test/testenv"
)

// TestCompactionSurvivesKill9 kills the broker with SIGKILL at random
// moments while the log cleaner compacts a topic under a steady keyed
// produce load (acks=all), GREGOR_COMPACT_KILLS times (default 5; `make
// compact-faults` runs 20). Each producer writes its keys' values with a
// growing sequence. Afterwards, read from the start: offsets only grow
// (no duplicates), and for every key the last record holds a sequence at
// least the last acknowledged one (nothing acknowledged above the cleaned
// range lost, no latest value lost), and the log really was compacted.
func TestCompactionSurvivesKill9(t *testing.T) {
	kills := 5
	if v := os.Getenv("GREGOR_COMPACT_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	s := &server{t: t, bin: buildBinary(t), dir: filepath.Join(root, "data"), addr: testenv.FreeAddr(t),
		extra: []string{"--override", "log.cleaner.backoff.ms=50", "--override", "log.cleaner.io.max.bytes.per.second=2000000"}}
	s.start()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.kill()
		}
	})
	const topic, keys = "compact-crash", 500
	adm, err := kgo.NewClient(kgo.SeedBrokers(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx := context.Background()
	cfg := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.bytes": "262144",
		"min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "60000"} {
		cfg[k] = kadm.StringPtr(v)
	}
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 1, 1, cfg, topic); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string]int{} // key -> highest acknowledged sequence
	var nacked int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.DefaultProduceTopic(topic),
			kgo.RecordRetries(1000), kgo.RecordDeliveryTimeout(60*time.Second), kgo.ProducerLinger(time.Millisecond))
		if err != nil {
			t.Error(err)
			return
		}
		defer cl.Close()
		seq := 0
		for {
			select {
			case <-stop:
				cl.Flush(ctx)
				return
			default:
			}
			seq++
			var wg sync.WaitGroup
			for k := 0; k < 50; k++ {
				key := fmt.Sprintf("key-%03d", rand.Intn(keys))
				val := fmt.Sprintf("%s:%09d:%s", key, seq, strings.Repeat("v", 64))
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte(val)}, func(r *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						return
					}
					mu.Lock()
					acked[key] = max(acked[key], seq)
					nacked++
					mu.Unlock()
				})
			}
			wg.Wait()
		}
	}()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(700+rng.Intn(1500)) * time.Millisecond)
		s.kill()
		s.start()
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	time.Sleep(500 * time.Millisecond) // a last cleaning pass may run

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	last := map[string]int{}
	var n int
	prev := int64(-1)
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for prev < end.Offset-1 && rctx.Err() == nil {
		cl.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			if r.Offset <= prev {
				t.Errorf("offset %d after %d", r.Offset, prev)
			}
			prev = r.Offset
			n++
			parts := strings.SplitN(string(r.Value), ":", 3)
			seq, _ := strconv.Atoi(parts[1])
			last[string(r.Key)] = seq
		})
	}
	lost := 0
	mu.Lock()
	for k, seq := range acked {
		if last[k] < seq {
			lost++
			if lost <= 5 {
				t.Errorf("key %s: last value has sequence %d, %d was acknowledged", k, last[k], seq)
			}
		}
	}
	total := nacked
	mu.Unlock()
	if n >= total {
		t.Errorf("read %d records for %d acknowledged: nothing was compacted", n, total)
	}
	s.stop()
	blog, _ := os.ReadFile(filepath.Join(root, "broker.log"))
	t.Logf("kills %d (%d interrupted a cleaning pass before its swap, %d after); acknowledged %d records over %d keys; the log holds %d records up to offset %d; latest values lost %d",
		kills, strings.Count(string(blog), "interrupted log cleaner pass"), strings.Count(string(blog), "interrupted log cleaner swap"),
		total, len(acked), n, end.Offset, lost)
}
