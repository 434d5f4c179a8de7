// Command keyedlatency measures produce latency of keyed records at a fixed
// rate, for the log cleaner's cost on a compacted topic (issue 12): run it
// against a broker with the cleaner on and off.
//
//	go run ./bench/keyedlatency -bootstrap localhost:9092 -rate 20000 -seconds 30
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	boot := flag.String("bootstrap", "localhost:9092", "bootstrap server")
	topic := flag.String("topic", "keyed-latency", "topic (created compacted if missing)")
	rate := flag.Int("rate", 20000, "records per second")
	seconds := flag.Int("seconds", 30, "duration")
	keys := flag.Int("keys", 10000, "distinct keys")
	size := flag.Int("size", 1024, "value bytes")
	segment := flag.String("segment-bytes", "1048576", "segment.bytes of the topic it creates")
	ratio := flag.String("ratio", "0.5", "min.cleanable.dirty.ratio of the topic it creates")
	timeline := flag.Bool("timeline", false, "also print p50/p99/max of each second")
	flag.Parse()

	cl, err := kgo.NewClient(kgo.SeedBrokers(*boot), kgo.DefaultProduceTopic(*topic), kgo.ProducerLinger(0))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	cfg := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.bytes": *segment, "min.cleanable.dirty.ratio": *ratio} {
		cfg[k] = kadm.StringPtr(v)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, cfg, *topic); err != nil {
		log.Printf("create topic: %v (continuing)", err)
	}
	val := []byte(strings.Repeat("v", *size))
	var mu sync.Mutex
	var lat []time.Duration
	perSec := map[int][]time.Duration{} // second of sending -> latencies
	var wg sync.WaitGroup
	tick := time.Second / time.Duration(*rate)
	start := time.Now()
	end := start.Add(time.Duration(*seconds) * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		if d := time.Until(start.Add(time.Duration(i) * tick)); d > 0 {
			time.Sleep(d)
		}
		sent := time.Now()
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", rand.Intn(*keys)), Value: val}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				log.Printf("produce: %v", err)
				return
			}
			d := time.Since(sent)
			mu.Lock()
			lat = append(lat, d)
			if *timeline {
				s := int(sent.Sub(start) / time.Second)
				perSec[s] = append(perSec[s], d)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	q := func(lat []time.Duration, p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	for s := 0; s < len(perSec); s++ {
		l := perSec[s]
		slices.Sort(l)
		fmt.Printf("second %d: %d records p50 %v p99 %v max %v\n", s, len(l), q(l, 0.5).Round(time.Microsecond), q(l, 0.99).Round(time.Microsecond), l[len(l)-1].Round(time.Microsecond))
	}
	slices.Sort(lat)
	fmt.Printf("%d records in %v: p50 %v p99 %v p99.9 %v max %v\n", len(lat), time.Since(start).Round(time.Millisecond),
		q(lat, 0.5).Round(time.Microsecond), q(lat, 0.99).Round(time.Microsecond), q(lat, 0.999).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
}
