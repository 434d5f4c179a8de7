package guard

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGoRecoversAndReports(t *testing.T) {
	var out syncBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	before := Panics()
	got := make(chan any, 1)
	Go(log, "test worker", func() { panic("boom") }, func(v any) { got <- v })
	select {
	case v := <-got:
		if v != "boom" {
			t.Fatalf("onPanic got %v", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onPanic not called")
	}
	if Panics() != before+1 {
		t.Errorf("panic count %d, want %d", Panics(), before+1)
	}
	s := out.String()
	if !strings.Contains(s, "test worker") || !strings.Contains(s, "boom") || !strings.Contains(s, "guard_test.go") {
		t.Errorf("log lacks what, value or stack: %s", s)
	}
}

func TestAfterFuncRecovers(t *testing.T) {
	var out syncBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	done := make(chan struct{})
	AfterFunc(time.Millisecond, log, "timer", func() {
		defer close(done)
		var m map[string]int
		m["x"] = 1 // nil map write: a runtime panic
	})
	<-done
	// The process is still here; the panic was logged.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "assignment to entry in nil map") {
		if time.Now().After(deadline) {
			t.Fatalf("panic not logged: %s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPanicInHandlerIsContained(t *testing.T) {
	var out syncBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	done := make(chan struct{})
	Go(log, "double", func() { panic("first") }, func(any) { defer close(done); panic("second") })
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "second") {
		if time.Now().After(deadline) {
			t.Fatalf("second panic not logged: %s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
}
