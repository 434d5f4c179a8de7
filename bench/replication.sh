#!/usr/bin/env bash
# acks=all at replication factor 3 against replication factor 1, on a
# three-broker Gregor cluster and a three-broker Apache Kafka cluster (the
# release bench/kafka pins, 4.4.0; bench/kafka/cluster.sh), one after the
# other on this machine, never both at once.
#
#   bash bench/replication.sh                   # builds ./cmd/gregor; ~4 minutes
#   GREGOR_BIN=/tmp/gregor REPL_RECORDS=50000 REPL_LATENCY_SECONDS=10 bash bench/replication.sh
#
# Per round and system: a fresh three-node cluster (every node a broker and
# a KRaft/Raft controller voter, data in a temporary directory), then per
# replication factor in REPL_RFS, on a new REPL_PARTITIONS-partition topic each
# (RF 1: min.insync.replicas=1; RF > 1: min.insync.replicas=REPL_MIN_ISR),
# created once every partition has a leader and a full ISR, after an
# unrecorded warm-up (REPL_WARMUP_RECORDS records, acks=all, largest RF):
#   tput   one ProducerPerformance, acks=all, --throughput -1, REPL_RECORDS
#          records of REPL_RECORD_SIZE bytes, bootstrap all three brokers:
#          records/s, MB/s and its send-to-ack p50/p99 (whole ms)
#   e2e    bench/e2e (franz-go), acks=all, REPL_LATENCY_RATE records/s on a
#          fixed schedule for REPL_LATENCY_SECONDS, producer and consumer in
#          one process: end-to-end p50/p99 from scheduled send to consumption,
#          and the produce ack p50/p99 (microsecond resolution); its 100 ms
#          series (runs/*.series.csv: per interval of send time, p50, p99 and
#          max) gives the worst record and the number of intervals with a
#          record over 100 ms, to tell steady latency from spikes
# and, per workload, the CPU time the three brokers used (utime and stime
# from /proc) and how many ISR shrinks and expansions their logs reported. When a
# system's round ends, the sum of its three nodes' peak RSS (VmHWM). The
# 1-minute load average as each run starts is kept too (raw.csv, load1):
# the machine may be shared.
#
# What acks=all means differs, and that difference is what this measures:
# Gregor (default gregor.durability=fsync) acknowledges an acks=all produce
# once the partition's high watermark passes it, i.e. once every replica in
# the ISR (at least min.insync.replicas of them) has the records fsynced
# (followers fsync what they fetched before fetching again, and the offset
# they fetch from is what the leader counts); Kafka, by default, once every
# ISR replica has the records in its log, in the page cache, fsynced later by
# the OS. REPL_PROFILES picks the pairing (as bench/run.sh's profiles):
#   default  Kafka defaults | Gregor defaults (durability=fsync)
#   os       Kafka defaults | Gregor gregor.durability=os (no fsync: like for like)
#   fsync    Kafka log.flush.interval.messages=1 | Gregor defaults
#
# The systems take turns round by round (Kafka first in odd rounds), and the
# replication factors too (REPL_RFS order in odd rounds, reversed in even).
# The table (bench/replication_summary.py) shows the median over rounds and,
# with more than one round, the min-max range. Raw results, the table, each
# run's tool output and every node's log go to bench/results/repl-<timestamp>/.
#
# Environment (defaults in brackets):
#   REPL_RECORDS [200000]         records per ProducerPerformance run
#   REPL_WARMUP_RECORDS [100000]   records of an unrecorded acks=all warm-up run
#                                 on a fresh cluster before the measured ones (0: none)
#   REPL_RECORD_SIZE [1024]
#   REPL_PARTITIONS [6]           two leaders per broker
#   REPL_RFS ["1 3"]              replication factors to compare
#   REPL_MIN_ISR [2]              min.insync.replicas of the RF > 1 topics
#   REPL_LATENCY_RATE [2000]      records/s of the e2e runs (the same for every
#                                 system and RF, so their latencies compare)
#   REPL_LATENCY_SECONDS [30]     length of each e2e run (its first second is
#                                 warm-up, left out of the percentiles)
#   REPL_ROUNDS [1]
#   REPL_SYSTEMS ["kafka gregor"]
#   REPL_PROFILES [default]       default, os, fsync (above); several: one after another
#   REPL_WORKLOADS ["tput e2e"]
#   REPL_PRODUCER_PROPS           extra ProducerPerformance producer properties,
#                                 e.g. "batch.size=1048576 linger.ms=5"
#   REPL_KAFKA_PROPS, REPL_GREGOR_PROPS
#                                 extra server properties for every node
#                                 ("k=v k=v"), after the profile's
#   REPL_KAFKA_PORT [19500]       Kafka node N: client PORT+2(N-1), controller +1
#   REPL_GREGOR_PORT [19600]      Gregor node N: the same layout
#   KAFKA_HEAP_OPTS [-Xms1g -Xmx1g] per Kafka node
#   GREGOR_BIN                    a built broker; otherwise go build ./cmd/gregor
#   BENCH_OUT                     results directory [bench/results/repl-<timestamp>]
#
# Needs Java 17, Maven (first run), Python 3 and Go. Topics are created with
# `gregor topics --create` on both systems. Everything listens on 127.0.0.1
# only and is stopped on exit. Three brokers and the load generator share one
# machine, so the figures compare the systems and replication factors with
# each other, not with a deployment on three machines.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNCLASS=$HERE/kafka/kafka-run-class.sh
RECORDS=${REPL_RECORDS:-200000}
WARMUP_RECORDS=${REPL_WARMUP_RECORDS:-100000}
RECORD_SIZE=${REPL_RECORD_SIZE:-1024}
PARTITIONS=${REPL_PARTITIONS:-6}
RFS=${REPL_RFS:-1 3}
MIN_ISR=${REPL_MIN_ISR:-2}
LAT_RATE=${REPL_LATENCY_RATE:-2000}
LAT_SECONDS=${REPL_LATENCY_SECONDS:-30}
ROUNDS=${REPL_ROUNDS:-1}
SYSTEMS=${REPL_SYSTEMS:-kafka gregor}
PROFILES=${REPL_PROFILES:-default}
WORKLOADS=${REPL_WORKLOADS:-tput e2e}
PRODUCER_PROPS=${REPL_PRODUCER_PROPS:-}
KBASE=${REPL_KAFKA_PORT:-19500}
GBASE=${REPL_GREGOR_PORT:-19600}
OUT=${BENCH_OUT:-$ROOT/bench/results/repl-$(date -u +%Y%m%dT%H%M%SZ)}
RUN_TIMEOUT=600
NODES=(1 2 3)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-repl.XXXXXX")
GREGOR_PIDS=()
KAFKA_UP=
CLK_TCK=$(getconf CLK_TCK)

log() { echo "repl: $*" >&2; }

for p in $PROFILES; do
	case $p in default | os | fsync) ;; *)
		log "unknown profile $p"
		exit 2
		;;
	esac
done
for w in $WORKLOADS; do
	case $w in tput | e2e) ;; *)
		log "unknown workload $w"
		exit 2
		;;
	esac
done

kafka_cluster() { # COMMAND [ENV...]: bench/kafka/cluster.sh COMMAND on the benchmark's cluster
	local cmd=$1
	shift
	env KAFKA_CLUSTER_PORT="$KBASE" KAFKA_CLUSTER_STATE="$WORK/kafka" "$@" bash "$HERE/kafka/cluster.sh" "$cmd"
}

bootstrap_of() {
	local base n out=""
	if [[ $1 == kafka ]]; then base=$KBASE; else base=$GBASE; fi
	for n in "${NODES[@]}"; do out+="${out:+,}127.0.0.1:$((base + 2 * (n - 1)))"; done
	echo "$out"
}

# pids_of SYSTEM: the three brokers' process ids.
pids_of() {
	local n
	if [[ $1 == kafka ]]; then
		for n in "${NODES[@]}"; do cat "$WORK/kafka/node-$n/kafka.pid" 2>/dev/null; done
	else
		printf '%s\n' "${GREGOR_PIDS[@]}"
	fi
}

# cpu_ticks SYSTEM: "UTIME STIME" of the three brokers, in clock ticks.
cpu_ticks() {
	local pid u=0 k=0 t
	for pid in $(pids_of "$1"); do
		# Fields after the command name's closing parenthesis: utime is the 12th, stime the 13th.
		t=$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12, $13}')
		[[ -n "$t" ]] || continue
		u=$((u + ${t% *}))
		k=$((k + ${t#* }))
	done
	echo "$u $k"
}

# node_logs SYSTEM: the brokers' log files.
node_logs() {
	local n
	for n in "${NODES[@]}"; do
		if [[ $1 == kafka ]]; then echo "$WORK/kafka/node-$n/server.log"; else echo "$OUT/$CUR_LOGPREFIX-node-$n.log"; fi
	done
}

# isr_events SYSTEM: "SHRINKS EXPANDS" reported by the brokers' logs so far.
isr_events() {
	local shrink expand
	if [[ $1 == kafka ]]; then
		shrink='Shrinking ISR from'
		expand='Expanding ISR from'
	else
		shrink='removing them from the ISR'
		expand='adding it to the ISR'
	fi
	# shellcheck disable=SC2046 # one file per line, no spaces in the paths
	echo "$(cat $(node_logs "$1") 2>/dev/null | grep -c "$shrink") $(cat $(node_logs "$1") 2>/dev/null | grep -c "$expand")"
}

stop_gregor() {
	local pid
	((${#GREGOR_PIDS[@]})) || return 0
	for pid in "${GREGOR_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${GREGOR_PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "gregor pid $pid still running 20s after SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	GREGOR_PIDS=()
}

stop_kafka() {
	[[ -n "$KAFKA_UP" ]] || return 0
	kafka_cluster stop
	KAFKA_UP=
}

cleanup() {
	stop_gregor
	stop_kafka
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup

mkdir -p "$OUT/runs"
bash "$HERE/kafka/fetch.sh" || exit 1
if [[ -n "${GREGOR_BIN:-}" ]]; then
	BIN=$GREGOR_BIN
else
	BIN=$WORK/gregor
	log "building gregor"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/gregor) || exit 1
fi
(cd "$ROOT" && go build -o "$WORK/e2e" ./bench/e2e) || exit 1
KAFKA_VERSION=$(cat "$HERE/kafka/.cache/libs/.version")
GREGOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n "$(git -C "$ROOT" status --porcelain -- cmd internal gregor.go go.mod go.sum 2>/dev/null)" ]]; then
	GREGOR_REV="$GREGOR_REV+dirty"
fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "command: REPL_RECORDS=$RECORDS REPL_WARMUP_RECORDS=$WARMUP_RECORDS REPL_RECORD_SIZE=$RECORD_SIZE REPL_PARTITIONS=$PARTITIONS REPL_RFS=\"$RFS\" REPL_MIN_ISR=$MIN_ISR REPL_LATENCY_RATE=$LAT_RATE REPL_LATENCY_SECONDS=$LAT_SECONDS REPL_ROUNDS=$ROUNDS REPL_SYSTEMS=\"$SYSTEMS\" REPL_PROFILES=\"$PROFILES\" REPL_WORKLOADS=\"$WORKLOADS\"${PRODUCER_PROPS:+ REPL_PRODUCER_PROPS=\"$PRODUCER_PROPS\"}${REPL_KAFKA_PROPS:+ REPL_KAFKA_PROPS=\"$REPL_KAFKA_PROPS\"}${REPL_GREGOR_PROPS:+ REPL_GREGOR_PROPS=\"$REPL_GREGOR_PROPS\"} bash bench/replication.sh"
	echo "kafka: $KAFKA_VERSION (KRaft combined mode, 3 nodes, ${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g} each, G1)"
	echo "gregor: $GREGOR_REV ($BIN), 3 nodes, combined mode"
	echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), $(java -version 2>&1 | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "records: $RECORDS x $RECORD_SIZE B per throughput run; e2e $LAT_RATE/s for ${LAT_SECONDS}s; $PARTITIONS partitions; RF $RFS (min.insync.replicas $MIN_ISR above RF 1); $ROUNDS rounds"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2
echo "profile,system,rf,workload,round,metric,value,status" >"$OUT/raw.csv"

record() { # PROFILE SYSTEM RF WORKLOAD ROUND METRIC VALUE
	echo "$1,$2,$3,$4,$5,$6,$7,ok" >>"$OUT/raw.csv"
}
failed() { # PROFILE SYSTEM RF WORKLOAD ROUND WHY LOGFILE
	echo "$1,$2,$3,$4,$5,,,$6" >>"$OUT/raw.csv"
	log "$1 $2 RF $3 $4 round $5: FAILED ($6; see $7)"
}

# start_kafka PROFILE ROUND
start_kafka() {
	local props=""
	[[ $1 == fsync ]] && props="log.flush.interval.messages=1"
	props+="${REPL_KAFKA_PROPS:+ $REPL_KAFKA_PROPS}"
	rm -rf "$WORK/kafka"
	KAFKA_UP=1
	kafka_cluster start KAFKA_FRESH=1 KAFKA_PROPS="$props" || return 1
}

# start_gregor PROFILE ROUND: three nodes formatted with one cluster id.
start_gregor() {
	local profile=$1 n port voters="" id props
	rm -rf "$WORK/gregor"
	mkdir -p "$WORK/gregor"
	for n in "${NODES[@]}"; do voters+="${voters:+,}$n@127.0.0.1:$((GBASE + 2 * (n - 1) + 1))"; done
	id=$("$BIN" storage random-uuid) || return 1
	for n in "${NODES[@]}"; do
		port=$((GBASE + 2 * (n - 1)))
		props=$WORK/gregor/server-$n.properties
		cat >"$props" <<PROPS
# Generated by bench/replication.sh (as config/cluster/server-$n.properties, other ports and dirs).
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$WORK/gregor/node-$n
group.initial.rebalance.delay.ms=0
PROPS
		[[ $profile == os ]] && echo "gregor.durability=os" >>"$props"
		if [[ -n "${REPL_GREGOR_PROPS:-}" ]]; then
			tr ' ' '\n' <<<"$REPL_GREGOR_PROPS" | sed '/^$/d' >>"$props"
		fi
		cp "$props" "$OUT/$CUR_LOGPREFIX-server-$n.properties"
		"$BIN" storage format -t "$id" -c "$props" >>"$OUT/$CUR_LOGPREFIX-node-$n.log" 2>&1 || return 1
	done
	for n in "${NODES[@]}"; do
		"$BIN" serve --config "$WORK/gregor/server-$n.properties" --http-addr off \
			>>"$OUT/$CUR_LOGPREFIX-node-$n.log" 2>&1 &
		GREGOR_PIDS+=($!)
	done
	local deadline=$((SECONDS + 60))
	for n in "${NODES[@]}"; do
		port=$((GBASE + 2 * (n - 1)))
		until python3 "$HERE/probe.py" "127.0.0.1:$port" 2>/dev/null | grep -q "brokers=${#NODES[@]} "; do
			if ((SECONDS >= deadline)); then
				log "gregor node $n (127.0.0.1:$port) does not list ${#NODES[@]} brokers after 60s; see $OUT/$CUR_LOGPREFIX-node-$n.log"
				return 1
			fi
			sleep 0.2
		done
	done
	log "gregor cluster up: pids ${GREGOR_PIDS[*]}, bootstrap $(bootstrap_of gregor)${profile/#default/}"
}

# create_topic BOOTSTRAP TOPIC RF: create it, then wait until every
# partition has a leader and RF replicas in its ISR.
create_topic() {
	local bs=$1 t=$2 rf=$3 misr=1 deadline=$((SECONDS + 60)) desc
	((rf > 1)) && misr=$MIN_ISR
	timeout -k 5 60 "$BIN" topics --bootstrap-server "$bs" --create --topic "$t" \
		--partitions "$PARTITIONS" --replication-factor "$rf" --config "min.insync.replicas=$misr" || return 1
	while ((SECONDS < deadline)); do
		desc=$(timeout -k 5 30 "$BIN" topics --bootstrap-server "$bs" --describe --topic "$t" 2>/dev/null)
		if python3 -c '
import re, sys
rf, parts = int(sys.argv[1]), int(sys.argv[2])
ok = 0
for line in sys.stdin:
    m = re.search(r"Partition: \d+\s+Leader: (-?\d+)\s+Replicas: (\S+)\s+Isr: (\S+)", line)
    if m and int(m.group(1)) >= 0 and len(m.group(3).split(",")) == rf:
        ok += 1
sys.exit(0 if ok == parts else 1)' "$rf" "$PARTITIONS" <<<"$desc"; then
			echo "$desc"
			return 0
		fi
		sleep 0.2
	done
	echo "$desc"
	echo "topic $t: not every partition has a leader and $rf in-sync replicas after 60s" >&2
	return 1
}

# perf_row LINE: ProducerPerformance's final line as "N R M A P50 P99 X".
perf_row() {
	sed -nE 's/^([0-9]+) records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, ([0-9]+) ms 50th, [0-9]+ ms 95th, ([0-9]+) ms 99th.*/\1 \2 \3 \4 \6 \7 \5/p' <<<"$1"
}

# workload PROFILE SYSTEM RF WORKLOAD ROUND
workload() {
	local profile=$1 sys=$2 rf=$3 w=$4 round=$5 bs t out rc
	bs=$(bootstrap_of "$sys")
	t="repl-$profile-$w-rf$rf-r$round"
	local log_file="$OUT/runs/$profile-$sys-rf$rf-$w-r$round.log"
	if ! create_topic "$bs" "$t" "$rf" >"$log_file" 2>&1; then
		failed "$profile" "$sys" "$rf" "$w" "$round" create-failed "$log_file"
		return 0
	fi
	local ev0 cpu0 t0 ev1 cpu1 t1
	record "$profile" "$sys" "$rf" "$w" "$round" load1 "$(cut -d' ' -f1 /proc/loadavg)"
	ev0=$(isr_events "$sys")
	cpu0=$(cpu_ticks "$sys")
	t0=$(date +%s.%N)
	case $w in
	tput)
		# shellcheck disable=SC2086 # the extra properties are separate words
		out=$(timeout -k 10 "$RUN_TIMEOUT" bash "$RUNCLASS" org.apache.kafka.tools.ProducerPerformance \
			--topic "$t" --num-records "$RECORDS" --record-size "$RECORD_SIZE" --throughput -1 \
			--producer-props bootstrap.servers="$bs" acks=all $PRODUCER_PROPS 2>>"$log_file")
		rc=$?
		printf '%s\n' "$out" >>"$log_file"
		local n rate mb avg p50 p99 max
		read -r n rate mb avg p50 p99 max <<<"$(perf_row "$(tail -n 1 <<<"$out")")"
		if ((rc != 0)) || [[ "${n:-}" != "$RECORDS" ]] || grep -q ERROR "$log_file"; then
			failed "$profile" "$sys" "$rf" "$w" "$round" "exit-$rc" "$log_file"
			return 0
		fi
		record "$profile" "$sys" "$rf" "$w" "$round" rec_s "$rate"
		record "$profile" "$sys" "$rf" "$w" "$round" mb_s "$mb"
		record "$profile" "$sys" "$rf" "$w" "$round" avg_ms "$avg"
		record "$profile" "$sys" "$rf" "$w" "$round" p50_ms "$p50"
		record "$profile" "$sys" "$rf" "$w" "$round" p99_ms "$p99"
		record "$profile" "$sys" "$rf" "$w" "$round" max_ms "$max"
		;;
	e2e)
		local series="$OUT/runs/$profile-$sys-rf$rf-$w-r$round.series.csv"
		out=$(timeout -k 10 "$RUN_TIMEOUT" "$WORK/e2e" -brokers "$bs" -topic "$t" -rate "$LAT_RATE" \
			-duration "${LAT_SECONDS}s" -size "$RECORD_SIZE" -acks all -series "$series" 2>>"$log_file")
		rc=$?
		printf '%s\n' "$out" >>"$log_file"
		local row p50 p99 avg ap50 ap99
		row=$(sed -nE 's/^e2e: .*end-to-end p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, avg ([0-9.]+) ms; produce ack p50 ([0-9.]+) ms, p99 ([0-9.]+) ms$/\1 \2 \3 \4 \5/p' <<<"$out")
		if ((rc != 0)) || [[ -z "$row" ]]; then
			failed "$profile" "$sys" "$rf" "$w" "$round" "exit-$rc" "$log_file"
			return 0
		fi
		read -r p50 p99 avg ap50 ap99 <<<"$row"
		record "$profile" "$sys" "$rf" "$w" "$round" rate "$LAT_RATE"
		record "$profile" "$sys" "$rf" "$w" "$round" p50_ms "$p50"
		record "$profile" "$sys" "$rf" "$w" "$round" p99_ms "$p99"
		record "$profile" "$sys" "$rf" "$w" "$round" avg_ms "$avg"
		record "$profile" "$sys" "$rf" "$w" "$round" ack_p50_ms "$ap50"
		record "$profile" "$sys" "$rf" "$w" "$round" ack_p99_ms "$ap99"
		# From the 100 ms series (warm-up second left out): the worst record,
		# and how many intervals had a record slower than 100 ms.
		local spikes
		spikes=$(awk -F, 'NR > 1 && $1 >= 1000 { if ($5 > m) m = $5; if ($5 >= 100) n++ } END { printf "%.3f %d", m, n }' "$series")
		record "$profile" "$sys" "$rf" "$w" "$round" max_ms "${spikes% *}"
		record "$profile" "$sys" "$rf" "$w" "$round" slow_intervals "${spikes#* }"
		out+=" (max ${spikes% *} ms; ${spikes#* } of the 100 ms intervals had a record over 100 ms)"
		;;
	esac
	t1=$(date +%s.%N)
	cpu1=$(cpu_ticks "$sys")
	ev1=$(isr_events "$sys")
	local secs cpu usr kern
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	usr=$(awk -v a="${cpu0% *}" -v b="${cpu1% *}" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')
	kern=$(awk -v a="${cpu0#* }" -v b="${cpu1#* }" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')
	cpu=$(awk -v a="$usr" -v b="$kern" 'BEGIN {printf "%.2f", a + b}')
	record "$profile" "$sys" "$rf" "$w" "$round" wall_s "$secs"
	record "$profile" "$sys" "$rf" "$w" "$round" cpu_s "$cpu"
	record "$profile" "$sys" "$rf" "$w" "$round" cpu_user_s "$usr"
	record "$profile" "$sys" "$rf" "$w" "$round" cpu_sys_s "$kern"
	record "$profile" "$sys" "$rf" "$w" "$round" isr_shrinks "$((${ev1% *} - ${ev0% *}))"
	record "$profile" "$sys" "$rf" "$w" "$round" isr_expands "$((${ev1#* } - ${ev0#* }))"
	# The ISR as the run left it.
	timeout -k 5 30 "$BIN" topics --bootstrap-server "$bs" --describe --topic "$t" >>"$log_file" 2>&1
	log "$profile $sys RF $rf $w round $round: $(tail -n 1 <<<"$out" | sed 's/^e2e: //'); brokers' CPU ${cpu}s (${usr}s user, ${kern}s system) in ${secs}s; ISR shrinks $((${ev1% *} - ${ev0% *})), expansions $((${ev1#* } - ${ev0#* }))"
}

# warmup PROFILE SYSTEM ROUND: an unrecorded acks=all ProducerPerformance
# on an RF 3 topic (or the largest RF), so that neither system's first
# measured run pays for its start (Kafka's JIT above all).
warmup() {
	((WARMUP_RECORDS > 0)) || return 0
	local bs rf t log_file="$OUT/runs/$1-$2-warmup-r$3.log"
	bs=$(bootstrap_of "$2")
	rf=$(tr ' ' '\n' <<<"$RFS" | sed '/^$/d' | sort -n | tail -n 1)
	t="repl-$1-warmup-r$3"
	create_topic "$bs" "$t" "$rf" >"$log_file" 2>&1 || return 0
	# shellcheck disable=SC2086 # the extra properties are separate words
	timeout -k 10 "$RUN_TIMEOUT" bash "$RUNCLASS" org.apache.kafka.tools.ProducerPerformance \
		--topic "$t" --num-records "$WARMUP_RECORDS" --record-size "$RECORD_SIZE" --throughput -1 \
		--producer-props bootstrap.servers="$bs" acks=all $PRODUCER_PROPS >>"$log_file" 2>&1
	log "$1 $2 warm-up round $3: $(tail -n 1 "$log_file")"
}

# rss PROFILE SYSTEM ROUND: the sum and the largest of the nodes' VmHWM.
rss() {
	local pid sum=0 top=0 v
	for pid in $(pids_of "$2"); do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		[[ -n "$v" ]] || continue
		sum=$((sum + v))
		((v > top)) && top=$v
	done
	record "$1" "$2" all rss "$3" hwm_sum_mib "$(awk -v k="$sum" 'BEGIN {printf "%.1f", k / 1024}')"
	record "$1" "$2" all rss "$3" hwm_max_mib "$(awk -v k="$top" 'BEGIN {printf "%.1f", k / 1024}')"
}

# ------------------------------------------------------------------ run

started=$SECONDS
for profile in $PROFILES; do
	for ((round = 1; round <= ROUNDS; round++)); do
		order=$SYSTEMS rforder=$RFS
		if ((round % 2 == 0)); then
			order=$(tr ' ' '\n' <<<"$SYSTEMS" | sed '/^$/d' | tac | tr '\n' ' ')
			rforder=$(tr ' ' '\n' <<<"$RFS" | sed '/^$/d' | tac | tr '\n' ' ')
		fi
		for sys in $order; do
			log "== profile $profile, round $round: $sys"
			CUR_LOGPREFIX="$sys-$profile-r$round"
			if [[ $sys == kafka ]]; then
				start_kafka "$profile" "$round"
			else
				start_gregor "$profile" "$round"
			fi
			# shellcheck disable=SC2181 # the start function's status
			if (($? != 0)); then
				log "$sys did not start; skipped"
				failed "$profile" "$sys" all start "$round" start-failed "$OUT"
				stop_gregor
				stop_kafka
				continue
			fi
			warmup "$profile" "$sys" "$round"
			for rf in $rforder; do
				for w in $WORKLOADS; do
					workload "$profile" "$sys" "$rf" "$w" "$round"
				done
			done
			rss "$profile" "$sys" "$round"
			if [[ $sys == kafka ]]; then
				stop_kafka
				for n in "${NODES[@]}"; do cp "$WORK/kafka/node-$n/server.log" "$OUT/$CUR_LOGPREFIX-node-$n.log" 2>/dev/null; done
			else
				stop_gregor
			fi
		done
	done
done
log "finished in $((SECONDS - started))s"
echo "duration: $((SECONDS - started))s" >>"$OUT/env.txt"

python3 "$HERE/replication_summary.py" "$OUT/raw.csv" | tee "$OUT/summary.txt"
log "results in $OUT"
