// Package testenv starts the real `gregor` binary and the outside tools
// (Prometheus, Chromium) that the end-to-end tests in test/ drive.
//
// A tool that is missing skips the test with a message saying how to
// install it, except when CI=true: test/compat/install.sh installs them
// there, so a missing one is a failure rather than a silent skip.
package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gregorhq/gregor/internal/freeport"
)

// Need returns the path of an executable among names, or skips (fails in
// CI) with a hint.
func Need(t testing.TB, hint string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not installed (%s)", strings.Join(names, " or "), hint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildOut  []byte
)

// Binary returns a built gregor binary: $GREGOR_BIN, or one built once
// per test process from this module.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("GREGOR_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "gregor-testenv-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "gregor")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/gregor")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build gregor: %v\n%s", buildErr, buildOut)
	}
	return buildBin
}

// FreeAddr returns a 127.0.0.1 address with a port free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Proc is a background process whose output goes to a file, stopped at
// the end of the test.
type Proc struct {
	Cmd  *exec.Cmd
	Log  string // path of its combined output
	done chan struct{}
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after
// 10 s). Stopping twice is harmless.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Start runs bin with args in the background until the test ends (then
// SIGTERM, and SIGKILL after 10 s).
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); lf.Close(); close(done) }()
	p := &Proc{Cmd: cmd, Log: logPath, done: done}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", name, tail(out, 4000))
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Broker is a running `gregor serve`.
type Broker struct {
	*Proc
	Addr string // Kafka listener, host:port
	HTTP string // base URL of the HTTP listener
	Dir  string
	Bin  string
}

// Serve starts `gregor serve` on free loopback ports with extra flags and
// waits until /readyz answers 200.
func Serve(t testing.TB, extra ...string) *Broker {
	t.Helper()
	bin := Binary(t)
	b := &Broker{Addr: FreeAddr(t), Dir: t.TempDir(), Bin: bin}
	httpAddr := FreeAddr(t)
	b.HTTP = "http://" + httpAddr
	args := append([]string{"serve", "--data-dir", b.Dir, "--listeners", "PLAINTEXT://" + b.Addr,
		"--http-addr", httpAddr, "--override", "group.initial.rebalance.delay.ms=0"}, extra...)
	b.Proc = Start(t, "gregor", bin, args...)
	WaitHTTP(t, b.HTTP+"/readyz", 60*time.Second)
	return b
}

// Run runs a gregor subcommand against the broker and returns its output.
func (b *Broker) Run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(b.Bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("gregor %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// WaitHTTP polls url until it answers 200.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s (last: %v)", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
