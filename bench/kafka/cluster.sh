#!/usr/bin/env bash
# A three-node Apache Kafka 4.4 cluster on 127.0.0.1 (KRaft combined mode:
# every node a broker and a controller, a static quorum of the three), built
# from kafka.sh: one kafka.sh state directory per node, one cluster id.
#
#   bench/kafka/cluster.sh start    format if new, start the three, wait until
#                                   each answers Metadata listing all three
#   bench/kafka/cluster.sh stop     SIGTERM each node, wait for the JVMs to exit
#   bench/kafka/cluster.sh status   each node's kafka.sh status
#   bench/kafka/cluster.sh reset    stop, then delete the state directories
#   bench/kafka/cluster.sh bootstrap   print the bootstrap servers
#
# Environment (defaults in brackets):
#   KAFKA_CLUSTER_PORT [19500]     node N's client listener is PORT+2(N-1), its
#                                  controller listener the next port: 19500/19501,
#                                  19502/19503, 19504/19505
#   KAFKA_CLUSTER_STATE [bench/kafka/.cache/cluster-$KAFKA_CLUSTER_PORT]
#                                  node-1/ .. node-3/ (kafka.sh's KAFKA_STATE each)
#   KAFKA_FRESH=1                  start from empty data dirs (a new cluster id)
#   KAFKA_PROPS                    extra server properties for every node, after
#                                  the cluster's own (below), as in kafka.sh
#   KAFKA_HEAP_OPTS [-Xms1g -Xmx1g] and the rest of kafka.sh's variables apply
#                                  to every node
#
# Internal topics (__consumer_offsets, transactions) get replication factor 3
# and min ISR 2; default.replication.factor and min.insync.replicas stay 1, so
# a topic's replication factor and min.insync.replicas are set when it is
# created.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH=$(cd "$HERE/.." && pwd)
BASE=${KAFKA_CLUSTER_PORT:-19500}
STATE=${KAFKA_CLUSTER_STATE:-$HERE/.cache/cluster-$BASE}
NODES=(1 2 3)
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}

log() { echo "cluster.sh: $*" >&2; }

port_of() { echo $((BASE + 2 * ($1 - 1))); }

voters() {
	local n out=""
	for n in "${NODES[@]}"; do
		out+="${out:+,}$n@127.0.0.1:$(($(port_of "$n") + 1))"
	done
	echo "$out"
}

bootstrap() {
	local n out=""
	for n in "${NODES[@]}"; do
		out+="${out:+,}127.0.0.1:$(port_of "$n")"
	done
	echo "$out"
}

CLUSTER_PROPS="offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2"

node() { # N COMMAND: kafka.sh COMMAND for node N
	local n=$1
	shift
	env KAFKA_PORT="$(port_of "$n")" KAFKA_STATE="$STATE/node-$n" KAFKA_NODE_ID="$n" \
		KAFKA_QUORUM_VOTERS="$(voters)" KAFKA_CLUSTER_ID="${CLUSTER_ID:-}" \
		KAFKA_START_TIMEOUT="$START_TIMEOUT" \
		KAFKA_PROPS="$CLUSTER_PROPS${KAFKA_PROPS:+
$KAFKA_PROPS}" bash "$HERE/kafka.sh" "$@"
}

start() {
	bash "$HERE/fetch.sh"
	if [[ "${KAFKA_FRESH:-0}" == 1 ]]; then
		local n
		for n in "${NODES[@]}"; do rm -rf "$STATE/node-$n/data"; done
	fi
	mkdir -p "$STATE"
	# One cluster id for all nodes, kept while the data dirs are.
	if [[ ! -f "$STATE/node-1/data/meta.properties" || ! -f "$STATE/cluster.id" ]]; then
		bash "$HERE/kafka-run-class.sh" kafka.tools.StorageTool random-uuid >"$STATE/cluster.id"
	fi
	CLUSTER_ID=$(cat "$STATE/cluster.id")
	# The nodes wait for each other (a quorum of voters), so they start at
	# once: each kafka.sh start waits for its own node in the background.
	local pids=() n rc=0
	for n in "${NODES[@]}"; do
		node "$n" start &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || rc=1
	done
	if ((rc != 0)); then
		log "a node did not start; stopping the others"
		stop
		return 1
	fi
	# Every node registered and unfenced: each one's Metadata lists all three.
	local deadline=$((SECONDS + START_TIMEOUT))
	for n in "${NODES[@]}"; do
		until python3 "$BENCH/probe.py" "127.0.0.1:$(port_of "$n")" 2>/dev/null | grep -q "brokers=${#NODES[@]} "; do
			if ((SECONDS >= deadline)); then
				log "node $n does not list ${#NODES[@]} brokers after ${START_TIMEOUT}s"
				stop
				return 1
			fi
			sleep 0.5
		done
	done
	log "Kafka cluster up: bootstrap $(bootstrap), state $STATE"
}

stop() {
	local n pids=() rc=0
	for n in "${NODES[@]}"; do
		node "$n" stop &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || rc=1
	done
	return $rc
}

status() {
	local n rc=0
	for n in "${NODES[@]}"; do
		echo -n "node $n: "
		node "$n" status || rc=$?
	done
	return $rc
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
bootstrap) bootstrap ;;
reset)
	stop
	rm -rf "$STATE"
	log "removed $STATE"
	;;
*)
	echo "usage: $0 start|stop|status|reset|bootstrap" >&2
	exit 2
	;;
esac
