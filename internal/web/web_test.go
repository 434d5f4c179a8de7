package web

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The probes answer as Kubernetes expects before, during and after the
// broker is attached.
func TestProbesAndMetrics(t *testing.T) {
	s := New(nil)
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	base := "http://" + s.Addr().String()

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz while loading = %d, want 200", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "loading") {
		t.Errorf("/readyz while loading = %d %q, want 503 naming the log dir load", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics while loading = %d, want the Go runtime and process metrics:\n%.300s", code, body)
	}

	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kafka_controller_kafkacontroller_activecontrollercount"})
	g.Set(1)
	var notReady error
	console := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "console") })
	if err := s.Attach(Target{Collector: g, Ready: func() error { return notReady }, Console: console}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz once attached = %d, want 200", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "kafka_controller_kafkacontroller_activecontrollercount 1") {
		t.Error("/metrics lacks the attached collector's series")
	}
	if _, body := get(t, base+"/"); body != "console" {
		t.Errorf("/ = %q, want the console", body)
	}
	notReady = errors.New("log dir offline")
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "offline") {
		t.Errorf("/readyz with the broker not ready = %d %q", code, body)
	}
	s.Detach()
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz while shutting down = %d, want 503", code)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz while shutting down = %d, want 200", code)
	}
}
