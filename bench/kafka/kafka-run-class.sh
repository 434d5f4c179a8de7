#!/usr/bin/env bash
# Run one Kafka class with the cached 4.4 classpath, like Kafka's own
# bin/kafka-run-class.sh but without a distribution.
#
#   bench/kafka/kafka-run-class.sh CLASS [ARGS...]
#   bench/kafka/kafka-run-class.sh org.apache.kafka.tools.TopicCommand \
#       --bootstrap-server 127.0.0.1:19092 --list
#
# Classes checked present in 4.4.0:
#   org.apache.kafka.tools.TopicCommand
#   org.apache.kafka.tools.ConsoleProducer
#   org.apache.kafka.tools.consumer.ConsoleConsumer
#   org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
#   org.apache.kafka.tools.ProducerPerformance
#   org.apache.kafka.tools.ConsumerPerformance
#   org.apache.kafka.tools.EndToEndLatency
#   org.apache.kafka.tools.ConfigCommand
#   org.apache.kafka.tools.MetadataQuorumCommand
#   org.apache.kafka.tools.ClusterTool
#   org.apache.kafka.tools.LeaderElectionCommand
#   org.apache.kafka.tools.reassign.ReassignPartitionsCommand
#   kafka.tools.StorageTool                      (format, random-uuid)
#
# Environment: KAFKA_TOOL_HEAP (default -Xmx512m), KAFKA_TOOL_OPTS (more JVM
# flags; e.g. "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" halves the start-up
# of short admin commands, but keep the full JIT for performance tools).
# Logging is WARN and above on stderr; stdout is the tool's own.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# == 0)); then
	echo "usage: $0 CLASS [ARGS...]" >&2
	exit 2
fi
bash "$HERE/fetch.sh"
# shellcheck disable=SC2086 # the option variables hold several flags
exec java ${KAFKA_TOOL_HEAP:--Xmx512m} ${KAFKA_TOOL_OPTS:-} \
	-Djava.awt.headless=true \
	-Dlog4j2.configurationFile="$HERE/log4j2-tools.properties" \
	-cp "$HERE/.cache/libs/*" "$@"
