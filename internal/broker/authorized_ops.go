package broker

// Authorized operations (KIP-430): Metadata v8+, DescribeGroups v3+ and
// DescribeCluster ask for them with an include flag; DescribeTopicPartitions
// always gets them. Gregor has no authorizer, and Kafka without one answers
// with every operation its ACLs support for the resource type, as a bit field
// of AclOperation codes (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7,
// DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
// IDEMPOTENT_WRITE 12). Not asked for, the field keeps the schema default,
// authorizedOpsUnknown. The sets are Apache Kafka 4.1's.
const (
	authorizedOpsTopic   = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11 // 3576
	authorizedOpsGroup   = 1<<3 | 1<<6 | 1<<8 | 1<<10 | 1<<11                      // 3400
	authorizedOpsCluster = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12       // 8096
)
