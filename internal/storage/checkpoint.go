package storage

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kafka's text files: offset checkpoints, leader-epoch-checkpoint and
// partition.metadata. Formats in doc.go.

const (
	recoveryPointFile   = "recovery-point-offset-checkpoint"
	logStartOffsetFile  = "log-start-offset-checkpoint"
	replicationFile     = "replication-offset-checkpoint"
	cleanShutdownFile   = ".kafka_cleanshutdown"
	leaderEpochFile     = "leader-epoch-checkpoint"
	partitionMetaFile   = "partition.metadata"
	checkpointVersion   = 0
	partitionMetaPrefix = "topic_id: "
)

type topicPartition struct {
	topic     string
	partition int32
}

// encodeOffsets renders "0\n<count>\n<topic> <partition> <offset>\n...",
// sorted so the file is stable.
func encodeOffsets(m map[topicPartition]int64) []byte {
	keys := make([]topicPartition, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d %d\n", k.topic, k.partition, m[k])
	}
	return b.Bytes()
}

// parseCheckpoint reads Kafka's checkpoint framing and hands each entry line
// (already split into fields) to fn.
func parseCheckpoint(data []byte, fields int, fn func([]string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := func() (string, bool) {
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				return t, true
			}
		}
		return "", false
	}
	v, ok := line()
	if !ok {
		return fmt.Errorf("empty checkpoint")
	}
	if v != strconv.Itoa(checkpointVersion) {
		return fmt.Errorf("checkpoint version %q", v)
	}
	c, ok := line()
	if !ok {
		return fmt.Errorf("checkpoint without a count")
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return fmt.Errorf("checkpoint count %q", c)
	}
	for i := 0; i < n; i++ {
		l, ok := line()
		if !ok {
			return fmt.Errorf("checkpoint has %d of %d entries", i, n)
		}
		f := strings.Fields(l)
		if len(f) != fields {
			return fmt.Errorf("checkpoint entry %q", l)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return sc.Err()
}

func decodeOffsets(data []byte) (map[topicPartition]int64, error) {
	m := make(map[topicPartition]int64)
	err := parseCheckpoint(data, 3, func(f []string) error {
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		o, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("checkpoint entry %q", strings.Join(f, " "))
		}
		m[topicPartition{f[0], int32(p)}] = o
		return nil
	})
	return m, err
}

// formatTopicID renders a topic id like Kafka's Uuid.toString: URL-safe
// base64 without padding.
func formatTopicID(id [16]byte) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

func parseTopicID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

func encodePartitionMetadata(id [16]byte) []byte {
	return fmt.Appendf(nil, "version: 0\n%s%s\n", partitionMetaPrefix, formatTopicID(id))
}

func decodePartitionMetadata(data []byte) ([16]byte, error) {
	var id [16]byte
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "version: 0" {
		return id, fmt.Errorf("partition.metadata: unexpected content %q", data)
	}
	l := strings.TrimSpace(lines[1])
	if !strings.HasPrefix(l, "topic_id:") {
		return id, fmt.Errorf("partition.metadata: no topic_id in %q", data)
	}
	return parseTopicID(strings.TrimSpace(strings.TrimPrefix(l, "topic_id:")))
}
