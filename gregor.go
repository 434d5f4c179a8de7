// Package gregor embeds a Gregor broker — a Kafka-compatible event streaming
// broker — in a Go program or test.
//
//	b, err := gregor.Start(gregor.Options{Dir: t.TempDir()})
//	if err != nil { ... }
//	defer b.Close()
//	client, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
//
// The broker listens on 127.0.0.1 with a free port unless Options.Listener
// says otherwise, and keeps its data in Options.Dir with Kafka's on-disk
// layout. Any Kafka client can connect to it.
package gregor

import (
	"errors"
	"log/slog"

	"github.com/gregorhq/gregor/internal/broker"
	"github.com/gregorhq/gregor/internal/config"
)

// Options configure an embedded broker. The zero value (with Dir set) is a
// broker on a free loopback port with Kafka's defaults.
type Options struct {
	// Dir is the log dir (log.dirs). Required.
	Dir string
	// Listener is host:port to listen on; "" means 127.0.0.1:0 (any free
	// port). The advertised address follows the actual port.
	Listener string
	// Properties are server.properties settings with Kafka's names, e.g.
	// "num.partitions": "3". They override the defaults.
	Properties map[string]string
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	b *broker.Broker
}

// Start opens Dir, recovers it if needed, and starts serving.
func Start(opts Options) (*Broker, error) {
	if opts.Dir == "" {
		return nil, errors.New("gregor: Options.Dir is required")
	}
	ld := config.NewLoader()
	listener := opts.Listener
	if listener == "" {
		listener = "127.0.0.1:0"
	}
	ld.Set("listeners", "PLAINTEXT://"+listener, config.SourceFlag)
	ld.Set("advertised.listeners", "PLAINTEXT://"+listener, config.SourceFlag)
	ld.Set("log.dirs", opts.Dir, config.SourceFlag)
	for k, v := range opts.Properties {
		ld.Set(k, v, config.SourceFlag)
	}
	cfg, err := ld.Resolve()
	if err != nil {
		return nil, err
	}
	b, err := broker.New(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return nil, err
	}
	return &Broker{b: b}, nil
}

// Addr is the advertised host:port, to give clients as a seed broker.
func (b *Broker) Addr() string { return b.b.AdvertisedAddr() }

// Dir is the absolute log dir.
func (b *Broker) Dir() string { return b.b.DataDir() }

// ClusterID is the cluster id from meta.properties.
func (b *Broker) ClusterID() string { return b.b.ClusterID() }

// Failed is closed when the log dir goes offline after an I/O error (the
// broker then answers KAFKA_STORAGE_ERROR for every partition); the
// program should Close the broker, as `gregor serve` does.
func (b *Broker) Failed() <-chan struct{} { return b.b.Failed() }

// Close shuts the broker down gracefully: requests already received are
// answered, logs are flushed and checkpoints written.
func (b *Broker) Close() error { return b.b.Close() }
