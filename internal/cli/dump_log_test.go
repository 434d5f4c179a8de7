package cli_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

// TestDumpLog: kafka-dump-log.sh on the files of a stopped broker's log
// dir: batches, records with keys, headers, tombstones and invalid UTF-8,
// an lz4 batch, the offset and time indexes and the producer snapshot. The
// lines are Kafka 4.4.0's DumpLogSegments' (compared on the same files,
// with transactions and damaged files too, when the tool was written).
func TestDumpLog(t *testing.T) {
	dir := t.TempDir()
	b, err := gregor.Start(gregor.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, b)
	s.maskText(dir, "<LOG-DIR>")
	mustOK(t, s.run("topics", "--create", "--topic", "dump", "--partitions", "1", "--config", "index.interval.bytes=1000"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression()} {
		cl := newClient(t, b, kgo.ProducerBatchCompression(codec), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for j := 0; j < 6; j++ {
			// Long and repetitive enough for lz4 to shrink and for the
			// indexes to get entries every index.interval.bytes.
			r := &kgo.Record{Topic: "dump", Value: []byte(fmt.Sprintf("value %d-%d ünï \xff %s", i, j, strings.Repeat("abcd", 100))),
				Timestamp: time.UnixMilli(int64(1700000000000 + 1000*(6*i+j)))}
			switch j {
			case 1:
				r.Key = []byte("key")
			case 2:
				r.Headers = []kgo.RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h2"}}
			case 3:
				r.Key, r.Value = []byte("gone"), nil
			}
			// One record per batch, so that the indexes get entries.
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		cl.Close()
	}
	b.Close() // writes the indexes and the producer snapshot

	seg := filepath.Join(dir, "dump-0", "00000000000000000000")
	mustOK(t, s.run("dump-log", "--files", seg+".log"))
	mustOK(t, s.run("dump-log", "--files", seg+".log", "--print-data-log"))
	mustOK(t, s.run("dump-log", "--files", seg+".log", "--print-data-log", "--skip-record-metadata", "--max-bytes", "300"))
	mustOK(t, s.run("dump-log", "--files", seg+".index,"+seg+".timeindex"))
	mustOK(t, s.run("dump-log", "--files", seg+".index,"+seg+".timeindex", "--verify-index-only"))
	mustOK(t, s.run("dump-log", "--files", filepath.Join(dir, "dump-0", "00000000000000000012.snapshot")))
	mustOK(t, s.run("dump-log", "--files", filepath.Join(dir, "dump-0", "partition.metadata")))
	s.run("dump-log", "--files", seg+".log", "--offsets-decoder")
	s.run("dump-log")
	s.golden("dump_log")
}
