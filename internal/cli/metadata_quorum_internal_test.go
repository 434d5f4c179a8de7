package cli

// The metadata-quorum tool's formatting, from canned DescribeQuorum
// responses, against goldens. The single-node goldens are the real output of
// Kafka 4.4.0's kafka-metadata-quorum (bench/kafka/kafka.sh, one combined
// broker+controller, node.id=1), and the responses below carry the values
// that Kafka's DescribeQuorum v2 answer held for each of those runs. The
// three-voter golden has no real counterpart on a single node: it is Gregor's
// output, checked by hand against the rules of Kafka's tool (leader first,
// then followers, then observers; zero directory ids and empty endpoint
// lists left out of --status; -1 stays -1 with --human-readable).
//
// testdata/kafka44_topics_describe.golden and kafka44_cluster_id.golden are
// the same cluster's real TopicCommand --describe (topic mq-demo, two
// partitions) and ClusterTool cluster-id outputs, kept as references for
// those tools' formats.

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func mustDirID(t *testing.T, s string) [16]byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		t.Fatalf("bad directory id %q: %v", s, err)
	}
	var id [16]byte
	copy(id[:], b)
	return id
}

// kafkaQuorum is Kafka 4.4's DescribeQuorum v2 answer on a single combined
// node: the leader's own fetch and caught-up times are the time of the
// answer, its log end offset is the high watermark.
func kafkaQuorum(t *testing.T, offset, ts int64) *kmsg.DescribeQuorumResponse {
	resp := kmsg.NewPtrDescribeQuorumResponse()
	resp.Version = 2
	empty := ""
	resp.ErrorMessage = &empty
	topic := kmsg.NewDescribeQuorumResponseTopic()
	topic.Topic = "__cluster_metadata"
	p := kmsg.NewDescribeQuorumResponseTopicPartition()
	p.ErrorMessage = &empty
	p.LeaderID, p.LeaderEpoch, p.HighWatermark = 1, 1, offset
	v := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
	v.ReplicaID = 1
	v.ReplicaDirectoryID = mustDirID(t, "822qovB4QVeOZdgIzWUrvw")
	v.LogEndOffset, v.LastFetchTimestamp, v.LastCaughtUpTimestamp = offset, ts, ts
	p.CurrentVoters = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{v}
	p.Observers = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
	topic.Partitions = append(topic.Partitions, p)
	resp.Topics = append(resp.Topics, topic)
	node := kmsg.NewDescribeQuorumResponseNode()
	node.NodeID = 1
	l := kmsg.NewDescribeQuorumResponseNodeListener()
	l.Name, l.Host, l.Port = "CONTROLLER", "127.0.0.1", 19093
	node.Listeners = append(node.Listeners, l)
	resp.Nodes = append(resp.Nodes, node)
	return resp
}

// checkQuorumGolden compares with testdata/<name>.golden byte for byte;
// -update rewrites only the goldens Gregor owns, never Kafka's.
func checkQuorumGolden(t *testing.T, name, got string, kafkas bool) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if quorumUpdate() && !kafkas {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\nwant %q\ngot  %q", path, want, got)
	}
}

func quorumUpdate() bool {
	for _, a := range os.Args {
		if a == "-update" || a == "--update" || a == "-update=true" {
			return true
		}
	}
	return false
}

func TestMetadataQuorumStatusKafkaGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writeQuorumStatus(&b, "4cs4_KXQSCCsdUoZc3CZug", kafkaQuorum(t, 42, 1795976879806)); err != nil {
		t.Fatal(err)
	}
	checkQuorumGolden(t, "metadata_quorum_status", b.String(), true)
}

func TestMetadataQuorumReplicationKafkaGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writeQuorumReplication(&b, kafkaQuorum(t, 50, 1795976883407), false, time.Now()); err != nil {
		t.Fatal(err)
	}
	checkQuorumGolden(t, "metadata_quorum_replication", b.String(), true)

	// Kafka printed "13 ms ago": the tool's clock read 13 ms after the
	// leader's timestamp.
	b.Reset()
	const ts = 1795976884051
	if err := writeQuorumReplication(&b, kafkaQuorum(t, 51, ts), true, time.UnixMilli(ts+13)); err != nil {
		t.Fatal(err)
	}
	checkQuorumGolden(t, "metadata_quorum_replication_human", b.String(), true)
}

// threeVoters: leader 2 of voters 1, 2, 3 (3 far behind and never caught
// up), observer 4 with no directory id nor endpoints, an IPv6 endpoint.
func threeVoters(t *testing.T) *kmsg.DescribeQuorumResponse {
	resp := kafkaQuorum(t, 0, 0)
	p := &resp.Topics[0].Partitions[0]
	p.LeaderID, p.LeaderEpoch, p.HighWatermark = 2, 7, 1200
	replica := func(id int32, dir string, leo, fetch, caught int64) kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
		r := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		r.ReplicaID = id
		if dir != "" {
			r.ReplicaDirectoryID = mustDirID(t, dir)
		}
		r.LogEndOffset, r.LastFetchTimestamp, r.LastCaughtUpTimestamp = leo, fetch, caught
		return r
	}
	p.CurrentVoters = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{
		replica(1, "822qovB4QVeOZdgIzWUrvw", 1200, 1795976880000, 1795976880000),
		replica(2, "Xb1n9eI1TJ2YVl0kDw1bPA", 1210, 1795976881000, 1795976881000),
		replica(3, "q7kG3JxWQnmZ2m1L7u8a1Q", 3, -1, -1),
	}
	p.Observers = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{
		replica(4, "", 1205, 1795976880500, 1795976879000),
	}
	resp.Nodes = nil
	for _, n := range []struct {
		id   int32
		host string
	}{{1, "c1.example"}, {2, "::1"}, {3, "c3.example"}} {
		node := kmsg.NewDescribeQuorumResponseNode()
		node.NodeID = n.id
		for _, name := range []string{"CONTROLLER", "CONTROLLER2"} {
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			l.Name, l.Host, l.Port = name, n.host, 9093
			node.Listeners = append(node.Listeners, l)
		}
		resp.Nodes = append(resp.Nodes, node)
	}
	return resp
}

func TestMetadataQuorumThreeVoters(t *testing.T) {
	var b bytes.Buffer
	resp := threeVoters(t)
	if err := writeQuorumStatus(&b, "4cs4_KXQSCCsdUoZc3CZug", resp); err != nil {
		t.Fatal(err)
	}
	b.WriteString("--\n")
	if err := writeQuorumReplication(&b, resp, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	b.WriteString("--\n")
	if err := writeQuorumReplication(&b, resp, true, time.UnixMilli(1795976882000)); err != nil {
		t.Fatal(err)
	}
	checkQuorumGolden(t, "metadata_quorum_three_voters", b.String(), false)

	// MaxFollowerLagTimeMs: -1 when the laggard never caught up, else the
	// difference of the caught-up times.
	if !strings.Contains(b.String(), "MaxFollowerLag:         1207\nMaxFollowerLagTimeMs:   -1\n") {
		t.Errorf("lag lines wrong:\n%s", b.String())
	}
	p := &resp.Topics[0].Partitions[0]
	p.CurrentVoters[2].LastCaughtUpTimestamp = 1795976870000
	b.Reset()
	if err := writeQuorumStatus(&b, "x", resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "MaxFollowerLagTimeMs:   11000\n") {
		t.Errorf("lag time wrong:\n%s", b.String())
	}
}

func TestMetadataQuorumResponseErrors(t *testing.T) {
	var b bytes.Buffer
	resp := kafkaQuorum(t, 5, 1795976879806)
	resp.Topics[0].Partitions[0].LeaderID = -1
	if err := writeQuorumStatus(&b, "x", resp); err == nil {
		t.Error("no leader among the voters: want an error")
	}
	resp = kafkaQuorum(t, 5, 1795976879806)
	resp.Topics[0].Partitions[0].ErrorCode = 6 // NOT_LEADER_OR_FOLLOWER
	if err := writeQuorumReplication(&b, resp, false, time.Now()); err == nil || !strings.Contains(err.Error(), "NOT_LEADER_FOR_PARTITION") {
		t.Errorf("partition error: got %v", err)
	}
	resp = kafkaQuorum(t, 5, 1795976879806)
	resp.Topics[0].Topic = "other"
	if err := writeQuorumStatus(&b, "x", resp); err == nil {
		t.Error("wrong topic: want an error")
	}
	// A timestamp after the tool's clock is refused with Kafka's message.
	resp = kafkaQuorum(t, 5, 1795976879806)
	err := writeQuorumReplication(&b, resp, true, time.UnixMilli(1795976879000))
	want := "Error while computing relative time, possible drift in system clock.\nCurrent timestamp is 1795976879000, last fetch timestamp is 1795976879806"
	if err == nil || err.Error() != want {
		t.Errorf("clock drift: got %v, want %q", err, want)
	}
}
