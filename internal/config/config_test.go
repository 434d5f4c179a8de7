package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.properties")
	body := `# a Kafka-style file
node.id=1
listeners=PLAINTEXT://127.0.0.1:9092
log.dirs=/from/file
num.partitions=3
log.retention.hours=1
message.max.bytes : 2000000
log.roll.hours=\
  2
some.unknown.property=kept
`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ld := NewLoader()
	if err := ld.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	ld.LoadEnv([]string{"GREGOR_NUM_PARTITIONS=5", "GREGOR_LOG_DIRS=/from/env", "OTHER=1"})
	ld.Set("log.dirs", "/from/flag", SourceFlag)
	c, err := ld.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.LogDirs[0] != "/from/flag" {
		t.Errorf("log.dirs = %v: a flag must beat env and file", c.LogDirs)
	}
	if c.NumPartitions != 5 {
		t.Errorf("num.partitions = %d: env must beat the file", c.NumPartitions)
	}
	if c.LogRetentionMs != 3600_000 {
		t.Errorf("log.retention.hours=1 gave %d ms", c.LogRetentionMs)
	}
	if c.LogRollMs != 2*3600_000 {
		t.Errorf("continued line: log.roll.hours gave %d ms", c.LogRollMs)
	}
	if c.MessageMaxBytes != 2000000 {
		t.Errorf("key : value form: message.max.bytes = %d", c.MessageMaxBytes)
	}
	if c.Raw["some.unknown.property"] != "kept" {
		t.Error("unknown properties must be kept for DescribeConfigs")
	}
	if c.Sources["num.partitions"] != SourceEnv || c.Sources["node.id"] != SourceFile {
		t.Errorf("sources %v", c.Sources)
	}
}

func TestMostSpecificRetentionUnitWins(t *testing.T) {
	ld := NewLoader()
	ld.Set("log.retention.hours", "5", SourceFile)
	ld.Set("log.retention.ms", "1234", SourceFile)
	c, err := ld.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.LogRetentionMs != 1234 {
		t.Fatalf("retention %d, want ms to beat hours", c.LogRetentionMs)
	}
}

func TestZeroConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.Listeners[0] != "PLAINTEXT://localhost:9092" || c.NodeID != 1 || c.LogDirs[0] != "gregor-data" {
		t.Fatalf("defaults %+v", c)
	}
	if c.Durability != DurabilityFsync || c.SocketRequestMaxBytes != 100<<20 || c.LogRetentionMs != 7*24*3600_000 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, kv := range [][2]string{
		{"listeners", "SSL://x:1"},
		{"listeners", "nonsense"},
		{"num.partitions", "0"},
		{"num.partitions", "three"},
		{"gregor.durability", "maybe"},
		{"log.message.timestamp.type", "Whenever"},
		{"auto.create.topics.enable", "yes"},
		{"socket.send.buffer.bytes", "0"},
		{"socket.receive.buffer.bytes", "-2"},
		{"metadata.log.max.record.bytes.between.snapshots", "0"},
	} {
		ld := NewLoader()
		ld.Set(kv[0], kv[1], SourceFlag)
		if _, err := ld.Resolve(); err == nil || !strings.Contains(err.Error(), "config") {
			t.Errorf("%s=%s accepted (err %v)", kv[0], kv[1], err)
		}
	}
}

func TestLimitProperties(t *testing.T) {
	l := NewLoader()
	l.Set("max.connections.per.ip.overrides", "127.0.0.1:5, ::1:7,host.example:0", SourceFile)
	c, err := l.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"127.0.0.1": 5, "::1": 7, "host.example": 0}
	for h, n := range want {
		if c.MaxConnectionsPerIPOv[h] != n {
			t.Errorf("override %s = %d, want %d (%v)", h, c.MaxConnectionsPerIPOv[h], n, c.MaxConnectionsPerIPOv)
		}
	}
	if c.FetchMaxBytes != 55<<20 || c.ConnectionsMaxIdleMs != 600000 || c.QueuedMaxRequestBytes != 256<<20 || c.MaxPartitionsPerReq != 10000 {
		t.Errorf("defaults: fetch.max.bytes %d, idle %d, queued %d, per request %d", c.FetchMaxBytes, c.ConnectionsMaxIdleMs, c.QueuedMaxRequestBytes, c.MaxPartitionsPerReq)
	}
	if c.FetchSessionCacheSlots != 1000 {
		t.Errorf("max.incremental.fetch.session.cache.slots default %d, want Kafka's 1000", c.FetchSessionCacheSlots)
	}
	l.Set("max.incremental.fetch.session.cache.slots", "-1", SourceFile)
	if _, err := l.Resolve(); err == nil {
		t.Error("a negative max.incremental.fetch.session.cache.slots was accepted")
	}
	l.Set("max.incremental.fetch.session.cache.slots", "0", SourceFile)
	l.Set("max.connections.per.ip.overrides", "nocount", SourceFile)
	if _, err := l.Resolve(); err == nil {
		t.Error("an override without a count was accepted")
	}
}

func TestKRaftProperties(t *testing.T) {
	l := NewLoader()
	l.Set("process.roles", "broker,controller", SourceFile)
	l.Set("node.id", "2", SourceFile)
	l.Set("controller.quorum.voters", "1@127.0.0.1:19093, 2@127.0.0.1:29093,3@[::1]:39093", SourceFile)
	l.Set("listeners", "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093", SourceFile)
	l.Set("broker.rack", "r2", SourceFile)
	c, err := l.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.QuorumVoters) != 3 || c.QuorumVoters[2] != (Voter{ID: 3, Host: "::1", Port: 39093}) || c.QuorumVoters[2].Addr() != "[::1]:39093" {
		t.Fatalf("voters: %+v", c.QuorumVoters)
	}
	if !c.HasRole("broker") || !c.HasRole("controller") || c.BrokerRack != "r2" || c.ListenerProtocol("controller") != "PLAINTEXT" {
		t.Fatalf("roles %v rack %q", c.ProcessRoles, c.BrokerRack)
	}
	if c.BrokerHeartbeatMs != 2000 || c.BrokerSessionTimeoutMs != 9000 {
		t.Fatalf("heartbeat %d session %d", c.BrokerHeartbeatMs, c.BrokerSessionTimeoutMs)
	}
	for _, bad := range []map[string]string{
		{"node.id": "4"}, // a controller not among the voters
		{"process.roles": "broker", "node.id": "1"},                                 // a voter without the controller role
		{"process.roles": "broker", "controller.quorum.voters": "", "node.id": "4"}, // a broker with no way to the quorum
		{"process.roles": "gateway"},
		{"controller.quorum.voters": "1@nohostport"},
		{"controller.quorum.voters": "1@h:1,1@h:2"},
		{"listeners": "SSL://127.0.0.1:9093"},
		{"listeners": "INTERNAL://127.0.0.1:9093"},
		{"broker.session.timeout.ms": "1000"},
	} {
		l := NewLoader()
		l.Set("controller.quorum.voters", "1@127.0.0.1:19093", SourceFile)
		for k, v := range bad {
			l.Set(k, v, SourceFlag)
		}
		if _, err := l.Resolve(); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
	// Zero configuration stays valid: a combined node, alone in its quorum.
	if c := DefaultConfig(); !c.HasRole("controller") || len(c.QuorumVoters) != 0 {
		t.Fatalf("default roles %v voters %v", c.ProcessRoles, c.QuorumVoters)
	}
	// A mapped custom listener name is accepted.
	l = NewLoader()
	l.Set("listeners", "INTERNAL://127.0.0.1:9093", SourceFile)
	l.Set("listener.security.protocol.map", "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT", SourceFile)
	if _, err := l.Resolve(); err != nil {
		t.Fatal(err)
	}
}

func TestObservabilityProperties(t *testing.T) {
	c, err := NewLoader().Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPListener != "localhost:9644" || !c.MetricsPartitionLabels || c.RequestLogSlowMs != 5000 || c.ConsoleAdminEnable || c.ConsoleSampleMs != 5000 {
		t.Errorf("defaults: http %q, partition labels %v, slow ms %d, console admin %v",
			c.HTTPListener, c.MetricsPartitionLabels, c.RequestLogSlowMs, c.ConsoleAdminEnable)
	}
	ld := NewLoader()
	ld.Set("gregor.http.listener", "", SourceFlag)
	ld.Set("gregor.metrics.partition.labels", "false", SourceFlag)
	ld.Set("gregor.console.admin.enable", "true", SourceFlag)
	if c, err = ld.Resolve(); err != nil {
		t.Fatal(err)
	}
	if c.HTTPListener != "" || c.MetricsPartitionLabels || !c.ConsoleAdminEnable {
		t.Errorf("overrides not applied: %+v", c)
	}
	for k, v := range map[string]string{
		"gregor.http.listener":              "no-port",
		"gregor.request.log.slow.ms":        "-2",
		"gregor.metrics.partition.labels":   "maybe",
		"gregor.console.sample.interval.ms": "10",
	} {
		ld := NewLoader()
		ld.Set(k, v, SourceFlag)
		c, err := ld.Resolve()
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: want an error naming the property, got %v", k, v, err)
		}
	}
}
