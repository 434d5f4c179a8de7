package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregorhq/gregor"
)

// TestGetOffsetsDeleteRecordsLogDirs: kafka-get-offsets.sh,
// kafka-delete-records.sh and kafka-log-dirs.sh, with Kafka 4.4's output
// (compared line by line with Kafka 4.4.0's GetOffsetShell,
// DeleteRecordsCommand and LogDirsCommand against the same brokers; only
// the order of delete-records' and log-dirs' partitions, a hash order in
// Kafka, differs). Records carry fixed timestamps, so the offsets at a time
// and the largest timestamp's offset are known.
func TestGetOffsetsDeleteRecordsLogDirs(t *testing.T) {
	dir := t.TempDir()
	b, err := gregor.Start(gregor.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s := newSession(t, b)
	s.maskText(dir, "<LOG-DIR>")
	tmp := t.TempDir()
	s.maskText(tmp, "<TMP>")

	mustOK(t, s.run("topics", "--create", "--topic", "off", "--partitions", "3"))
	mustOK(t, s.run("topics", "--create", "--topic", "other", "--partitions", "1"))
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(topic string, p int32, ts ...int64) {
		for _, ms := range ts {
			r := &kgo.Record{Topic: topic, Partition: p, Value: []byte("v"), Timestamp: time.UnixMilli(ms)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce("off", 0, 1000, 2000, 5000, 3000, 4000) // the largest timestamp is at offset 2
	produce("off", 1, 7000, 8000)
	produce("other", 0, 1000)

	mustOK(t, s.run("get-offsets", "--topic", "off"))
	mustOK(t, s.run("get-offsets", "--topic", "off,other", "--time", "earliest"))
	mustOK(t, s.run("get-offsets", "--topic", "off", "--time", "2500"))
	mustOK(t, s.run("get-offsets", "--topic", "off", "--time", "-3"))
	mustOK(t, s.run("get-offsets", "--topic", "o.*", "--partitions", "0,2"))
	mustOK(t, s.run("get-offsets", "--topic-partitions", "off:1-,other:0"))
	mustOK(t, s.run("get-offsets", "--topic-partitions", ":0", "--exclude-internal-topics"))
	mustOK(t, s.run("get-offsets", "--topic", "off", "--time", "99999"))
	mustOK(t, s.run("get-offsets", "--topic", "off", "--time", "latest-tiered"))
	mustOK(t, s.run("get-offsets", "--topic", "off", "--time", "earliest-pending-upload"))
	s.run("get-offsets", "--topic", "nosuch")
	s.run("get-offsets", "--time", "yesterday")
	s.run("get-offsets", "--topic", "off", "--partitions", "one")
	s.run("get-offsets", "--topic-partitions", "off:1", "--topic", "off")
	s.run("get-offsets", "--topic-partitions", "off:x")

	write := func(name, text string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	del := write("del.json", `{"partitions": [{"topic": "off", "partition": 0, "offset": 2},
		{"topic": "off", "partition": 1, "offset": -1}, {"topic": "off", "partition": 2, "offset": 5},
		{"topic": "nosuch", "partition": 0, "offset": 1}], "version": 1}`)
	mustOK(t, s.run("delete-records", "--offset-json-file", del))
	mustOK(t, s.run("get-offsets", "--topic", "off", "--time", "earliest"))
	s.run("delete-records", "--offset-json-file", write("dup.json", `{"partitions": [{"topic": "off", "partition": 0, "offset": 1}, {"topic": "off", "partition": 0, "offset": 2}]}`))
	s.run("delete-records", "--offset-json-file", write("v2.json", `{"partitions": [], "version": 2}`))
	s.run("delete-records", "--offset-json-file", write("bad.json", `{"partitions": [`))
	s.run("delete-records", "--offset-json-file", write("none.json", `{"version": 1}`))
	s.run("delete-records")

	mustOK(t, s.run("log-dirs", "--describe", "--topic-list", "off,other"))
	// --broker-list is a list of broker ids here; the session would take
	// it for the legacy bootstrap flag, so the address goes in by hand.
	mustOK(t, s.run("log-dirs", "--describe", "--topic-list", "other", "--broker-list", "1", "--bootstrap-server", b.Addr()))
	s.run("log-dirs", "--describe", "--broker-list", "1,5", "--bootstrap-server", b.Addr())
	s.run("log-dirs", "--topic-list", "off")
	s.golden("offsets")
}
