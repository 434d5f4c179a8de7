// Package metadata is the cluster metadata that the quorum replicates: the
// record types (records.go), the immutable Image they build (image.go), and
// State, the quorum's state machine (state.go).
//
// One owner per fact: a topic's existence, id, partitions, replicas,
// leader, ISR and epochs, dynamic configs, brokers and their fencing, and
// the producer-id counter live here and nowhere else. Everything else
// (storage, the group coordinator, the handlers) reads an Image.
//
// # Record format
//
// A quorum entry holds one batch: the records of one controller decision,
// applied together or not at all.
//
//	batch  = version (1 byte, 0) | count (uvarint) | count × (length (uvarint) | record)
//	record = type (1 byte) | version (1 byte, 0) | JSON object
//
// The types, each in the role of the KRaft record of the same name:
//
//	1 RegisterBroker    id, epoch, incarnationId, listeners, rack, fenced
//	2 UnregisterBroker  id, epoch
//	3 BrokerChange      id, epoch, fenced?, inControlledShutdown?
//	4 Topic             name, id
//	5 Partition         topicId, partition, replicas, isr, leader, leaderEpoch, partitionEpoch, adding, removing, unclean
//	6 PartitionChange   topicId, partition, leader?, isr?, replicas?, adding?, removing?, unclean?
//	7 RemoveTopic       id
//	8 Config            resourceType (2 topic, 4 broker), resourceName ("" = cluster default), name, value (null deletes)
//	9 ProducerIDs       brokerId, brokerEpoch, next
//	10 FeatureLevel     name, level
//
// UUIDs are written as Kafka prints them (URL-safe base64, no padding).
// Applying a PartitionChange bumps the partition epoch, and a change of
// leader bumps the leader epoch, as in KRaft; epochs never go backwards.
//
// A snapshot is the image's offset (8 bytes, big-endian) followed by one
// batch of records that rebuild the image from empty.
package metadata
