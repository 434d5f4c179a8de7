package broker

import (
	"fmt"

	"github.com/gregorhq/gregor/internal/config"
)

// Partition limits.
//
// Every open partition holds one file descriptor per segment (the .log
// file; indexes are read into memory and closed, see storage/segment.go),
// so at least one each. The partitions live in the descriptors fdBudget
// keeps for the logs (limits.go), so the derived cap is
//
//	gregor.max.partitions = fdBudget(nofile).forLogs / fdsPerPartition
//
// with fdsPerPartition = 1, the floor: a partition with many segments
// uses more, so the derived cap is a ceiling, not a promise. An operator
// who knows better sets gregor.max.partitions (and raises the open file
// limit, as for Kafka).
const fdsPerPartition = 1

// partitionLimit returns the broker-wide partition cap and a description
// of where it comes from, for the log line at start and refusal messages.
func partitionLimit(cfg *config.Config) (int64, string) {
	if cfg.MaxPartitions > 0 {
		return int64(cfg.MaxPartitions), "set by gregor.max.partitions"
	}
	nofile := nofileLimit()
	if nofile <= 0 {
		return 0, "no limit: the open file limit is unknown"
	}
	_, forLogs := fdBudget(nofile)
	return int64(max(forLogs/fdsPerPartition, 1)), fmt.Sprintf("derived from the open file limit %d: half of it, less %d, is kept for the logs at %d descriptor per partition", nofile, fdOverhead, fdsPerPartition)
}
