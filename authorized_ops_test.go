package gregor_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Asked for authorized operations, Kafka without an authorizer answers with
// every operation of the resource type; kafka-python 3.x's describe_groups,
// describe_topics and describe_cluster always ask and show them. The bit
// fields below are what Apache Kafka 4.1.2 answers; not asked for, the field
// stays at its schema default (-2147483648).
func TestAuthorizedOperationsLikeKafkaWithoutAuthorizer(t *testing.T) {
	const (
		unknown = -2147483648
		topic   = 3576 // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
		group   = 3400 // READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
		cluster = 8096 // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
	)
	b := newBroker(t, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ops", 1, nil)
	offsets := kadm.Offsets{}
	offsets.AddOffset("ops", 0, 0, -1)
	if err := kadm.NewClient(cl).CommitAllOffsets(ctxT(t), "ops-group", offsets); err != nil {
		t.Fatalf("commit: %v", err)
	}

	for _, include := range []bool{false, true} {
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Version = 5
		dg.Groups = []string{"ops-group", "no-such-group"}
		dg.IncludeAuthorizedOperations = include
		dgr, err := dg.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]int32{false: unknown, true: group}[include]
		if got := dgr.Groups[0].AuthorizedOperations; got != want {
			t.Errorf("DescribeGroups include=%v, existing group: authorized operations %d, want %d", include, got, want)
		}
		// Kafka answers no operations for a group that does not exist.
		if got := dgr.Groups[1].AuthorizedOperations; got != unknown {
			t.Errorf("DescribeGroups include=%v, unknown group: authorized operations %d, want %d", include, got, unknown)
		}

		for _, v := range []int16{8, 12} {
			md := kmsg.NewPtrMetadataRequest()
			md.Version = v
			for _, name := range []string{"ops", "no-such-topic"} {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(name)
				md.Topics = append(md.Topics, rt)
			}
			md.IncludeClusterAuthorizedOperations = include
			md.IncludeTopicAuthorizedOperations = include
			mdr, err := md.RequestWith(ctxT(t), cl)
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]int32{false: unknown, true: topic}[include]
			for _, mt := range mdr.Topics {
				if mt.AuthorizedOperations != want {
					t.Errorf("Metadata v%d include=%v, topic %s (error %d): authorized operations %d, want %d",
						v, include, *mt.Topic, mt.ErrorCode, mt.AuthorizedOperations, want)
				}
			}
			// Kafka 4 leaves the cluster's operations out of Metadata.
			if mdr.AuthorizedOperations != unknown {
				t.Errorf("Metadata v%d include=%v: cluster authorized operations %d, want %d",
					v, include, mdr.AuthorizedOperations, unknown)
			}
		}

		dc := kmsg.NewPtrDescribeClusterRequest()
		dc.EndpointType = 1
		dc.IncludeClusterAuthorizedOperations = include
		dcr, err := dc.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		want = map[bool]int32{false: unknown, true: cluster}[include]
		if dcr.ClusterAuthorizedOperations != want {
			t.Errorf("DescribeCluster include=%v: authorized operations %d, want %d", include, dcr.ClusterAuthorizedOperations, want)
		}
	}

	// DescribeTopicPartitions has no flag: Kafka always fills them in.
	dt := kmsg.NewPtrDescribeTopicPartitionsRequest()
	for _, name := range []string{"ops", "no-such-topic"} {
		rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
		rt.Topic = name
		dt.Topics = append(dt.Topics, rt)
	}
	dtr, err := dt.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range dtr.Topics {
		if st.AuthorizedOperations != topic {
			t.Errorf("DescribeTopicPartitions topic %s (error %d): authorized operations %d, want %d",
				*st.Topic, st.ErrorCode, st.AuthorizedOperations, topic)
		}
	}
}
