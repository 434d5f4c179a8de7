// Command e2e measures end-to-end latency at a fixed rate, which Kafka's
// EndToEndLatency tool cannot (it sends one record and waits for it to come
// back before sending the next): one franz-go producer sends records at
// -rate per second on a fixed schedule, one franz-go consumer in the same
// process reads the topic from the start, and each record's latency is the
// time from its scheduled send to its arrival at the consumer. Timing from
// the schedule, not from the actual send, keeps a stalled producer from
// hiding the stall (no coordinated omission).
//
//	go run ./bench/e2e -brokers 127.0.0.1:9092 -topic lat -rate 5000 -duration 8s -acks all
//
// The topic should be new and empty (the consumer starts at its beginning
// and expects exactly the records this run sends). Records sent in the
// first -warmup are sent and received but left out of the percentiles.
// Prints one line:
//
//	e2e: N records at R/s (acks=A, S B): end-to-end p50 X ms, p99 Y ms, avg Z ms; produce ack p50 X ms, p99 Y ms
//
// with microsecond resolution. With -series FILE it also writes, per
// -series-interval of scheduled send time, the records sent in it and their
// end-to-end p50, p99 and maximum and ack maximum (CSV, milliseconds), to
// see when latency spikes and whether they recur. Exits 1 when a record is lost, duplicated or
// corrupted, or does not arrive within -drain after the last send.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/bench/internal/kopt"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap servers, comma separated")
	topic := flag.String("topic", "e2e", "topic (new and empty)")
	rate := flag.Float64("rate", 1000, "records per second")
	duration := flag.Duration("duration", 8*time.Second, "how long to send")
	warmup := flag.Duration("warmup", time.Second, "leading part of the run left out of the percentiles")
	size := flag.Int("size", 1024, "record value size in bytes (at least 16)")
	acks := flag.String("acks", "all", "1 or all")
	linger := flag.Duration("linger", 0, "producer linger")
	drain := flag.Duration("drain", 30*time.Second, "wait this long after the last send for the rest to arrive")
	flag.StringVar(&seriesPath, "series", "", "write per-interval latency (CSV) to this file")
	flag.DurationVar(&seriesInterval, "series-interval", 100*time.Millisecond, "interval of -series")
	flag.Parse()
	if err := run(strings.Split(*brokers, ","), *topic, *rate, *duration, *warmup, *size, *acks, *linger, *drain); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

var (
	seriesPath     string
	seriesInterval time.Duration
)

func run(brokers []string, topic string, rate float64, duration, warmup time.Duration, size int, acks string, linger, drain time.Duration) error {
	if size < 16 {
		return fmt.Errorf("-size must be at least 16")
	}
	if rate <= 0 {
		return fmt.Errorf("-rate must be positive")
	}
	n := int(rate * duration.Seconds())
	skip := int(rate * warmup.Seconds())
	if n <= skip {
		return fmt.Errorf("-duration %v at -rate %v leaves nothing after -warmup %v", duration, rate, warmup)
	}
	if acks != "1" && acks != "all" && acks != "-1" {
		return fmt.Errorf("-acks %q: want 1 or all", acks)
	}
	// acks=all idempotent, acks=1 one request in flight; no compression,
	// like the Java producer's default (franz-go's is snappy).
	aopts, _, err := kopt.Acks(acks, true, 1)
	if err != nil {
		return err
	}
	comp, err := kopt.Compression("none")
	if err != nil {
		return err
	}
	popts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(linger), kgo.MaxBufferedRecords(1 << 20), comp}, aopts...)
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer cons.Close()

	// Both clients connected and the topic's metadata loaded before the
	// clock starts.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prod.Ping(ctx); err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	if err := cons.Ping(ctx); err != nil {
		return fmt.Errorf("consumer: %w", err)
	}

	base := time.Now()
	e2e := make([]time.Duration, n)
	ack := make([]time.Duration, n)
	seen := make([]bool, n)
	var (
		mu      sync.Mutex
		prodErr error
		acked   sync.WaitGroup
	)
	done := make(chan error, 1)
	go func() { done <- consume(cons, base, n, size, e2e, seen) }()

	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < n; i++ {
		due := time.Duration(i) * interval
		if wait := due - time.Since(base); wait > 0 {
			time.Sleep(wait)
		}
		v := make([]byte, size)
		binary.BigEndian.PutUint64(v[0:8], uint64(i))
		binary.BigEndian.PutUint64(v[8:16], uint64(due))
		for j := 16; j < size; j++ {
			v[j] = byte('A' + i%26)
		}
		i := i
		acked.Add(1)
		prod.Produce(context.Background(), &kgo.Record{Topic: topic, Value: v}, func(_ *kgo.Record, err error) {
			ack[i] = time.Since(base) - due
			if err != nil {
				mu.Lock()
				if prodErr == nil {
					prodErr = err
				}
				mu.Unlock()
			}
			acked.Done()
		})
	}
	acked.Wait()
	if prodErr != nil {
		return fmt.Errorf("produce: %w", prodErr)
	}
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-time.After(drain):
		cons.Close()
		<-done
		missing := 0
		for _, s := range seen {
			if !s {
				missing++
			}
		}
		return fmt.Errorf("%d of %d records not consumed %v after the last ack", missing, n, drain)
	}
	if seriesPath != "" {
		if err := writeSeries(seriesPath, seriesInterval, interval, e2e, ack); err != nil {
			return err
		}
	}
	e, a := e2e[skip:], ack[skip:]
	var sum time.Duration
	for _, d := range e {
		sum += d
	}
	sortD(e)
	sortD(a)
	fmt.Printf("e2e: %d records at %.0f/s (acks=%s, %d B): end-to-end p50 %.3f ms, p99 %.3f ms, avg %.3f ms; produce ack p50 %.3f ms, p99 %.3f ms\n",
		len(e), rate, acks, size, msf(pct(e, 0.50)), msf(pct(e, 0.99)), msf(sum/time.Duration(len(e))), msf(pct(a, 0.50)), msf(pct(a, 0.99)))
	return nil
}

// consume reads until all n records arrived, checking each exactly once.
func consume(cl *kgo.Client, base time.Time, n, size int, e2e []time.Duration, seen []bool) error {
	got := 0
	for got < n {
		fs := cl.PollFetches(context.Background())
		if fs.IsClientClosed() {
			return fmt.Errorf("consumer closed after %d of %d records", got, n)
		}
		now := time.Since(base)
		var err error
		fs.EachError(func(t string, p int32, e error) {
			if err == nil {
				err = fmt.Errorf("fetch %s[%d]: %w", t, p, e)
			}
		})
		if err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if err != nil {
				return
			}
			if len(r.Value) != size {
				err = fmt.Errorf("record at %s[%d]@%d: %d bytes, want %d", r.Topic, r.Partition, r.Offset, len(r.Value), size)
				return
			}
			i := binary.BigEndian.Uint64(r.Value[0:8])
			due := time.Duration(binary.BigEndian.Uint64(r.Value[8:16]))
			if i >= uint64(n) || seen[i] {
				err = fmt.Errorf("record at %s[%d]@%d: unexpected or repeated sequence %d", r.Topic, r.Partition, r.Offset, i)
				return
			}
			seen[i] = true
			e2e[i] = now - due
			got++
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// writeSeries writes per-interval latency by scheduled send time; record i
// was due at i*every.
func writeSeries(path string, bucket, every time.Duration, e2e, ack []time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "t_ms,records,e2e_p50_ms,e2e_p99_ms,e2e_max_ms,ack_max_ms")
	for start := 0; start < len(e2e); {
		b := time.Duration(start) * every / bucket
		end := start
		for end < len(e2e) && time.Duration(end)*every/bucket == b {
			end++
		}
		e := slices.Clone(e2e[start:end])
		sortD(e)
		fmt.Fprintf(f, "%d,%d,%.3f,%.3f,%.3f,%.3f\n", (b * bucket).Milliseconds(), end-start,
			msf(pct(e, 0.50)), msf(pct(e, 0.99)), msf(e[len(e)-1]), msf(slices.Max(ack[start:end])))
		start = end
	}
	return f.Close()
}

func sortD(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// pct is the nearest-rank percentile of sorted d.
func pct(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(d) {
		i = len(d) - 1
	}
	return d[i]
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
