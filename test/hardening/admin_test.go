package hardening

// Topic administration, the catalog and start-up safety, against the real
// binary: partition limits, 5,000-partition create/delete while another
// topic keeps producing, kill -9 during a create, the log dir lock, holes
// between segments, internal topics and name collisions.

import (
	"context"
	bin "encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/test/testenv"
)

// adminClients returns a franz-go client and its admin wrapper for s,
// closed at cleanup.
func adminClients(t *testing.T, s *server, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.addr), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// adminTopicsCLI runs `gregor topics` against s and returns its combined
// output and exit error.
func adminTopicsCLI(t *testing.T, s *server, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(s.bin, append([]string{"topics", "--bootstrap-server", s.addr}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// adminPartitionDirs lists the partition directories of a topic in s.dir,
// including any renamed -delete or -stray ones.
func adminPartitionDirs(t *testing.T, s *server, topic string) []string {
	t.Helper()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), topic+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// adminCreate creates a topic with kadm; the error is that of the
// request, the response carries the topic's own.
func adminCreate(ctx context.Context, adm *kadm.Client, partitions int32, configs map[string]*string, name string) (kadm.CreateTopicResponse, error) {
	rs, err := adm.CreateTopics(ctx, partitions, 1, configs, name)
	if err != nil {
		return kadm.CreateTopicResponse{}, err
	}
	return rs[name], nil
}

// adminMetadataOK asserts the broker answers a metadata request quickly.
func adminMetadataOK(t *testing.T, adm *kadm.Client, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	start := time.Now()
	if _, err := adm.ListTopics(ctx); err != nil {
		t.Fatalf("broker not responsive: metadata failed after %v: %v", time.Since(start), err)
	}
}

func TestAdminPartitionLimits(t *testing.T) {
	s := newServer(t, "gregor.max.partitions=200")
	s.start()
	defer s.stop()
	_, adm := adminClients(t, s)
	ctx := context.Background()

	// Over the per-request cap: refused at once with KRaft's code.
	start := time.Now()
	resp, err := adminCreate(ctx, adm, 100000, nil, "huge")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resp.Err, kerr.PolicyViolation) || !strings.Contains(resp.ErrMessage, "gregor.max.partitions.per.request") {
		t.Fatalf("100,000 partitions: got %v %q, want POLICY_VIOLATION naming gregor.max.partitions.per.request", resp.Err, resp.ErrMessage)
	}
	if took > time.Second {
		t.Errorf("refusing 100,000 partitions took %v, want under 1s", took)
	}
	t.Logf("100,000-partition create refused in %v: %s", took, resp.ErrMessage)
	adminMetadataOK(t, adm, time.Second)
	if dirs := adminPartitionDirs(t, s, "huge"); len(dirs) != 0 {
		t.Errorf("refused topic left directories: %v", dirs[:min(3, len(dirs))])
	}

	// The broker-wide cap: 150 fit, 100 more do not; the message names the
	// property.
	if resp, err := adminCreate(ctx, adm, 150, nil, "first"); err != nil || resp.Err != nil {
		t.Fatalf("150 partitions under a cap of 200: %v %v %s", err, resp.Err, resp.ErrMessage)
	}
	resp, err = adminCreate(ctx, adm, 100, nil, "second")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resp.Err, kerr.PolicyViolation) || !strings.Contains(resp.ErrMessage, "gregor.max.partitions") {
		t.Fatalf("over the broker cap: got %v %q, want POLICY_VIOLATION naming gregor.max.partitions", resp.Err, resp.ErrMessage)
	}
	// Growing a topic over the cap fails the same way and changes nothing.
	cr, err := adm.CreatePartitions(ctx, 100, "first")
	if err != nil {
		t.Fatal(err)
	}
	if r := cr["first"]; !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("adding 100 partitions over the cap: %v %q", r.Err, r.ErrMessage)
	}
	td, err := adm.ListTopics(ctx, "first", "second")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["first"].Partitions); n != 150 {
		t.Errorf("first has %d partitions after the refused addition, want 150", n)
	}
	if td.Has("second") {
		t.Error("the refused topic exists")
	}
}

// adminSteadyProducer produces to its own topic, one acks=all record at a
// time, and records the slowest record between mark() calls.
type adminSteadyProducer struct {
	mu      sync.Mutex
	max     time.Duration
	n       int
	errs    []error
	stop    chan struct{}
	stopped chan struct{}
}

func adminStartProducer(t *testing.T, s *server, topic string) *adminSteadyProducer {
	t.Helper()
	cl, adm := adminClients(t, s, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if r, err := adminCreate(context.Background(), adm, 1, nil, topic); err != nil || r.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, r.Err)
	}
	p := &adminSteadyProducer{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			start := time.Now()
			err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("steady")}).FirstErr()
			d := time.Since(start)
			cancel()
			p.mu.Lock()
			p.n++
			if d > p.max {
				p.max = d
			}
			if err != nil {
				p.errs = append(p.errs, err)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// mark returns the slowest record and the count since the last mark.
func (p *adminSteadyProducer) mark() (time.Duration, int, []error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, n, errs := p.max, p.n, p.errs
	p.max, p.n, p.errs = 0, 0, nil
	return m, n, errs
}

func (p *adminSteadyProducer) close() { close(p.stop); <-p.stopped }

func TestAdminCreateDelete5000(t *testing.T) {
	s := newServer(t, "gregor.max.partitions=8000")
	s.start()
	defer s.stop()
	p := adminStartProducer(t, s, "steady")
	defer p.close()
	time.Sleep(500 * time.Millisecond)
	p.mark()

	start := time.Now()
	out, err := adminTopicsCLI(t, s, "--create", "--topic", "big", "--partitions", "5000")
	created := time.Since(start)
	if err != nil {
		t.Fatalf("create 5,000 partitions with the CLI: %v\n%s\nbroker:\n%s", err, out, s.output())
	}
	maxCreate, nCreate, errs := p.mark()
	if len(errs) > 0 {
		t.Errorf("producer errors during the create: %v", errs[0])
	}
	_, adm := adminClients(t, s)
	td, err := adm.ListTopics(context.Background(), "big")
	if err != nil || len(td["big"].Partitions) != 5000 {
		t.Fatalf("after create: %v, %d partitions", err, len(td["big"].Partitions))
	}

	t.Logf("with 5,000 more partitions: %d fds, RSS %s", s.fds(), mib(s.rss()))

	start = time.Now()
	out, err = adminTopicsCLI(t, s, "--delete", "--topic", "big")
	deleted := time.Since(start)
	if err != nil {
		t.Fatalf("delete with the CLI: %v\n%s", err, out)
	}
	// Background removal of the renamed directories: the producer keeps
	// going while it runs.
	deadline := time.Now().Add(60 * time.Second)
	for len(adminPartitionDirs(t, s, "big")) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	removed := time.Since(start)
	maxDelete, nDelete, errs := p.mark()
	if len(errs) > 0 {
		t.Errorf("producer errors during the delete: %v", errs[0])
	}
	if dirs := adminPartitionDirs(t, s, "big"); len(dirs) > 0 {
		t.Errorf("%d directories of the deleted topic remain after 60s, e.g. %s", len(dirs), dirs[0])
	}
	t.Logf("create 5,000: %v (producer: %d records, slowest %v); delete: %v answered, dirs gone after %v (producer: %d records, slowest %v)",
		created, nCreate, maxCreate, deleted, removed, nDelete, maxDelete)
	cliTimeout := 30 * time.Second
	if created > cliTimeout || deleted > cliTimeout {
		t.Errorf("create took %v, delete %v: over the CLI's default timeout %v", created, deleted, cliTimeout)
	}
	if maxCreate > time.Second || maxDelete > time.Second {
		t.Errorf("acks=all producer stalled: slowest record %v during the create, %v during the delete; want under 1s", maxCreate, maxDelete)
	}
	// The name is free again, with a new id.
	if r, err := adminCreate(context.Background(), adm, 3, nil, "big"); err != nil || r.Err != nil {
		t.Fatalf("re-create after delete: %v %v %s", err, r.Err, r.ErrMessage)
	}
}

func TestAdminKillDuringCreate(t *testing.T) {
	const parts = 5000
	// Kill points: when the first, half or all of the directories exist
	// (the catalog may or may not say "created" yet), and right after the
	// broker answered. Timings vary with the disk, so they are defined by
	// what is on disk rather than by clock.
	outcomes := map[string]int{}
	for _, at := range []int{1, parts / 2, parts, -1} {
		s := newServer(t, "gregor.max.partitions=8000")
		s.start()
		cl, _ := adminClients(t, s)
		answered := make(chan int16, 1)
		go func() {
			req := kmsg.NewPtrCreateTopicsRequest()
			req.TimeoutMillis = 60000
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "big", parts, 1
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(context.Background(), cl)
			if err != nil {
				answered <- -1
				return
			}
			answered <- resp.Topics[0].ErrorCode
		}()
		deadline := time.Now().Add(60 * time.Second)
		if at < 0 {
			select {
			case code := <-answered:
				if code != 0 {
					t.Fatalf("create answered %d", code)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("create not answered in 60s")
			}
		} else {
			for len(adminPartitionDirs(t, s, "big")) < at && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		s.kill()
		cl.Close()
		dirsAtKill := len(adminPartitionDirs(t, s, "big"))

		restart := time.Now()
		s.start()
		restarted := time.Since(restart)
		_, adm := adminClients(t, s)
		td, err := adm.ListTopics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		dirs := adminPartitionDirs(t, s, "big")
		switch {
		case !td.Has("big"):
			outcomes["absent"]++
			if at < 0 {
				t.Errorf("killed after the create was acknowledged: the topic is gone")
			}
			if len(dirs) != 0 {
				t.Errorf("kill at %d directories: topic absent but %d directories remain, e.g. %s", at, len(dirs), dirs[0])
			}
		default:
			outcomes["complete"]++
			if n := len(td["big"].Partitions); n != parts {
				t.Errorf("kill at %d directories: topic came back with %d of %d partitions", at, n, parts)
			}
			if len(dirs) != parts {
				t.Errorf("kill at %d directories: %d partition directories for %d partitions", at, len(dirs), parts)
			}
			// Usable: the last partition takes a record.
			pcl, _ := adminClients(t, s, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := pcl.ProduceSync(ctx, &kgo.Record{Topic: "big", Partition: parts - 1, Value: []byte("x")}).FirstErr()
			cancel()
			if err != nil {
				t.Errorf("kill at %d directories: produce to the recovered topic: %v", at, err)
			}
		}
		stop := time.Now()
		s.stop()
		t.Logf("kill -9 with %d directories on disk (waited for %d): topic %s after restart (restart %v, clean stop %v)",
			dirsAtKill, at, map[bool]string{true: "complete", false: "absent"}[td.Has("big")], restarted.Round(time.Millisecond), time.Since(stop).Round(time.Millisecond))
	}
	t.Logf("outcomes: %v", outcomes)
}

func TestAdminKillDuringDelete(t *testing.T) {
	const parts = 2000
	// Kill when the first directory has been renamed for deletion, and
	// right after the delete was answered (directories still being
	// removed in the background).
	for _, answered := range []bool{false, true} {
		s := newServer(t, "gregor.max.partitions=8000")
		s.start()
		cl, adm := adminClients(t, s)
		if r, err := adminCreate(context.Background(), adm, parts, nil, "big"); err != nil || r.Err != nil {
			t.Fatalf("create: %v %v", err, r.Err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = adm.DeleteTopics(context.Background(), "big")
		}()
		if answered {
			<-done
		} else {
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if m, _ := filepath.Glob(filepath.Join(s.dir, "big-*-delete")); len(m) > 0 {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		s.kill()
		cl.Close()
		left := len(adminPartitionDirs(t, s, "big"))

		s.start()
		_, adm = adminClients(t, s)
		td, err := adm.ListTopics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Once the delete was answered the topic must stay gone; before
		// that either outcome is allowed, but never a partial topic.
		switch {
		case td.Has("big") && answered:
			t.Errorf("deleted topic came back after kill -9")
		case td.Has("big") && len(td["big"].Partitions) != parts:
			t.Errorf("topic came back with %d of %d partitions", len(td["big"].Partitions), parts)
		case !td.Has("big"):
			if dirs := adminPartitionDirs(t, s, "big"); len(dirs) != 0 {
				t.Errorf("deleted topic left %d directories after restart, e.g. %s", len(dirs), dirs[0])
			}
			if r, err := adminCreate(context.Background(), adm, 2, nil, "big"); err != nil || r.Err != nil {
				t.Errorf("re-create after the interrupted delete: %v %v", err, r.Err)
			}
		}
		t.Logf("kill -9 during delete (answered %v, %d directories on disk): topic present after restart: %v", answered, left, td.Has("big"))
		s.stop()
	}
}

func TestAdminLogDirLock(t *testing.T) {
	s := newServer(t)
	s.start()
	defer s.stop()
	before := adminDirState(t, s.dir)

	second := exec.Command(s.bin, "serve", "--data-dir", s.dir, "--listeners", "PLAINTEXT://"+testenv.FreeAddr(t))
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = second.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = second.Process.Kill()
		<-done
		t.Fatal("a second broker on the same log dir kept running")
	}
	if err == nil {
		t.Fatalf("second broker exited 0:\n%s", out)
	}
	lock := filepath.Join(s.dir, ".lock")
	if !strings.Contains(string(out), lock) {
		t.Errorf("second broker's message does not name %s:\n%s", lock, out)
	}
	if after := adminDirState(t, s.dir); after != before {
		t.Errorf("second broker changed the log dir:\nbefore: %s\nafter:  %s", before, after)
	}
	// The first one still serves.
	_, adm := adminClients(t, s)
	adminMetadataOK(t, adm, 2*time.Second)
}

// adminDirState lists the top-level files of a dir with sizes and mtimes.
func adminDirState(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s:%d:%d", e.Name(), fi.Size(), fi.ModTime().UnixNano()))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// adminSegments returns a partition's .log files, sorted.
func adminSegments(t *testing.T, s *server, topic string, p int) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(s.dir, fmt.Sprintf("%s-%d", topic, p), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(logs)
	return logs
}

// adminPartitionCodes probes one partition with produce, fetch and list
// offsets and returns their error codes (0 = fine).
func adminPartitionCodes(t *testing.T, cl *kgo.Client, topic string, p int32) (produce, fetch, list int16) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Straight to the broker: kgo would turn a partition error into a
	// request error when it splits requests by leader.
	seed := cl.SeedBrokers()[0]
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp = p, -1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	lr, err := seed.Request(ctx, lreq)
	if err != nil {
		t.Fatal(err)
	}
	lresp := lr.(*kmsg.ListOffsetsResponse)
	list = lresp.Topics[0].Partitions[0].ErrorCode

	// Fetch names topics by id from v13, which kgo will use.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &topic
	mreq.Topics = append(mreq.Topics, mt)
	mr, err := seed.Request(ctx, mreq)
	if err != nil {
		t.Fatal(err)
	}
	freq := kmsg.NewPtrFetchRequest()
	freq.MaxWaitMillis, freq.MaxBytes = 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, mr.(*kmsg.MetadataResponse).Topics[0].TopicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fr, err := seed.Request(ctx, freq)
	if err != nil {
		t.Fatal(err)
	}
	fresp := fr.(*kmsg.FetchResponse)
	fetch = fresp.Topics[0].Partitions[0].ErrorCode

	preq := kmsg.NewPtrProduceRequest()
	preq.Acks, preq.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = p
	pp.Records = adminBatch([]byte("probe"))
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	pr, err := seed.Request(ctx, preq)
	if err != nil {
		t.Fatal(err)
	}
	presp := pr.(*kmsg.ProduceResponse)
	produce = presp.Topics[0].Partitions[0].ErrorCode
	return produce, fetch, list
}

// adminBatch encodes one uncompressed v2 batch holding one small record.
func adminBatch(value []byte) []byte {
	r := kmsg.Record{Value: value}
	r.Length = int32(len(r.AppendTo(nil)) - 1) // the length varint of 0 is one byte
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{Magic: 2, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: r.AppendTo(nil)}
	raw := b.AppendTo(nil)
	bin.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	bin.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

func TestAdminSegmentHole(t *testing.T) {
	for _, damage := range []string{"emptied", "removed"} {
		t.Run(damage, func(t *testing.T) {
			s := newServer(t)
			s.start()
			cl, adm := adminClients(t, s, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
			ctx := context.Background()
			segBytes := "1024"
			if r, err := adminCreate(ctx, adm, 2, map[string]*string{"segment.bytes": &segBytes}, "holey"); err != nil || r.Err != nil {
				t.Fatalf("create: %v %v %s", err, r.Err, r.ErrMessage)
			}
			val := []byte(strings.Repeat("v", 300))
			for i := 0; i < 30; i++ {
				for p := int32(0); p < 2; p++ {
					if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "holey", Partition: p, Value: val}).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
			}
			cl.Close()
			s.stop()
			segs := adminSegments(t, s, "holey", 0)
			if len(segs) < 4 {
				out, _ := exec.Command("ls", "-la", filepath.Join(s.dir, "holey-0")).CombinedOutput()
				t.Fatalf("want at least 4 segments, got %d\n%s\n%s", len(segs), out, s.output())
			}
			victim := segs[len(segs)/2]
			if damage == "emptied" {
				if err := os.Truncate(victim, 0); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(victim); err != nil {
				t.Fatal(err)
			}

			s.start()
			cl2, _ := adminClients(t, s)
			pc, fc, lc := adminPartitionCodes(t, cl2, "holey", 0)
			storageErr := kerr.KafkaStorageError.Code
			if pc != storageErr || fc != storageErr || lc != storageErr {
				t.Errorf("damaged partition: produce %d, fetch %d, list offsets %d; want KAFKA_STORAGE_ERROR (%d) for all", pc, fc, lc, storageErr)
			}
			if pc, fc, lc := adminPartitionCodes(t, cl2, "holey", 1); pc != 0 || fc != 0 || lc != 0 {
				t.Errorf("healthy partition: produce %d, fetch %d, list offsets %d; want 0", pc, fc, lc)
			}
			mreq := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mname := "holey"
			mt.Topic = &mname
			mreq.Topics = append(mreq.Topics, mt)
			mresp, err := mreq.RequestWith(ctx, cl2)
			if err != nil {
				t.Fatal(err)
			}
			codes := map[int32]int16{}
			for _, p := range mresp.Topics[0].Partitions {
				codes[p.Partition] = p.ErrorCode
			}
			if codes[0] != storageErr || codes[1] != 0 {
				t.Errorf("metadata: partition codes %v; want KAFKA_STORAGE_ERROR for 0 and none for 1", codes)
			}
			if !strings.Contains(s.output(), "gregor.recovery.accept.gaps") {
				t.Errorf("the broker log does not tell the operator about gregor.recovery.accept.gaps:\n%s", s.output())
			}
			cl2.Close()
			s.stop()

			// The operator accepts the loss: the partition serves again,
			// from its start, skipping the hole.
			s.props = append(s.props, "gregor.recovery.accept.gaps=holey-0")
			s.start()
			defer s.stop()
			cl3, _ := adminClients(t, s, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"holey": {0: kgo.NewOffset().AtStart()}}))
			if pc, fc, lc := adminPartitionCodes(t, cl3, "holey", 0); pc != 0 || fc != 0 || lc != 0 {
				t.Errorf("with gregor.recovery.accept.gaps: produce %d, fetch %d, list offsets %d; want 0", pc, fc, lc)
			}
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var got []int64
			for len(got) < 20 && fctx.Err() == nil {
				fs := cl3.PollFetches(fctx)
				fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Offset) })
			}
			gap := false
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					gap = true
				}
			}
			if len(got) < 20 || !gap {
				t.Errorf("consuming past the accepted hole: got offsets %v, want 20+ with a jump", got)
			}
			if !strings.Contains(s.output(), "RECOVERY ACCEPTED A HOLE") {
				t.Errorf("accepting the hole was not logged loudly:\n%s", s.output())
			}
		})
	}
}

func TestAdminInternalTopics(t *testing.T) {
	s := newServer(t)
	s.start()
	defer s.stop()
	cl, adm := adminClients(t, s)
	// The broker creates __consumer_offsets for the coordinator.
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = "g"
	if _, err := req.RequestWith(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(context.Background(), "__consumer_offsets")
	if err != nil || !td.Has("__consumer_offsets") {
		t.Fatalf("__consumer_offsets not created by the broker: %v", err)
	}

	out, err := adminTopicsCLI(t, s, "--delete", "--topic", "__consumer_offsets")
	if err == nil || !strings.Contains(out, "Deletion of internal topic __consumer_offsets is prohibited") {
		t.Errorf("CLI delete of __consumer_offsets: %v\n%s", err, out)
	}
	out, err = adminTopicsCLI(t, s, "--create", "--topic", "__transaction_state", "--partitions", "1")
	if err == nil || !strings.Contains(out, "Creation of internal topic __transaction_state is prohibited") {
		t.Errorf("CLI create of __transaction_state: %v\n%s", err, out)
	}
	dr, err := adm.DeleteTopics(context.Background(), "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if r := dr["__consumer_offsets"]; !errors.Is(r.Err, kerr.InvalidRequest) {
		t.Errorf("kadm delete of __consumer_offsets: %v", r.Err)
	}
	cr, err := adm.CreatePartitions(context.Background(), 5, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if r := cr["__consumer_offsets"]; !errors.Is(r.Err, kerr.InvalidRequest) {
		t.Errorf("kadm create partitions on __consumer_offsets: %v", r.Err)
	}
	if td, _ := adm.ListTopics(context.Background(), "__consumer_offsets"); !td.Has("__consumer_offsets") {
		t.Error("__consumer_offsets is gone")
	}
	adminKafkaPython(t, s)
}

// adminKafkaPython repeats the internal-topic checks with kafka-python's
// admin client, if installed.
func adminKafkaPython(t *testing.T, s *server) {
	if err := exec.Command("python3", "-c", "import kafka").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kafka-python is not installed for python3 (make deps installs it)")
		}
		t.Log("kafka-python is not installed (python3 -c 'import kafka' fails): skipping its part")
		return
	}
	script := `
import sys
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidRequestError
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
fails = 0
for what, call in (("delete", lambda: a.delete_topics(["__consumer_offsets"])),
                   ("create", lambda: a.create_topics([NewTopic("__transaction_state", 1, 1)]))):
    try:
        r = call()
        errs = [e for e in getattr(r, "topic_error_codes", []) if e[1] != 0] or [e for e in getattr(r, "topic_errors", []) if e[1] != 0]
        if not errs:
            print(what, "succeeded"); fails += 1
        elif errs[0][1] != 42:
            print(what, "error code", errs[0][1]); fails += 1
    except InvalidRequestError:
        pass
    except Exception as e:
        print(what, "raised", type(e).__name__, e); fails += 1
sys.exit(fails)
`
	out, err := exec.Command("python3", "-c", script, s.addr).CombinedOutput()
	if err != nil {
		t.Errorf("kafka-python: %v\n%s", err, out)
	}
}

func TestAdminTopicCollision(t *testing.T) {
	s := newServer(t)
	s.start()
	defer s.stop()
	cl, adm := adminClients(t, s)
	ctx := context.Background()
	if r, err := adminCreate(ctx, adm, 1, nil, "a.b_c"); err != nil || r.Err != nil {
		t.Fatalf("create a.b_c: %v %v", err, r.Err)
	}
	r, err := adminCreate(ctx, adm, 1, nil, "a_b.c")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.Err, kerr.InvalidTopicException) || r.ErrMessage != "Topic 'a_b.c' collides with existing topic: a.b_c" {
		t.Errorf("colliding create: %v %q", r.Err, r.ErrMessage)
	}
	out, err := adminTopicsCLI(t, s, "--create", "--topic", "a_b_c")
	if err == nil || !strings.Contains(out, "collides with existing topic: a.b_c") {
		t.Errorf("CLI colliding create: %v\n%s", err, out)
	}
	// Auto-creation follows the same rule.
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	name := "a_b_c"
	rt.Topic = &name
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
		t.Errorf("auto-create of a colliding name: error code %d, want INVALID_TOPIC_EXCEPTION", resp.Topics[0].ErrorCode)
	}
	td, _ := adm.ListTopics(ctx)
	if td.Has("a_b.c") || td.Has("a_b_c") {
		t.Error("a colliding topic was created")
	}
}

func TestAdminCatalogStartup(t *testing.T) {
	s := newServer(t)
	s.start()
	_, adm := adminClients(t, s)
	ctx := context.Background()
	ret := "12345678"
	if r, err := adminCreate(ctx, adm, 2, map[string]*string{"retention.ms": &ret}, "keep"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	s.stop()

	// A partition directory the catalog does not list (a crash during a
	// create under an older version) is set aside, not adopted as a topic.
	if err := os.CopyFS(filepath.Join(s.dir, "orphan-0"), os.DirFS(filepath.Join(s.dir, "keep-0"))); err != nil {
		t.Fatal(err)
	}
	s.start()
	_, adm = adminClients(t, s)
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("orphan") || !td.Has("keep") || len(td["keep"].Partitions) != 2 {
		t.Errorf("after restart: topics %v", td.Names())
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rc[0].Configs {
		if c.Key == "retention.ms" && c.Value != nil && *c.Value == ret {
			found = true
		}
	}
	if !found {
		t.Error("keep lost its retention.ms override across the restart")
	}
	if strays, _ := filepath.Glob(filepath.Join(s.dir, "orphan-0.*-stray")); len(strays) != 1 {
		t.Errorf("orphan directory not set aside as -stray: %v", adminPartitionDirs(t, s, "orphan"))
	}
	s.stop()

	// No metadata log next to partition directories: refuse to start, and
	// say what to do.
	if err := os.RemoveAll(filepath.Join(s.dir, "__cluster_metadata-0")); err != nil {
		t.Fatal(err)
	}
	out, err := s.command().CombinedOutput()
	if err == nil || !strings.Contains(string(out), "__cluster_metadata-0 is missing") {
		t.Errorf("start without the metadata log: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "keep-0")); err != nil {
		t.Errorf("partition directory touched: %v", err)
	}
}
