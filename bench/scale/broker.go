package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gregorhq/gregor/bench/internal/kpoll"
)

// broker is one `gregor serve` child process on a data directory of its
// own. The same directory can be served again after stop (a restart).
type broker struct {
	bin, dataDir, addr string
	overrides          []string // key=value, each passed as --override

	cmd      *exec.Cmd
	exited   chan struct{}
	stopping atomic.Bool
	launched time.Time
}

// live holds the brokers running now, so that an interrupt can stop them.
var live struct {
	sync.Mutex
	set map[*broker]bool
}

// start launches the broker. The address must be free first, so that a
// broker left over from before cannot answer in this one's place.
func (b *broker) start() error {
	for deadline := time.Now().Add(30 * time.Second); !kpoll.AddrFree(b.addr); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is taken by another process", b.addr)
		}
	}
	if err := os.MkdirAll(b.dataDir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(b.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"serve", "--data-dir", b.dataDir, "--listeners", "PLAINTEXT://" + b.addr,
		"--http-addr", "off", "--log-level", "error"}
	for _, o := range b.overrides {
		args = append(args, "--override", o)
	}
	b.cmd = exec.Command(b.bin, args...)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.exited = make(chan struct{})
	b.stopping.Store(false)
	b.launched = time.Now()
	if err := b.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	live.Lock()
	if live.set == nil {
		live.set = map[*broker]bool{}
	}
	live.set[b] = true
	live.Unlock()
	go func() {
		err := b.cmd.Wait()
		logf.Close()
		if !b.stopping.Load() {
			fmt.Fprintf(os.Stderr, "scale: broker pid %d exited: %v; see %s\n", b.cmd.Process.Pid, err, b.logPath())
		}
		close(b.exited)
	}()
	return nil
}

func (b *broker) logPath() string {
	return filepath.Join(filepath.Dir(b.dataDir), filepath.Base(b.dataDir)+".log")
}

func (b *broker) pid() int { return b.cmd.Process.Pid }

// waitListening dials the listener every 200 µs until it accepts, and
// returns the time since launch.
func (b *broker) waitListening(timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.Dial("tcp", b.addr); err == nil {
			c.Close()
			return time.Since(b.launched), nil
		}
		select {
		case <-b.exited:
			return 0, fmt.Errorf("broker exited before listening; see %s", b.logPath())
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no listener on %s after %v", b.addr, timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// stop sends SIGTERM to the broker (its own PID only), waits for it to
// exit, and after grace kills it. It returns how long the exit took.
func (b *broker) stop(grace time.Duration) time.Duration {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	b.stopping.Store(true)
	t0 := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		fmt.Fprintln(os.Stderr, "scale: SIGTERM:", err)
	}
	select {
	case <-b.exited:
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "scale: broker pid %d still running %v after SIGTERM; SIGKILL\n", b.pid(), grace)
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	live.Lock()
	delete(live.set, b)
	live.Unlock()
	return time.Since(t0)
}

// stopAll stops every broker still running (on an interrupt or an error).
func stopAll() {
	live.Lock()
	var bs []*broker
	for b := range live.set {
		bs = append(bs, b)
	}
	live.Unlock()
	for _, b := range bs {
		b.stop(60 * time.Second)
	}
}

// raiseNofile raises this process's soft RLIMIT_NOFILE to the hard limit
// explicitly; the brokers started afterwards inherit it. (Go raises its
// own soft limit at start-up too, but restores the original one in the
// children it starts unless the program sets the limit itself.)
func raiseNofile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

// procWritten is wchar from /proc/PID/io: the bytes process pid has passed
// to write(2) and its kin, whether or not they reached the disk yet.
func procWritten(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("wchar:")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io: no wchar", pid)
}
