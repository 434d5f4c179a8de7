// Package hardening attacks a real `gregor serve` process the way a hostile
// or careless client would (connection floods, decoder bombs, slowloris,
// huge admin requests, damaged log dirs) and checks that the broker stays
// up, bounded in memory, fds and CPU, and serves everyone else.
//
// GREGOR_BIN uses a prebuilt binary instead of building one.
package hardening

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gregorhq/gregor/test/testenv"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary returns the gregor binary under test, built once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("GREGOR_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gregor-hardening-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "gregor")
		out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/gregor").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// server is one broker process.
type server struct {
	t     *testing.T
	bin   string
	dir   string
	addr  string
	props []string // --override key=value
	cmd   *exec.Cmd
	out   *bytes.Buffer // stdout+stderr of the last start
	mu    sync.Mutex
}

// newServer prepares a broker on a free port with its own data dir; props
// are "key=value" overrides. Call start. The broker is killed at cleanup.
func newServer(t *testing.T, props ...string) *server {
	t.Helper()
	s := &server{t: t, bin: binary(t), dir: filepath.Join(t.TempDir(), "data"), addr: testenv.FreeAddr(t), props: props}
	t.Cleanup(func() {
		if s.running() {
			s.kill()
		}
	})
	return s
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// command builds the serve command without starting it.
func (s *server) command(extra ...string) *exec.Cmd {
	args := []string{"serve", "--data-dir", s.dir, "--listeners", "PLAINTEXT://" + s.addr, "--log-level", "warn"}
	for _, p := range s.props {
		args = append(args, "--override", p)
	}
	args = append(args, extra...)
	return exec.Command(s.bin, args...)
}

// start runs the broker, with extra serve flags if given, and waits until
// it accepts connections.
func (s *server) start(extra ...string) {
	s.t.Helper()
	s.mu.Lock()
	s.out = &bytes.Buffer{}
	s.mu.Unlock()
	s.cmd = s.command(extra...)
	w := lockedBuffer{&s.mu, s.out}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// The port is bound before the broker serves (connections wait
		// in the backlog): ready is the start banner, then a connection.
		if !strings.Contains(s.output(), " started in ") {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if !s.running() {
			s.t.Fatalf("broker exited at start:\n%s", s.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("broker did not start:\n%s", s.output())
}

// output is what the broker printed so far.
func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func (s *server) running() bool {
	return s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil && s.cmd.Process.Signal(syscall.Signal(0)) == nil
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("broker exited with %v on SIGTERM:\n%s", err, s.output())
		}
	case <-time.After(30 * time.Second):
		s.t.Error("broker did not stop on SIGTERM within 30s")
		s.kill()
	}
	if strings.Contains(s.output(), "panic") {
		s.t.Errorf("broker logged a panic:\n%s", s.output())
	}
}

// rss is the broker's resident set size in bytes (/proc/PID/status VmRSS).
func (s *server) rss() int64 {
	s.t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	s.t.Fatal("no VmRSS")
	return 0
}

// cpu is the broker's user+system CPU time so far (/proc/PID/stat).
func (s *server) cpu() time.Duration {
	s.t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatal(err)
	}
	// Fields after the parenthesized command name; utime and stime are
	// fields 14 and 15 (1-based) of the whole line.
	rest := string(data[bytes.LastIndexByte(data, ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// fds is the number of open file descriptors of the broker.
func (s *server) fds() int {
	s.t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatal(err)
	}
	return len(ents)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
