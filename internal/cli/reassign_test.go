package cli_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReassignPartitionsAndLeaderElection: kafka-reassign-partitions.sh
// and kafka-leader-election.sh on a single node (so every reassignment
// completes at once and every preferred leader leads), with Kafka 4.4's
// output. The in-progress states are covered in the controller's and the
// cluster's tests; their lines were compared with Kafka 4.4's tools
// against a three-node cluster.
func TestReassignPartitionsAndLeaderElection(t *testing.T) {
	b := newBroker(t)
	s := newSession(t, b)
	dir := t.TempDir()
	s.maskText(dir, "<TMP>")
	s.maskText(b.Addr(), "<ADDR>")
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	move := write("move.json", `{"version":1,"topics":[{"topic":"r"}]}`)
	same := write("same.json", `{"version":1,"partitions":[{"topic":"r","partition":0,"replicas":[1]},{"topic":"r","partition":1,"replicas":[1],"log_dirs":["any"]}]}`)
	bad := write("bad.json", `{"version":1,"partitions":[{"topic":"r","partition":0,"replicas":[1,7]}]}`)
	dup := write("dup.json", `{"version":1,"partitions":[{"topic":"r","partition":0,"replicas":[1,1]}]}`)
	elect := write("elect.json", `{"partitions":[{"topic":"r","partition":1},{"topic":"nosuch","partition":0}]}`)

	mustOK(t, s.run("topics", "--create", "--topic", "r", "--partitions", "2"))
	mustOK(t, s.run("reassign-partitions", "--list"))
	mustOK(t, s.run("reassign-partitions", "--generate", "--topics-to-move-json-file", move, "--broker-list", "1", "--bootstrap-server", b.Addr()))
	s.run("reassign-partitions", "--generate", "--topics-to-move-json-file", move, "--broker-list", "1,2", "--bootstrap-server", b.Addr())
	mustOK(t, s.run("reassign-partitions", "--execute", "--reassignment-json-file", same))
	mustOK(t, s.run("reassign-partitions", "--verify", "--reassignment-json-file", same))
	mustOK(t, s.run("reassign-partitions", "--cancel", "--reassignment-json-file", same))
	s.run("reassign-partitions", "--execute", "--reassignment-json-file", bad)
	s.run("reassign-partitions", "--execute", "--reassignment-json-file", dup)
	s.run("reassign-partitions", "--list", "--verify")

	mustOK(t, s.run("leader-election", "--election-type", "preferred", "--topic", "r", "--partition", "0"))
	mustOK(t, s.run("leader-election", "--election-type", "PREFERRED", "--all-topic-partitions"))
	mustOK(t, s.run("leader-election", "--election-type", "UNCLEAN", "--all-topic-partitions"))
	s.run("leader-election", "--election-type", "preferred", "--path-to-json-file", elect)
	s.run("leader-election", "--election-type", "preferred", "--topic", "r")
	s.run("leader-election", "--election-type", "preferred", "--topic", "r", "--partition", "0", "--all-topic-partitions")
	s.run("leader-election", "--topic", "r", "--partition", "0")
	s.golden("reassign")
}
