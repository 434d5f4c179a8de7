// Command offsetcommits commits many offsets for one group, to measure how
// __consumer_offsets grows and what compaction leaves of it (issue 12):
//
//	go run ./bench/offsetcommits -bootstrap localhost:9092 -commits 10000000
//
// Each OffsetCommit request carries -per offsets (partitions of a topic it
// creates), with -inflight requests in flight.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	boot := flag.String("bootstrap", "localhost:9092", "bootstrap server")
	commits := flag.Int64("commits", 1_000_000, "offset records to commit in total")
	per := flag.Int("per", 100, "offsets per OffsetCommit request (partitions)")
	inflight := flag.Int("inflight", 8, "requests in flight")
	group := flag.String("group", "offset-commits", "group id")
	topic := flag.String("topic", "offset-commits", "topic (created with -per partitions)")
	fetch := flag.Bool("fetch", false, "instead of committing, time until the group's offsets can be fetched (after a restart)")
	flag.Parse()
	if *fetch {
		start := time.Now()
		for {
			cl, err := kgo.NewClient(kgo.SeedBrokers(*boot), kgo.DialTimeout(100*time.Millisecond))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				offs, err := kadm.NewClient(cl).FetchOffsets(ctx, *group)
				cancel()
				cl.Close()
				if err == nil && offs.Error() == nil && len(offs) > 0 {
					fmt.Printf("offsets of %s fetched %v after start\n", *group, time.Since(start).Round(time.Millisecond))
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(*boot))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(*per), 1, nil, *topic); err != nil {
		log.Printf("create topic: %v (continuing)", err)
	}
	var next, done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(int64(*per))
				if n-int64(*per) >= *commits {
					return
				}
				req := kmsg.NewPtrOffsetCommitRequest()
				req.Group, req.Generation = *group, -1
				rt := kmsg.NewOffsetCommitRequestTopic()
				rt.Topic = *topic
				for p := 0; p < *per; p++ {
					rp := kmsg.NewOffsetCommitRequestTopicPartition()
					rp.Partition, rp.Offset = int32(p), n
					rt.Partitions = append(rt.Partitions, rp)
				}
				req.Topics = append(req.Topics, rt)
				if _, err := req.RequestWith(ctx, cl); err != nil {
					log.Fatal(err)
				}
				if d := done.Add(int64(*per)); d%(1_000_000) < int64(*per) {
					fmt.Printf("%d offsets committed, %.0f/s\n", d, float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d offsets committed in %v\n", done.Load(), time.Since(start).Round(time.Millisecond))
}
