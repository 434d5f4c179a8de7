package controller

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/quorum"
)

// voter is one controller node: a quorum voter, its state and controller.
type voter struct {
	node  *quorum.Node
	state *metadata.State
	c     *Controller
}

type quorumAdapter struct {
	n  *quorum.Node
	id uint64
}

func (a quorumAdapter) Propose(ctx context.Context, data []byte) (uint64, error) {
	return a.n.Propose(ctx, data)
}
func (a quorumAdapter) IsLeader() bool { return a.n.Status().LeaderReady }

// The active controller is killed over and over while topics are created;
// another voter takes over each time, and every acknowledged create is on
// every voter afterwards.
func TestControllerFailover(t *testing.T) {
	const n = 3
	root := t.TempDir()
	addrs := map[uint64]string{}
	for i := uint64(1); i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	voters := map[uint64]*voter{}
	start := func(id uint64) {
		ln, err := net.Listen("tcp", addrs[id])
		if err != nil {
			t.Fatal(err)
		}
		st := metadata.NewState()
		nd, err := quorum.Start(quorum.Config{ID: id, Voters: []uint64{1, 2, 3}, Dir: filepath.Join(root, fmt.Sprint(id)),
			SM: st, Transport: quorum.NewTCPTransport(id, addrs, ln, nil), Tick: 20 * time.Millisecond, ElectionTicks: 10})
		if err != nil {
			t.Fatal(err)
		}
		voters[id] = &voter{node: nd, state: st, c: New(Config{NodeID: int32(id)}, quorumAdapter{nd, id}, st)}
	}
	for id := uint64(1); id <= n; id++ {
		start(id)
	}
	t.Cleanup(func() {
		for _, v := range voters {
			if v != nil {
				v.node.Stop()
			}
		}
	})
	active := func() *voter {
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			for id, v := range voters {
				// Ready: leading, with its term's first entry applied.
				if v == nil {
					continue
				}
				if st := v.node.Status(); st.Leader == id && st.LeaderReady {
					return v
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no active controller")
		return nil
	}
	// The brokers the topics are placed on: registered through the first
	// active controller.
	first := active()
	for b := int32(1); b <= 3; b++ {
		ep, err := first.c.RegisterBroker(ctx, Registration{ID: b})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.c.BrokerHeartbeat(ctx, Heartbeat{ID: b, Epoch: ep, CaughtUp: uint64(ep)}); err != nil {
			t.Fatal(err)
		}
	}
	var acked []string
	var failovers []time.Duration
	const kills = 5
	for k := 0; k < kills; k++ {
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("t-%d-%d", k, i)
			res, err := active().c.CreateTopics(ctx, []TopicSpec{{Name: name, Partitions: 2, ReplicationFactor: 3}}, false)
			if err == nil && res[0].Err == nil {
				acked = append(acked, name)
			}
		}
		v := active()
		var id uint64
		for vid, vv := range voters {
			if vv == v {
				id = vid
			}
		}
		killedAt := time.Now()
		v.node.Stop()
		voters[id] = nil
		// Time to the next successful create through the new leader.
		for {
			name := fmt.Sprintf("after-kill-%d", k)
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res, err := active().c.CreateTopics(cctx, []TopicSpec{{Name: name, Partitions: 1, ReplicationFactor: 3}}, false)
			cancel()
			if err == nil && res[0].Err == nil {
				acked = append(acked, name)
				failovers = append(failovers, time.Since(killedAt))
				break
			}
			if time.Since(killedAt) > 30*time.Second {
				t.Fatalf("no create succeeded within 30 s of killing the active controller: %v %v", err, res)
			}
			time.Sleep(20 * time.Millisecond)
		}
		start(id) // back from its WAL
	}
	// Every voter converges on an image holding every acknowledged topic.
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		for _, v := range voters {
			im := v.state.Image()
			for _, name := range acked {
				if tp := im.Topic(name); tp == nil || len(tp.Partitions) == 0 {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged topic copies missing across the voters", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("failovers %d, acknowledged creates %d, time to next create: %v", kills, len(acked), failovers)
}
