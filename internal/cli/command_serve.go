package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gregorhq/gregor/internal/broker"
	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/console"
	"github.com/gregorhq/gregor/internal/web"
)

type serveOptions struct {
	configFile string
	overrides  []string
	dataDir    string
	listeners  string
	advertised string
	logLevel   string
	logFormat  string
	debugAddr  string
	httpAddr   string
	daemon     bool   // -daemon: run in the background (kafka-server-start.sh -daemon)
	daemonName string // -name: the output file's name in $LOG_DIR
}

func (o *serveOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.configFile, "config", "c", "", "server.properties file (Kafka property names); may also be given as the first argument")
	f.StringArrayVar(&o.overrides, "override", nil, "set a property, key=value (repeatable); beats the file and GREGOR_* variables")
	f.StringVar(&o.dataDir, "data-dir", "", "log directory (log.dirs)")
	f.StringVar(&o.listeners, "listeners", "", "listeners, e.g. PLAINTEXT://localhost:9092")
	f.StringVar(&o.advertised, "advertised-listeners", "", "advertised.listeners")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "log lines as text (key=value) or json")
	f.StringVar(&o.httpAddr, "http-addr", "", "HTTP listener for /metrics, /healthz, /readyz and the console (gregor.http.listener, default localhost:9644); \"off\" turns it off")
	f.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060) under /debug/pprof/")
	f.BoolVar(&o.daemon, "daemon", false, "run in the background, output to $LOG_DIR/NAME.out (LOG_DIR default ./logs), as kafka-server-start.sh -daemon; -daemon works too")
	f.StringVar(&o.daemonName, "name", "gregor", "with --daemon: NAME of the output file")
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
			if o.daemon {
				return o.startDaemon(cmd)
			}
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// loadConfig applies the layers in their documented order.
func (o *serveOptions) loadConfig() (*config.Config, error) {
	return o.loadConfigFor(os.Environ(), "")
}

// loadConfigFor is loadConfig for a process with environment environ whose
// working directory is cwd ("" for this one's): server-stop works out
// another broker's node.id and process.roles with it.
func (o *serveOptions) loadConfigFor(environ []string, cwd string) (*config.Config, error) {
	ld := config.NewLoader()
	if o.configFile != "" {
		path := o.configFile
		if cwd != "" && !filepath.IsAbs(path) {
			path = filepath.Join(cwd, path)
		}
		if err := ld.LoadFile(path); err != nil {
			return nil, err
		}
	}
	ld.LoadEnv(environ)
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
	if o.httpAddr != "" {
		addr := o.httpAddr
		if addr == "off" {
			addr = ""
		}
		ld.Set("gregor.http.listener", addr, config.SourceFlag)
	}
	return ld.Resolve()
}

func (o *serveOptions) run(cmd *cobra.Command) error {
	start := time.Now()
	// Signals are caught from the first moment: a SIGTERM that arrives
	// while the log dir loads or the console starts is a clean shutdown,
	// not the default death.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	// The HTTP listener comes up before the log dir loads, so /healthz
	// answers and /readyz says "not ready" while a large dir recovers.
	var hs *web.Server
	if cfg.HTTPListener != "" {
		hs = web.New(log.With("component", "http"))
		if err := hs.Listen(cfg.HTTPListener); err != nil {
			if cfg.Sources["gregor.http.listener"] != config.SourceDefault {
				return fmt.Errorf("gregor.http.listener: %w", err)
			}
			// Zero configuration must not fail because another broker on
			// this machine holds the default port.
			log.Warn("no HTTP listener (metrics, probes, console): the default address is taken; set gregor.http.listener or --http-addr", "addr", cfg.HTTPListener, "err", err)
			hs = nil
		} else {
			defer hs.Close()
		}
	}
	b, err := broker.New(cfg, log)
	if err != nil {
		return err
	}
	// In a cluster Start waits for a quorum of voters: a signal meanwhile
	// stops the start-up cleanly.
	started := make(chan error, 1)
	go func() { started <- b.Start() }()
	select {
	case err := <-started:
		if err != nil {
			b.Close()
			return err
		}
	case s := <-sig:
		log.Info("shutting down before serving", "signal", s.String())
		signal.Stop(sig)
		err := b.Close()
		<-started
		return err
	}
	fmt.Fprintf(out, "Gregor %s started in %s\n", Version, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "  data directory: %s\n", b.DataDir())
	fmt.Fprintf(out, "  cluster id:     %s (node %d)\n", b.ClusterID(), cfg.NodeID)
	fmt.Fprintf(out, "  listening on:   %s (advertised as %s)\n", b.Addr(), b.AdvertisedAddr())
	if hs != nil {
		// The console is a Kafka client of this broker, like any other,
		// over in-process connections (no port, not counted against the
		// client connection limits).
		con, err := console.New(console.Options{
			Brokers:        []string{b.AdvertisedAddr()},
			Admin:          cfg.ConsoleAdminEnable,
			Version:        Version,
			SampleInterval: time.Duration(cfg.ConsoleSampleMs) * time.Millisecond,
			Logger:         log.With("component", "console"),
			Dial:           b.DialInternal,
		})
		if err != nil {
			b.Close()
			return err
		}
		defer con.Close()
		t := web.Target{Collector: b.Collector(), Ready: b.Ready, Console: con}
		if err := hs.Attach(t); err != nil {
			b.Close()
			return err
		}
		fmt.Fprintf(out, "  http:           http://%s/ (metrics at /metrics)\n", hs.Addr())
	}

	if o.debugAddr != "" {
		ln, err := net.Listen("tcp", o.debugAddr)
		if err != nil {
			b.Close()
			return fmt.Errorf("--debug-addr: %w", err)
		}
		fmt.Fprintf(out, "  profiles at:    http://%s/debug/pprof/\n", ln.Addr())
		go func() { _ = http.Serve(ln, debugMux()) }()
	}

	stop := func() {
		if hs != nil {
			hs.Detach()
		}
	}
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
		signal.Stop(sig)
		stop()
		return b.Close()
	case <-b.Failed():
		// As Kafka does when its last log dir fails: nothing left to serve.
		log.Error("shutting down: the log dir is offline", "err", b.LogDirFailure())
		signal.Stop(sig)
		stop()
		b.Close()
		return fmt.Errorf("log dir failed: %w", b.LogDirFailure())
	}
}

// newLogger is the broker's slog logger: --log-level and --log-format.
func newLogger(w io.Writer, levelName, format string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
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
