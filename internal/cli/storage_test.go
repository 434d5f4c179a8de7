package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gregorhq/gregor"
	"github.com/gregorhq/gregor/internal/metadata"
)

// The Kafka way of bootstrapping a node: a cluster id from random-uuid,
// format with it, and the broker then starts in that cluster.
func TestStorageFormatThenServe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "data")
	props := filepath.Join(dir, "server.properties")
	if err := os.WriteFile(props, []byte("node.id=1\nlog.dirs="+logDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, ctx, "", "storage", "random-uuid")
	id := strings.TrimSpace(r.stdout)
	if _, err := metadata.ParseUUID(id); r.code != 0 || err != nil {
		t.Fatalf("random-uuid: %q %v", r.stdout, err)
	}
	if r := runCLI(t, ctx, "", "storage", "info", "-c", props); r.code == 0 || !strings.Contains(r.stdout, "does not exist") {
		t.Fatalf("info before format: %+v", r)
	}
	if r := runCLI(t, ctx, "", "storage", "format", "-t", "not-a-uuid", "-c", props); r.code == 0 || !strings.Contains(r.stderr, "does not appear to be a valid UUID") {
		t.Fatalf("format with a bad id: %+v", r)
	}
	if r := runCLI(t, ctx, "", "storage", "format", "-t", id, "-c", props); r.code != 0 || !strings.Contains(r.stdout, "Formatting "+logDir) {
		t.Fatalf("format: %+v", r)
	}
	if r := runCLI(t, ctx, "", "storage", "format", "-t", id, "-c", props); r.code == 0 || !strings.Contains(r.stderr, "already formatted") {
		t.Fatalf("second format: %+v", r)
	}
	if r := runCLI(t, ctx, "", "storage", "format", "-t", id, "-c", props, "--ignore-formatted"); r.code != 0 {
		t.Fatalf("format --ignore-formatted: %+v", r)
	}
	r = runCLI(t, ctx, "", "storage", "info", "-c", props)
	want := "Found log directory:\n  " + logDir + "\n\nFound metadata: {cluster.id=" + id + ", node.id=1, version=1}\n\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("info:\n%s\nwant:\n%s", r.stdout, want)
	}
	b, err := gregor.Start(gregor.Options{Dir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.ClusterID() != id {
		t.Fatalf("the broker runs in cluster %s, formatted as %s", b.ClusterID(), id)
	}
}
