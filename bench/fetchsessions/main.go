// Command fetchsessions measures the broker's CPU per Fetch of a consumer
// of many partitions of which one is active, with incremental fetch
// sessions (KIP-227, franz-go's default) and without
// (kgo.DisableFetchSessions).
//
//	go build -o /tmp/gregor ./cmd/gregor
//	go run ./bench/fetchsessions -bin /tmp/gregor -partitions 1000 -duration 10s
//
// It starts `gregor serve` on a fresh directory (-addr, HTTP off), creates
// one topic, and produces -rate records a second to its partition 0 for
// the whole run. Each phase runs a fresh consumer of every partition for a
// warm-up and then -duration, and reads the broker process's CPU time
// (the scheduler's nanosecond account of its threads) and the Fetch
// responses the consumer read (a franz-go hook) over that time. The
// "produce only" phase is the producer alone, to subtract. -rounds repeats
// the three phases, interleaved, and the last line is the median CPU per
// fetch with and without sessions, and their ratio. The broker is stopped
// (SIGTERM, waited for) at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/bench/internal/proc"

	"github.com/gregorhq/gregor/bench/internal/kpoll"
)

func main() {
	bin := flag.String("bin", "./gregor", "gregor binary")
	addr := flag.String("addr", "127.0.0.1:19392", "the broker's client listener")
	parts := flag.Int("partitions", 1000, "partitions of the topic")
	rate := flag.Int("rate", 100, "records a second produced to partition 0")
	dur := flag.Duration("duration", 10*time.Second, "measured time of each phase")
	warm := flag.Duration("warmup", 3*time.Second, "unmeasured time before each phase")
	rounds := flag.Int("rounds", 3, "rounds of the three phases, interleaved; the summary is their median")
	extra := flag.String("broker-args", "", "more arguments for gregor serve, space-separated (e.g. --debug-addr 127.0.0.1:19393 to profile it)")
	flag.Parse()
	if err := run(*bin, *addr, strings.Fields(*extra), *parts, *rate, *dur, *warm, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "fetchsessions:", err)
		os.Exit(1)
	}
}

func run(bin, addr string, extra []string, parts, rate int, dur, warm time.Duration, rounds int) error {
	dir, err := os.MkdirTemp("", "fetchsessions")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("%s is taken", addr)
	}
	args := append([]string{"serve", "--data-dir", dir, "--listeners", "PLAINTEXT://" + addr, "--http-addr", "off", "--log-level", "error"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	stopping := atomic.Bool{}
	go func() {
		err := cmd.Wait()
		if !stopping.Load() {
			fmt.Fprintf(os.Stderr, "fetchsessions: the broker exited: %v (%v)\n", err, cmd.ProcessState)
		}
		close(exited)
	}()
	defer func() {
		stopping.Store(true)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	ctx := context.Background()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer prod.Close()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if err := prod.Ping(ctx); err == nil {
			break
		} else if time.Since(start) > time.Minute {
			return fmt.Errorf("broker not up: %w", err)
		}
	}
	const topic = "wide"
	res, err := kadm.NewClient(prod).CreateTopic(ctx, int32(parts), 1, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return err
	}

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: make([]byte, 100)}, func(_ *kgo.Record, err error) {
					if err != nil {
						produceErr.Store(&err)
					} else {
						produced.Add(1)
					}
				})
			}
		}
	}()

	fmt.Printf("%d partitions, %d records/s to one, %v per phase, %d rounds\n", parts, rate, dur, rounds)
	var perFetch [2][]float64 // µs over produce only: sessions, no sessions
	for round := 1; round <= rounds; round++ {
		base, err := phase(cmd.Process.Pid, addr, topic, false, nil, dur, warm)
		if err != nil {
			return err
		}
		fmt.Printf("round %d %-13s broker CPU %8.1f ms (%d records produced so far)\n", round, "produce only", base.ms(), produced.Load())
		if p := produceErr.Load(); p != nil {
			return fmt.Errorf("produce: %w", *p)
		}
		for m, mode := range []struct {
			name string
			opts []kgo.Opt
		}{{"sessions", nil}, {"no sessions", []kgo.Opt{kgo.DisableFetchSessions()}}} {
			r, err := phase(cmd.Process.Pid, addr, topic, true, mode.opts, dur, warm)
			if err != nil {
				return err
			}
			extra := float64((r.cpu - base.cpu).Nanoseconds()) / 1000 / float64(max(r.fetches, 1))
			perFetch[m] = append(perFetch[m], extra)
			fmt.Printf("round %d %-13s broker CPU %8.1f ms, %6d fetches, %7.1f µs CPU per fetch over produce only, %7.0f response bytes per fetch, %6d records\n",
				round, mode.name, r.ms(), r.fetches, extra, float64(r.bytes)/float64(max(r.fetches, 1)), r.records)
		}
	}
	with, without := median(perFetch[0]), median(perFetch[1])
	fmt.Printf("median µs CPU per fetch over produce only: sessions %.1f, no sessions %.1f (%.1fx less with sessions)\n",
		with, without, without/with)
	return nil
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

var (
	produced   atomic.Int64
	produceErr atomic.Pointer[error]
)

type result struct {
	cpu                     time.Duration
	fetches, bytes, records int64
}

func (r result) ms() float64 { return float64(r.cpu.Microseconds()) / 1000 }

// fetchCounter counts the Fetch responses a client reads.
type fetchCounter struct{ n, bytes atomic.Int64 }

func (h *fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.n.Add(1)
		h.bytes.Add(int64(n))
	}
}

// phase runs a consumer with opts (if consume) for warm, then measures for
// dur.
func phase(pid int, addr, topic string, consume bool, opts []kgo.Opt, dur, warm time.Duration) (result, error) {
	var (
		h       fetchCounter
		records atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	if consume {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.WithHooks(&h)}, opts...)...)
		if err != nil {
			return result{}, err
		}
		defer cl.Close()
		go func() { done <- kpoll.Drain(ctx, cl, &records) }()
	}
	time.Sleep(warm)
	cpu0, err := proc.ThreadsCPU(pid)
	if err != nil {
		return result{}, err
	}
	n0, b0, r0 := h.n.Load(), h.bytes.Load(), records.Load()
	time.Sleep(dur)
	cpu1, err := proc.ThreadsCPU(pid)
	if err != nil {
		return result{}, err
	}
	r := result{cpu: cpu1 - cpu0, fetches: h.n.Load() - n0, bytes: h.bytes.Load() - b0, records: records.Load() - r0}
	cancel()
	if consume {
		if err := <-done; err != nil {
			return r, err
		}
	}
	return r, nil
}
