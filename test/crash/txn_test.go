package crash

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor/test/testenv"
)

// The read-process-write pipeline of TestTransactionsExactlyOnceUnderKill9
// (vars: a run against an external broker adds a suffix).
var (
	txnIn    = "txn-in"
	txnOut   = "txn-out"
	txnGroup = "txn-pipeline"
	txnID    = "txn-pipeline"
)

const (
	// attemptHeader names the transaction attempt that wrote an output
	// record: one number per Begin, so a reader can tell which attempt a
	// record belongs to and whether that attempt committed.
	attemptHeader = "attempt"
)

// TestTransactionsExactlyOnceUnderKill9 runs a franz-go
// GroupTransactSession (consume txn-in read_committed, produce to txn-out,
// offsets in the transaction) while input keeps arriving and the broker is
// killed with SIGKILL at random moments, GREGOR_TXN_KILLS times (default 5;
// `make txn-faults` runs 30). A session whose End fails is closed and
// replaced, as an application would restart; each Begin is a new attempt
// whose number every output record carries in a header.
//
// A read_committed consumer of txn-out runs throughout. Afterwards:
//   - txn-out read_committed holds every record of txn-in exactly once
//     (nothing lost, nothing duplicated), and the group's committed offsets
//     are txn-in's end offsets;
//   - every attempt visible in txn-out is visible whole (as many records as
//     it produced): no committed transaction partly visible;
//   - no attempt that ended in an abort is visible, and everything the
//     concurrent reader was served is in the final output at the same
//     offset (no read of an aborted or unfinished transaction);
//   - every acknowledged input record is in txn-in.
//
// It skips while the broker answers a transactional InitProducerId with
// UNSUPPORTED_VERSION (Gregor before its transaction coordinator).
//
// GREGOR_TXN_BOOTSTRAP=host:port runs the same pipeline and checks against
// a broker that is already running (Apache Kafka, to check the test
// itself), with no kills.
func TestTransactionsExactlyOnceUnderKill9(t *testing.T) {
	kills := 5
	if v := os.Getenv("GREGOR_TXN_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			t.Fatalf("GREGOR_TXN_KILLS=%q: %v", v, err)
		}
	}
	var s *server
	addr := os.Getenv("GREGOR_TXN_BOOTSTRAP")
	if addr != "" {
		kills = 0
		suffix := fmt.Sprintf("-%d", time.Now().UnixNano())
		txnIn, txnOut, txnGroup, txnID = txnIn+suffix, txnOut+suffix, txnGroup+suffix, txnID+suffix
		t.Logf("external broker %s: no kills, topics %s and %s", addr, txnIn, txnOut)
	} else {
		root := t.TempDir()
		s = &server{t: t, bin: buildBinary(t), dir: filepath.Join(root, "data"), addr: testenv.FreeAddr(t)}
		s.start()
		t.Cleanup(func() {
			if s.cmd.ProcessState == nil {
				s.kill()
			}
		})
		addr = s.addr
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	ctx := context.Background()
	for _, topic := range []string{txnIn, txnOut} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}

	r := &txnRun{t: t, addr: addr, attempts: map[int]*attempt{}, ackedIn: map[string]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.feed(stop) }()
	pipeCtx, stopPipe := context.WithCancel(ctx)
	go func() { defer wg.Done(); r.pipeline(pipeCtx) }()
	readCtx, stopRead := context.WithCancel(ctx)
	go func() { defer wg.Done(); r.read(readCtx) }()

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(500+rng.Intn(2500)) * time.Millisecond)
		s.kill()
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
		s.start()
	}
	time.Sleep(2 * time.Second) // input and transactions after the last restart too
	close(stop)                 // no more input; let the pipeline drain it
	drained := r.waitDrained(adm, 120*time.Second)
	stopPipe()
	time.Sleep(time.Second) // the reader catches up with the last commits
	stopRead()
	wg.Wait()
	if !drained {
		t.Errorf("the pipeline did not catch up with the input within 120s of the last kill")
	}
	r.verify(adm, kills)
	if s != nil {
		s.stop()
	}
}

// attempt is one transaction of the pipeline, from Begin to End.
type attempt struct {
	records int    // records produced to txn-out
	outcome string // "committed", "aborted" (End said so), or "unknown" (End failed, or never ran)
}

type txnRun struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	attempts map[int]*attempt
	ackedIn  map[string]bool // input values the feeder's producer acknowledged
	sessions int             // GroupTransactSessions made (1 + replacements)
	seen     map[seenAt]string
}

type seenAt struct {
	partition int32
	offset    int64
}

// feed produces input records ("in-N") until stop, idempotent with acks=all.
func (r *txnRun) feed(stop chan struct{}) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.DefaultProduceTopic(txnIn),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(60*time.Second))
	if err != nil {
		r.t.Error(err)
		return
	}
	defer cl.Close()
	for i := 0; ; i++ {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			_ = cl.Flush(ctx)
			cancel()
			return
		default:
		}
		v := fmt.Sprintf("in-%06d", i)
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(rec *kgo.Record, err error) {
			if err == nil {
				r.mu.Lock()
				r.ackedIn[string(rec.Value)] = true
				r.mu.Unlock()
			}
		})
		if i%20 == 19 {
			time.Sleep(10 * time.Millisecond) // about 2000 records a second
		}
	}
}

func (r *txnRun) newSession() (*kgo.GroupTransactSession, error) {
	r.mu.Lock()
	r.sessions++
	r.mu.Unlock()
	return kgo.NewGroupTransactSession(
		kgo.SeedBrokers(r.addr),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.DefaultProduceTopic(txnOut),
		kgo.ConsumerGroup(txnGroup),
		kgo.ConsumeTopics(txnIn),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(10*time.Second),
		kgo.RequestRetries(50),
	)
}

// pipeline copies txn-in to txn-out in transactions until ctx ends.
func (r *txnRun) pipeline(ctx context.Context) {
	sess, err := r.newSession()
	if err != nil {
		r.t.Error(err)
		return
	}
	defer func() { sess.Close() }()
	next := 0
	for ctx.Err() == nil {
		fs := sess.PollRecords(ctx, 200)
		if ctx.Err() != nil {
			return
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		next++
		a := &attempt{outcome: "unknown"}
		r.mu.Lock()
		r.attempts[next] = a
		r.mu.Unlock()
		if err := sess.Begin(); err != nil {
			r.t.Errorf("Begin: %v", err) // only a misuse of the session fails Begin
			return
		}
		tag := []byte(strconv.Itoa(next))
		for _, in := range recs {
			out := &kgo.Record{Key: in.Key, Value: in.Value, Headers: []kgo.RecordHeader{{Key: attemptHeader, Value: tag}}}
			sess.Produce(ctx, out, nil) // a failed record fails the End below
		}
		r.mu.Lock()
		a.records = len(recs)
		r.mu.Unlock()
		committed, err := sess.End(ctx, kgo.TryCommit)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		switch {
		case err == nil && committed:
			a.outcome = "committed"
		case err == nil:
			a.outcome = "aborted"
		}
		r.mu.Unlock()
		if err != nil {
			// Not retryable (kgo's contract): start over, as a restarted
			// application would; the new producer fences the old epoch.
			sess.Close()
			if sess, err = r.newSession(); err != nil {
				r.t.Error(err)
				return
			}
		}
	}
}

// read follows txn-out read_committed from the start until ctx ends and
// records every record it was served.
func (r *txnRun) read(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr),
		kgo.ConsumeTopics(txnOut), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		r.t.Error(err)
		return
	}
	defer cl.Close()
	r.mu.Lock()
	r.seen = map[seenAt]string{}
	r.mu.Unlock()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			r.seen[seenAt{rec.Partition, rec.Offset}] = string(rec.Value) + "@" + header(rec, attemptHeader)
		})
		r.mu.Unlock()
	}
}

func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// waitDrained waits until the group has committed txn-in's end offsets.
func (r *txnRun) waitDrained(adm *kadm.Client, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lag, err := adm.Lag(ctx, txnGroup)
		cancel()
		if g, ok := lag[txnGroup]; err == nil && ok && g.Error() == nil && caughtUp(g) {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

// readAll reads every record of topic at this isolation level, after the
// writers stopped: until the fetches have been empty for 3 s. (A
// read_committed reader skips aborted records and markers, so no offset
// says it is done.)
func (r *txnRun) readAll(topic string, level kgo.IsolationLevel) []*kgo.Record {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(90 * time.Second)
	idleSince := time.Now()
	for time.Since(idleSince) < 3*time.Second {
		if time.Now().After(deadline) {
			r.t.Fatalf("reading %s: still getting records after 90s", topic)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(rec *kgo.Record) { out = append(out, rec); n++ })
		if n > 0 {
			idleSince = time.Now()
		}
	}
	return out
}

func (r *txnRun) verify(adm *kadm.Client, kills int) {
	t := r.t
	in := r.readAll(txnIn, kgo.ReadUncommitted())
	out := r.readAll(txnOut, kgo.ReadCommitted())
	r.mu.Lock()
	defer r.mu.Unlock()

	inputs := map[string]bool{}
	for _, rec := range in {
		inputs[string(rec.Value)] = true
	}
	lostAcked := 0
	for v := range r.ackedIn {
		if !inputs[v] {
			lostAcked++
		}
	}

	count := map[string]int{}    // output value → times in txn-out
	visible := map[string]int{}  // attempt → records of it in txn-out
	final := map[seenAt]string{} // what the reader should have been served
	for _, rec := range out {
		count[string(rec.Value)]++
		a := header(rec, attemptHeader)
		visible[a]++
		final[seenAt{rec.Partition, rec.Offset}] = string(rec.Value) + "@" + a
	}
	lost, dup, foreign := 0, 0, 0
	var lostEx, dupEx []string
	for v := range inputs {
		switch n := count[v]; {
		case n == 0:
			lost++
			lostEx = append(lostEx, v)
		case n > 1:
			dup += n - 1
			dupEx = append(dupEx, fmt.Sprintf("%s×%d", v, n))
		}
	}
	for v := range count {
		if !inputs[v] {
			foreign++
		}
	}

	committed, aborted, unknown := 0, 0, 0
	var partial, abortedVisible []string
	for id, a := range r.attempts {
		key := strconv.Itoa(id)
		n := visible[key]
		switch a.outcome {
		case "committed":
			committed++
		case "aborted":
			aborted++
			if n > 0 {
				abortedVisible = append(abortedVisible, fmt.Sprintf("attempt %s: %d records", key, n))
			}
		default:
			unknown++
		}
		if n > 0 && n != a.records {
			partial = append(partial, fmt.Sprintf("attempt %s (%s): %d of %d records visible", key, a.outcome, n, a.records))
		}
		if a.outcome == "committed" && n == 0 {
			partial = append(partial, fmt.Sprintf("attempt %s: committed, none of its %d records visible", key, a.records))
		}
	}
	abortedReads := 0
	var badReads []string
	for at, v := range r.seen {
		if final[at] != v {
			abortedReads++
			if len(badReads) < 5 {
				badReads = append(badReads, fmt.Sprintf("p%d@%d served %q, final %q", at.partition, at.offset, v, final[at]))
			}
		}
	}

	sort.Strings(lostEx)
	sort.Strings(dupEx)
	sort.Strings(partial)
	t.Logf("kills %d; input %d records (%d acknowledged); output %d records; sessions %d; "+
		"transactions: %d committed, %d aborted, %d unknown outcome; concurrent reader served %d; "+
		"lost %d, duplicated %d, aborted reads %d",
		kills, len(inputs), len(r.ackedIn), len(out), r.sessions, committed, aborted, unknown, len(r.seen),
		lost, dup, abortedReads)
	if len(inputs) == 0 || committed == 0 {
		t.Fatal("nothing went through the pipeline")
	}
	if lostAcked > 0 {
		t.Errorf("%d acknowledged input records missing from %s", lostAcked, txnIn)
	}
	if lost > 0 {
		t.Errorf("%d input records not in %s (read_committed), e.g. %v", lost, txnOut, head(lostEx))
	}
	if dup > 0 {
		t.Errorf("%d duplicated records in %s (read_committed), e.g. %v", dup, txnOut, head(dupEx))
	}
	if foreign > 0 {
		t.Errorf("%d records in %s that are not in %s", foreign, txnOut, txnIn)
	}
	if len(partial) > 0 {
		t.Errorf("transactions partly visible: %v", head(partial))
	}
	if len(abortedVisible) > 0 {
		t.Errorf("aborted transactions visible to read_committed: %v", head(abortedVisible))
	}
	if abortedReads > 0 {
		t.Errorf("the concurrent read_committed consumer was served %d records that are not in the final output: %v",
			abortedReads, badReads)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lag, err := adm.Lag(ctx, txnGroup)
	g := lag[txnGroup]
	if err == nil {
		err = g.Error()
	}
	if err != nil {
		t.Errorf("group lag: %v", err)
	} else if !caughtUp(g) {
		t.Errorf("committed group offsets are not txn-in's end offsets: %+v", g.Lag[txnIn])
	}
}

// caughtUp: the group committed the end offset of every txn-in partition.
func caughtUp(g kadm.DescribedGroupLag) bool {
	ps := g.Lag[txnIn]
	if len(ps) != 3 {
		return false
	}
	for _, l := range ps {
		if l.Err != nil || l.Commit.At != l.End.Offset {
			return false
		}
	}
	return true
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
