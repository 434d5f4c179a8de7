package cli_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// cluster-id and broker-api-versions print what Kafka 4.4's
// kafka-cluster.sh and kafka-broker-api-versions.sh print (their output
// against the same broker was identical, line for line, when this was
// written).
func TestClusterIDAndBrokerAPIVersions(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t)
	r := runCLI(t, ctx, "", "cluster", "cluster-id", "--bootstrap-server", b.Addr())
	if r.code != 0 || r.stdout != "Cluster ID: "+b.ClusterID()+"\n" {
		t.Fatalf("cluster-id: %+v", r)
	}
	r = runCLI(t, ctx, "", "broker-api-versions", "--bootstrap-server", b.Addr())
	if r.code != 0 {
		t.Fatalf("broker-api-versions: %+v", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if want := b.Addr() + " (id: 1 rack: null isFenced: false) -> ("; lines[0] != want {
		t.Fatalf("first line %q, want %q", lines[0], want)
	}
	if lines[len(lines)-1] != ")" {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	entry := regexp.MustCompile(`^\t[A-Za-z]+\(\d+\): (UNSUPPORTED|\d+( to \d+)? \[usable: \d+\]),?$`)
	for _, l := range lines[1 : len(lines)-1] {
		if !entry.MatchString(l) {
			t.Errorf("line %q is not in Kafka's format", l)
		}
	}
	for _, want := range []string{"\tFetch(1): 4 to 17 [usable: 17],", "\tInitProducerId(22): 0 to ", "\tDescribeQuorum(55): 0 to 2 [usable: 2],", "\tElectLeaders(43): 0 to 2 [usable: 2],", "\tAlterPartitionReassignments(45): 0 to 1 [usable: 1],", "\tListPartitionReassignments(46): 0 [usable: 0],"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "LeaderAndISR") || strings.Contains(r.stdout, "BrokerHeartbeat") {
		t.Error("inter-broker APIs are listed")
	}
	// Unregistering a broker that was never registered is refused.
	if r := runCLI(t, ctx, "", "cluster", "unregister", "--id", "2", "--bootstrap-server", b.Addr()); r.code == 0 {
		t.Fatalf("unregister on a single node: %+v", r)
	}
}
