package broker

// This node's part in the cluster: the metadata quorum voter and the
// controller it runs (process.roles has controller), the publisher that
// carries each new metadata image out on this broker (catalog.publish),
// and the broker's lifecycle with the active controller: registration,
// heartbeats, fencing.
//
// A zero-configuration broker is a cluster of one on the same code path:
// it is the only voter (no transport), wins its election at once, and its
// broker registers with its own controller in-process.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/quorum"
	"github.com/gregorhq/gregor/internal/storage"
)

// metadataDirName is the metadata log's directory, Kafka's name for it.
const metadataDirName = storage.MetadataDir

// openQuorum starts this node's voter and controller and replays the
// metadata log, so that b.meta holds at least everything this node had
// applied before it last stopped. It reports whether the metadata log is
// new.
func (b *Broker) openQuorum() (fresh bool, err error) {
	cfg := b.cfg
	if !cfg.HasRole("controller") || !cfg.HasRole("broker") {
		return false, fmt.Errorf("broker: process.roles=%s: only combined nodes (broker,controller) are supported so far; "+
			"broker-only and controller-only nodes come later", strings.Join(cfg.ProcessRoles, ","))
	}
	base := b.dataDir
	if cfg.MetadataLogDir != "" {
		if base, err = filepath.Abs(cfg.MetadataLogDir); err != nil {
			return false, err
		}
	}
	dir := filepath.Join(base, metadataDirName)
	if _, serr := os.Stat(dir); errors.Is(serr, os.ErrNotExist) {
		fresh = true
	}
	b.meta = metadata.NewState()
	ids := []uint64{uint64(cfg.NodeID)}
	var tr quorum.Transport = quorum.LocalTransport{}
	if len(cfg.QuorumVoters) > 0 {
		ids = ids[:0]
		addrs := map[uint64]string{}
		for _, v := range cfg.QuorumVoters {
			ids = append(ids, uint64(v.ID))
			addrs[uint64(v.ID)] = v.Addr()
		}
		if len(ids) > 1 || ids[0] != uint64(cfg.NodeID) {
			ln, err := b.controllerListenAddr()
			if err != nil {
				return false, err
			}
			b.raftLn = quorum.NewConnListener(ln)
			tr = quorum.NewTCPTransport(uint64(cfg.NodeID), addrs, b.raftLn, b.log.With("component", "quorum"))
		}
	}
	b.voterIDs = ids
	node, err := quorum.Start(quorum.Config{
		ID: uint64(cfg.NodeID), Voters: ids, Dir: dir, SM: b.meta, Transport: tr,
		Logger:        b.log.With("component", "quorum"),
		SnapshotBytes: uint64(cfg.MetadataSnapshotBytes),
	})
	if err != nil {
		return false, fmt.Errorf("broker: metadata quorum: %w", err)
	}
	b.qnode = node
	b.ctl = controller.New(controller.Config{
		NodeID:                   cfg.NodeID,
		SessionTimeout:           time.Duration(cfg.BrokerSessionTimeoutMs) * time.Millisecond,
		DefaultPartitions:        cfg.NumPartitions,
		DefaultReplicationFactor: cfg.DefaultReplicationFactor,
		MaxPartitionsPerRequest:  cfg.MaxPartitionsPerReq,
		UncleanElection:          cfg.Raw["unclean.leader.election.enable"] == "true",
		Logger:                   b.log.With("component", "controller"),

		AutoLeaderRebalance:                cfg.AutoLeaderRebalance,
		LeaderImbalanceCheckInterval:       time.Duration(cfg.LeaderImbalanceCheckSec) * time.Second,
		LeaderImbalancePerBrokerPercentage: cfg.LeaderImbalancePerBrokerPct,
	}, node, b.meta)
	return fresh, nil
}

// controllerListenAddr is the address of this node's controller listener
// (the first of controller.listener.names found in listeners).
func (b *Broker) controllerListenAddr() (net.Addr, error) {
	for _, l := range b.cfg.Listeners {
		name, hp, err := config.ParseListener(l)
		if err != nil {
			return nil, err
		}
		if b.isControllerListener(name) {
			return net.ResolveTCPAddr("tcp", hp)
		}
	}
	return nil, fmt.Errorf("broker: controller.quorum.voters names other voters, so listeners needs a controller listener (%s)",
		strings.Join(b.cfg.ControllerListenerNames, ","))
}

func (b *Broker) isControllerListener(name string) bool {
	return slices.Contains(b.cfg.ControllerListenerNames, name)
}

// brokerEndpoints are the listeners this broker registers: the advertised
// listeners that are not controller listeners.
func (b *Broker) brokerEndpoints() []metadata.Endpoint {
	var out []metadata.Endpoint
	for _, l := range b.cfg.AdvertisedListeners {
		name, hp, err := config.ParseListener(l)
		if err != nil || b.isControllerListener(name) {
			continue
		}
		host, port, _ := net.SplitHostPort(hp)
		p, _ := strconv.Atoi(port)
		if name == b.clientListener && b.advPort != 0 {
			host, p = b.advHost, int(b.advPort)
		}
		out = append(out, metadata.Endpoint{Name: name, Host: host, Port: int32(p)})
	}
	return out
}

// runPublisher publishes every new image the quorum applies (catalog
// publish), retrying after a failure.
func (b *Broker) runPublisher() {
	for {
		ch := b.meta.Changed()
		im := b.meta.Image()
		if im.Offset > b.catalog.offset() {
			start := time.Now()
			err := b.catalog.publish(im)
			if d := time.Since(start); d > time.Second {
				b.log.Info("published metadata slowly", "offset", im.Offset, "took", d.Round(time.Millisecond))
			}
			if err == nil {
				// Tell the controller at once (a heartbeat), so admin
				// requests waiting for every broker to have it return.
				select {
				case b.registerNow <- struct{}{}:
				default:
				}
			}
			if err != nil {
				select {
				case <-time.After(time.Second):
				case <-b.ctx.Done():
					return
				}
				continue
			}
		}
		select {
		case <-ch:
		case <-b.ctx.Done():
			return
		}
	}
}

// runController drives the controller's timers where this node is the
// active controller: fencing brokers whose session expired, and the
// one-time import of a single-node data dir's legacy files.
func (b *Broker) runController() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if b.qnode.IsLeader() && b.legacy.Load() != nil {
			if err := b.importLegacy(); err != nil {
				b.log.Error("importing the single-node topic catalog into the metadata log failed; retrying", "err", err)
			}
		}
		// Tick on every voter: where this node does not lead, it only
		// notes that, so that when it leads again it starts every
		// broker's session afresh instead of fencing them all for the
		// heartbeats that went to another leader meanwhile.
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		if err := b.ctl.Tick(ctx); err != nil && b.ctx.Err() == nil {
			b.log.Warn("controller tick failed", "err", err)
		}
		cancel()
		select {
		case <-t.C:
		case <-b.ctx.Done():
			return
		}
	}
}

// runLifecycle registers this broker with the active controller and
// heartbeats, until shutdown. The broker serves once it is registered and
// unfenced (Ready).
func (b *Broker) runLifecycle() {
	interval := time.Duration(b.cfg.BrokerHeartbeatMs) * time.Millisecond
	for b.ctx.Err() == nil {
		wait := interval
		if err := b.lifecycleStep(); err != nil {
			if b.ctx.Err() != nil {
				return
			}
			b.log.Debug("controller not reachable yet", "err", err)
			wait = 100 * time.Millisecond
		} else if b.fenced.Load() {
			wait = 20 * time.Millisecond // catching up: ask again soon
		}
		// Heartbeat again after wait, at once when a publish asks for it,
		// and when the active controller changes (a new controller knows
		// nothing of this broker's progress until it hears from it).
		leader := b.qnode.Status().Leader
		timer := time.NewTimer(wait)
		poll := time.NewTicker(50 * time.Millisecond)
	waiting:
		for {
			select {
			case <-timer.C:
				break waiting
			case <-b.registerNow:
				break waiting
			case <-poll.C:
				if b.qnode.Status().Leader != leader {
					break waiting
				}
			case <-b.ctx.Done():
				timer.Stop()
				poll.Stop()
				return
			}
		}
		timer.Stop()
		poll.Stop()
	}
}

func (b *Broker) lifecycleStep() error {
	// A request stuck on a controller that stopped answering without
	// closing the connection (paused, partitioned) must give up in time
	// for the next one to reach its successor within the session timeout.
	timeout := min(5*time.Second, time.Duration(b.cfg.BrokerSessionTimeoutMs)*time.Millisecond/3)
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if b.legacy.Load() != nil {
		return errors.New("importing the single-node topic catalog first")
	}
	if b.epoch.Load() == 0 {
		epoch, err := b.register(ctx)
		if err != nil {
			return err
		}
		b.epoch.Store(epoch)
		b.log.Info("registered with the controller", "broker_epoch", epoch)
	}
	res, err := b.heartbeat(ctx, false)
	if err != nil {
		var ce *controller.Error
		if errors.As(err, &ce) && ce.Code == kerr.StaleBrokerEpoch.Code {
			b.log.Warn("the controller no longer knows this broker's epoch; registering again", "broker_epoch", b.epoch.Load())
			b.epoch.Store(0)
		}
		return err
	}
	if !res.Fenced && b.fenced.Load() {
		// Serve once this broker's own published image shows it unfenced:
		// the same batch elected it leader where it can lead, so clients
		// told "ready" find their partitions and coordinators led.
		id, epoch := b.cfg.NodeID, b.epoch.Load()
		wctx, wcancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok := b.catalog.waitFor(wctx.Done(), func() bool {
			br := b.catalog.image.Broker(id)
			return br != nil && !br.Fenced && br.Epoch == epoch
		})
		wcancel()
		if !ok {
			return errors.New("unfenced by the controller, but not yet in this broker's metadata")
		}
	}
	was := b.fenced.Swap(res.Fenced)
	if was && !res.Fenced {
		b.log.Info("unfenced: serving")
	} else if !was && res.Fenced {
		b.log.Warn("fenced by the controller: not serving until caught up again")
	}
	return nil
}

// register sends BrokerRegistration to the active controller.
func (b *Broker) register(ctx context.Context) (int64, error) {
	r := controller.Registration{ID: b.cfg.NodeID, IncarnationID: b.incarnation, Listeners: b.brokerEndpoints(), Rack: b.cfg.BrokerRack}
	if b.qnode.IsLeader() {
		return b.ctl.RegisterBroker(ctx, r)
	}
	return b.remoteRegister(ctx, r)
}

// heartbeat sends BrokerHeartbeat to the active controller.
func (b *Broker) heartbeat(ctx context.Context, shutdown bool) (controller.HeartbeatResult, error) {
	h := controller.Heartbeat{ID: b.cfg.NodeID, Epoch: b.epoch.Load(), CaughtUp: b.catalog.offset(), WantShutDown: shutdown}
	if b.qnode.IsLeader() {
		return b.ctl.BrokerHeartbeat(ctx, h)
	}
	return b.remoteHeartbeat(ctx, h)
}

// serving reports whether this broker may serve as a partition leader: it
// is registered and unfenced.
func (b *Broker) serving() bool { return b.epoch.Load() != 0 && !b.fenced.Load() }

// leaderOf is the leader of a topic partition in the published image, or
// -1.
func (t *topic) leaderOf(p int32) int32 {
	if pi := t.partition(p); pi != nil {
		return pi.Leader
	}
	return -1
}

// leads reports whether this broker serves partition p of t as leader.
func (b *Broker) leads(t *topic, p int32) bool {
	return t.leaderOf(p) == b.cfg.NodeID && b.serving()
}

// controlledShutdown asks the controller to move leadership away before
// the broker stops, waiting at most a few seconds (a single node has
// nowhere to move it).
func (b *Broker) controlledShutdown() {
	if b.epoch.Load() == 0 || len(b.voterIDs) == 1 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		res, err := b.heartbeat(ctx, true)
		cancel()
		if err == nil && res.ShouldShutDown {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.log.Warn("controlled shutdown did not finish in 5 s; stopping anyway")
}

// waitPublished waits until the catalog has published offset, or ctx ends.
func (b *Broker) waitPublished(ctx context.Context, offset uint64) bool {
	return b.catalog.waitFor(ctx.Done(), func() bool { return b.catalog.image.Offset >= offset })
}

// guardGo runs fn as a broker background loop.
func (b *Broker) guardGo(name string, fn func()) {
	b.wg.Add(1)
	guard.Go(b.log, name, func() {
		defer b.wg.Done()
		fn()
	}, nil)
}

// ctlErr is a controller error's Kafka code and message.
func ctlErr(err error) (int16, string) {
	var ce *controller.Error
	if errors.As(err, &ce) {
		return ce.Code, ce.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kerr.RequestTimedOut.Code, err.Error()
	}
	// The quorum could not commit (a leader change): retriable.
	return kerr.NotController.Code, err.Error()
}

// waitTopics waits (at most 60 s) until each named topic is published
// here (present) or gone (!present), so an admin request answered by a
// broker is followed by its own Metadata.
func (b *Broker) waitTopics(ctx context.Context, names []string, present bool) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b.catalog.waitFor(ctx.Done(), func() bool {
		for _, n := range names {
			if (b.catalog.byName[n] != nil) != present {
				return false
			}
		}
		return true
	})
}

// waitMetaPublished waits (at most 10 s) until this broker has published
// the newest image its quorum node applied.
func (b *Broker) waitMetaPublished(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b.waitPublished(ctx, b.meta.Image().Offset)
}

// epochError checks a request's current_leader_epoch against the
// partition's leader epoch, as Kafka does (KIP-320): -1 skips the check,
// a newer epoch than ours is UNKNOWN_LEADER_EPOCH (this broker is
// behind), an older one FENCED_LEADER_EPOCH (the client is).
func epochError(t *topic, p int32, current int32) int16 {
	pi := t.partition(p)
	if current < 0 || pi == nil {
		return 0
	}
	switch {
	case current > pi.LeaderEpoch:
		return kerr.UnknownLeaderEpoch.Code
	case current < pi.LeaderEpoch:
		return kerr.FencedLeaderEpoch.Code
	}
	return 0
}

// leaderHint is the current leader of partition p and its endpoint on a
// listener, for KIP-951's hints in NOT_LEADER_OR_FOLLOWER answers.
func (b *Broker) leaderHint(t *topic, p int32, listener string) (leader, epoch int32, ep metadata.Endpoint, ok bool) {
	pi := t.partition(p)
	if pi == nil || pi.Leader < 0 {
		return -1, -1, ep, false
	}
	br := b.catalog.currentImage().Broker(pi.Leader)
	if br == nil || br.Fenced {
		return pi.Leader, pi.LeaderEpoch, ep, false
	}
	ep, ok = endpointOf(br, listener)
	return pi.Leader, pi.LeaderEpoch, ep, ok
}

// liveBrokers counts the registered, unfenced brokers.
func (b *Broker) liveBrokers() int {
	n := 0
	for _, br := range b.meta.Image().Brokers() {
		if !br.Fenced {
			n++
		}
	}
	return n
}

func splitHostPort(hp string) (string, int) {
	host, port, _ := net.SplitHostPort(hp)
	p, _ := strconv.Atoi(port)
	return host, p
}

// ActiveController is the node id of the quorum leader as this node knows
// it (0: none known).
func (b *Broker) ActiveController() int32 { return int32(b.qnode.Status().Leader) }

// UnfencedBrokers counts the brokers this one's published metadata shows
// registered and unfenced: what its Metadata answers list.
func (b *Broker) UnfencedBrokers() int {
	n := 0
	for _, br := range b.catalog.currentImage().Brokers() {
		if !br.Fenced {
			n++
		}
	}
	return n
}

// awaitBrokers waits (at most 1 s) until every responsive broker has published
// the newest metadata this controller applied: an admin change is then
// visible on every broker when it is answered. A broker that is slow or
// cut off delays the answer by the bound, never fails it.
func (b *Broker) awaitBrokers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// A broker that missed one and a half heartbeats is not waited for.
	b.ctl.WaitCaughtUp(ctx, b.meta.Image().Offset, time.Duration(b.cfg.BrokerHeartbeatMs)*time.Millisecond*3/2)
}
