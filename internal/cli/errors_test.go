package cli_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestUnreachableBroker: every client command fails within seconds with one
// line naming the address, not a stack trace or a hang.
func TestUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now

	commands := [][]string{
		{"topics", "--list"},
		{"topics", "--create", "--topic", "t"},
		{"console-producer", "--topic", "t"},
		{"console-consumer", "--topic", "t"},
		{"consumer-groups", "--list"},
		{"configs", "--entity-type", "topics", "--describe"},
		{"producer-perf-test", "--topic", "t", "--num-records", "1", "--record-size", "1", "--throughput", "-1"},
		{"consumer-perf-test", "--topic", "t", "--messages", "1"},
	}
	for _, args := range commands {
		start := time.Now()
		r := runCLI(t, context.Background(), "x\n", append(args, "--bootstrap-server", addr)...)
		took := time.Since(start)
		want := "gregor: cannot connect to " + addr + ": dial tcp " + addr + ": connect: connection refused\n"
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("gregor %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
		}
		if took > 6*time.Second {
			t.Errorf("gregor %s took %v to fail", strings.Join(args, " "), took)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	s.run("no-such-command")
	s.run("topics", "--list", "--partitions", "x")
	s.run("topics", "--list", "--bootstrap-server", "localhost")
	s.run("consume", "--topic", "t", "--max-messages", "ten")
	s.run("consume")
	s.run("groups", "--list", "--describe")
	s.run("groups", "--describe", "--group", "g", "--members", "--state")
	s.run("groups", "--delete-offsets", "--group", "g")
	s.run("topics", "--list", "-X", "acks")
	s.run("topics", "--list", "-X", "security.protocol=SASL_SSL")
	s.golden("errors")
}

// TestLegacyFlags: --broker-list, as older tutorials pass it, and rpk's -X
// brokers= both name the bootstrap servers.
func TestLegacyFlags(t *testing.T) {
	b := newBroker(t)
	r := runCLI(t, context.Background(), "hello\n", "console-producer", "--broker-list", b.Addr(), "--topic", "legacy")
	mustOK(t, r)
	r = runCLI(t, context.Background(), "", "consume", "-X", "brokers="+b.Addr(), "--topic", "legacy", "--from-beginning", "--max-messages", "1")
	mustOK(t, r)
	if r.stdout != "hello\n" {
		t.Fatalf("got %q", r.stdout)
	}
	r = runCLI(t, context.Background(), "", "topics", "--list", "--command-config", "/nonexistent/admin.properties")
	if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("missing --command-config file: exit %d, %q", r.code, r.stderr)
	}
}
