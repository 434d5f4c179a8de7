// Package daemon tests `gregor serve -daemon` and `gregor server-stop`
// (kafka-server-start.sh -daemon and kafka-server-stop.sh) with the real
// binary. Every server-stop here names a node.id no other test uses: a
// bare server-stop would stop every broker on the machine, those of the
// test packages running beside this one too.
package daemon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gregorhq/gregor/test/testenv"
)

// alive reports whether pid runs (a zombie left to a PID 1 that does not
// reap counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func run(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestDaemonAndServerStop(t *testing.T) {
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	node := 7000 + os.Getpid()%1000
	props := fmt.Sprintf("node.id=%d\nlisteners=PLAINTEXT://%s\nlog.dirs=%s\ngregor.http.listener=\n", node, addr, filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, "server.properties"), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := []string{"LOG_DIR=" + filepath.Join(dir, "logs")}

	// Kafka's spelling: -daemon and -name, before the properties file.
	out, errOut, code := run(t, dir, logs, "serve", "-daemon", "-name", "node", "server.properties")
	m := regexp.MustCompile(`^Gregor started in the background: pid (\d+), output in (.+)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("serve -daemon: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if want := filepath.Join(dir, "logs", "node.out"); m[2] != want {
		t.Errorf("output in %s, want %s", m[2], want)
	}
	// The command returned; the broker serves.
	if out, errOut, code := run(t, dir, nil, "topics", "--bootstrap-server", addr, "--create", "--topic", "d", "--partitions", "2"); code != 0 {
		t.Fatalf("create topic on the daemon: exit %d: %s%s", code, out, errOut)
	}

	// A second broker on the same log dir fails at start, and says why.
	_, errOut, code = run(t, dir, logs, "serve", "--daemon", "server.properties")
	if code == 0 || !strings.Contains(errOut, "exited at start") || !strings.Contains(errOut, "another broker") {
		t.Fatalf("second daemon on the same dir: exit %d, stderr %q", code, errOut)
	}

	// server-stop spares a broker whose node.id differs...
	if out, errOut, code := run(t, "/", nil, "server-stop", fmt.Sprintf("--node-id=%d", node+1)); code != 0 {
		t.Fatalf("server-stop of another node: exit %d: %s%s", code, out, errOut)
	}
	time.Sleep(500 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("server-stop of another node.id stopped this broker")
	}
	// ...and stops this one, found from another directory through its
	// own working directory, cleanly.
	if out, errOut, code := run(t, "/", nil, "server-stop", fmt.Sprintf("--node-id=%d", node)); code != 0 {
		t.Fatalf("server-stop: exit %d: %s%s", code, out, errOut)
	}
	deadline := time.Now().Add(15 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatal("the broker still runs 15 s after server-stop")
	}
	log, _ := os.ReadFile(m[2])
	if !strings.Contains(string(log), "broker stopped") {
		t.Fatalf("no clean shutdown in the output:\n%s", log)
	}
}
