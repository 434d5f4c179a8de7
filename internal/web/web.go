// Package web is the broker's one HTTP listener (gregor.http.listener,
// `gregor serve --http-addr`): Prometheus metrics at /metrics, Kubernetes
// probes at /healthz and /readyz, and the web console at /.
//
// The listener starts before the log dir is loaded, so a probe can tell
// "alive but still loading" (/healthz 200, /readyz 503) from "serving".
// What depends on a loaded broker — its metrics, its readiness, the
// console — is attached afterwards (Attach); until then /metrics has the
// Go runtime and process metrics only.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Target is what a loaded broker offers the listener.
type Target struct {
	// Collector has the broker's metrics.
	Collector prometheus.Collector
	// Ready reports why the broker cannot serve, or nil.
	Ready func() error
	// Console serves the web console at /; nil answers 404 there.
	Console http.Handler
}

// Server is the HTTP listener.
type Server struct {
	log    *slog.Logger
	reg    *prometheus.Registry
	target atomic.Pointer[Target]
	srv    *http.Server
	ln     net.Listener
}

// New makes a server whose registry has the Go runtime and process
// collectors.
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{log: log, reg: reg}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// The process answers: it is alive. A failed log dir makes
		// `serve` exit rather than linger unhealthy.
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t := s.target.Load()
		if t == nil {
			http.Error(w, "Gregor is starting: the log dir is loading", http.StatusServiceUnavailable)
			return
		}
		if t.Console == nil {
			http.NotFound(w, r)
			return
		}
		t.Console.ServeHTTP(w, r)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Registry is where the metrics are gathered from (for tests and the
// benchmarks).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	t := s.target.Load()
	var err error
	if t == nil {
		err = errors.New("loading the log dir")
	} else if t.Ready != nil {
		err = t.Ready()
	}
	if err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Listen opens addr and serves in the background until Close.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http listener stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the listening address, nil before Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Attach hands the loaded broker to the listener: its metrics join the
// registry, /readyz asks it, and / serves its console.
func (s *Server) Attach(t Target) error {
	if t.Collector != nil {
		if err := s.reg.Register(t.Collector); err != nil {
			return err
		}
	}
	s.target.Store(&t)
	return nil
}

// Detach makes /readyz answer "not ready" again (shutting down) while the
// listener stays up for liveness.
func (s *Server) Detach() {
	s.target.Store(&Target{Ready: func() error { return errors.New("shutting down") }})
}

// Close stops the listener, waiting briefly for requests in progress.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
