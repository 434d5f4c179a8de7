package metadata

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// RecordType names a metadata record. The numbers are Gregor's own, but
// each type has the role of the KRaft record of the same name.
type RecordType uint8

// Record types. Never renumber: they are stored in the metadata log.
const (
	TypeRegisterBroker   RecordType = 1
	TypeUnregisterBroker RecordType = 2
	TypeBrokerChange     RecordType = 3 // fencing, controlled shutdown
	TypeTopic            RecordType = 4
	TypePartition        RecordType = 5
	TypePartitionChange  RecordType = 6
	TypeRemoveTopic      RecordType = 7
	TypeConfig           RecordType = 8
	TypeProducerIDs      RecordType = 9
	TypeFeatureLevel     RecordType = 10
)

// Record is one change to the cluster metadata.
type Record interface {
	Type() RecordType
}

// Endpoint is one listener a broker advertises.
type Endpoint struct {
	Name string `json:"name"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	// SecurityProtocol is Kafka's protocol id (0 = PLAINTEXT).
	SecurityProtocol int16 `json:"securityProtocol"`
}

// RegisterBroker registers (or re-registers) a broker: KRaft's
// RegisterBrokerRecord. A new registration starts fenced; the broker
// epoch is the metadata offset of the registration.
type RegisterBroker struct {
	ID            int32      `json:"id"`
	Epoch         int64      `json:"epoch"`
	IncarnationID UUID       `json:"incarnationId"`
	Listeners     []Endpoint `json:"listeners"`
	Rack          string     `json:"rack,omitempty"`
	Fenced        bool       `json:"fenced"`
}

// UnregisterBroker removes a broker (UnregisterBroker, API 64).
type UnregisterBroker struct {
	ID    int32 `json:"id"`
	Epoch int64 `json:"epoch"`
}

// BrokerChange fences or unfences a broker, or marks its controlled
// shutdown: KRaft's BrokerRegistrationChangeRecord. Nil fields are
// unchanged.
type BrokerChange struct {
	ID                   int32 `json:"id"`
	Epoch                int64 `json:"epoch"`
	Fenced               *bool `json:"fenced,omitempty"`
	InControlledShutdown *bool `json:"inControlledShutdown,omitempty"`
}

// Topic creates a topic: KRaft's TopicRecord.
type Topic struct {
	Name string `json:"name"`
	ID   UUID   `json:"id"`
}

// Partition creates a partition, or replaces it whole: KRaft's
// PartitionRecord.
type Partition struct {
	TopicID        UUID    `json:"topicId"`
	Partition      int32   `json:"partition"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leaderEpoch"`
	PartitionEpoch int32   `json:"partitionEpoch"`
	// Adding and Removing are the replicas of a reassignment in progress.
	Adding   []int32 `json:"adding,omitempty"`
	Removing []int32 `json:"removing,omitempty"`
	// Unclean marks a leader elected from outside the ISR
	// (LeaderRecoveryState RECOVERING in Kafka).
	Unclean bool `json:"unclean,omitempty"`
}

// PartitionChange changes a partition: KRaft's PartitionChangeRecord. Nil
// fields are unchanged. Applying it bumps the partition epoch; a new
// leader also bumps the leader epoch.
type PartitionChange struct {
	TopicID   UUID     `json:"topicId"`
	Partition int32    `json:"partition"`
	Leader    *int32   `json:"leader,omitempty"`
	ISR       []int32  `json:"isr,omitempty"`
	Replicas  []int32  `json:"replicas,omitempty"`
	Adding    *[]int32 `json:"adding,omitempty"`
	Removing  *[]int32 `json:"removing,omitempty"`
	Unclean   *bool    `json:"unclean,omitempty"`
}

// RemoveTopic deletes a topic and all its partitions and configs.
type RemoveTopic struct {
	ID UUID `json:"id"`
}

// ConfigResource types, Kafka's numbering (DescribeConfigs).
const (
	ResourceTopic  int8 = 2
	ResourceBroker int8 = 4
)

// Config sets or deletes (Value nil) one dynamic config: KRaft's
// ConfigRecord. A broker resource named "" is the cluster-wide default.
type Config struct {
	ResourceType int8    `json:"resourceType"`
	ResourceName string  `json:"resourceName"`
	Name         string  `json:"name"`
	Value        *string `json:"value"`
}

// ProducerIDs hands out a block of producer ids: every id below Next is
// taken. KRaft's ProducerIdsRecord.
type ProducerIDs struct {
	BrokerID    int32 `json:"brokerId"`
	BrokerEpoch int64 `json:"brokerEpoch"`
	Next        int64 `json:"next"`
}

// FeatureLevel finalizes a feature (metadata.version, ...).
type FeatureLevel struct {
	Name  string `json:"name"`
	Level int16  `json:"level"`
}

func (RegisterBroker) Type() RecordType   { return TypeRegisterBroker }
func (UnregisterBroker) Type() RecordType { return TypeUnregisterBroker }
func (BrokerChange) Type() RecordType     { return TypeBrokerChange }
func (Topic) Type() RecordType            { return TypeTopic }
func (Partition) Type() RecordType        { return TypePartition }
func (PartitionChange) Type() RecordType  { return TypePartitionChange }
func (RemoveTopic) Type() RecordType      { return TypeRemoveTopic }
func (Config) Type() RecordType           { return TypeConfig }
func (ProducerIDs) Type() RecordType      { return TypeProducerIDs }
func (FeatureLevel) Type() RecordType     { return TypeFeatureLevel }

// recordVersion is the encoding version written for every type.
const recordVersion = 0

// batchVersion is the first byte of an encoded batch.
const batchVersion = 0

// ErrBadRecord marks bytes that are not a metadata record batch.
var ErrBadRecord = errors.New("metadata: malformed record")

// EncodeBatch encodes records that must be applied together (one
// controller decision) as one quorum entry:
//
//	batch  = version(1 byte, 0) | count (uvarint) | count × (length (uvarint) | record)
//	record = type (1 byte) | version (1 byte) | JSON object
func EncodeBatch(recs []Record) ([]byte, error) {
	buf := []byte{batchVersion}
	buf = binary.AppendUvarint(buf, uint64(len(recs)))
	for _, r := range recs {
		body, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		buf = binary.AppendUvarint(buf, uint64(len(body)+2))
		buf = append(buf, byte(r.Type()), recordVersion)
		buf = append(buf, body...)
	}
	return buf, nil
}

// DecodeBatch is EncodeBatch's inverse.
func DecodeBatch(data []byte) ([]Record, error) {
	if len(data) < 1 || data[0] != batchVersion {
		return nil, fmt.Errorf("%w: batch version", ErrBadRecord)
	}
	data = data[1:]
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)) {
		return nil, fmt.Errorf("%w: record count", ErrBadRecord)
	}
	data = data[k:]
	recs := make([]Record, 0, n)
	for i := uint64(0); i < n; i++ {
		size, k := binary.Uvarint(data)
		if k <= 0 || size < 2 || size > uint64(len(data)-k) {
			return nil, fmt.Errorf("%w: record %d length", ErrBadRecord, i)
		}
		body := data[k : k+int(size)]
		data = data[k+int(size):]
		r, err := decodeRecord(RecordType(body[0]), body[1], body[2:])
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrBadRecord, i, err)
		}
		recs = append(recs, r)
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(data))
	}
	return recs, nil
}

func decodeRecord(t RecordType, version byte, body []byte) (Record, error) {
	if version != recordVersion {
		return nil, fmt.Errorf("type %d version %d is newer than this broker", t, version)
	}
	var r Record
	var err error
	switch t {
	case TypeRegisterBroker:
		r, err = decodeJSON[RegisterBroker](body)
	case TypeUnregisterBroker:
		r, err = decodeJSON[UnregisterBroker](body)
	case TypeBrokerChange:
		r, err = decodeJSON[BrokerChange](body)
	case TypeTopic:
		r, err = decodeJSON[Topic](body)
	case TypePartition:
		r, err = decodeJSON[Partition](body)
	case TypePartitionChange:
		r, err = decodeJSON[PartitionChange](body)
	case TypeRemoveTopic:
		r, err = decodeJSON[RemoveTopic](body)
	case TypeConfig:
		r, err = decodeJSON[Config](body)
	case TypeProducerIDs:
		r, err = decodeJSON[ProducerIDs](body)
	case TypeFeatureLevel:
		r, err = decodeJSON[FeatureLevel](body)
	default:
		return nil, fmt.Errorf("unknown type %d", t)
	}
	return r, err
}

func decodeJSON[T Record](body []byte) (Record, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	return v, nil
}
