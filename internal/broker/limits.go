package broker

import (
	"fmt"

	"github.com/gregorhq/gregor/internal/config"
)

// Partition limits.
//
// Every open partition holds one file descriptor per segment (the .log
// file; indexes are read into memory and closed, see storage/segment.go),
// so at least one each. The network side keeps max(1024, nofile/4)
// descriptors out of reach of connections (it caps them at nofile minus
// that reserve); partitions live in that reserve, less 64 for the log
// dir, checkpoints, listeners and the like:
//
//	gregor.max.partitions = (max(1024, nofile/4) - 64) / fdsPerPartition
//
// with fdsPerPartition = 1, the floor: a partition with many segments
// uses more, so the derived cap is a ceiling, not a promise. An operator
// who knows better sets gregor.max.partitions.
const (
	fdsPerPartition    = 1
	fdReserveFloor     = 1024
	fdReserveOverheads = 64
)

// partitionLimit returns the broker-wide partition cap and a description
// of where it comes from, for the log line at start and refusal messages.
func partitionLimit(cfg *config.Config) (int64, string) {
	if cfg.MaxPartitions > 0 {
		return int64(cfg.MaxPartitions), "set by gregor.max.partitions"
	}
	nofile := openFileLimit()
	if nofile == 0 {
		return 0, "no limit: the open file limit is unknown"
	}
	return derivedPartitionLimit(nofile), fmt.Sprintf("derived from the open file limit %d as (max(1024, nofile/4) - 64) / %d", nofile, fdsPerPartition)
}

func derivedPartitionLimit(nofile uint64) int64 {
	reserve := max(uint64(fdReserveFloor), nofile/4)
	return max(int64(reserve)-fdReserveOverheads, 1) / fdsPerPartition
}
