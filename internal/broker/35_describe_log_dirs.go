package broker

// DescribeLogDirs (key 35), versions 0-4.
//
// One log dir (the first of log.dirs) with the size of each requested
// partition (all when topics is null), and from v4 the volume's total and
// usable bytes. An offline log dir answers KAFKA_STORAGE_ERROR.

import (
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(35, 0, 4, handleDescribeLogDirs)
}

func handleDescribeLogDirs(c *conn, v int16, req *kmsg.DescribeLogDirsRequest) *kmsg.DescribeLogDirsResponse {
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.dataDir
	if b.store.Failure() != nil {
		dir.ErrorCode = kerr.KafkaStorageError.Code // offline, as Kafka reports it
	}
	dir.TotalBytes, dir.UsableBytes = -1, -1
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dataDir, &st); err == nil {
		dir.TotalBytes = int64(st.Blocks) * st.Bsize
		dir.UsableBytes = int64(st.Bavail) * st.Bsize
	}
	byTopic := map[string]*kmsg.DescribeLogDirsResponseDirTopic{}
	var order []string
	add := func(name string, p int32) {
		l := b.store.Get(name, p)
		if l == nil {
			return
		}
		dt := byTopic[name]
		if dt == nil {
			t := kmsg.NewDescribeLogDirsResponseDirTopic()
			t.Topic = name
			dt = &t
			byTopic[name] = dt
			order = append(order, name)
		}
		dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		dp.Partition = p
		dp.Size = l.Size()
		dt.Partitions = append(dt.Partitions, dp)
	}
	if req.Topics == nil {
		for _, t := range b.catalog.all() {
			for p := int32(0); p < t.Partitions; p++ {
				add(t.Name, p)
			}
		}
	} else {
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				add(rt.Topic, p)
			}
		}
	}
	for _, name := range order {
		dir.Topics = append(dir.Topics, *byTopic[name])
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return resp
}
