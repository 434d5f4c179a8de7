package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/group"
	"github.com/gregorhq/gregor/internal/guard"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/quorum"
	"github.com/gregorhq/gregor/internal/storage"
	"github.com/gregorhq/gregor/internal/txn"
)

// Broker is one Gregor node: listeners, connections, topic catalog and the
// partition logs of its log dir.
type Broker struct {
	cfg       *config.Config
	log       *slog.Logger
	clusterID string
	dataDir   string
	lock      *os.File // flock on dataDir/.lock, held until Close returns

	store   *storage.Store
	catalog *catalog
	pids    *producerIDs
	groups  *group.Coordinator
	txns    *txn.Coordinator // transaction coordinator (txn.go)
	txnCfg  txn.Config
	// addRetry is the server-side retry of a transactions v2 Produce's
	// implicit add (txn.go verifyProduceTxn).
	addRetry addPartitionsRetry
	// verifyProduce is verifyProduceTxn (conn.verifyInOrder calls it);
	// tests replace it to play a coordinator.
	verifyProduce func(ctx context.Context, transactionalID string, pid int64, epoch int16, topic string, p int32, add bool) int16
	peers         *peers // clients of the other brokers (markers, verification)
	// replicas is this broker's part in replication (replication.go).
	replicas *replicaManager
	metrics  *brokerMetrics // counters the request path updates (metrics.go)
	// fetchSessions is the incremental fetch session cache
	// (fetch_sessions.go), shared by every connection.
	fetchSessions *fetchSessionCache

	// The cluster (cluster.go): this node's quorum voter, the metadata
	// state it applies, and the controller deciding through it.
	meta     *metadata.State
	qnode    *quorum.Node
	ctl      *controller.Controller
	raftLn   *quorum.ConnListener // voters' connections from the controller listener; nil for a quorum of one
	voterIDs []uint64
	// legacy is a single-node data dir's topic catalog, imported into the
	// metadata log once this node leads (legacy.go); nil when done.
	legacy atomic.Pointer[legacyState]
	// incarnation identifies this process to the controller; epoch is the
	// broker epoch of its registration (0: not registered) and fenced
	// whether the controller fences it.
	incarnation metadata.UUID
	epoch       atomic.Int64
	fenced      atomic.Bool
	registerNow chan struct{}
	ctlClients  controllerClients
	// clientListener is the name of the listener clients are given
	// (the first non-controller advertised listener).
	clientListener string

	// ready is set once Start has opened the listeners (see Ready).
	ready atomic.Bool

	// advertised is the host and port clients are told to connect to.
	advHost string
	advPort int32

	ctx    context.Context // cancelled when shutdown starts
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners []net.Listener
	clientLn  net.Listener // the listener of clientListener
	conns     map[*conn]struct{}
	closed    bool

	// Connection limits and the request-memory budget (limits.go), made
	// on first use by netLimits.
	netOnce sync.Once
	net     *netLimits

	wg sync.WaitGroup // accept loops, connections and background loops
}

// New opens the log dir (recovering it if needed) and prepares a broker.
// Call Start to listen.
func New(cfg *config.Config, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.LogDirs[0])
	if err != nil {
		return nil, err
	}
	if len(cfg.LogDirs) > 1 {
		log.Warn("only the first of log.dirs is used", "log.dirs", cfg.LogDirs)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: log dir: %w", err)
	}
	// The lock comes before anything else touches the dir.
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok && lock != nil {
			lock.Close()
		}
	}()
	clusterID, err := loadOrCreateMeta(dir, cfg.NodeID, len(cfg.QuorumVoters) > 1)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:       cfg,
		log:       log,
		clusterID: clusterID,
		dataDir:   dir,
		lock:      lock,
		ctx:       ctx,
		cancel:    cancel,
		conns:     map[*conn]struct{}{},
		metrics:   newBrokerMetrics(),
	}
	b.fetchSessions = newFetchSessionCache(cfg.FetchSessionCacheSlots)
	b.registerNow = make(chan struct{}, 1)
	b.incarnation = metadata.NewUUID()
	b.fenced.Store(true)
	for _, l := range cfg.AdvertisedListeners {
		name, adv, _ := config.ParseListener(l)
		if slices.Contains(cfg.ControllerListenerNames, name) {
			continue
		}
		host, port, _ := net.SplitHostPort(adv)
		p, _ := strconv.Atoi(port)
		b.advHost, b.advPort, b.clientListener = host, int32(p), name
		break
	}
	if b.clientListener == "" {
		cancel()
		return nil, errors.New("broker: advertised.listeners (or listeners) has no listener for clients besides the controller listener")
	}

	start := time.Now()
	fail := func(err error) (*Broker, error) {
		if b.qnode != nil {
			b.qnode.Stop()
		}
		if b.store != nil {
			b.store.Close()
		}
		cancel()
		return nil, err
	}
	// The metadata log decides which partition directories storage loads:
	// replay it first.
	fresh, err := b.openQuorum()
	if err != nil {
		return fail(err)
	}
	legacy, err := loadLegacy(dir, fresh)
	if err != nil {
		return fail(err)
	}
	if legacy != nil && len(b.voterIDs) > 1 {
		return fail(fmt.Errorf("broker: %s is a single-node data dir from before the metadata quorum: start it once on its own "+
			"(without controller.quorum.voters naming other nodes) to import its topics, then add it to a cluster", dir))
	}
	im := b.meta.Image()
	adoptImage := im
	if legacy != nil {
		b.legacy.Store(legacy)
		adoptImage = legacy.image(cfg.NodeID)
	}
	b.catalog = newCatalog(cfg.NodeID, log.With("component", "catalog"))
	b.catalog.maxPartitions, b.catalog.limitSource = partitionLimit(cfg)
	log.Info("partition limit", "gregor.max.partitions", b.catalog.maxPartitions, "source", b.catalog.limitSource,
		"gregor.max.partitions.per.request", cfg.MaxPartitionsPerReq)
	b.store, err = storage.Open(storage.Options{
		Dir:    dir,
		Logger: log.With("component", "storage"),
		LogConfig: func(topic string, _ int32) storage.LogConfig {
			return b.topicLogConfig(adoptImage.Configs(metadata.ResourceTopic, topic))
		},
		Adopt:      b.catalog.adopt(adoptImage),
		AcceptGaps: acceptGaps(cfg.RecoveryAcceptGaps),
		Observer:   b.metrics,
	})
	if err != nil {
		return fail(fmt.Errorf("broker: open log dir %s: %w", dir, err))
	}
	b.store.SetDurableHighWatermark(cfg.Durability == config.DurabilityFsync)
	cleaner, err := b.cleanerConfig()
	if err != nil {
		return fail(fmt.Errorf("broker: %w", err))
	}
	// The log cleaner (storage/cleaner.go) runs one pass at a time:
	// log.cleaner.threads above 1 cleans no faster. Store.Close stops it.
	b.store.StartCleaner(storage.CleanerConfig{Enable: cleaner.Enable && cleaner.Threads > 0,
		DedupeBufferSize: cleaner.DedupeBufferSize, IOMaxBytesPerSecond: cleaner.IOMaxBytesPerSecond,
		Backoff: cleaner.Backoff})
	log.Info("log cleaner", "log.cleaner.enable", cleaner.Enable, "log.cleaner.threads", cleaner.Threads,
		"log.cleaner.dedupe.buffer.size", cleaner.DedupeBufferSize,
		"log.cleaner.io.max.bytes.per.second", cleaner.IOMaxBytesPerSecond, "log.cleaner.backoff.ms", cleaner.Backoff.Milliseconds())
	b.catalog.attach(b.store, b.topicLogConfig)
	b.pids = &producerIDs{b: b}
	gcfg := group.DefaultConfig()
	gcfg.Partitions = cfg.OffsetsTopicPartitions
	gcfg.InitialRebalanceDelay = time.Duration(cfg.GroupInitialDelayMs) * time.Millisecond
	gcfg.MinSessionTimeout = time.Duration(cfg.GroupMinSessionMs) * time.Millisecond
	gcfg.MaxSessionTimeout = time.Duration(cfg.GroupMaxSessionMs) * time.Millisecond
	gcfg.OffsetsRetention = time.Duration(cfg.OffsetsRetentionMs) * time.Millisecond
	gcfg.MaxMetadataBytes = cfg.OffsetMetadataMaxBytes
	gcfg.MaxSize = cfg.GroupMaxSize
	gcfg.Durable = cfg.Durability == config.DurabilityFsync
	if t := adoptImage.Topic(group.TopicName); t != nil && int32(len(t.Partitions)) != cfg.OffsetsTopicPartitions {
		log.Warn("__consumer_offsets has a different partition count than offsets.topic.num.partitions; keeping the topic's", "topic_partitions", len(t.Partitions), "configured", cfg.OffsetsTopicPartitions)
		gcfg.Partitions = int32(len(t.Partitions))
	}
	b.groups = group.New(gcfg, log.With("component", "group"), b.offsetsPartition, b.topicExists)
	b.txnCfg = b.txnConfig(gcfg.Partitions)
	b.addRetry = b.addPartitionsRetryConfig()
	b.verifyProduce = b.verifyProduceTxn
	if t := adoptImage.Topic(txn.TopicName); t != nil {
		b.txnCfg.Partitions = int32(len(t.Partitions))
	}
	b.peers = &peers{b: b}
	b.txns = txn.New(b.txnCfg, log.With("component", "txn"), b.txnPartition, b.pids.next, markerWriter{b})
	b.replicas = newReplicaManager(b)
	if legacy == nil {
		// Partitions the image assigns here that lost their directory (a
		// crash between a commit and the directories) are created now.
		if err := b.catalog.publish(im); err != nil {
			return fail(err)
		}
		// Replicated logs show their replicated high watermark from the
		// start; who leads is decided by the first image after
		// registration.
		b.replicas.prepare(im)
	}
	// From now on each published image moves replica roles and group
	// ownership (the first after registration makes this broker leader
	// or follower and loads the groups it leads).
	b.catalog.onPublish = func(im *metadata.Image) {
		b.replicas.sync(im)
		b.syncCoordinator(im)
		b.syncTxnCoordinator(im)
	}
	log.Info("log dir loaded", "dir", dir, "partitions", len(b.store.Partitions()), "took", time.Since(start).Round(time.Microsecond))
	ok = true
	return b, nil
}

// DataDir is the absolute path of the log dir.
func (b *Broker) DataDir() string { return b.dataDir }

// ClusterID is the id kept in meta.properties.
func (b *Broker) ClusterID() string { return b.clusterID }

// Start opens the listeners and begins serving. A listener port of 0
// picks a free port; if the advertised port is 0 too it follows.
func (b *Broker) Start() error {
	nl := b.netLimits()
	b.log.Info("connection limits", "max_connections", nl.maxConns, "nofile", nl.nofile, "fds_for_logs", nl.forLogs, "queued.max.request.bytes", b.cfg.QueuedMaxRequestBytes)
	type bound struct {
		ln   net.Listener
		name string
	}
	var clients []bound
	for _, l := range b.cfg.Listeners {
		name, hostport, err := config.ParseListener(l)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", hostport)
		if err != nil {
			b.Close()
			return fmt.Errorf("broker: listen %s: %w", l, err)
		}
		b.mu.Lock()
		if name == b.clientListener && b.clientLn == nil {
			if b.advPort == 0 {
				b.advPort = int32(ln.Addr().(*net.TCPAddr).Port)
			}
			b.clientLn = ln
		}
		b.listeners = append(b.listeners, ln)
		b.mu.Unlock()
		b.log.Info("listening", "listener", l, "addr", ln.Addr().String())
		if b.isControllerListener(name) {
			b.goAcceptLoop(ln, name, onController)
		} else {
			clients = append(clients, bound{ln, name})
		}
	}
	b.goHousekeeping()
	b.guardGo("metadata publisher", b.runPublisher)
	b.guardGo("controller", b.runController)
	b.guardGo("broker lifecycle", b.runLifecycle)
	b.guardGo("isr expiration", b.replicas.runISRChecks)
	// As in Kafka, clients are served once this broker is registered and
	// unfenced: until then it knows no live broker, not even itself.
	// (Connections wait in the listen backlog meanwhile.)
	if len(b.voterIDs) > 1 {
		b.log.Info("waiting for the metadata quorum and the controller to register this broker")
	}
	if err := b.WaitServing(b.ctx); err != nil {
		return fmt.Errorf("broker: stopped before it could register: %w", err)
	}
	for _, c := range clients {
		b.goAcceptLoop(c.ln, c.name, onBroker)
	}
	b.ready.Store(true)
	return nil
}

// WaitServing waits until the broker is registered and unfenced, so it
// serves the partitions it leads; for tests and start-up probes.
func (b *Broker) WaitServing(ctx context.Context) error {
	for !b.serving() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Ready reports why the broker cannot serve yet, or nil: it is serving
// once New has loaded the log dir and Start has opened the listeners, and
// stops when Close begins or the log dir fails. (A clustered broker will
// also wait to catch up with the metadata log.)
func (b *Broker) Ready() error {
	switch {
	case b.store.Failure() != nil:
		return fmt.Errorf("log dir offline: %w", b.store.Failure())
	case b.ctx.Err() != nil:
		return errors.New("shutting down")
	case !b.ready.Load():
		return errors.New("not listening yet")
	case b.epoch.Load() == 0:
		return errors.New("not registered with the controller yet")
	case b.fenced.Load():
		return errors.New("fenced: catching up with the metadata log")
	}
	return nil
}

// goAcceptLoop runs a listener's accept loop; a bug that panics it is
// logged and the loop starts again, so the listener keeps serving.
func (b *Broker) goAcceptLoop(ln net.Listener, name string, on uint8) {
	b.wg.Add(1)
	guard.Go(b.log, "accept loop", func() { b.acceptLoop(ln, name, on) }, func(any) {
		if b.ctx.Err() == nil {
			b.goAcceptLoop(ln, name, on)
		}
	})
}

// goHousekeeping runs retention, flushes and checkpoints, restarted the
// same way after a panic.
func (b *Broker) goHousekeeping() {
	b.wg.Add(1)
	guard.Go(b.log, "housekeeping", b.housekeeping, func(any) {
		if b.ctx.Err() == nil {
			b.goHousekeeping()
		}
	})
}

// Addr is the client listener's address (nil before Start).
func (b *Broker) Addr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.clientLn == nil {
		return nil
	}
	return b.clientLn.Addr()
}

// AdvertisedAddr is host:port as given to clients in Metadata.
func (b *Broker) AdvertisedAddr() string {
	return net.JoinHostPort(b.advHost, strconv.Itoa(int(b.advPort)))
}

func (b *Broker) acceptLoop(ln net.Listener, name string, on uint8) {
	defer b.wg.Done()
	nl := b.netLimits()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if b.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Back off on errors such as EMFILE, as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			b.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// Over a limit, the newest connection is the one refused: closed
		// before it costs more than its descriptor for a moment.
		ip := ipOf(nc.RemoteAddr())
		if ok, why, limit := nl.admit(ip); !ok {
			nc.Close()
			nl.refused(ip, why, limit)
			continue
		}
		if on == onController {
			// Voters and brokers share the controller listener, which is
			// not for clients: no client connection limits.
			if !b.serveControllerConn(nc, name) {
				return
			}
			continue
		}
		b.setSocketBuffers(nc)
		if !b.serveConn(nc, name, onBroker, func() { nl.leave(ip) }) {
			return
		}
	}
}

// setSocketBuffers applies socket.send.buffer.bytes and
// socket.receive.buffer.bytes to a client connection (-1: the OS's
// autotuned buffers).
func (b *Broker) setSocketBuffers(nc net.Conn) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	if n := b.cfg.SocketSendBufferBytes; n > 0 {
		if err := tc.SetWriteBuffer(n); err != nil {
			b.log.Debug("socket.send.buffer.bytes not applied", "err", err)
		}
	}
	if n := b.cfg.SocketReceiveBufferBytes; n > 0 {
		if err := tc.SetReadBuffer(n); err != nil {
			b.log.Debug("socket.receive.buffer.bytes not applied", "err", err)
		}
	}
}

// serveConn serves one connection until it ends, then calls done. It
// reports false (and serves nothing) once the broker is closing.
func (b *Broker) serveConn(nc net.Conn, listener string, on uint8, done func()) bool {
	c := newConn(b, nc, listener, on)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		nc.Close()
		done()
		return false
	}
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	b.wg.Add(1)
	// A panic outside the handlers (which recover on their own) ends this
	// connection only.
	guard.Go(b.log, "connection", func() {
		defer b.wg.Done()
		defer done()
		defer func() {
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
		}()
		c.serve()
	}, func(any) { c.nc.Close() })
	return true
}

// DialInternal opens an in-process connection to this broker, for the
// built-in console: the same request path as a TCP client, but no port, no
// descriptor, and no share of the connection limits meant for clients.
// Other brokers of the cluster (any addr but this broker's advertised one)
// are dialed over TCP. It has a kgo.Dialer's signature.
func (b *Broker) DialInternal(ctx context.Context, network, addr string) (net.Conn, error) {
	if addr != "" && addr != b.AdvertisedAddr() {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	client, server := net.Pipe()
	if !b.serveConn(server, b.clientListener, onBroker, func() {}) {
		client.Close()
		return nil, net.ErrClosed
	}
	return client, nil
}

// housekeeping runs retention, flush.ms and checkpoints in the background.
func (b *Broker) housekeeping() {
	defer b.wg.Done()
	retention := time.Duration(b.cfg.LogRetentionCheckMs) * time.Millisecond
	if retention <= 0 {
		retention = 5 * time.Minute
	}
	retT := time.NewTicker(retention)
	defer retT.Stop()
	offExp := time.Duration(b.cfg.OffsetsRetentionCheckMs) * time.Millisecond
	if offExp <= 0 {
		offExp = 10 * time.Minute
	}
	offT := time.NewTicker(offExp)
	defer offT.Stop()
	// flush.ms and checkpoints are cheap when there is nothing to do.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-retT.C:
			if err := b.store.EnforceRetention(); err != nil {
				b.log.Error("retention failed", "err", err)
			}
		case <-offT.C:
			b.groups.ExpireOffsets(time.Now())
		case now := <-tick.C:
			b.txns.Tick(now)
			trimBuffers(now)
			if err := b.store.FlushDue(); err != nil {
				b.log.Error("flush failed", "err", err)
			}
			if time.Since(lastCheckpoint) >= time.Minute {
				lastCheckpoint = time.Now()
				if err := b.store.Checkpoint(); err != nil {
					b.log.Error("checkpoint failed", "err", err)
				}
			}
		}
	}
}

// Close shuts down gracefully: stop accepting, answer the requests already
// read, flush the logs and write checkpoints.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.controlledShutdown()
	b.mu.Lock()
	for _, ln := range b.listeners {
		ln.Close()
	}
	if b.raftLn != nil {
		b.raftLn.Close()
	}
	for c := range b.conns {
		c.stopReading()
	}
	b.mu.Unlock()
	// Cancelling wakes long polls so they answer with what they have;
	// closing the coordinator answers parked joins and syncs.
	b.cancel()
	b.groups.Close()
	if b.txns != nil {
		b.txns.Close()
		b.peers.close()
	}
	b.wg.Wait()
	b.qnode.Stop()
	b.catalog.wait()
	b.ctlClients.close()
	err := b.store.Close()
	b.log.Info("broker stopped", "dir", b.dataDir)
	if b.lock != nil {
		b.lock.Close()
	}
	return err
}

// acceptGaps is gregor.recovery.accept.gaps as storage asks it: "*" or
// "topic-N" entries.
func acceptGaps(list []string) func(string, int32) bool {
	if len(list) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, e := range list {
		set[strings.TrimSpace(e)] = true
	}
	return func(topic string, p int32) bool {
		return set["*"] || set[fmt.Sprintf("%s-%d", topic, p)]
	}
}

// topicExists reports whether a topic exists.
func (b *Broker) topicExists(name string) bool { return b.catalog.get(name) != nil }

// loadOrCreateMeta reads meta.properties, writing it on first start (the
// zero-configuration broker formats its own dir). It returns the cluster
// id, after checking the dir belongs to this node.
func loadOrCreateMeta(dir string, nodeID int32, cluster bool) (string, error) {
	m, err := storage.ReadMeta(dir)
	switch {
	case err == nil:
		if m.NodeID != nodeID {
			return "", fmt.Errorf("broker: %s belongs to node.id %d, configured node.id is %d",
				filepath.Join(dir, storage.MetaFile), m.NodeID, nodeID)
		}
		return m.ClusterID, nil
	case !errors.Is(err, storage.ErrNotFormatted):
		return "", err
	case cluster:
		// Every node of a cluster must share one cluster id, so the dirs
		// are formatted first, as in Kafka.
		return "", fmt.Errorf("broker: %s is not formatted; controller.quorum.voters names a cluster, whose nodes must share a cluster id: "+
			"run `gregor storage format -t <cluster id> -c <server.properties>` on every node with one id from `gregor storage random-uuid`", dir)
	}
	m = storage.Meta{Version: 1, ClusterID: metadata.NewUUID().String(), NodeID: nodeID,
		DirectoryID: metadata.NewUUID().String()}
	if err := storage.WriteMeta(dir, m); err != nil {
		return "", err
	}
	return m.ClusterID, nil
}

// writeFileAtomic writes via a temp file, fsync and rename, then fsyncs the
// directory so the rename itself is durable.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
