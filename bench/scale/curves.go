package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gregorhq/gregor/bench/internal/proc"
)

// partRow is one point of the partitions curve.
type partRow struct {
	n             int
	create        time.Duration
	idleCPU       float64 // ms of broker CPU a second, no clients
	mdP50, mdP99  time.Duration
	mdBytes       int
	prod          throughput
	mem           proc.Memory // after the produce
	fds           int
	fetch         idleFetch
	fetchCPU      float64 // ms a second with the idle consumer
	stopTime      time.Duration
	listen, first time.Duration // after the restart
	restartMem    proc.Memory
	restartFDs    int
}

func partitionsCurve(ctx context.Context, c config, newBroker func(string) *broker) error {
	var rows []partRow
	for _, n := range c.partitions {
		r, err := partitionsPoint(ctx, c, newBroker("p"+strconv.Itoa(n)), n)
		if err != nil {
			return fmt.Errorf("%d partitions: %w", n, err)
		}
		rows = append(rows, r)
	}

	fmt.Printf("### Partitions\n\n")
	fmt.Printf("One topic of N partitions on a fresh broker. Produce: 1 KiB records, acks=1, one franz-go client (sticky partitioner), %v after %v warm-up. Idle: broker CPU over %v with no clients, then with one consumer of all N partitions from their ends (fetch max wait %v, %v warm-up), nothing produced; µs per fetch is the CPU over the no-clients figure divided by the fetches. Metadata: %d requests for the topic in a row on one connection (v12), round trip without client-side decoding.\n\n",
		c.produceDur, c.warmup, c.idleDur, c.fetchMaxWait, c.fetchWarmup, c.metadataRequests)
	fmt.Println("| partitions | create topic ms | produce MB/s | Produce request KiB | broker bytes written per value byte | broker CPU s/GiB | client CPU s/GiB | no clients CPU ms/s | idle consumer CPU ms/s | fetches/s | CPU µs per fetch | Metadata p50 ms | Metadata p99 ms | Metadata response KiB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fps := float64(r.fetch.fetches) / r.fetch.wall.Seconds()
		perFetch := math.NaN()
		if r.fetch.fetches > 0 {
			perFetch = (r.fetchCPU - r.idleCPU) * 1000 / fps
		}
		fmt.Printf("| %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %s | %.2f | %.2f | %.1f |\n",
			r.n, ms(r.create), r.prod.mbps(), r.prod.meanRequest(), r.prod.writeRatio(), r.prod.perGiB(r.prod.brokerCPU), r.prod.perGiB(r.prod.selfCPU),
			r.idleCPU, r.fetchCPU, fps, num(perFetch, 0), ms(r.mdP50), ms(r.mdP99), float64(r.mdBytes)/1024)
	}
	fmt.Println()
	fmt.Println("Memory and descriptors after the produce run, then a SIGTERM, a restart on the same directory, and the first acks=all produce (a new franz-go client, partition 0) after launch:")
	fmt.Println()
	fmt.Println("| partitions | RSS MiB | peak RSS MiB | open fds | stop s | restart: listening ms | restart: first acks=all produce ms | RSS after restart MiB | fds after restart |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %.0f | %.0f | %d | %.2f | %.0f | %.0f | %.0f | %d |\n",
			r.n, mib(r.mem.RSS), mib(r.mem.HWM), r.fds, r.stopTime.Seconds(), ms(r.listen), ms(r.first), mib(r.restartMem.RSS), r.restartFDs)
	}
	fmt.Println()

	f := figure{title: "Gregor: one broker, one topic of N partitions", xLabel: "partitions (log scale)", columns: 4}
	col := func(get func(partRow) float64) []float64 {
		v := make([]float64, len(rows))
		for i, r := range rows {
			v[i] = get(r)
		}
		return v
	}
	for _, r := range rows {
		f.x = append(f.x, float64(r.n))
		f.xTicks = append(f.xTicks, strconv.Itoa(r.n))
	}
	f.panels = []panel{
		{title: "produce MB/s (1 KiB, acks=1)", series: []series{{y: col(func(r partRow) float64 { return r.prod.mbps() })}}},
		{title: "broker CPU ms/s, nothing produced", series: []series{
			{name: "no clients", y: col(func(r partRow) float64 { return r.idleCPU })},
			{name: "idle consumer", y: col(func(r partRow) float64 { return r.fetchCPU })}}},
		{title: "Metadata round trip ms", series: []series{
			{name: "p50", y: col(func(r partRow) float64 { return ms(r.mdP50) })},
			{name: "p99", y: col(func(r partRow) float64 { return ms(r.mdP99) })}}},
		{title: "RSS MiB", series: []series{
			{name: "after produce", y: col(func(r partRow) float64 { return mib(r.mem.RSS) })},
			{name: "after restart", y: col(func(r partRow) float64 { return mib(r.restartMem.RSS) })}}},
		{title: "open fds", series: []series{
			{name: "after produce", y: col(func(r partRow) float64 { return float64(r.fds) })},
			{name: "after restart", y: col(func(r partRow) float64 { return float64(r.restartFDs) })}}},
		{title: "restart to first acks=all produce s", series: []series{{y: col(func(r partRow) float64 { return r.first.Seconds() })}}},
		{title: "CreateTopics s", series: []series{{y: col(func(r partRow) float64 { return r.create.Seconds() })}}},
		{title: "SIGTERM to exit s", series: []series{{y: col(func(r partRow) float64 { return r.stopTime.Seconds() })}}},
	}
	return writeSVG(c, "partitions.svg", f)
}

func partitionsPoint(ctx context.Context, c config, b *broker, n int) (r partRow, err error) {
	r.n = n
	progress("partitions %d: starting a broker", n)
	cl, err := startBroker(ctx, b)
	if err != nil {
		return r, err
	}
	defer func() { b.stop(2 * time.Minute) }()
	defer cl.Close()
	const topic = "scale"
	if r.create, err = createTopic(ctx, cl, topic, n); err != nil {
		return r, err
	}
	progress("partitions %d: topic created in %.0f ms", n, ms(r.create))
	if err := sleepCtx(ctx, time.Second); err != nil {
		return r, err
	}
	idle, err := brokerIdle(ctx, b.pid(), c.idleDur)
	if err != nil {
		return r, err
	}
	r.idleCPU = perSec(idle, c.idleDur)

	lats, size, err := metadataLatency(b.addr, topic, c.metadataRequests, n)
	if err != nil {
		return r, err
	}
	r.mdP50, r.mdP99, r.mdBytes = percentile(lats, 50), percentile(lats, 99), size

	progress("partitions %d: producing", n)
	if r.prod, err = produceFor(ctx, b.addr, topic, 1024, b.pid(), c.warmup, c.produceDur); err != nil {
		return r, err
	}
	if r.mem, err = proc.ReadMemory(b.pid()); err != nil {
		return r, err
	}
	if r.fds, err = proc.OpenFDs(b.pid()); err != nil {
		return r, err
	}

	progress("partitions %d: idle consumer", n)
	if r.fetch, err = fetchIdle(ctx, b.addr, topic, b.pid(), c.fetchMaxWait, c.fetchWarmup, c.idleDur); err != nil {
		return r, err
	}
	r.fetchCPU = perSec(r.fetch.brokerCPU, r.fetch.wall)

	progress("partitions %d: restart", n)
	cl.Close()
	r.stopTime = b.stop(2 * time.Minute)
	if err := b.start(); err != nil {
		return r, err
	}
	if r.listen, err = b.waitListening(2 * time.Minute); err != nil {
		return r, err
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = firstProduce(pctx, b.addr, topic)
	cancel()
	if err != nil {
		return r, fmt.Errorf("first produce after restart: %w", err)
	}
	r.first = time.Since(b.launched)
	if r.restartMem, err = proc.ReadMemory(b.pid()); err != nil {
		return r, err
	}
	if r.restartFDs, err = proc.OpenFDs(b.pid()); err != nil {
		return r, err
	}
	progress("partitions %d: %.0f MB/s, idle %.1f / consumer %.1f ms/s, Metadata p50 %.2f ms, RSS %.0f MiB, restart %.0f ms",
		n, r.prod.mbps(), r.idleCPU, r.fetchCPU, ms(r.mdP50), mib(r.mem.RSS), ms(r.first))
	b.stop(2 * time.Minute) // the restarted broker; only the first stop is timed
	return r, os.RemoveAll(b.dataDir)
}

func connectionsCurve(ctx context.Context, c config, b *broker) error {
	progress("connections: starting a broker")
	cl, err := startBroker(ctx, b)
	if err != nil {
		return err
	}
	defer b.stop(2 * time.Minute)
	const topic, parts = "conns", 8
	_, err = createTopic(ctx, cl, topic, parts)
	cl.Close()
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	idle, err := brokerIdle(ctx, b.pid(), c.idleDur)
	if err != nil {
		return err
	}
	mem0, err := proc.ReadMemory(b.pid())
	if err != nil {
		return err
	}
	fds0, err := proc.OpenFDs(b.pid())
	if err != nil {
		return err
	}
	var rows []connResult
	for _, n := range c.connections {
		progress("connections %d", n)
		r, err := connections(ctx, b.addr, topic, parts, n, c.connSize, c.connRate, b.pid(), c.warmup, c.connDur)
		if err != nil {
			return fmt.Errorf("%d connections: %w", n, err)
		}
		progress("connections %d: p50 %.2f ms, p99 %.2f ms, broker %.1f ms/s, fds %d", n,
			ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99)), perSec(r.brokerCPU, r.wall), r.fds)
		rows = append(rows, r)
		if err := sleepCtx(ctx, time.Second); err != nil { // let the closed connections go
			return err
		}
	}

	fmt.Printf("### Connections\n\n")
	fmt.Printf("One broker, one topic of %d partitions. C raw TCP connections, each sending one-record Produce requests (v9, acks=1, %d-byte value, pipelined) on a fixed schedule, %d records a second in total split evenly, connection i to partition i mod %d; %v measured after %v. The same broker throughout, the counts in turn. Before any connection: broker CPU %.1f ms/s, RSS %.0f MiB, %d open fds. Latency is from writing the request to reading its response.\n\n",
		parts, c.connSize, c.connRate, parts, c.connDur, c.warmup, perSec(idle, c.idleDur), mib(mem0.RSS), fds0)
	fmt.Println("| connections | acks/s | ack p50 ms | ack p99 ms | ack max ms | broker CPU ms/s | client CPU ms/s | RSS MiB | peak RSS MiB | open fds |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, r := range rows {
		maxLat := time.Duration(0)
		if len(r.latencies) > 0 {
			maxLat = r.latencies[len(r.latencies)-1]
		}
		fmt.Printf("| %d | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %.0f | %.0f | %d |\n",
			c.connections[i], float64(len(r.latencies))/r.wall.Seconds(), ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99)), ms(maxLat),
			perSec(r.brokerCPU, r.wall), perSec(r.selfCPU, r.wall), mib(r.mem.RSS), mib(r.mem.HWM), r.fds)
	}
	fmt.Println()

	f := figure{title: fmt.Sprintf("Gregor: C connections producing %d records/s in total (acks=1)", c.connRate), xLabel: "connections (log scale)", columns: 2}
	var p50, p99, cpu, rss, fds []float64
	for i, r := range rows {
		f.x = append(f.x, float64(c.connections[i]))
		f.xTicks = append(f.xTicks, strconv.Itoa(c.connections[i]))
		p50 = append(p50, ms(percentile(r.latencies, 50)))
		p99 = append(p99, ms(percentile(r.latencies, 99)))
		cpu = append(cpu, perSec(r.brokerCPU, r.wall))
		rss = append(rss, mib(r.mem.RSS))
		fds = append(fds, float64(r.fds))
	}
	f.panels = []panel{
		{title: "produce ack latency ms", series: []series{{name: "p50", y: p50}, {name: "p99", y: p99}}},
		{title: "broker CPU ms/s", series: []series{{y: cpu}}},
		{title: "RSS MiB", series: []series{{y: rss}}},
		{title: "open fds", series: []series{{y: fds}}},
	}
	return writeSVG(c, "connections.svg", f)
}

func recordSizeCurve(ctx context.Context, c config, newBroker func(string) *broker) error {
	const topic, parts = "sizes", 8
	var rows []throughput
	for _, size := range c.recordSizes {
		progress("record size %d: starting a broker", size)
		b := newBroker("s" + strconv.Itoa(size))
		t, err := func() (throughput, error) {
			cl, err := startBroker(ctx, b)
			if err != nil {
				return throughput{}, err
			}
			defer b.stop(2 * time.Minute)
			_, err = createTopic(ctx, cl, topic, parts)
			cl.Close()
			if err != nil {
				return throughput{}, err
			}
			return produceFor(ctx, b.addr, topic, size, b.pid(), c.warmup, c.produceDur)
		}()
		if err != nil {
			return fmt.Errorf("record size %d: %w", size, err)
		}
		progress("record size %d: %.0f MB/s, %.0f records/s", size, t.mbps(), t.rps())
		rows = append(rows, t)
		if err := os.RemoveAll(b.dataDir); err != nil {
			return err
		}
	}

	fmt.Printf("### Record size\n\n")
	fmt.Printf("A fresh broker per size, one topic of %d partitions, one franz-go producer (acks=1, linger 5 ms, 1 MiB batches, no compression, random values), %v measured after %v.\n\n", parts, c.produceDur, c.warmup)
	fmt.Println("| record size | produce MB/s | records/s | Produce request KiB | broker bytes written per value byte | broker CPU s/GiB | client CPU s/GiB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	for i, t := range rows {
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", sizeName(c.recordSizes[i]), t.mbps(), t.rps(), t.meanRequest(), t.writeRatio(), t.perGiB(t.brokerCPU), t.perGiB(t.selfCPU))
	}
	fmt.Println()

	f := figure{title: fmt.Sprintf("Gregor: produce by record size (acks=1, %d partitions)", parts), xLabel: "record value size (log scale)"}
	var mbps, rps, cpu []float64
	for i, t := range rows {
		f.x = append(f.x, float64(c.recordSizes[i]))
		f.xTicks = append(f.xTicks, sizeName(c.recordSizes[i]))
		mbps = append(mbps, t.mbps())
		rps = append(rps, t.rps()/1000)
		cpu = append(cpu, t.perGiB(t.brokerCPU))
	}
	f.panels = []panel{
		{title: "produce MB/s", series: []series{{y: mbps}}},
		{title: "thousand records/s", series: []series{{y: rps}}},
		{title: "broker CPU s/GiB", series: []series{{y: cpu}}},
	}
	return writeSVG(c, "record-size.svg", f)
}

// sizeName prints 100 as "100 B", 1024 as "1 KiB", 102400 as "100 KiB".
func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}

// num prints v with prec decimals, or "–" for NaN.
func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.TrimLeft(s, "-0.") == "" {
		return strings.TrimPrefix(s, "-") // no "-0"
	}
	return s
}
