package broker

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gregorhq/gregor/internal/config"
)

func openTestBroker(t *testing.T, dir string) (*Broker, error) {
	t.Helper()
	ld := config.NewLoader()
	ld.Set("log.dirs", dir, config.SourceFlag)
	ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	cfg, err := ld.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, slog.New(slog.DiscardHandler))
}

// rewriteCatalog edits the catalog file of a stopped broker, to put it in
// the state a crash would have left.
func rewriteCatalog(t *testing.T, dir string, edit func(map[string]*topic)) {
	t.Helper()
	path := filepath.Join(dir, catalogFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var topics []*topic
	if err := json.Unmarshal(data, &topics); err != nil {
		t.Fatal(err)
	}
	m := map[string]*topic{}
	for _, tp := range topics {
		m[tp.Name] = tp
	}
	edit(m)
	topics = topics[:0]
	for _, tp := range m {
		topics = append(topics, tp)
	}
	if data, err = json.Marshal(topics); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func partitionDirsOf(t *testing.T, dir, topic string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, topic+"-*"))
	return m
}

// A crash in the middle of a create, an addition or a deletion is rolled
// back or finished at the next start; finished topics keep their configs.
func TestCatalogFinishesInterruptedOperations(t *testing.T) {
	dir := t.TempDir()
	b, err := openTestBroker(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.catalog.create("done", 2, map[string]string{"retention.ms": "1234"}, false); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int32{"half": 3, "gone": 2, "grow": 4} {
		if _, err := b.catalog.create(name, n, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	rewriteCatalog(t, dir, func(m map[string]*topic) {
		m["half"].State = stateCreating                          // directories made, never published
		m["gone"].State = stateDeleting                          // deleted, directories not yet renamed
		m["grow"].Partitions, m["grow"].PendingPartitions = 2, 4 // addition interrupted
		m["done"].State, m["done"].PendingPartitions = "", 0     // the format of older versions
	})

	b, err = openTestBroker(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.catalog.get("half") != nil || len(partitionDirsOf(t, dir, "half")) != 0 {
		t.Errorf("interrupted create: topic %v, dirs %v", b.catalog.get("half"), partitionDirsOf(t, dir, "half"))
	}
	if b.catalog.get("gone") != nil || len(partitionDirsOf(t, dir, "gone")) != 0 {
		t.Errorf("interrupted delete: topic %v, dirs %v", b.catalog.get("gone"), partitionDirsOf(t, dir, "gone"))
	}
	if g := b.catalog.get("grow"); g == nil || g.Partitions != 2 || g.PendingPartitions != 0 || len(partitionDirsOf(t, dir, "grow")) != 2 {
		t.Errorf("interrupted addition: topic %+v, dirs %v", g, partitionDirsOf(t, dir, "grow"))
	}
	if d := b.catalog.get("done"); d == nil || d.Configs["retention.ms"] != "1234" || b.store.Get("done", 1) == nil {
		t.Errorf("finished topic: %+v", d)
	}
	data, _ := os.ReadFile(filepath.Join(dir, catalogFile))
	if strings.Contains(string(data), `"state"`) {
		t.Errorf("catalog still holds unfinished operations:\n%s", data)
	}
}

func TestCatalogSecondBrokerLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := openTestBroker(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openTestBroker(t, dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ".lock")) {
		t.Fatalf("second broker on the same dir: %v", err)
	}
	b.Close()
	// Released at Close.
	b, err = openTestBroker(t, dir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b.Close()
}

// Colliding names created concurrently: exactly one wins.
func TestCatalogConcurrentCollision(t *testing.T) {
	b := newTestBroker(t)
	names := []string{"x.y", "x_y", "x.y", "x_y"}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.catalog.create(n, 1, nil, false)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok != 1 || (b.catalog.get("x.y") == nil) == (b.catalog.get("x_y") == nil) {
		t.Fatalf("%d creates succeeded (%v); topics x.y=%v x_y=%v", ok, errs, b.catalog.get("x.y") != nil, b.catalog.get("x_y") != nil)
	}
}
