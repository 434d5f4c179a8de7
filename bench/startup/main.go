// Command startup measures the time from launching a broker to its first
// acknowledged (acks=all) produce, the way a user would meet it: a fresh
// data directory per run, the clock started just before the process is
// launched, then a TCP dial every 200 µs and one produce with auto topic
// creation through franz-go.
//
// Gregor, from `gregor serve` on an empty directory:
//
//	go run ./bench/startup -bin ./gregor -runs 10
//
// Any broker, given a command that starts it in the foreground. An optional
// -prepare command runs first, untimed, in the same fresh directory (Kafka's
// storage must be formatted before its JVM starts):
//
//	go run ./bench/startup -runs 3 -addr 127.0.0.1:29393 \
//	    -prepare 'KAFKA_STATE={dir} KAFKA_PORT={port} bash bench/kafka/kafka.sh format' \
//	    -start 'KAFKA_STATE={dir} KAFKA_PORT={port} exec bash bench/kafka/kafka.sh foreground'
//
// Commands should exec the broker (as above) so that it is the process
// signalled. Both run under `sh -c` in their own process group with {dir}
// (the run's fresh directory), {addr}, {host} and {port} substituted. After
// the produce the group gets SIGTERM, and SIGKILL if it is still there after
// -stop-timeout; stopping is not timed. Before each run the address must be
// free, so a broker left over from the run before cannot answer for the next.
//
// Prints one line per run ("run N: listening after X ms, first acks=all
// produce after Y ms") and a summary line with the median, min and max.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/bench/internal/kpoll"
)

type options struct {
	bin, addr, prepare, start string
	timeout, stopTimeout      time.Duration
	keep                      bool
}

func main() {
	var o options
	runs := flag.Int("runs", 10, "number of cold starts")
	flag.StringVar(&o.bin, "bin", "./gregor", "gregor binary (used when -start is empty)")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:29293", "the broker's client listener")
	flag.StringVar(&o.prepare, "prepare", "", "shell command run untimed before each start ({dir}, {addr}, {host}, {port}); with the default -start: mkdir {dir}/data")
	flag.StringVar(&o.start, "start", "", "shell command that runs the broker in the foreground ({dir}, {addr}, {host}, {port}); default: the -bin gregor")
	flag.DurationVar(&o.timeout, "timeout", 120*time.Second, "give up on a run after this long")
	flag.DurationVar(&o.stopTimeout, "stop-timeout", 60*time.Second, "SIGKILL the broker this long after SIGTERM")
	flag.BoolVar(&o.keep, "keep", false, "keep each run's directory (printed) for inspection")
	flag.Parse()
	if o.start == "" {
		// An empty data directory, made before the clock starts.
		if o.prepare == "" {
			o.prepare = "mkdir {dir}/data"
		}
		o.start = fmt.Sprintf("exec %s serve --data-dir {dir}/data --listeners PLAINTEXT://{addr} --log-level error", shellQuote(o.bin))
	}
	var times []time.Duration
	for i := 1; i <= *runs; i++ {
		listen, first, err := once(o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "startup:", err)
			os.Exit(1)
		}
		fmt.Printf("run %d: listening after %.1f ms, first acks=all produce after %.1f ms\n", i, ms(listen), ms(first))
		times = append(times, first)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("start to first acks=all produce over %d cold starts: median %.1f ms, min %.1f ms, max %.1f ms\n",
		len(times), ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func expand(cmd, dir, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return strings.NewReplacer("{dir}", dir, "{addr}", addr, "{host}", host, "{port}", port).Replace(cmd)
}

func shell(cmd string) *exec.Cmd {
	c := exec.Command("sh", "-c", cmd)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return c
}

// once is one cold start: the time until the listener accepted a TCP
// connection, and until the first acks=all produce was acknowledged.
func once(o options) (listen, first time.Duration, err error) {
	for deadline := time.Now().Add(o.stopTimeout); !kpoll.AddrFree(o.addr); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s is taken by another process", o.addr)
		}
	}
	dir, err := os.MkdirTemp("", "broker-startup")
	if err != nil {
		return 0, 0, err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "startup: run directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.prepare != "" {
		p := shell(expand(o.prepare, dir, o.addr))
		if out, err := p.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("prepare: %v\n%s", err, out)
		}
	}
	log, err := os.Create(dir + "/startup.log")
	if err != nil {
		return 0, 0, err
	}
	defer log.Close()
	cmd := shell(expand(o.start, dir, o.addr))
	cmd.Stdout, cmd.Stderr = log, log

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited, o.stopTimeout)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	for {
		c, err := net.Dial("tcp", o.addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return 0, 0, fmt.Errorf("broker exited before listening (%v); see %s/startup.log", err, dir)
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("no listener on %s after %v", o.addr, o.timeout)
		case <-time.After(200 * time.Microsecond):
		}
	}
	listen = time.Since(start)
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.addr), kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "startup", Value: []byte("hello")}).FirstErr(); err != nil {
		return 0, 0, fmt.Errorf("first produce: %w", err)
	}
	return listen, time.Since(start), nil
}

// stop sends SIGTERM to the broker's process group and waits, then SIGKILL.
func stop(cmd *exec.Cmd, exited chan error, grace time.Duration) {
	pgid := cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		fmt.Fprintln(os.Stderr, "startup: SIGTERM:", err)
	}
	select {
	case <-exited:
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "startup: pid %d still running %v after SIGTERM; SIGKILL\n", pgid, grace)
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
}
