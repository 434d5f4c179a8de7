package cli

// gregor serve -daemon and gregor server-stop: kafka-server-start.sh -daemon
// and kafka-server-stop.sh.
//
// serve -daemon starts `gregor serve` again in the background, in its own
// session, with standard input from /dev/null and its output appended to
// $LOG_DIR/NAME.out (LOG_DIR defaults to ./logs, NAME to gregor, -name sets
// it), as Kafka's script does with kafkaServer.out. Unlike Kafka's script,
// it waits a few seconds for the broker's "started" line, so a broker that
// cannot start (a bad property, a taken port) is reported at once instead
// of only in the output file.
//
// server-stop sends SIGTERM (or $SIGNAL, as Kafka's script) to every
// `gregor serve` process on the machine, or with --node-id=N or
// --process-role=R only to those whose configuration says so. Each
// process's configuration is worked out as it would be by that process: its
// properties file (relative to its working directory), its GREGOR_*
// environment and its flags, read from /proc. No broker running:
// "No gregor server to stop" and exit 1, as Kafka's script.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// kafkaStartArgs rewrites kafka-server-start.sh's single-dash options for
// `serve`: -daemon, -name NAME, and -loggc (JVM GC logging, which has no
// counterpart and is dropped).
func kafkaStartArgs(args []string) []string {
	if len(args) == 0 || args[0] != "serve" {
		return args
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		switch a {
		case "-daemon":
			out = append(out, "--daemon")
		case "-name":
			out = append(out, "--name")
		case "-loggc":
		default:
			out = append(out, a)
		}
	}
	return out
}

// daemonWait is how long serve -daemon waits for the broker's "started"
// line. A node of a cluster whose quorum is not up yet takes longer; the
// command then returns and the node goes on starting.
const daemonWait = 5 * time.Second

func (o *serveOptions) startDaemon(cmd *cobra.Command) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve"}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "daemon", "name", "config":
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	if o.configFile != "" {
		args = append(args, o.configFile)
	}
	logDir := os.Getenv("LOG_DIR")
	if logDir == "" {
		logDir = "logs"
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	outPath := filepath.Join(logDir, o.daemonName+".out")
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	st, err := out.Stat()
	if err != nil {
		return err
	}
	from := st.Size()
	child := exec.Command(exe, args...)
	child.Stdout, child.Stderr = out, out
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	pid := child.Process.Pid
	w := cmd.OutOrStdout()
	deadline := time.After(daemonWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the broker exited at start (%v); its output, in %s:\n%s", err, outPath, outputSince(outPath, from))
		case <-deadline:
			fmt.Fprintf(w, "Gregor is starting in the background: pid %d, output in %s\n", pid, outPath)
			return nil
		case <-tick.C:
			if strings.Contains(outputSince(outPath, from), " started in ") {
				fmt.Fprintf(w, "Gregor started in the background: pid %d, output in %s\n", pid, outPath)
				return nil
			}
		}
	}
}

// outputSince is what the file holds after offset from (at most 64 KiB).
func outputSince(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	n, _ := f.ReadAt(b, from)
	return string(b[:n])
}

type serverStopOptions struct {
	nodeID string
	role   string
}

func newServerStopCommand() *cobra.Command {
	o := &serverStopOptions{}
	cmd := &cobra.Command{
		Use:   "server-stop [--node-id=N | --process-role=broker|controller]",
		Short: "Stop the gregor brokers running on this machine (kafka-server-stop.sh)",
		Long: "Send SIGTERM (or $SIGNAL) to every `gregor serve` process on this machine, or to those\n" +
			"whose node.id or process.roles match. A broker shuts down cleanly on SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	cmd.Flags().StringVar(&o.nodeID, "node-id", "", "stop only the broker with this node.id")
	cmd.Flags().StringVar(&o.role, "process-role", "", "stop only the brokers with these process.roles (broker, controller, or broker,controller)")
	return cmd
}

// serveProc is a running `gregor serve`.
type serveProc struct {
	pid  int
	args []string // after "serve"
}

// serveProcs lists the `gregor serve` processes: those whose first argument
// is serve and whose program is named gregor* or is this very binary.
func serveProcs() ([]serveProc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self, _ := os.Executable()
	selfInfo, _ := os.Stat(self)
	var out []serveProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		if len(argv) < 2 || argv[1] != "serve" {
			continue
		}
		ours := strings.HasPrefix(filepath.Base(argv[0]), "gregor")
		if !ours && selfInfo != nil {
			if fi, err := os.Stat(filepath.Join("/proc", e.Name(), "exe")); err == nil {
				ours = os.SameFile(fi, selfInfo)
			}
		}
		if ours {
			out = append(out, serveProc{pid: pid, args: argv[2:]})
		}
	}
	return out, nil
}

// identity works out a serve process's node.id and process.roles.
func (p serveProc) identity() (int32, string, error) {
	o := &serveOptions{}
	c := &cobra.Command{Use: "serve"}
	o.AddFlags(c)
	fs := c.Flags()
	fs.SetOutput(&bytes.Buffer{})
	if err := fs.Parse(p.args); err != nil {
		return 0, "", err
	}
	if fs.NArg() == 1 && o.configFile == "" {
		o.configFile = fs.Arg(0)
	}
	dir := filepath.Join("/proc", strconv.Itoa(p.pid))
	cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
	if err != nil {
		return 0, "", err
	}
	env, err := os.ReadFile(filepath.Join(dir, "environ"))
	if err != nil {
		return 0, "", err
	}
	cfg, err := o.loadConfigFor(strings.Split(string(env), "\x00"), cwd)
	if err != nil {
		return 0, "", err
	}
	return cfg.NodeID, strings.Join(cfg.ProcessRoles, ","), nil
}

func (o *serverStopOptions) run(cmd *cobra.Command) error {
	sig := syscall.SIGTERM
	if name := os.Getenv("SIGNAL"); name != "" {
		s, ok := signalNames[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
		if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
			s, ok = syscall.Signal(n), true
		}
		if !ok {
			return fmt.Errorf("SIGNAL=%s: not a signal name", name)
		}
		sig = s
	}
	w := cmd.OutOrStdout()
	if o.nodeID != "" && o.role != "" {
		fmt.Fprintln(w, "When both node-id and process-role are provided, the value for node-id will take precedence")
	}
	procs, err := serveProcs()
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		fmt.Fprintln(w, "No gregor server to stop")
		return errAlreadyReported
	}
	var failed []string
	for _, p := range procs {
		if o.nodeID != "" || o.role != "" {
			id, roles, err := p.identity()
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "gregor: pid %d: cannot work out its configuration: %v\n", p.pid, err)
				failed = append(failed, strconv.Itoa(p.pid))
				continue
			}
			if o.nodeID != "" && strconv.Itoa(int(id)) != o.nodeID {
				continue
			}
			if o.nodeID == "" && !sameRoles(roles, o.role) {
				continue
			}
		}
		if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(cmd.ErrOrStderr(), "gregor: pid %d: %v\n", p.pid, err)
			failed = append(failed, strconv.Itoa(p.pid))
		}
	}
	if len(failed) > 0 {
		return errAlreadyReported
	}
	return nil
}

// sameRoles compares process.roles lists as sets: "controller,broker" is
// "broker,controller".
func sameRoles(a, b string) bool {
	split := func(s string) []string {
		var out []string
		for _, r := range strings.Split(s, ",") {
			if r = strings.ToLower(strings.TrimSpace(r)); r != "" {
				out = append(out, r)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(split(a), split(b))
}

var signalNames = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}
