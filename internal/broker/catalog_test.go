package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
	"github.com/gregorhq/gregor/internal/controller"
	"github.com/gregorhq/gregor/internal/metadata"
	"github.com/gregorhq/gregor/internal/storage"
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

// startTestBroker opens and starts a broker on dir.
func startTestBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := openTestBroker(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		b.Close()
		t.Fatal(err)
	}
	return b
}

func partitionDirsOf(t *testing.T, dir, topic string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, topic+"-[0-9]*"))
	return m
}

func createTopic(t *testing.T, b *Broker, name string, partitions int32, configs map[string]string) *topic {
	t.Helper()
	tp, err := b.createTopicInternal(context.Background(), controller.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: 1, Configs: configs})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// A single-node data dir from before the metadata quorum opens with every
// topic (same id, configs, data), the dynamic broker configs and the
// producer-id counter imported into the metadata log; the catalog's
// unfinished creates and deletes are dropped with their directories.
func TestCatalogLegacyImport(t *testing.T) {
	dir := t.TempDir()
	done, half, gone := metadata.NewUUID(), metadata.NewUUID(), metadata.NewUUID()
	st, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   metadata.UUID
		n    int32
	}{{"done", done, 2}, {"half", half, 3}, {"gone", gone, 2}} {
		if err := st.CreatePartitions(c.name, 0, c.n, c.id, storage.DefaultLogConfig()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Get("done", 1).Append(testBatch(t, "kept")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	writeJSON := func(name string, v any) {
		data, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeJSON(legacyCatalogFile, []map[string]any{
		{"name": "done", "id": [16]byte(done), "partitions": 2, "configs": map[string]string{"retention.ms": "1234"}},
		{"name": "half", "id": [16]byte(half), "partitions": 3, "state": "creating"},
		{"name": "gone", "id": [16]byte(gone), "partitions": 2, "state": "deleting"},
	})
	writeJSON(legacyDynamicFile, map[string]any{"cluster": map[string]string{"log.retention.ms": "999999"}})
	if err := os.WriteFile(filepath.Join(dir, legacyProducerIDs), []byte("5000\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	b := startTestBroker(t, dir)
	defer b.Close()
	d := b.catalog.get("done")
	if d == nil || d.ID != done || d.Configs["retention.ms"] != "1234" || b.store.Get("done", 1) == nil || b.store.Get("done", 1).LogEndOffset() != 1 {
		t.Fatalf("imported topic: %+v", d)
	}
	if b.catalog.get("half") != nil || len(partitionDirsOf(t, dir, "half")) != 0 {
		t.Errorf("unfinished create: topic %v, dirs %v", b.catalog.get("half"), partitionDirsOf(t, dir, "half"))
	}
	if b.catalog.get("gone") != nil || len(partitionDirsOf(t, dir, "gone")) != 0 {
		t.Errorf("unfinished delete: topic %v, dirs %v", b.catalog.get("gone"), partitionDirsOf(t, dir, "gone"))
	}
	if v, src, _ := b.brokerProp("log.retention.ms"); v != "999999" || src != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Errorf("imported cluster config: %q source %d", v, src)
	}
	if id, err := b.pids.next(context.Background()); err != nil || id < 5000 {
		t.Errorf("producer id after import: %d %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyCatalogFile+legacyImportedSufix)); err != nil {
		t.Errorf("catalog not renamed after import: %v", err)
	}
	b.Close()

	// Again, from the metadata log alone.
	b = startTestBroker(t, dir)
	if d := b.catalog.get("done"); d == nil || d.ID != done || d.Configs["retention.ms"] != "1234" {
		t.Fatalf("after restart: %+v", d)
	}
}

// The metadata log is the write-ahead record of topics: directories a
// crash left missing for a committed topic are created at start, and the
// directories of a topic deleted before the crash could rename them are
// removed.
func TestCatalogRepairsDirectoriesFromTheLog(t *testing.T) {
	dir := t.TempDir()
	b := startTestBroker(t, dir)
	createTopic(t, b, "keep", 3, map[string]string{"retention.ms": "1234"})
	gone := createTopic(t, b, "gone", 2, nil)
	b.Close()
	// As if the crash came before keep's directories existed.
	for _, d := range partitionDirsOf(t, dir, "keep") {
		os.RemoveAll(d)
	}
	// And as if gone was deleted (committed) before its directories moved:
	// put them back after a real delete.
	b = startTestBroker(t, dir)
	if got := len(partitionDirsOf(t, dir, "keep")); got != 3 || b.catalog.get("keep").Configs["retention.ms"] != "1234" {
		t.Fatalf("keep: %d dirs, %+v", got, b.catalog.get("keep"))
	}
	ctx := context.Background()
	if _, err := b.ctl.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	b.waitTopics(ctx, []string{"gone"}, false)
	b.Close()
	st, err := storage.Open(storage.Options{Dir: dir, Adopt: func(string, int32, [16]byte) storage.Adoption { return storage.AdoptLoad }})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePartitions("gone", 0, 2, gone.ID, storage.DefaultLogConfig()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	b = startTestBroker(t, dir)
	defer b.Close()
	if b.catalog.get("gone") != nil || len(partitionDirsOf(t, dir, "gone")) != 0 {
		t.Fatalf("deleted topic came back: %v, dirs %v", b.catalog.get("gone"), partitionDirsOf(t, dir, "gone"))
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
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := b.ctl.CreateTopics(ctx, []controller.TopicSpec{{Name: n, Partitions: 1, ReplicationFactor: 1}}, false)
			if err == nil && res[0].Err != nil {
				err = res[0].Err
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	b.waitMetaPublished(context.Background())
	if ok != 1 || (b.catalog.get("x.y") == nil) == (b.catalog.get("x_y") == nil) {
		t.Fatalf("%d creates succeeded (%v); topics x.y=%v x_y=%v", ok, errs, b.catalog.get("x.y") != nil, b.catalog.get("x_y") != nil)
	}
}

// testBatch is a one-record v2 batch with a valid CRC.
func testBatch(t *testing.T, value string) []byte {
	t.Helper()
	rec := kmsg.Record{Value: []byte(value)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the body after a 1-byte zero length
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{Magic: 2, NumRecords: 1, Records: rec.AppendTo(nil), FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}
