package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// adminChecks: ClusterAdmin against a 3-partition topic, from creation to
// deletion. Each check depends on the ones before it having passed.
func (p *profile) adminChecks() {
	t := p.topic("admin")
	var brokerID int32 = -1

	p.check("admin_describe_cluster", func() {
		a := p.admin()
		defer a.Close()
		brokers, controller, err := a.DescribeCluster()
		must(err, "DescribeCluster")
		// COMPAT_BROKERS: how many brokers the cluster has (cluster.sh sets
		// 3); the bootstrap broker must be one of them, the controller too.
		want := 1
		if n, err := strconv.Atoi(os.Getenv("COMPAT_BROKERS")); err == nil && n > 0 {
			want = n
		}
		expect(len(brokers) == want, "brokers: got %d, want %d", len(brokers), want)
		var ids []int32
		for _, br := range brokers {
			ids = append(ids, br.ID())
			if br.Addr() == p.s.bootstrap {
				brokerID = br.ID()
			}
		}
		expect(brokerID != -1, "no broker at the bootstrap address %q", p.s.bootstrap)
		expect(slices.Contains(ids, controller), "controller id %d is not one of the brokers %v", controller, ids)
	})

	p.check("admin_create_topic", func() {
		a := p.admin()
		defer a.Close()
		retention, maxBytes := "123456789", "2000000"
		must(a.CreateTopic(t, &sarama.TopicDetail{
			NumPartitions:     3,
			ReplicationFactor: 1,
			ConfigEntries:     map[string]*string{"retention.ms": &retention, "max.message.bytes": &maxBytes},
		}, false), "CreateTopic")
		err := a.CreateTopic(t, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
		expect(errors.Is(err, sarama.ErrTopicAlreadyExists), "second CreateTopic: got %v, want %v", err, sarama.ErrTopicAlreadyExists)
		// One replica more than there are brokers.
		rf := int16(1)
		if n, err := strconv.Atoi(os.Getenv("COMPAT_BROKERS")); err == nil && n > 0 {
			rf = int16(n)
		}
		rf++
		err = a.CreateTopic(p.topic("admin-bad"), &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: rf}, false)
		expect(errors.Is(err, sarama.ErrInvalidReplicationFactor),
			"CreateTopic with replication factor %d, one more than the brokers: got %v, want %v", rf, err, sarama.ErrInvalidReplicationFactor)
	})

	p.check("admin_list_topics", func() {
		a := p.admin()
		defer a.Close()
		topics, err := a.ListTopics()
		must(err, "ListTopics")
		d, ok := topics[t]
		expect(ok, "ListTopics: %s missing (%d topics)", t, len(topics))
		expect(d.NumPartitions == 3, "NumPartitions: got %d, want 3", d.NumPartitions)
		expect(d.ReplicationFactor == 1, "ReplicationFactor: got %d, want 1", d.ReplicationFactor)
		// ListTopics fills ConfigEntries from DescribeConfigs (non-default values only).
		got := map[string]string{}
		for k, v := range d.ConfigEntries {
			if v != nil {
				got[k] = *v
			}
		}
		expect(got["retention.ms"] == "123456789" && got["max.message.bytes"] == "2000000",
			"ListTopics config entries: got %v, want retention.ms=123456789 and max.message.bytes=2000000", got)
		_, bad := topics[p.topic("admin-bad")]
		expect(!bad, "the topic whose creation failed is listed")
	})

	p.check("admin_describe_topics", func() {
		expect(brokerID >= 0, "needs admin_describe_cluster")
		a := p.admin()
		defer a.Close()
		md, err := a.DescribeTopics([]string{t})
		must(err, "DescribeTopics")
		expect(len(md) == 1, "DescribeTopics: %d results, want 1", len(md))
		m := md[0]
		expect(m.Name == t && errors.Is(m.Err, sarama.ErrNoError), "topic %q error %v", m.Name, m.Err)
		expect(!m.IsInternal, "topic reported as internal")
		checkPartitions(m, 3, brokerID)
	})

	p.check("admin_describe_configs", func() {
		a := p.admin()
		defer a.Close()
		entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: t})
		must(err, "DescribeConfig topic")
		byName := configMap(entries)
		for name, want := range map[string]string{"retention.ms": "123456789", "max.message.bytes": "2000000"} {
			e, ok := byName[name]
			expect(ok, "%s missing from %d entries", name, len(entries))
			expect(e.Value == want, "%s: got %q, want %q", name, e.Value, want)
			expect(!e.Default && e.Source == sarama.SourceTopic,
				"%s: default=%v source=%v, want a topic override", name, e.Default, e.Source)
		}
		e, ok := byName["cleanup.policy"]
		expect(ok, "cleanup.policy missing")
		expect(e.Value == "delete" && e.Source != sarama.SourceTopic,
			"cleanup.policy: got %q source %v, want the default delete", e.Value, e.Source)
		// Only the names asked for come back.
		sel, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: t,
			ConfigNames: []string{"retention.ms", "segment.bytes"}})
		must(err, "DescribeConfig with ConfigNames")
		names := []string{}
		for _, e := range sel {
			names = append(names, e.Name)
		}
		slices.Sort(names)
		expect(slices.Equal(names, []string{"retention.ms", "segment.bytes"}), "ConfigNames filter: got %v", names)

		expect(brokerID >= 0, "broker configs need admin_describe_cluster")
		be, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.BrokerResource, Name: fmt.Sprint(brokerID)})
		must(err, "DescribeConfig broker")
		bm := configMap(be)
		np, ok := bm["num.partitions"]
		expect(ok, "broker config num.partitions missing from %d entries", len(be))
		expect(np.Value != "", "broker num.partitions has no value")
	})

	p.check("admin_incremental_alter_configs", func() {
		a := p.admin()
		defer a.Close()
		v := "987654"
		must(a.IncrementalAlterConfig(sarama.TopicResource, t, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms":      {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v},
			"max.message.bytes": {Operation: sarama.IncrementalAlterConfigsOperationDelete},
		}, false), "IncrementalAlterConfig")
		entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: t})
		must(err, "DescribeConfig")
		byName := configMap(entries)
		expect(byName["retention.ms"].Value == "987654", "retention.ms after SET: got %q", byName["retention.ms"].Value)
		mb := byName["max.message.bytes"]
		expect(mb.Source != sarama.SourceTopic && mb.Value != "2000000",
			"max.message.bytes after DELETE: got %q source %v, want the default back", mb.Value, mb.Source)
	})

	p.check("admin_create_partitions", func() {
		expect(brokerID >= 0, "needs admin_describe_cluster")
		a := p.admin()
		defer a.Close()
		must(a.CreatePartitions(t, 5, nil, false), "CreatePartitions to 5")
		md, err := a.DescribeTopics([]string{t})
		must(err, "DescribeTopics")
		expect(len(md) == 1, "DescribeTopics: %d results", len(md))
		checkPartitions(md[0], 5, brokerID)
		err = a.CreatePartitions(t, 4, nil, false)
		expect(errors.Is(err, sarama.ErrInvalidPartitions), "CreatePartitions down to 4: got %v, want %v", err, sarama.ErrInvalidPartitions)
		topics, err := a.ListTopics()
		must(err, "ListTopics")
		expect(topics[t].NumPartitions == 5, "ListTopics NumPartitions after CreatePartitions: got %d, want 5", topics[t].NumPartitions)
	})

	p.check("admin_delete_topic", func() {
		a := p.admin()
		defer a.Close()
		must(a.DeleteTopic(t), "DeleteTopic")
		deadline := time.Now().Add(10 * time.Second)
		for {
			topics, err := a.ListTopics()
			must(err, "ListTopics")
			if _, ok := topics[t]; !ok {
				break
			}
			expect(time.Now().Before(deadline), "%s still listed 10s after DeleteTopic", t)
			time.Sleep(200 * time.Millisecond)
		}
		err := a.DeleteTopic(t)
		expect(errors.Is(err, sarama.ErrUnknownTopicOrPartition), "second DeleteTopic: got %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
	})
}

func configMap(entries []sarama.ConfigEntry) map[string]sarama.ConfigEntry {
	m := map[string]sarama.ConfigEntry{}
	for _, e := range entries {
		m[e.Name] = e
	}
	return m
}

// checkPartitions: partitions 0..n-1, each led by brokerID, which is also
// the only replica and the only in-sync replica. With COMPAT_BROKERS above 1
// (a cluster) any broker may lead a partition; it must still be the only
// replica and in-sync replica.
func checkPartitions(m *sarama.TopicMetadata, n int, brokerID int32) {
	expect(len(m.Partitions) == n, "%s: %d partitions, want %d", m.Name, len(m.Partitions), n)
	cluster := false
	if c, err := strconv.Atoi(os.Getenv("COMPAT_BROKERS")); err == nil && c > 1 {
		cluster = true
	}
	ids := []int32{}
	for _, pm := range m.Partitions {
		ids = append(ids, pm.ID)
		expect(errors.Is(pm.Err, sarama.ErrNoError), "partition %d error %v", pm.ID, pm.Err)
		leader := brokerID
		if cluster {
			leader = pm.Leader
			expect(leader >= 0, "partition %d has no leader", pm.ID)
		}
		expect(pm.Leader == leader, "partition %d leader %d, want %d", pm.ID, pm.Leader, leader)
		expect(slices.Equal(pm.Replicas, []int32{leader}), "partition %d replicas %v", pm.ID, pm.Replicas)
		expect(slices.Equal(pm.Isr, []int32{leader}), "partition %d isr %v", pm.ID, pm.Isr)
	}
	slices.Sort(ids)
	for i, id := range ids {
		expect(id == int32(i), "partition ids %v, want 0..%d", ids, n-1)
	}
}
