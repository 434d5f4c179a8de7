package cli_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
)

// TestMetadataQuorumUsageErrors: the common mistakes fail before any
// connection with Kafka 4.4's messages (argparse4j's, without its usage
// block and line wrapping, and the tool's own, word for word), after
// Gregor's "gregor: " prefix.
func TestMetadataQuorumUsageErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: a test that connected would fail differently
	missing := filepath.Join(t.TempDir(), "admin.properties")

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"describe", "--status"},
			"one of the arguments --bootstrap-server --bootstrap-controller is required"},
		{[]string{"--bootstrap-server", addr, "--bootstrap-controller", addr, "describe", "--status"},
			"argument --bootstrap-controller: not allowed with argument --bootstrap-server"},
		{[]string{"--bootstrap-server", addr, "describe", "--status", "--replication"},
			"Only one of --status or --replication should be specified with describe sub-command"},
		{[]string{"--bootstrap-controller", addr, "describe", "--replication", "--status"},
			"Only one of --status or --replication should be specified with describe sub-command"},
		{[]string{"--bootstrap-server", addr, "describe"},
			"One of --status or --replication must be specified with describe sub-command"},
		{[]string{"--bootstrap-server", addr, "describe", "--status", "--human-readable"},
			"The option --human-readable is only supported along with --replication"},
		{[]string{"--bootstrap-server", addr, "--command-config", missing, "describe", "--status"},
			"Properties file " + missing + " does not exist."},
		// Flags after the subcommand work too.
		{[]string{"describe", "--status", "--replication", "--bootstrap-server", addr},
			"Only one of --status or --replication should be specified with describe sub-command"},
		{[]string{"describe", "--bootstrap-server", addr, "--status"},
			"cannot connect to " + addr + ": dial tcp " + addr + ": connect: connection refused"},
		{[]string{"--bootstrap-controller", addr, "describe", "--replication"},
			"cannot connect to " + addr + ": dial tcp " + addr + ": connect: connection refused"},
	}
	for _, c := range cases {
		r := runCLI(t, context.Background(), "", append([]string{"metadata-quorum"}, c.args...)...)
		if want := "gregor: " + c.want + "\n"; r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("gregor metadata-quorum %q: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", c.args, r.code, r.stdout, r.stderr, want)
		}
	}
}
