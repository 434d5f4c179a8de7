// Command startup measures the time from launching `gregor serve` on an
// empty data directory to the first acknowledged (acks=all) produce, the
// way a user would meet it.
//
//	go run ./bench/startup -bin ./gregor -runs 10
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	bin := flag.String("bin", "./gregor", "gregor binary")
	runs := flag.Int("runs", 10, "number of cold starts")
	addr := flag.String("addr", "127.0.0.1:29293", "listener to use")
	flag.Parse()
	var times []time.Duration
	for i := 0; i < *runs; i++ {
		d, err := once(*bin, *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "startup:", err)
			os.Exit(1)
		}
		times = append(times, d)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("start to first acks=all produce over %d cold starts: median %v, min %v, max %v\n",
		len(times), times[len(times)/2].Round(100*time.Microsecond), times[0].Round(100*time.Microsecond), times[len(times)-1].Round(100*time.Microsecond))
}

func once(bin, addr string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "gregor-startup")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listeners", "PLAINTEXT://"+addr, "--log-level", "error")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			return 0, fmt.Errorf("no listener after 10s")
		}
		time.Sleep(200 * time.Microsecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "startup", Value: []byte("hello")}).FirstErr(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
