package gregor_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupChurn runs groups of three franz-go members per balancer while
// members join, leave and die (stop heartbeating without leaving), with a
// producer writing all along. It checks what a user relies on:
//   - no partition is owned by two live members at once;
//   - every record below the final committed offsets was consumed
//     (at-least-once), so no committed record is lost;
//   - records consumed twice stay few (only around rebalances).
func TestGroupChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn takes a while")
	}
	balancers := map[string]kgo.GroupBalancer{
		"range":              kgo.RangeBalancer(),
		"roundrobin":         kgo.RoundRobinBalancer(),
		"sticky":             kgo.StickyBalancer(),
		"cooperative-sticky": kgo.CooperativeStickyBalancer(),
	}
	b := newBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	for name, bal := range balancers {
		t.Run(name, func(t *testing.T) { churn(t, b, name, bal) })
	}
}

// cuttable dials real connections until cut, then severs them all and
// refuses new ones: a member process dying, as the broker sees it.
type cuttable struct {
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (c *cuttable) dial(ctx context.Context, network, host string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, errors.New("cut")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, host)
	if err == nil {
		c.conns = append(c.conns, nc)
	}
	return nc, err
}

func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for _, nc := range c.conns {
		nc.Close()
	}
}

type churnState struct {
	t        *testing.T
	mu       sync.Mutex
	owner    map[int32]int // partition → live member slot
	consumed map[int32]map[int64]int
	double   int // a partition assigned while another live member held it
}

func (s *churnState) assign(m int, ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if o, ok := s.owner[p]; ok && o != m {
			s.double++
			s.t.Errorf("partition %d assigned to member %d while member %d owns it", p, m, o)
		}
		s.owner[p] = m
	}
}

func (s *churnState) release(m int, ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if s.owner[p] == m {
			delete(s.owner, p)
		}
	}
}

// releaseAll forgets a dead member's partitions: it stopped consuming, and
// the group will hand them out once its session expires.
func (s *churnState) releaseAll(m int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range s.owner {
		if o == m {
			delete(s.owner, p)
		}
	}
}

func churn(t *testing.T, b interface{ Addr() string }, name string, bal kgo.GroupBalancer) {
	topic, group := "churn-"+name, "churn-group-"+name
	const partitions = 12
	seed, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	if _, err := kadm.NewClient(seed).CreateTopic(ctxT(t), partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	prodCtx, stopProd := context.WithCancel(context.Background())
	var prodWG sync.WaitGroup
	prodWG.Add(1)
	go func() {
		defer prodWG.Done()
		for i := 0; prodCtx.Err() == nil; i++ {
			seed.Produce(prodCtx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
			if i%100 == 99 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()

	s := &churnState{t: t, owner: map[int32]int{}, consumed: map[int32]map[int64]int{}}
	type slot struct {
		cl     *kgo.Client
		cancel context.CancelFunc
		done   chan struct{}
		net    *cuttable
	}
	start := func(m int) *slot {
		ctx, cancel := context.WithCancel(context.Background())
		sl := &slot{cancel: cancel, done: make(chan struct{}), net: &cuttable{}}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.Dialer(sl.net.dial),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.Balancers(bal),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { s.assign(m, a[topic]) }),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
				_ = cl.CommitMarkedOffsets(ctx)
				s.release(m, r[topic])
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { s.release(m, l[topic]) }),
			kgo.AutoCommitMarks(),
		)
		if err != nil {
			t.Fatal(err)
		}
		sl.cl = cl
		go func() {
			defer close(sl.done)
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				fs := cl.PollFetches(pctx)
				pcancel()
				s.mu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					if s.consumed[r.Partition] == nil {
						s.consumed[r.Partition] = map[int64]int{}
					}
					s.consumed[r.Partition][r.Offset]++
				})
				s.mu.Unlock()
				fs.EachRecord(func(r *kgo.Record) { cl.MarkCommitRecords(r) })
				if ctx.Err() == nil {
					_ = cl.CommitMarkedOffsets(ctx)
				}
				cl.AllowRebalance()
			}
		}()
		return sl
	}
	leave := func(sl *slot) { // graceful: commit, leave the group
		sl.cancel()
		<-sl.done
		sl.cl.Close()
	}
	kill := func(m int, sl *slot) { // abrupt: the network goes, no LeaveGroup
		sl.net.cut()
		s.releaseAll(m)
		sl.cancel()
		go func() { <-sl.done; sl.cl.Close() }()
	}

	rng := rand.New(rand.NewSource(1))
	slots := make([]*slot, 3)
	for m := range slots {
		slots[m] = start(m)
	}
	next := 3
	for round := 0; round < 4; round++ {
		time.Sleep(time.Duration(1500+rng.Intn(1500)) * time.Millisecond)
		m := rng.Intn(3)
		if round%2 == 0 {
			leave(slots[m])
		} else {
			kill(m, slots[m])
		}
		slots[m] = start(next)
		next++
	}
	time.Sleep(3 * time.Second)
	stopProd()
	prodWG.Wait()
	if err := seed.Flush(ctxT(t)); err != nil && err != context.Canceled {
		t.Logf("flush: %v", err)
	}
	// Let the group drain what is left, then stop everyone gracefully.
	adm := kadm.NewClient(seed)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		lag, err := adm.Lag(ctxT(t), group)
		if err == nil && lag[group].Lag.Total() == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, sl := range slots {
		leave(sl)
	}

	committed, err := adm.FetchOffsets(ctxT(t), group)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var total, dups int64
	committed.Each(func(o kadm.OffsetResponse) {
		for off := int64(0); off < o.At; off++ {
			n := s.consumed[o.Partition][off]
			if n == 0 {
				t.Errorf("partition %d offset %d is below the committed offset %d but was never consumed", o.Partition, off, o.At)
				return
			}
			if n > 1 {
				dups += int64(n - 1)
			}
		}
		total += o.At
	})
	if total == 0 {
		t.Fatal("nothing committed")
	}
	t.Logf("%s: %d records committed, %d consumed twice, %d double assignments", name, total, dups, s.double)
	if dups > total/2 {
		t.Errorf("%d duplicates of %d records: more than a rebalance window's worth", dups, total)
	}
}
