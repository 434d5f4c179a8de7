package txn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/storage"
)

// memLog is an in-memory partition: Append assigns offsets, WaitDurable is
// immediate.
type memLog struct {
	mu      sync.Mutex
	batches [][]byte
	next    int64
	fail    error
}

func (l *memLog) Append(b []byte) (storage.AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return storage.AppendResult{}, l.fail
	}
	b = append([]byte(nil), b...)
	n := int64(int32(be32(b[57:])))
	be64put(b, l.next)
	l.batches = append(l.batches, b)
	res := storage.AppendResult{BaseOffset: l.next, LastOffset: l.next + n - 1}
	l.next += n
	return res, nil
}

func (l *memLog) WaitDurable(ctx context.Context, offset int64) error { return ctx.Err() }

func (l *memLog) Read(offset int64, maxBytes int) (storage.ReadResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.batches {
		base := int64(be64(b))
		last := base + int64(int32(be32(b[23:])))
		if last < offset {
			continue
		}
		out = append(out, b...)
		if len(out) >= maxBytes {
			break
		}
	}
	return storage.ReadResult{Records: out, LogEndOffset: l.next}, nil
}

func (l *memLog) LogStartOffset() int64 { return 0 }
func (l *memLog) LogEndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// records returns every record of the log: key id and decoded value (nil
// for a tombstone).
func (l *memLog) records(t *testing.T) (ids []string, vals []*persisted) {
	t.Helper()
	res, _ := l.Read(0, 1<<30)
	_, err := decodeBatches(res.Records, func(_ int64, key, value []byte) {
		var k kmsg.TxnMetadataKey
		if err := k.ReadFrom(key); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.TransactionalID)
		if value == nil {
			vals = append(vals, nil)
			return
		}
		s, err := decodeValue(value)
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, &s)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, vals
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func be64(b []byte) uint64 { return uint64(be32(b))<<32 | uint64(be32(b[4:])) }
func be64put(b []byte, v int64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(uint64(v) >> (56 - 8*i))
	}
}

// fakeMarkers records markers; fail makes WriteMarkers fail that many times.
type fakeMarkers struct {
	mu   sync.Mutex
	got  []Markers
	fail int
	// block, if set, is waited on before answering.
	block chan struct{}
}

func (f *fakeMarkers) WriteMarkers(ctx context.Context, m Markers) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("leader not available")
	}
	f.got = append(f.got, m)
	return nil
}

func (f *fakeMarkers) all() []Markers {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Markers(nil), f.got...)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type env struct {
	c   *Coordinator
	log *memLog
	mw  *fakeMarkers
	clk *clock
	pid int64
}

const testID = "txn-a"

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{log: &memLog{}, mw: &fakeMarkers{}, clk: &clock{t: time.UnixMilli(1_700_000_000_000)}, pid: 1000}
	var pidMu sync.Mutex
	cfg := DefaultConfig()
	cfg.Partitions = 4
	cfg.Now = e.clk.now
	e.c = New(cfg, nil, func(int32) (Log, error) { return e.log, nil }, func(context.Context) (int64, error) {
		pidMu.Lock()
		defer pidMu.Unlock()
		e.pid++
		return e.pid, nil
	}, e.mw)
	t.Cleanup(e.c.Close)
	if err := e.c.LoadPartition(PartitionFor(testID, 4), e.log, 7); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) init(t *testing.T, version int16, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	id := testID
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 60_000
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return e.c.InitProducerID(context.Background(), req)
}

func (e *env) add(t *testing.T, pid int64, epoch int16, topic string, parts ...int32) int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = testID, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, parts
	req.Topics = append(req.Topics, rt)
	resp := e.c.AddPartitionsToTxn(context.Background(), req)
	return resp.Topics[0].Partitions[0].ErrorCode
}

func (e *env) end(t *testing.T, version int16, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = testID, pid, epoch, commit
	return e.c.EndTxn(context.Background(), req)
}

func (e *env) describe(t *testing.T) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{testID}
	return e.c.DescribeTransactions(req).TransactionStates[0]
}

// waitState waits for the id to reach state (markers are written in the
// background).
func (e *env) waitState(t *testing.T, want string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.describe(t)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %q (error %d), want %q", st.State, st.ErrorCode, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func errName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).(*kerr.Error).Message
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	w := int16(0)
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Fatalf("%s: got %s, want %s", what, errName(got), errName(w))
	}
}

func TestCommitAndAbortCycle(t *testing.T) {
	e := newEnv(t)
	r := e.init(t, 4, -1, -1)
	wantCode(t, "init", r.ErrorCode, nil)
	if r.ProducerID != 1001 || r.ProducerEpoch != 0 {
		t.Fatalf("init gave %d/%d, want 1001/0", r.ProducerID, r.ProducerEpoch)
	}
	pid := r.ProducerID
	wantCode(t, "add", e.add(t, pid, 0, "t", 0, 1), nil)
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.Version, ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = 3, testID, pid, 0, "g"
	wantCode(t, "add offsets", e.c.AddOffsetsToTxn(context.Background(), ao).ErrorCode, nil)
	st := e.describe(t)
	if st.State != "Ongoing" || len(st.Topics) != 2 {
		t.Fatalf("describe: %+v", st)
	}
	wantCode(t, "commit", e.end(t, 4, pid, 0, true).ErrorCode, nil)
	e.waitState(t, "CompleteCommit")
	ms := e.mw.all()
	if len(ms) != 1 || !ms[0].Commit || ms[0].ProducerID != pid || ms[0].ProducerEpoch != 0 || ms[0].CoordinatorEpoch != 7 || len(ms[0].Partitions) != 3 {
		t.Fatalf("markers: %+v", ms)
	}
	// A retried commit is answered with success; an abort now is invalid.
	wantCode(t, "commit retry", e.end(t, 4, pid, 0, true).ErrorCode, nil)
	wantCode(t, "abort after commit", e.end(t, 4, pid, 0, false).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "end with nothing", e.end(t, 4, pid, 0, false).ErrorCode, kerr.InvalidTxnState)

	// Second transaction, aborted.
	wantCode(t, "add 2", e.add(t, pid, 0, "t", 2), nil)
	wantCode(t, "abort", e.end(t, 4, pid, 0, false).ErrorCode, nil)
	e.waitState(t, "CompleteAbort")
	if ms := e.mw.all(); len(ms) != 2 || ms[1].Commit || len(ms[1].Partitions) != 1 {
		t.Fatalf("markers: %+v", ms)
	}
	// The log holds each state change in order, in Kafka's schema.
	_, vals := e.log.records(t)
	var states []State
	for _, v := range vals {
		states = append(states, v.state)
	}
	want := []State{StateEmpty, StateOngoing, StateOngoing, StatePrepareCommit, StateCompleteCommit,
		StateOngoing, StatePrepareAbort, StateCompleteAbort}
	if len(states) != len(want) {
		t.Fatalf("log states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("log states %v, want %v", states, want)
		}
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	// Unknown id.
	wantCode(t, "add unknown", e.add(t, 1, 0, "t", 0), kerr.InvalidProducerIDMapping)
	wantCode(t, "end unknown", e.end(t, 3, 1, 0, true).ErrorCode, kerr.InvalidProducerIDMapping)
	if st := e.describe(t); st.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe unknown: %d", st.ErrorCode)
	}
	// Timeout above the maximum.
	req := kmsg.NewPtrInitProducerIDRequest()
	id := testID
	req.TransactionalID, req.TransactionTimeoutMillis = &id, int32((16 * time.Minute).Milliseconds())
	wantCode(t, "timeout", e.c.InitProducerID(context.Background(), req).ErrorCode, kerr.InvalidTransactionTimeout)

	r := e.init(t, 4, -1, -1)
	pid := r.ProducerID
	wantCode(t, "wrong pid", e.add(t, pid+1, 0, "t", 0), kerr.InvalidProducerIDMapping)
	wantCode(t, "wrong epoch", e.add(t, pid, 1, "t", 0), kerr.ProducerFenced)
	// Old versions get INVALID_PRODUCER_EPOCH instead.
	wantCode(t, "end v1 wrong epoch", e.end(t, 1, pid, 3, true).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "end v3 wrong epoch", e.end(t, 3, pid, 3, true).ErrorCode, kerr.ProducerFenced)

	// Not our partition / loading.
	other := "x"
	for PartitionFor(other, 4) == PartitionFor(testID, 4) {
		other += "x"
	}
	req.TransactionalID, req.TransactionTimeoutMillis = &other, 1000
	wantCode(t, "not coordinator", e.c.InitProducerID(context.Background(), req).ErrorCode, kerr.NotCoordinator)
	e.c.UnloadPartition(PartitionFor(testID, 4))
	wantCode(t, "unloaded", e.end(t, 3, pid, 0, true).ErrorCode, kerr.NotCoordinator)
}

func TestMarkersRetriedAndConcurrent(t *testing.T) {
	e := newEnv(t)
	e.mw.block = make(chan struct{})
	pid := e.init(t, 4, -1, -1).ProducerID
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), nil)
	wantCode(t, "commit", e.end(t, 4, pid, 0, true).ErrorCode, nil)
	// Markers outstanding: everything waits.
	wantCode(t, "add while preparing", e.add(t, pid, 0, "t", 1), kerr.ConcurrentTransactions)
	wantCode(t, "commit again", e.end(t, 4, pid, 0, true).ErrorCode, kerr.ConcurrentTransactions)
	wantCode(t, "abort", e.end(t, 4, pid, 0, false).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "init", e.init(t, 4, -1, -1).ErrorCode, kerr.ConcurrentTransactions)
	e.mw.mu.Lock()
	e.mw.fail = 2
	e.mw.mu.Unlock()
	close(e.mw.block)
	e.waitState(t, "CompleteCommit")
	if n := len(e.mw.all()); n != 1 {
		t.Fatalf("%d marker writes succeeded, want 1", n)
	}
}

func TestInitFencesOngoing(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 4, -1, -1).ProducerID
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), nil)
	// A new instance: the ongoing transaction is aborted with epoch 1.
	wantCode(t, "init 2", e.init(t, 4, -1, -1).ErrorCode, kerr.ConcurrentTransactions)
	e.waitState(t, "CompleteAbort")
	ms := e.mw.all()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != 1 {
		t.Fatalf("markers: %+v", ms)
	}
	r := e.init(t, 4, -1, -1)
	wantCode(t, "init 3", r.ErrorCode, nil)
	if r.ProducerID != pid || r.ProducerEpoch != 2 {
		t.Fatalf("init 3 gave %d/%d, want %d/2", r.ProducerID, r.ProducerEpoch, pid)
	}
	// The zombie at epoch 0 is fenced.
	wantCode(t, "zombie commit", e.end(t, 3, pid, 0, true).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "zombie add", e.add(t, pid, 0, "t", 0), kerr.ProducerFenced)
	// KIP-360: the current producer may re-init with its id and epoch; a
	// retry of that is answered the same; an old epoch is fenced.
	r = e.init(t, 4, pid, 2)
	wantCode(t, "kip360", r.ErrorCode, nil)
	if r.ProducerEpoch != 3 {
		t.Fatalf("kip360 epoch %d, want 3", r.ProducerEpoch)
	}
	if r = e.init(t, 4, pid, 2); r.ErrorCode != 0 || r.ProducerEpoch != 3 {
		t.Fatalf("kip360 retry: %d/%d", r.ErrorCode, r.ProducerEpoch)
	}
	wantCode(t, "kip360 stale", e.init(t, 4, pid, 1).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "kip360 stale v3", e.init(t, 3, pid, 1).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "kip360 other pid", e.init(t, 4, pid+50, 1).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "half", e.init(t, 4, pid, -1).ErrorCode, kerr.InvalidRequest)
}

func TestEpochExhaustionRotates(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 4, -1, -1).ProducerID
	_, tm, _ := e.c.locked(testID)
	tm.epoch = 32766
	tm.mu.Unlock()
	r := e.init(t, 4, -1, -1)
	if r.ErrorCode != 0 || r.ProducerID == pid || r.ProducerEpoch != 0 {
		t.Fatalf("init at exhausted epoch: %d %d/%d", r.ErrorCode, r.ProducerID, r.ProducerEpoch)
	}
}

func TestTimeoutAbortViaTick(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 4, -1, -1).ProducerID
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), nil)
	e.c.Tick(e.clk.add(30 * time.Second)) // under the 60 s timeout
	time.Sleep(10 * time.Millisecond)
	if st := e.describe(t); st.State != "Ongoing" {
		t.Fatalf("aborted early: %s", st.State)
	}
	e.c.Tick(e.clk.add(5 * time.Second)) // within AbortInterval of the last scan? no: 35 s later
	e.c.Tick(e.clk.add(31 * time.Second))
	st := e.waitState(t, "CompleteAbort")
	if st.ProducerEpoch != 1 {
		t.Fatalf("epoch after timeout abort %d, want 1", st.ProducerEpoch)
	}
	wantCode(t, "zombie commit", e.end(t, 4, pid, 0, true).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "zombie commit v5", e.end(t, 5, pid, 0, true).ErrorCode, kerr.ProducerFenced)
}

func TestExpiration(t *testing.T) {
	e := newEnv(t)
	e.init(t, 4, -1, -1)
	e.c.Tick(e.clk.add(8 * 24 * time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for e.describe(t).ErrorCode != kerr.TransactionalIDNotFound.Code {
		if time.Now().After(deadline) {
			t.Fatal("id not expired")
		}
		time.Sleep(time.Millisecond)
	}
	ids, vals := e.log.records(t)
	if len(ids) != 2 || vals[1] != nil {
		t.Fatalf("want a tombstone after the init record: %v %v", ids, vals)
	}
	// Reload: the tombstone deletes it.
	e.c.UnloadPartition(PartitionFor(testID, 4))
	if err := e.c.LoadPartition(PartitionFor(testID, 4), e.log, 8); err != nil {
		t.Fatal(err)
	}
	if e.describe(t).ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatal("expired id back after reload")
	}
	// A new init starts over with a new producer id.
	if r := e.init(t, 4, -1, -1); r.ErrorCode != 0 || r.ProducerEpoch != 0 {
		t.Fatalf("init after expiry: %+v", r)
	}
}

func TestReloadResumesPrepareCommit(t *testing.T) {
	e := newEnv(t)
	e.mw.block = make(chan struct{}) // markers never written by this owner
	pid := e.init(t, 4, -1, -1).ProducerID
	wantCode(t, "add", e.add(t, pid, 0, "t", 3), nil)
	wantCode(t, "commit", e.end(t, 4, pid, 0, true).ErrorCode, nil)
	p := PartitionFor(testID, 4)
	e.c.UnloadPartition(p)

	// A new coordinator (another broker) loads the same log.
	mw := &fakeMarkers{}
	cfg := DefaultConfig()
	cfg.Partitions = 4
	c2 := New(cfg, nil, func(int32) (Log, error) { return e.log, nil }, func(context.Context) (int64, error) { return 5000, nil }, mw)
	defer c2.Close()
	if err := c2.LoadPartition(p, e.log, 9); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{testID}
		if st := c2.DescribeTransactions(req).TransactionStates[0]; st.State == "CompleteCommit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PrepareCommit not completed after reload")
		}
		time.Sleep(time.Millisecond)
	}
	ms := mw.all()
	if len(ms) != 1 || !ms[0].Commit || ms[0].CoordinatorEpoch != 9 || ms[0].ProducerID != pid ||
		len(ms[0].Partitions) != 1 || ms[0].Partitions[0] != (TopicPartition{"t", 3}) {
		t.Fatalf("markers after reload: %+v", ms)
	}
	// Loading answers; not owned anymore here.
	wantCode(t, "old owner", e.end(t, 4, pid, 0, true).ErrorCode, kerr.NotCoordinator)
}

func TestTV2EpochBumpAndRetry(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 5, -1, -1).ProducerID
	// The partition leader adds the partition implicitly (TV2 produce).
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version = 5
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = testID, pid, 0
	tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	tt.Topic, tt.Partitions = "t", []int32{0}
	tx.Topics = append(tx.Topics, tt)
	verify := tx
	verify.VerifyOnly = true
	add.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{verify}
	if code := e.c.AddPartitionsToTxn(context.Background(), add).Transactions[0].Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTxnState.Code {
		t.Fatalf("verify before add: %s", errName(code))
	}
	add.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tx}
	if code := e.c.AddPartitionsToTxn(context.Background(), add).Transactions[0].Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("implicit add: %s", errName(code))
	}
	add.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{verify}
	if code := e.c.AddPartitionsToTxn(context.Background(), add).Transactions[0].Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("verify after add: %s", errName(code))
	}
	r := e.end(t, 5, pid, 0, true)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != 1 {
		t.Fatalf("EndTxn v5: %s %d/%d", errName(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	e.waitState(t, "CompleteCommit")
	if ms := e.mw.all(); len(ms) != 1 || ms[0].ProducerEpoch != 1 || ms[0].TransactionVersion != 2 {
		t.Fatalf("markers: %+v", ms)
	}
	// The retry (same request, epoch 0) succeeds with the same answer.
	r = e.end(t, 5, pid, 0, true)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != 1 {
		t.Fatalf("EndTxn v5 retry: %s %d/%d", errName(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	wantCode(t, "retry as abort", e.end(t, 5, pid, 0, false).ErrorCode, kerr.InvalidTxnState)
	// The record is v1 with the client's transaction version.
	res, _ := e.log.Read(0, 1<<30)
	var lastVersion, lastTV int16
	decodeBatches(res.Records, func(_ int64, _, value []byte) {
		var v kmsg.TxnMetadataValue
		if err := v.ReadFrom(value); err != nil {
			t.Fatal(err)
		}
		lastVersion, lastTV = v.Version, v.ClientTransactionVersion
	})
	if lastVersion != 1 || lastTV != 2 {
		t.Fatalf("last record v%d tv%d, want v1 tv2", lastVersion, lastTV)
	}

	// Epoch overflow: the next producer id takes over.
	_, tm, _ := e.c.locked(testID)
	tm.epoch = 32766
	tm.mu.Unlock()
	tx.ProducerEpoch = 32766
	add.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tx}
	if code := e.c.AddPartitionsToTxn(context.Background(), add).Transactions[0].Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("implicit add: %s", errName(code))
	}
	r = e.end(t, 5, pid, 32766, false)
	if r.ErrorCode != 0 || r.ProducerID == pid || r.ProducerEpoch != 0 {
		t.Fatalf("EndTxn v5 overflow: %s %d/%d", errName(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	newPID := r.ProducerID
	st := e.waitState(t, "CompleteAbort")
	if st.ProducerID != newPID || st.ProducerEpoch != 0 {
		t.Fatalf("after overflow: %d/%d", st.ProducerID, st.ProducerEpoch)
	}
	if ms := e.mw.all(); ms[len(ms)-1].ProducerID != pid || ms[len(ms)-1].ProducerEpoch != 32767 {
		t.Fatalf("overflow markers: %+v", ms[len(ms)-1])
	}
	r = e.end(t, 5, pid, 32766, false)
	if r.ErrorCode != 0 || r.ProducerID != newPID || r.ProducerEpoch != 0 {
		t.Fatalf("overflow retry: %s %d/%d", errName(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
}

func TestListTransactions(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 4, -1, -1).ProducerID
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), nil)
	list := func(states []string, pids []int64, dur int64, pat *string) *kmsg.ListTransactionsResponse {
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version = 2
		req.StateFilters, req.ProducerIDFilters, req.DurationFilterMillis, req.TransactionalIDPattern = states, pids, dur, pat
		return e.c.ListTransactions(req)
	}
	if r := list(nil, nil, -1, nil); len(r.TransactionStates) != 1 || r.TransactionStates[0].TransactionState != "Ongoing" {
		t.Fatalf("list: %+v", r)
	}
	if r := list([]string{"Empty", "Bogus"}, nil, -1, nil); len(r.TransactionStates) != 0 || len(r.UnknownStateFilters) != 1 {
		t.Fatalf("list by state: %+v", r)
	}
	if r := list(nil, []int64{pid + 1}, -1, nil); len(r.TransactionStates) != 0 {
		t.Fatalf("list by pid: %+v", r)
	}
	e.clk.add(10 * time.Second)
	if r := list(nil, nil, 20_000, nil); len(r.TransactionStates) != 0 {
		t.Fatalf("list by duration: %+v", r)
	}
	if r := list(nil, nil, 5_000, nil); len(r.TransactionStates) != 1 {
		t.Fatalf("list by duration: %+v", r)
	}
	p1, p2, bad := "txn-.*", "txn", "("
	if r := list(nil, nil, -1, &p1); len(r.TransactionStates) != 1 {
		t.Fatalf("pattern: %+v", r)
	}
	if r := list(nil, nil, -1, &p2); len(r.TransactionStates) != 0 {
		t.Fatalf("pattern must match the whole id: %+v", r)
	}
	if r := list(nil, nil, -1, &bad); r.ErrorCode != kerr.InvalidRegularExpression.Code {
		t.Fatalf("bad pattern: %+v", r)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	s := persisted{pid: 42, prevPID: 41, nextPID: -1, epoch: 3, timeoutMs: 60000, state: StateOngoing,
		parts: map[TopicPartition]struct{}{{"b", 1}: {}, {"a", 2}: {}, {"a", 0}: {}}, startMs: 10, lastUpdateMs: 20, tv: 2}
	for _, flex := range []bool{false, true} {
		b := txnValue(&s, flex)
		var v kmsg.TxnMetadataValue
		if err := v.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		wantV := int16(0)
		if flex {
			wantV = 1
		}
		if v.Version != wantV || v.ProducerID != 42 || v.ProducerEpoch != 3 || v.State != kmsg.TransactionStateOngoing ||
			len(v.Topics) != 2 || v.Topics[0].Topic != "a" || len(v.Topics[0].Partitions) != 2 || v.StartTimestamp != 10 {
			t.Fatalf("flexible=%v: %+v", flex, v)
		}
		if flex && (v.PreviousProducerID != 41 || v.ClientTransactionVersion != 2) {
			t.Fatalf("tagged fields: %+v", v)
		}
		got, err := decodeValue(b)
		if err != nil || got.pid != 42 || len(got.parts) != 3 {
			t.Fatalf("decode: %+v %v", got, err)
		}
	}
	// Empty writes a null partition list, as Kafka does.
	s.state = StateEmpty
	b := txnValue(&s, false)
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(b); err != nil || v.Topics != nil {
		t.Fatalf("empty: %+v %v", v, err)
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(txnKey("id")); err != nil || k.Version != 0 || k.TransactionalID != "id" {
		t.Fatalf("key: %+v %v", k, err)
	}
	// A batch decodes back, tombstone included.
	batch := encodeBatch([]kv{{txnKey("a"), b}, {txnKey("b"), nil}}, time.Now())
	var n int
	if _, err := decodeBatches(batch, func(_ int64, _, value []byte) {
		if n == 1 && value != nil {
			t.Fatal("tombstone decoded as a value")
		}
		n++
	}); err != nil || n != 2 {
		t.Fatalf("decode batch: %d %v", n, err)
	}
	// Garbage never panics.
	for i := 0; i < len(batch); i++ {
		decodeBatches(batch[:i], func(int64, []byte, []byte) {})
		decodeValue(b[:min(i, len(b))])
	}
}

func TestAppendFailure(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 4, -1, -1).ProducerID
	e.log.mu.Lock()
	e.log.fail = storage.ErrNotLeader
	e.log.mu.Unlock()
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), kerr.NotCoordinator)
	e.log.mu.Lock()
	e.log.fail = errors.New("disk")
	e.log.mu.Unlock()
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), kerr.CoordinatorNotAvailable)
	e.log.mu.Lock()
	e.log.fail = nil
	e.log.mu.Unlock()
	wantCode(t, "add", e.add(t, pid, 0, "t", 0), nil)
	if st := e.describe(t); st.State != "Ongoing" {
		t.Fatalf("state %s", st.State)
	}
}

// Transactions v2 let a producer abort a transaction it added nothing to
// (franz-go does when every produce of the transaction failed): the epoch
// is bumped all the same, and a commit of nothing is still refused.
func TestTV2EmptyAbort(t *testing.T) {
	e := newEnv(t)
	pid := e.init(t, 5, -1, -1).ProducerID
	r := e.end(t, 5, pid, 0, false)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != 1 {
		t.Fatalf("empty abort from Empty: %s %d/%d", errName(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	e.waitState(t, "CompleteAbort")
	if ms := e.mw.all(); len(ms) != 0 {
		t.Fatalf("markers for an empty transaction: %+v", ms)
	}
	// Its retry gets the same answer; the next empty abort bumps again.
	if r = e.end(t, 5, pid, 0, false); r.ErrorCode != 0 || r.ProducerEpoch != 1 {
		t.Fatalf("retry of the empty abort: %s epoch %d", errName(r.ErrorCode), r.ProducerEpoch)
	}
	if r = e.end(t, 5, pid, 1, false); r.ErrorCode != 0 || r.ProducerEpoch != 2 {
		t.Fatalf("empty abort after CompleteAbort: %s epoch %d", errName(r.ErrorCode), r.ProducerEpoch)
	}
	e.waitState(t, "CompleteAbort")
	wantCode(t, "empty commit", e.end(t, 5, pid, 2, true).ErrorCode, kerr.InvalidTxnState)
	// Transactions v1 keep Kafka's rule: nothing to abort is an error.
	e1 := newEnv(t)
	pid1 := e1.init(t, 4, -1, -1).ProducerID
	wantCode(t, "v1 empty abort", e1.end(t, 4, pid1, 0, false).ErrorCode, kerr.InvalidTxnState)
}
