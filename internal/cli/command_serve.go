package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gregorhq/gregor/internal/broker"
	"github.com/gregorhq/gregor/internal/config"
)

type serveOptions struct {
	configFile string
	overrides  []string
	dataDir    string
	listeners  string
	advertised string
	logLevel   string
	debugAddr  string
}

func (o *serveOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.configFile, "config", "c", "", "server.properties file (Kafka property names); may also be given as the first argument")
	f.StringArrayVar(&o.overrides, "override", nil, "set a property, key=value (repeatable); beats the file and GREGOR_* variables")
	f.StringVar(&o.dataDir, "data-dir", "", "log directory (log.dirs)")
	f.StringVar(&o.listeners, "listeners", "", "listeners, e.g. PLAINTEXT://localhost:9092")
	f.StringVar(&o.advertised, "advertised-listeners", "", "advertised.listeners")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060) under /debug/pprof/")
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [server.properties]",
		Short: "Run a broker (zero configuration: localhost:9092, data in ./gregor-data)",
		Long: `Run a Gregor broker.

Configuration uses Kafka's property names. Precedence, lowest first:
built-in defaults, the server.properties file, GREGOR_* environment
variables (GREGOR_LOG_DIRS sets log.dirs), then flags (--override k=v,
--data-dir, --listeners, --advertised-listeners).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.configFile != "" {
					return fmt.Errorf("give the properties file either as an argument or with --config, not both")
				}
				o.configFile = args[0]
			}
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// loadConfig applies the layers in their documented order.
func (o *serveOptions) loadConfig() (*config.Config, error) {
	ld := config.NewLoader()
	if o.configFile != "" {
		if err := ld.LoadFile(o.configFile); err != nil {
			return nil, err
		}
	}
	ld.LoadEnv(os.Environ())
	for _, kv := range o.overrides {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--override %q: want key=value", kv)
		}
		ld.Set(k, v, config.SourceFlag)
	}
	if o.dataDir != "" {
		ld.Set("log.dirs", o.dataDir, config.SourceFlag)
	}
	if o.listeners != "" {
		ld.Set("listeners", o.listeners, config.SourceFlag)
	}
	if o.advertised != "" {
		ld.Set("advertised.listeners", o.advertised, config.SourceFlag)
	}
	return ld.Resolve()
}

func (o *serveOptions) run(cmd *cobra.Command) error {
	start := time.Now()
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	b, err := broker.New(cfg, log)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Gregor %s started in %s\n", Version, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "  data directory: %s\n", b.DataDir())
	fmt.Fprintf(out, "  cluster id:     %s (node %d)\n", b.ClusterID(), cfg.NodeID)
	fmt.Fprintf(out, "  listening on:   %s (advertised as %s)\n", b.Addr(), b.AdvertisedAddr())

	if o.debugAddr != "" {
		ln, err := net.Listen("tcp", o.debugAddr)
		if err != nil {
			b.Close()
			return fmt.Errorf("--debug-addr: %w", err)
		}
		fmt.Fprintf(out, "  profiles at:    http://%s/debug/pprof/\n", ln.Addr())
		go func() { _ = http.Serve(ln, debugMux()) }()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
		signal.Stop(sig)
		return b.Close()
	case <-b.Failed():
		// As Kafka does when its last log dir fails: nothing left to serve.
		log.Error("shutting down: the log dir is offline", "err", b.LogDirFailure())
		signal.Stop(sig)
		b.Close()
		return fmt.Errorf("log dir failed: %w", b.LogDirFailure())
	}
}

// debugMux serves net/http/pprof's handlers without touching
// http.DefaultServeMux.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
