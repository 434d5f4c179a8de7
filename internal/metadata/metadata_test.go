package metadata

import (
	"errors"
	"reflect"
	"testing"
)

func ptr[T any](v T) *T { return &v }

var tid = UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func mustApply(t *testing.T, im *Image, off uint64, recs ...Record) *Image {
	t.Helper()
	next, err := im.Apply(off, recs)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// clusterImage: three brokers, a 2-partition topic with 3 replicas, configs
// and producer ids.
func clusterImage(t *testing.T) *Image {
	im := Empty()
	im = mustApply(t, im, 1, FeatureLevel{Name: "metadata.version", Level: 27})
	for id := int32(1); id <= 3; id++ {
		im = mustApply(t, im, uint64(1+id), RegisterBroker{ID: id, Epoch: int64(1 + id), Fenced: true, Rack: "r" + string(rune('0'+id)),
			Listeners: []Endpoint{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9090 + id}}})
		im = mustApply(t, im, uint64(10+id), BrokerChange{ID: id, Epoch: int64(1 + id), Fenced: ptr(false)})
	}
	im = mustApply(t, im, 20,
		Topic{Name: "sanguo", ID: tid},
		Partition{TopicID: tid, Partition: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1},
		Partition{TopicID: tid, Partition: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3, 1}, Leader: 2},
		Config{ResourceType: ResourceTopic, ResourceName: "sanguo", Name: "min.insync.replicas", Value: ptr("2")},
	)
	im = mustApply(t, im, 21, Config{ResourceType: ResourceBroker, ResourceName: "", Name: "log.retention.ms", Value: ptr("1000")})
	im = mustApply(t, im, 22, ProducerIDs{BrokerID: 1, BrokerEpoch: 2, Next: 1000})
	return im
}

func TestApplyBuildsTheImage(t *testing.T) {
	im := clusterImage(t)
	if im.Offset != 22 || len(im.Brokers()) != 3 || im.Broker(2).Fenced || im.Broker(2).Rack != "r2" {
		t.Fatalf("brokers: %+v", im.Brokers())
	}
	tp := im.Topic("sanguo")
	if tp == nil || im.TopicByID(tid) != tp || len(tp.Partitions) != 2 || tp.Partitions[1].Leader != 2 {
		t.Fatalf("topic: %+v", tp)
	}
	if im.Configs(ResourceTopic, "sanguo")["min.insync.replicas"] != "2" || im.Configs(ResourceBroker, "")["log.retention.ms"] != "1000" {
		t.Fatal("configs")
	}
	if im.NextProducerID != 1000 || im.Feature("metadata.version") != 27 {
		t.Fatal("producer ids or features")
	}
}

// Epochs: a leader change bumps the leader and partition epochs, an ISR
// change only the partition epoch; the earlier image is untouched.
func TestPartitionChangeEpochs(t *testing.T) {
	before := clusterImage(t)
	after := mustApply(t, before, 30, PartitionChange{TopicID: tid, Partition: 0, Leader: ptr(int32(2)), ISR: []int32{2, 3}})
	p := after.Topic("sanguo").Partitions[0]
	if p.Leader != 2 || p.LeaderEpoch != 1 || p.PartitionEpoch != 1 || !reflect.DeepEqual(p.ISR, []int32{2, 3}) {
		t.Fatalf("after leader change: %+v", p)
	}
	after2 := mustApply(t, after, 31, PartitionChange{TopicID: tid, Partition: 0, ISR: []int32{2, 3, 1}})
	p = after2.Topic("sanguo").Partitions[0]
	if p.LeaderEpoch != 1 || p.PartitionEpoch != 2 || len(p.ISR) != 3 {
		t.Fatalf("after ISR expansion: %+v", p)
	}
	if q := before.Topic("sanguo").Partitions[0]; q.Leader != 1 || q.PartitionEpoch != 0 || len(q.ISR) != 3 {
		t.Fatalf("the earlier image changed: %+v", q)
	}
	if after.Topic("sanguo").Partitions[1] != before.Topic("sanguo").Partitions[1] {
		t.Fatal("an untouched partition was copied instead of shared")
	}
}

// A batch applies whole or not at all.
func TestBatchIsAtomic(t *testing.T) {
	im := clusterImage(t)
	other := UUID{9}
	_, err := im.Apply(40, []Record{
		Topic{Name: "half", ID: other},
		Partition{TopicID: other, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1},
		Partition{TopicID: other, Partition: 5, Replicas: []int32{1}}, // not the next number
	})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if im.Topic("half") != nil || im.Offset != 22 {
		t.Fatal("a failed batch changed the image")
	}
	for _, bad := range []Record{
		Topic{Name: "sanguo", ID: UUID{7}},          // name taken
		UnregisterBroker{ID: 1, Epoch: 99},          // stale epoch
		PartitionChange{TopicID: tid, Partition: 2}, // no such partition
		Config{ResourceType: ResourceTopic, ResourceName: "nope", Name: "x", Value: ptr("1")},
		ProducerIDs{Next: 10}, // backwards
	} {
		if _, err := im.Apply(41, []Record{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%T %+v applied: %v", bad, bad, err)
		}
	}
}

func TestRemoveTopicDropsItsConfigs(t *testing.T) {
	im := mustApply(t, clusterImage(t), 50, RemoveTopic{ID: tid})
	if im.Topic("sanguo") != nil || im.TopicByID(tid) != nil || im.Configs(ResourceTopic, "sanguo") != nil {
		t.Fatal("topic or its configs survived removal")
	}
	// The name can be taken again, by a new id.
	im = mustApply(t, im, 51, Topic{Name: "sanguo", ID: UUID{42}})
	if im.Topic("sanguo").ID != (UUID{42}) {
		t.Fatal("re-created topic")
	}
}

// Records() rebuilds an equal image, through the wire encoding and the
// State snapshot.
func TestSnapshotRoundTrip(t *testing.T) {
	im := mustApply(t, clusterImage(t), 60,
		PartitionChange{TopicID: tid, Partition: 1, Leader: ptr(int32(3)), ISR: []int32{3}, Unclean: ptr(true)},
		BrokerChange{ID: 3, Epoch: 4, InControlledShutdown: ptr(true)})
	s := NewState()
	s.publish(im)
	data, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewState()
	if err := s2.Restore(data); err != nil {
		t.Fatal(err)
	}
	got := s2.Image()
	if got.Offset != im.Offset || !reflect.DeepEqual(got.Records(), im.Records()) {
		t.Fatalf("restored image differs:\n got %+v\nwant %+v", got.Records(), im.Records())
	}
	if p := got.Topic("sanguo").Partitions[1]; p.LeaderEpoch != 1 || p.PartitionEpoch != 1 || !p.Unclean {
		t.Fatalf("epochs lost in the snapshot: %+v", p)
	}
}

func TestEncodeDecodeEveryType(t *testing.T) {
	recs := clusterImage(t).Records()
	recs = append(recs, UnregisterBroker{ID: 1, Epoch: 2}, RemoveTopic{ID: tid}, BrokerChange{ID: 2, Epoch: 3, Fenced: ptr(true)},
		PartitionChange{TopicID: tid, Partition: 0, Leader: ptr(int32(-1)), Adding: &[]int32{4}, Removing: &[]int32{}},
		Config{ResourceType: ResourceBroker, ResourceName: "1", Name: "x", Value: nil})
	data, err := EncodeBatch(recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, recs)
	}
	seen := map[RecordType]bool{}
	for _, r := range got {
		seen[r.Type()] = true
	}
	if len(seen) != 10 {
		t.Fatalf("covered %d of 10 record types", len(seen))
	}
	for _, bad := range [][]byte{nil, {1}, {0, 5}, {0, 1, 3, 99, 0, '{'}, append(data, 0)} {
		if _, err := DecodeBatch(bad); !errors.Is(err, ErrBadRecord) {
			t.Errorf("DecodeBatch(%v) = %v", bad, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	data, _ := EncodeBatch([]Record{Topic{Name: "t", ID: tid}, Partition{TopicID: tid, Replicas: []int32{1}}})
	f.Add(data)
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := DecodeBatch(in)
		if err != nil {
			return
		}
		// Whatever decodes must apply or be refused, never panic.
		_, _ = Empty().Apply(1, recs)
	})
}

// A reassignment's PartitionChange: through the batch encoding, applied,
// cleared to nil lists, and inconsistent replica sets refused.
func TestApplyReassignmentChange(t *testing.T) {
	im := clusterImage(t)
	start := PartitionChange{TopicID: tid, Partition: 0, Replicas: []int32{2, 3, 1}, Adding: ptr([]int32{}), Removing: ptr([]int32{1})}
	data, err := EncodeBatch([]Record{start})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	im = mustApply(t, im, 30, recs...)
	p := im.Topic("sanguo").Partitions[0]
	if !reflect.DeepEqual(p.Replicas, []int32{2, 3, 1}) || p.Adding != nil || !reflect.DeepEqual(p.Removing, []int32{1}) || p.PartitionEpoch != 1 {
		t.Fatalf("started: %+v", p)
	}
	im = mustApply(t, im, 31, PartitionChange{TopicID: tid, Partition: 0, Replicas: []int32{2, 3}, ISR: []int32{2, 3},
		Leader: ptr(int32(2)), Adding: ptr([]int32{}), Removing: ptr([]int32{})})
	p = im.Topic("sanguo").Partitions[0]
	if !reflect.DeepEqual(p.Replicas, []int32{2, 3}) || p.Removing != nil || p.Leader != 2 || p.LeaderEpoch != 1 {
		t.Fatalf("completed: %+v", p)
	}
	for name, bad := range map[string]PartitionChange{
		"leader outside":     {TopicID: tid, Partition: 1, Replicas: []int32{3, 1}, ISR: []int32{3, 1}},
		"isr outside":        {TopicID: tid, Partition: 1, Replicas: []int32{2, 1}},
		"duplicate":          {TopicID: tid, Partition: 1, Replicas: []int32{2, 2, 3, 1}},
		"adding not replica": {TopicID: tid, Partition: 1, Adding: ptr([]int32{4})},
	} {
		if _, err := im.Apply(32, []Record{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: applied (%v)", name, err)
		}
	}
}
