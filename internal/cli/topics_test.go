package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)

	// The seed's commands (kafka-topics.sh), on a single broker.
	s.run("topics", "--topic", "sanguo", "--create", "--partitions", "1", "--replication-factor", "3")
	mustOK(t, s.run("topics", "--topic", "sanguo", "--create", "--partitions", "1", "--replication-factor", "1"))
	mustOK(t, s.run("topics", "--topic", "sanguo", "--describe"))
	mustOK(t, s.run("topics", "--topic", "sanguo", "--alter", "--partitions", "3"))
	mustOK(t, s.run("topics", "--topic", "sanguo", "--describe"))
	mustOK(t, s.run("topics", "--list"))

	// Configs, the collision warning, existing topics.
	mustOK(t, s.run("topics", "--create", "--topic", "orders_v1.eu", "--partitions", "2",
		"--config", "cleanup.policy=compact", "--config", "retention.ms=86400000"))
	s.run("topics", "--create", "--topic", "sanguo")
	mustOK(t, s.run("topics", "--create", "--topic", "sanguo", "--if-not-exists"))
	s.run("topics", "--create", "--topic", "bad", "--config", "retention.ms=soon")
	mustOK(t, s.run("topics", "--describe", "--topic", "orders.*"))
	mustOK(t, s.run("topics", "--alter", "--topic", "orders_v1.eu", "--config", "retention.ms=1000"))
	mustOK(t, s.run("topics", "--describe", "--topic", "orders_v1.eu", "--topics-with-overrides"))
	mustOK(t, s.run("topics", "--describe", "--topic", "sanguo", "--topics-with-overrides"))
	mustOK(t, s.run("topics", "--describe", "--topic", "sanguo", "--under-replicated-partitions"))
	s.run("topics", "--alter", "--topic", "sanguo", "--partitions", "2")

	// JSON.
	mustOK(t, s.run("topics", "--list", "--format", "json"))
	mustOK(t, s.run("topics", "--describe", "--topic", "sanguo", "--format", "json"))

	// Delete, unknown topics, --if-exists.
	mustOK(t, s.run("topics", "--delete", "--topic", "orders_v1.eu"))
	s.run("topics", "--describe", "--topic", "nosuch")
	mustOK(t, s.run("topics", "--describe", "--topic", "nosuch", "--if-exists"))
	s.run("topics", "--delete", "--topic", "nosuch")
	mustOK(t, s.run("topics", "--delete", "--topic", "nosuch", "--if-exists"))
	mustOK(t, s.run("topics", "--list", "--exclude-internal"))

	// Usage errors.
	s.run("topics", "--list", "--describe")
	s.run("topics", "--create")
	s.run("topics", "--alter", "--topic", "sanguo")
	s.run("topics", "--create", "--topic", "x", "--partitions", "0")
	s.run("topics", "--list", "--format", "yaml")
	s.run("topics", "--describe", "--topic", "sanguo", "--no-such-flag")
	s.golden("topics")
}

func TestTopicsJSONShape(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	mustOK(t, s.run("topics", "--create", "--topic", "j", "--partitions", "2", "--config", "retention.ms=1000"))
	r := s.run("topics", "--describe", "--topic", "j", "--format", "json")
	mustOK(t, r)
	var got []struct {
		Name           string            `json:"name"`
		ID             string            `json:"id"`
		PartitionCount int               `json:"partition_count"`
		Configs        map[string]string `json:"configs"`
		Partitions     []struct {
			Partition int32   `json:"partition"`
			Leader    int32   `json:"leader"`
			ISR       []int32 `json:"isr"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if len(got) != 1 || got[0].Name != "j" || got[0].PartitionCount != 2 || len(got[0].Partitions) != 2 ||
		got[0].Configs["retention.ms"] != "1000" || len(got[0].ID) != 22 || got[0].Partitions[1].Leader != 1 {
		t.Fatalf("unexpected describe JSON: %+v", got)
	}
	if strings.Contains(r.stdout, "__consumer_offsets") {
		t.Fatal("--topic j described other topics")
	}
}
