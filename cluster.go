package gregor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gregorhq/gregor/internal/broker"
	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/freeport"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
)

// ClusterOptions configure an embedded cluster: N combined nodes (each a
// broker and a voter of the metadata quorum) in this process, on loopback
// ports, as a test bed for code that must work against a cluster.
type ClusterOptions struct {
	// Dir holds one log dir per node (node-1, node-2, ...). Required.
	Dir string
	// Nodes is the number of nodes; 0 means 3.
	Nodes int
	// Properties apply to every node, with Kafka's names.
	Properties map[string]string
	// Logger receives every node's logs (with a "node" attribute); nil
	// discards them.
	Logger *slog.Logger
}

// Cluster is a running embedded cluster. Nodes are numbered from 1 (their
// node.id).
type Cluster struct {
	opts   ClusterOptions
	id     string
	voters string   // controller.quorum.voters
	client []string // node i's client listener, index i-1
	ctrl   []string // node i's controller listener

	mu    sync.Mutex
	nodes []*Broker // nil while a node is stopped
}

// StartCluster formats the nodes' dirs with one cluster id and starts them
// all; it returns once every node serves. A port picked for a node can be
// taken by another process before the node binds it; the whole cluster is
// then started again on new ports (up to three times).
func StartCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("gregor: ClusterOptions.Dir is required")
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	for attempt := 1; ; attempt++ {
		c, err := startCluster(opts)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			return c, err
		}
		for i := 1; i <= opts.Nodes; i++ {
			os.RemoveAll(filepath.Join(opts.Dir, "node-"+strconv.Itoa(i)))
		}
	}
}

func startCluster(opts ClusterOptions) (*Cluster, error) {
	c := &Cluster{opts: opts, id: metadata.NewUUID().String(), nodes: make([]*Broker, opts.Nodes)}
	var voters []string
	for i := 1; i <= opts.Nodes; i++ {
		cl, err := freeAddr()
		if err != nil {
			return nil, err
		}
		ct, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c.client, c.ctrl = append(c.client, cl), append(c.ctrl, ct)
		voters = append(voters, fmt.Sprintf("%d@%s", i, ct))
		dir := c.dir(i)
		if err := storage.WriteMeta(dir, storage.Meta{Version: 1, ClusterID: c.id, NodeID: int32(i), DirectoryID: metadata.NewUUID().String()}); err != nil {
			return nil, err
		}
	}
	c.voters = strings.Join(voters, ",")
	errs := make([]error, opts.Nodes)
	var wg sync.WaitGroup
	for i := 1; i <= opts.Nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i-1] = c.Start(i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	// Each node serves once it is unfenced itself; wait (briefly) until
	// each also lists all of them, so a client's first Metadata sees the
	// whole cluster whichever node it asks.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		all := true
		for _, nd := range c.nodes {
			all = all && nd.b.UnfencedBrokers() == opts.Nodes
		}
		if all {
			break
		}
	}
	return c, nil
}

func (c *Cluster) dir(i int) string { return filepath.Join(c.opts.Dir, "node-"+strconv.Itoa(i)) }

// freeAddr picks a free loopback port outside the ephemeral range, so a
// node restarted on it does not find it taken by some client.
func freeAddr() (string, error) { return freeport.Addr() }

// Start starts node i (again). It returns once the node serves, which
// needs a majority of the voters running.
func (c *Cluster) Start(i int) error {
	ld := config.NewLoader()
	set := func(k, v string) { ld.Set(k, v, config.SourceFlag) }
	set("process.roles", "broker,controller")
	set("node.id", strconv.Itoa(i))
	set("controller.quorum.voters", c.voters)
	set("listeners", "PLAINTEXT://"+c.client[i-1]+",CONTROLLER://"+c.ctrl[i-1])
	set("advertised.listeners", "PLAINTEXT://"+c.client[i-1])
	set("controller.listener.names", "CONTROLLER")
	set("log.dirs", c.dir(i))
	for k, v := range c.opts.Properties {
		set(k, v)
	}
	cfg, err := ld.Resolve()
	if err != nil {
		return err
	}
	log := c.opts.Logger
	if log != nil {
		log = log.With("node", i)
	}
	b, err := broker.New(cfg, log)
	if err != nil {
		return fmt.Errorf("gregor: node %d: %w", i, err)
	}
	if err := b.Start(); err != nil {
		b.Close()
		return fmt.Errorf("gregor: node %d: %w", i, err)
	}
	c.mu.Lock()
	c.nodes[i-1] = &Broker{b: b}
	c.mu.Unlock()
	return nil
}

// Stop stops node i gracefully (a controlled shutdown first).
func (c *Cluster) Stop(i int) error {
	c.mu.Lock()
	n := c.nodes[i-1]
	c.nodes[i-1] = nil
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Close()
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i-1]
}

// Addrs are the nodes' client addresses, to give clients as seed brokers.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.client...) }

// ClusterID is the cluster id every node was formatted with.
func (c *Cluster) ClusterID() string { return c.id }

// Controller is the node id of the active controller as node i sees it
// (0: none known).
func (c *Cluster) Controller() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n != nil {
			if id := n.b.ActiveController(); id != 0 {
				return id
			}
		}
	}
	return 0
}

// Close stops every node.
func (c *Cluster) Close() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Stop(i + 1)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
