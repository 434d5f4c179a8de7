package broker

// The controller listener and the way to the active controller.
//
// The controller listener (controller.listener.names) carries two kinds of
// connection: voters of the metadata quorum, which open with the quorum
// transport's preamble and are handed to it, and Kafka clients — brokers
// registering and heartbeating, brokers forwarding admin requests, and
// Kafka's tools with --bootstrap-controller — served with the controller
// set of APIs (apis.go: alsoController, controllerOnly).
//
// Brokers reach the active controller in-process when it is this node,
// and otherwise over its controller listener with a franz-go client whose
// seeds are the voters (one seed per voter, addressed by the raft leader
// id this node knows as a voter).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/quorum"
)

func init() {
	registerController(62, 0, 4, func(ctx context.Context, b *Broker, req *kmsg.BrokerRegistrationRequest) kmsg.Response {
		return b.ctl.HandleBrokerRegistration(ctx, req, b.clusterID)
	})
	registerController(63, 0, 1, func(ctx context.Context, b *Broker, req *kmsg.BrokerHeartbeatRequest) kmsg.Response {
		return b.ctl.HandleBrokerHeartbeat(ctx, req)
	})
	registerController(67, 0, 0, func(ctx context.Context, b *Broker, req *kmsg.AllocateProducerIDsRequest) kmsg.Response {
		return b.ctl.HandleAllocateProducerIDs(ctx, req)
	})
	registerController(56, 2, 3, func(ctx context.Context, b *Broker, req *kmsg.AlterPartitionRequest) kmsg.Response {
		return b.ctl.HandleAlterPartition(ctx, req)
	})
	// UnregisterBroker: Kafka's kafka-cluster.sh unregister sends it to a
	// broker, which forwards it.
	registerRaw(64, 0, 0, func(c *conn, inf *inflight, req kmsg.Request) {
		c.goAsync(inf, func() kmsg.Response {
			return c.b.viaController(c, req, func(ctx context.Context) kmsg.Response {
				return c.b.ctl.HandleUnregisterBroker(ctx, req.(*kmsg.UnregisterBrokerRequest))
			}, func() kmsg.Response {
				resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
				resp.ErrorCode = kerr.NotController.Code
				return resp
			})
		})
	}).alsoController()
}

// registerController adds an API served on the controller listener only,
// answered by this node's controller off the reader goroutine (it waits
// for a commit), within 10 s.
func registerController[Req kmsg.Request](key, min, max int16, fn func(ctx context.Context, b *Broker, req Req) kmsg.Response) {
	registerRaw(key, min, max, func(c *conn, inf *inflight, req kmsg.Request) {
		c.goAsync(inf, func() kmsg.Response {
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			defer cancel()
			return fn(ctx, c.b, req.(Req))
		})
	}).controllerOnly()
}

// serveControllerConn serves a controller listener connection: a voter's
// goes to the quorum transport, anything else is a Kafka connection with
// the controller APIs. The first bytes are read on the connection's own
// goroutine, so a silent peer holds up nobody.
func (b *Broker) serveControllerConn(nc net.Conn, name string) bool {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		nc.Close()
		return false
	}
	b.wg.Add(1)
	guard.Go(b.log, "controller connection", func() {
		defer b.wg.Done()
		br := bufio.NewReaderSize(nc, 32<<10)
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		head, err := br.Peek(quorum.PreambleLen)
		_ = nc.SetReadDeadline(time.Time{})
		if err != nil {
			nc.Close()
			return
		}
		pc := &peekedConn{Conn: nc, r: br}
		if quorum.IsPreamble(head) {
			if b.raftLn == nil {
				nc.Close()
				return
			}
			b.raftLn.Deliver(pc)
			return
		}
		b.serveConn(pc, name, onController, func() {})
	}, func(any) { nc.Close() })
	return true
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// controllerClients are franz-go clients to the voters' controller
// listeners, made on first use.
type controllerClients struct {
	mu  sync.Mutex
	cl  *kgo.Client
	ids []int32 // voter id of each seed, in seed order
}

func (cc *controllerClients) close() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cl != nil {
		cc.cl.Close()
		cc.cl = nil
	}
}

// errNoController: no active controller is known right now (an election
// is in progress); callers retry.
var errNoController = &controller.Error{Code: kerr.NotController.Code, Message: "no active controller is known yet"}

// controllerBroker returns a client connection to the active controller's
// controller listener.
func (b *Broker) controllerBroker() (*kgo.Broker, error) {
	leader := int32(b.qnode.Status().Leader)
	if leader == 0 {
		return nil, errNoController
	}
	cc := &b.ctlClients
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cl == nil {
		var seeds []string
		cc.ids = cc.ids[:0]
		for _, v := range b.cfg.QuorumVoters {
			seeds = append(seeds, v.Addr())
			cc.ids = append(cc.ids, v.ID)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID(fmt.Sprintf("gregor-broker-%d", b.cfg.NodeID)),
			kgo.DialTimeout(2*time.Second), kgo.RequestRetries(0),
			// Controller listeners serve no Metadata, and a failed
			// refresh is retried every metadata min age, each closing the
			// connection the forwarded requests share: at most hourly
			// (franz-go's longest).
			kgo.MetadataMinAge(time.Hour), kgo.MetadataMaxAge(time.Hour))
		if err != nil {
			return nil, err
		}
		cc.cl = cl
	}
	i := slices.Index(cc.ids, leader)
	seeds := cc.cl.SeedBrokers()
	if i < 0 || i >= len(seeds) {
		return nil, errNoController
	}
	return seeds[i], nil
}

// forward sends a request to the active controller's listener.
func (b *Broker) forward(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	br, err := b.controllerBroker()
	if err != nil {
		return nil, err
	}
	return br.Request(ctx, req)
}

// viaController answers an admin request at the active controller: local
// runs it here when this node is the ready leader; otherwise a request on
// a broker listener is forwarded, and one on the controller listener gets
// notController's answer (NOT_CONTROLLER), so the sender looks again.
func (b *Broker) viaController(c *conn, req kmsg.Request, local func(ctx context.Context) kmsg.Response, notController func() kmsg.Response) kmsg.Response {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	for {
		if b.qnode.IsLeader() {
			return local(ctx)
		}
		if c.on == onController {
			return notController()
		}
		resp, err := b.forward(ctx, req)
		if err == nil {
			return resp
		}
		// No leader known yet, or it just went away: wait a moment and
		// look again, within the request's time.
		select {
		case <-ctx.Done():
			return notController()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// remoteRegister sends BrokerRegistration to the active controller.
func (b *Broker) remoteRegister(ctx context.Context, r controller.Registration) (int64, error) {
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.BrokerID, req.ClusterID, req.IncarnationID = r.ID, b.clusterID, r.IncarnationID
	if r.Rack != "" {
		req.Rack = &r.Rack
	}
	for _, e := range r.Listeners {
		l := kmsg.NewBrokerRegistrationRequestListener()
		l.Name, l.Host, l.Port, l.SecurityProtocol = e.Name, e.Host, uint16(e.Port), e.SecurityProtocol
		req.Listeners = append(req.Listeners, l)
	}
	f := kmsg.NewBrokerRegistrationRequestFeature()
	f.Name, f.MinSupportedVersion, f.MaxSupportedVersion = "metadata.version", metadataVersionLevel, metadataVersionLevel
	req.Features = append(req.Features, f)
	resp, err := b.forward(ctx, req)
	if err != nil {
		return 0, err
	}
	rr := resp.(*kmsg.BrokerRegistrationResponse)
	if rr.ErrorCode != 0 {
		return 0, codeError(rr.ErrorCode)
	}
	return rr.BrokerEpoch, nil
}

// remoteHeartbeat sends BrokerHeartbeat to the active controller.
func (b *Broker) remoteHeartbeat(ctx context.Context, h controller.Heartbeat) (controller.HeartbeatResult, error) {
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.BrokerID, req.BrokerEpoch, req.CurrentMetadataOffset = h.ID, h.Epoch, int64(h.CaughtUp)
	req.WantFence, req.WantShutdown = h.WantFence, h.WantShutDown
	resp, err := b.forward(ctx, req)
	if err != nil {
		return controller.HeartbeatResult{}, err
	}
	hr := resp.(*kmsg.BrokerHeartbeatResponse)
	if hr.ErrorCode != 0 {
		return controller.HeartbeatResult{}, codeError(hr.ErrorCode)
	}
	return controller.HeartbeatResult{Fenced: hr.IsFenced, ShouldShutDown: hr.ShouldShutdown}, nil
}

func codeError(code int16) error {
	e := &controller.Error{Code: code}
	var ke *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &ke) {
		e.Message = ke.Message
	}
	return e
}

// allocateProducerIDs gets a block of producer ids from the active
// controller.
func (b *Broker) allocateProducerIDs(ctx context.Context) (first, n int64, err error) {
	epoch := b.epoch.Load()
	if epoch == 0 {
		return 0, 0, errors.New("broker not registered yet")
	}
	if b.qnode.IsLeader() {
		return b.ctl.AllocateProducerIDs(ctx, b.cfg.NodeID, epoch)
	}
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID, req.BrokerEpoch = b.cfg.NodeID, epoch
	resp, err := b.forward(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	ar := resp.(*kmsg.AllocateProducerIDsResponse)
	if ar.ErrorCode != 0 {
		return 0, 0, codeError(ar.ErrorCode)
	}
	return ar.ProducerIDStart, int64(ar.ProducerIDLen), nil
}

// registerAdmin registers an admin API answered by the active controller
// (viaController), on client listeners and the controller listener.
// local runs it on the active controller; notController answers when this
// node is not it (on the controller listener, or when no controller could
// be reached in time); published, if set, waits on a client listener until
// the outcome is visible in this broker's catalog.
func registerAdmin[Req kmsg.Request, Resp kmsg.Response](key, min, max int16,
	local func(ctx context.Context, b *Broker, v int16, req Req) Resp,
	notController func(b *Broker, req Req, code int16) Resp,
	published func(c *conn, req Req, resp Resp)) *api {
	return registerRaw(key, min, max, func(c *conn, inf *inflight, r kmsg.Request) {
		req := r.(Req)
		v := inf.hdr.Version
		c.goAsync(inf, func() kmsg.Response {
			resp := c.b.viaController(c, req, func(ctx context.Context) kmsg.Response {
				return local(ctx, c.b, v, req)
			}, func() kmsg.Response {
				return notController(c.b, req, kerr.NotController.Code)
			}).(Resp)
			resp.SetVersion(v)
			if published != nil && c.on == onBroker {
				published(c, req, resp)
			}
			return resp
		})
	}).alsoController()
}
