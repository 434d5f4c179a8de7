#!/usr/bin/env bash
# Gregor against Apache Kafka (the release bench/kafka pins, 4.4.0), side by side on this machine, with Kafka's
# own load generators (ProducerPerformance, ConsumerPerformance,
# EndToEndLatency) and small franz-go programs (bench/load,
# bench/startup).
#
#   bash bench/run.sh                          # builds ./cmd/gregor; ~20 minutes
#   GREGOR_BIN=/tmp/gregor BENCH_RECORDS=20000 BENCH_ROUNDS=3 bash bench/run.sh
#
# Two durability profiles, each with both brokers started fresh:
#   os     Kafka's defaults (the OS flushes the page cache when it likes)
#          against Gregor with gregor.durability=os: the like-for-like row.
#   fsync  Kafka with log.flush.interval.messages=1 (fsync after every
#          append) against Gregor's default (gregor.durability=fsync).
#
# Per profile, on a fresh PARTITIONS-partition topic per run, RECORD_SIZE-byte
# records. First the throughput phase, BENCH_ROUNDS rounds of:
#   acks1 acks1-batch1m acksall acksall-batch1m
#                one ProducerPerformance, --throughput -1, acks=1 or all, the
#                producer's default batching or batch.size=1048576 linger.ms=5
#   acks1-x4 acks1-batch1m-x4 acksall-x4 acksall-batch1m-x4
#                the same with four ProducerPerformance processes at once on
#                one topic, BENCH_X4_RECORDS records each: "MB/s sum" adds
#                their own rates; "MB/s wall" divides all bytes by the union of
#                their sending windows (each one's end minus records/rate), so
#                producers whose JVMs started late do not inflate it; p99 is
#                the worst of the four
#   consume      ConsumerPerformance over the round's acks1 topic (its fetch
#                rate, which leaves out the group join)
#   go-acks1 go-acksall
#                bench/load (franz-go, a fraction of the Java tools' CPU per
#                byte): BENCH_GO_PRODUCERS
#                producers writing BENCH_GO_RECORDS records (or for
#                BENCH_GO_SECONDS if that is 0), acks=1 (5 requests in flight)
#                or acks=all (idempotent), batch 1 MiB, linger 5 ms. Besides
#                MB/s and ack p99 it records the broker's CPU (utime+stime of
#                its process, for Kafka its JVM) per GiB of record values, and
#                bench/load's own: CPU per GiB is the figure that holds still
#                on a busy machine
#   go-acks1-raw go-acksall-raw
#                the same with bench/load's raw producer (-mode produce-raw:
#                batches built before the clock starts and sent again, one
#                connection per producer, 5 requests in flight, each with a
#                1 MiB batch for every partition), which needs a third of
#                franz-go's CPU per byte and less than either broker, so the
#                broker sets the pace
#   go-consume   bench/load, BENCH_GO_CONSUMERS consumers (no group) reading the
#                round's go-acks1 topic to its end: MB/s and CPU per GiB
#   go-consume-raw  the same with bench/load's raw client (-mode consume-raw:
#                one connection per consumer, Fetch requests, every answer read
#                into one buffer, batch headers walked, no record decoding),
#                the cheapest client, so the broker and the kernel set the
#                pace; it reads the topic BENCH_RAW_PASSES times over, since
#                one pass of a cached topic takes under a second
#   ceiling      the machine's own limits, no broker, once per round of the
#                profile, for BENCH_GO_SECONDS each (the write stops sooner at
#                a produce run's bytes) (bench/ceiling): a cached
#                1 GiB file sent over loopback TCP with sendfile to another
#                process, 16 MiB answers to its asks on BENCH_GO_CONSUMERS
#                connections at once (consume's
#                ceiling) and 1 MiB writes appending to new files in the work
#                dir through the page cache (produce's ceiling with
#                durability=os); the summary shows the go-* rows' MB/s as a
#                share of them
# Then the latency phase, at a fixed rate of half of Kafka's maximum: the
# median records/s Kafka reached in this invocation's acks1 / acksall
# single-producer runs of the same profile (BENCH_LATENCY_RATE overrides):
#   lat-pp-acks1 lat-pp-acksall
#                ProducerPerformance --throughput RATE for BENCH_LATENCY_SECONDS:
#                the producer's send-to-ack latency (whole ms, as it prints)
#   lat-go-acks1 lat-go-acksall
#                bench/load -mode e2e (franz-go): a producer at RATE on a fixed
#                schedule and a consumer in one process; end-to-end latency
#                from scheduled send to consumption, in microseconds
#   lat-e2e-acks1 lat-e2e-acksall
#                Kafka's EndToEndLatency, BENCH_E2E_MESSAGES messages: it sends
#                one record and polls it back before the next, so it cannot run
#                at a fixed rate; its own p50/p99 of those round trips (whole ms)
# At the end of a profile, each broker's peak RSS (VmHWM in /proc/PID/status;
# for Kafka, its JVM) after everything that profile ran.
# Finally (workload "startup"), BENCH_STARTUP_RUNS cold starts per broker,
# alternating, with bench/startup: the time from launching the process to the
# first acknowledged acks=all produce. Kafka: the JVM launched on storage
# formatted beforehand (untimed), default profile; Gregor: `gregor serve` on
# an empty directory, default durability.
#
# Within each phase the brokers take turns run by run (Kafka, Gregor, Kafka,
# ...), and which goes first alternates by round, so drift in machine load
# hits both alike. The table shows medians over the rounds, the min-max range,
# the Gregor/Kafka ratio of the medians and which broker the medians favour
# ("?" when the two ranges overlap). Raw results, the table and the broker
# logs go to bench/results/<timestamp>/.
#
# Environment (defaults in brackets):
#   BENCH_RECORDS [50000]        records per single-producer run
#   BENCH_X4_RECORDS [RECORDS/2] records per producer in the x4 runs
#   BENCH_ROUNDS [3]             runs per broker and workload
#   BENCH_PROFILES ["os fsync"]
#   BENCH_WORKLOADS              names to run [all but the lat-*-acks1 ones]:
#                                acks1 acks1-batch1m acksall
#                                acksall-batch1m acks1-x4 acksall-x4
#                                acks1-batch1m-x4 acksall-batch1m-x4 consume
#                                go-acks1 go-acksall go-consume
#                                lat-pp-acks1 lat-pp-acksall lat-go-acks1
#                                lat-go-acksall lat-e2e-acks1 lat-e2e-acksall
#                                startup
#   BENCH_LATENCY_SECONDS [6]    length of each fixed-rate run
#   BENCH_LATENCY_RATE           records/s for the fixed-rate runs, instead of
#                                half of Kafka's measured maximum
#   BENCH_E2E_MESSAGES [1000]    round trips per EndToEndLatency run
#   BENCH_DROP_CACHES [auto]     1: drop the page cache before each broker's
#                                go-acks* run and the write ceiling (settle()), so
#                                every broker writes into the same memory
#                                state; auto: 1 when it can (root)
#   BENCH_PAGE_REPORTING [auto]  defer: while the harness runs, keep freed
#                                memory in the VM instead of handing it back
#                                to the host at once (the guest's free page
#                                reporting, /sys/module/page_reporting), and
#                                have settle() leave a pool of freed pages
#                                for the next run; leave: the machine as it
#                                is; auto: defer when it can (see settle())
#   BENCH_GO_RECORDS [3000000]   records of each go-acks* run (bounded, as
#                                a round's topics stay on disk until its
#                                go-consume; then they are deleted)
#   BENCH_GO_SECONDS [10]        length of each go-acks* run when
#                                BENCH_GO_RECORDS is 0, and of the ceilings
#   BENCH_GO_PRODUCERS [4], BENCH_GO_CONSUMERS [2]
#   BENCH_RAW_PASSES [4]         times go-consume-raw reads its topic
#                                bench/load clients (each its own connections)
#   BENCH_GO_ARGS                more bench/load flags for the go-* runs, e.g.
#                                "-compression lz4 -buffer-bytes 4194304"
#   BENCH_STARTUP_RUNS [3]       cold starts per broker
#   BENCH_PARTITIONS [8], BENCH_RECORD_SIZE [1024]
#   BENCH_KAFKA_PORT [19192]     (and +1 for its controller), BENCH_GREGOR_PORT [19292],
#   BENCH_STARTUP_PORT [19392]   (Kafka's start-up runs use it and +1, Gregor's +2)
#   GREGOR_BIN                   a built broker; otherwise go build ./cmd/gregor
#   GREGOR_DEBUG_ADDR            start the benchmarked gregor with --debug-addr
#                                (pprof) on this address, e.g. 127.0.0.1:6060
#   BENCH_OBSERVE [0]            1: while gregor runs, scrape /metrics and load
#                                the console's overview and group pages every
#                                second (HTTP listener on BENCH_GREGOR_PORT+5,
#                                console sampling every second), to measure
#                                what watching the broker costs
#   BENCH_OUT                    results directory [bench/results/<timestamp>]
#
# Needs Java 17, Maven (first run), Python 3 and Go. Topics are created with
# `gregor topics --create` (a Kafka-protocol client; fast next to a JVM per
# topic) on both brokers. Everything listens on 127.0.0.1 only and is stopped
# on exit. The load generators run on the same machine as the broker, so the
# numbers compare the brokers with each other, not with a real deployment.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNCLASS=$HERE/kafka/kafka-run-class.sh
RECORDS=${BENCH_RECORDS:-50000}
X4_RECORDS=${BENCH_X4_RECORDS:-$((RECORDS / 2))}
ROUNDS=${BENCH_ROUNDS:-3}
PROFILES=${BENCH_PROFILES:-os fsync}
DEFAULT_WORKLOADS="acks1 acks1-batch1m acksall acksall-batch1m acks1-x4 acks1-batch1m-x4 acksall-x4 acksall-batch1m-x4 consume go-acks1 go-acksall go-acks1-raw go-acksall-raw go-consume go-consume-raw lat-pp-acksall lat-go-acksall lat-e2e-acksall startup"
WORKLOADS=${BENCH_WORKLOADS:-$DEFAULT_WORKLOADS}
LAT_SECONDS=${BENCH_LATENCY_SECONDS:-6}
LAT_RATE=${BENCH_LATENCY_RATE:-}
E2E_MESSAGES=${BENCH_E2E_MESSAGES:-1000}
GO_SECONDS=${BENCH_GO_SECONDS:-10}
GO_RECORDS=${BENCH_GO_RECORDS:-3000000}
DROP_CACHES=${BENCH_DROP_CACHES:-auto}
if [[ $DROP_CACHES == auto ]]; then
	if [[ -w /proc/sys/vm/drop_caches ]]; then DROP_CACHES=1; else DROP_CACHES=0; fi
fi
PAGE_REPORTING=${BENCH_PAGE_REPORTING:-auto}
REPORTING_DIR=/sys/module/page_reporting/parameters
REPORTING_SAVED=
GO_PRODUCERS=${BENCH_GO_PRODUCERS:-4}
GO_CONSUMERS=${BENCH_GO_CONSUMERS:-2}
RAW_PASSES=${BENCH_RAW_PASSES:-4}
GO_ARGS=${BENCH_GO_ARGS:-}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-3}
PARTITIONS=${BENCH_PARTITIONS:-8}
RECORD_SIZE=${BENCH_RECORD_SIZE:-1024}
# The freed pages settle() leaves for the next run: a quarter more than the
# largest run writes (8 GiB when the go-acks* runs go by time), at most 12 GiB.
POOL_MIB=$(((GO_RECORDS > 0 ? GO_RECORDS : 8 << 20) * RECORD_SIZE))
((RECORDS * RECORD_SIZE > POOL_MIB)) && POOL_MIB=$((RECORDS * RECORD_SIZE))
((4 * X4_RECORDS * RECORD_SIZE > POOL_MIB)) && POOL_MIB=$((4 * X4_RECORDS * RECORD_SIZE))
POOL_MIB=$((POOL_MIB * 5 / 4 >> 20))
((POOL_MIB > 12288)) && POOL_MIB=12288
KPORT=${BENCH_KAFKA_PORT:-19192}
GPORT=${BENCH_GREGOR_PORT:-19292}
SPORT=${BENCH_STARTUP_PORT:-19392}
DEBUG_ADDR=${GREGOR_DEBUG_ADDR:-}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
RUN_TIMEOUT=600
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-bench.XXXXXX")
GREGOR_PID=
OBSERVE=${BENCH_OBSERVE:-0}
OBSERVE_PID=
KAFKA_UP=

log() { echo "bench: $*" >&2; }

PRODUCE_WORKLOADS="acks1 acks1-batch1m acksall acksall-batch1m acks1-x4 acksall-x4 acks1-batch1m-x4 acksall-batch1m-x4"
LATENCY_WORKLOADS="lat-pp-acks1 lat-pp-acksall lat-go-acks1 lat-go-acksall lat-e2e-acks1 lat-e2e-acksall"
# go-consume(-raw) reads a broker's go-acks1 topic of the round while it is
# cached, before the next cache drop.
GO_WORKLOADS="go-acks1 go-consume go-consume-raw go-acksall go-acks1-raw go-acksall-raw"
for w in $WORKLOADS; do
	case " $PRODUCE_WORKLOADS $LATENCY_WORKLOADS $GO_WORKLOADS consume ceiling startup " in
	*" $w "*) ;;
	*)
		log "unknown workload $w"
		exit 2
		;;
	esac
done

# Producer settings per workload, on top of bootstrap.servers.
workload_props() {
	case ${1%-x4} in
	acks1) echo "acks=1" ;;
	acks1-batch1m) echo "acks=1 batch.size=1048576 linger.ms=5" ;;
	acksall) echo "acks=all" ;;
	acksall-batch1m) echo "acks=all batch.size=1048576 linger.ms=5" ;;
	*) return 1 ;;
	esac
}

kafka_env() {
	env KAFKA_PORT="$KPORT" KAFKA_STATE="$WORK/kafka" "$@"
}

stop_gregor() {
	if [[ -n "$OBSERVE_PID" ]]; then
		kill "$OBSERVE_PID" 2>/dev/null
		wait "$OBSERVE_PID" 2>/dev/null
		OBSERVE_PID=
	fi
	[[ -n "$GREGOR_PID" ]] || return 0
	kill -TERM "$GREGOR_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$GREGOR_PID" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$GREGOR_PID" 2>/dev/null; then
		log "gregor still running 20s after SIGTERM; killing it"
		kill -KILL "$GREGOR_PID" 2>/dev/null
	fi
	wait "$GREGOR_PID" 2>/dev/null
	GREGOR_PID=
}

stop_kafka() {
	[[ -n "$KAFKA_UP" ]] || return 0
	kafka_env bash "$HERE/kafka/kafka.sh" stop
	KAFKA_UP=
}

cleanup() {
	stop_gregor
	stop_kafka
	rm -rf "$WORK"
	restore_reporting
}

# defer_reporting: on a VM whose balloon driver reports freed memory to the
# host at once (min_free_ms 0), every page the page cache then takes must be
# faulted in from the host again, which the writing process pays as system
# time: 2.8 CPU s/GiB with dd, against 0.2 when freed pages are reused
# (bench/README.md, "The page cache on this VM"). That cost is the
# hypervisor's, the same for any writer, and it drowns both brokers' own.
# This keeps freed pages in the VM for 100 s, up to 16 GiB of them, for the
# harness's run; cleanup() puts the old values back.
defer_reporting() {
	[[ $PAGE_REPORTING != leave ]] || return 0
	if [[ ! -w $REPORTING_DIR/min_free_ms || ! -w $REPORTING_DIR/max_waiting_mib ]]; then
		[[ $PAGE_REPORTING == auto ]] && return 0
		log "BENCH_PAGE_REPORTING=defer, but $REPORTING_DIR is not writable"
		exit 1
	fi
	REPORTING_SAVED="$(cat "$REPORTING_DIR/min_free_ms") $(cat "$REPORTING_DIR/max_waiting_mib")"
	echo 100000 >"$REPORTING_DIR/min_free_ms" && echo 16384 >"$REPORTING_DIR/max_waiting_mib" || {
		restore_reporting
		log "cannot defer free page reporting"
		exit 1
	}
	PAGE_REPORTING=defer
}

restore_reporting() {
	[[ -n $REPORTING_SAVED ]] || return 0
	local ms mib
	read -r ms mib <<<"$REPORTING_SAVED"
	echo "$ms" >"$REPORTING_DIR/min_free_ms"
	echo "$mib" >"$REPORTING_DIR/max_waiting_mib"
	REPORTING_SAVED=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup

mkdir -p "$OUT/runs"
[[ $DROP_CACHES == 1 ]] && defer_reporting
bash "$HERE/kafka/fetch.sh" || exit 1
if [[ -n "${GREGOR_BIN:-}" ]]; then
	BIN=$GREGOR_BIN
else
	BIN=$WORK/gregor
	log "building gregor"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/gregor) || exit 1
fi
(cd "$ROOT" && go build -o "$WORK/startup" ./bench/startup &&
	go build -o "$WORK/load" ./bench/load && go build -o "$WORK/ceiling" ./bench/ceiling) || exit 1
KAFKA_VERSION=$(cat "$HERE/kafka/.cache/libs/.version")
GREGOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n "$(git -C "$ROOT" status --porcelain -- cmd internal gregor.go go.mod go.sum 2>/dev/null)" ]]; then
	GREGOR_REV="$GREGOR_REV+dirty"
fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "command: BENCH_RECORDS=$RECORDS BENCH_X4_RECORDS=$X4_RECORDS BENCH_ROUNDS=$ROUNDS BENCH_PROFILES=\"$PROFILES\" BENCH_WORKLOADS=\"$WORKLOADS\" BENCH_LATENCY_SECONDS=$LAT_SECONDS${LAT_RATE:+ BENCH_LATENCY_RATE=$LAT_RATE} BENCH_E2E_MESSAGES=$E2E_MESSAGES BENCH_GO_SECONDS=$GO_SECONDS BENCH_GO_PRODUCERS=$GO_PRODUCERS BENCH_GO_CONSUMERS=$GO_CONSUMERS BENCH_RAW_PASSES=$RAW_PASSES${GO_ARGS:+ BENCH_GO_ARGS=\"$GO_ARGS\"} BENCH_STARTUP_RUNS=$STARTUP_RUNS bash bench/run.sh"
	echo "kafka: $KAFKA_VERSION (KRaft, one node, -Xms1g -Xmx1g, G1)"
	echo "gregor: $GREGOR_REV ($BIN)"
	echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), $(java -version 2>&1 | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "records: $RECORDS x $RECORD_SIZE B per single-producer run, 4 x $X4_RECORDS per x4 run, $PARTITIONS partitions, $ROUNDS rounds"
	if [[ $PAGE_REPORTING == defer ]]; then
		echo "free page reporting: deferred (min_free_ms 100000, max_waiting_mib 16384; the machine's: $REPORTING_SAVED); settle() leaves ${POOL_MIB} MiB of freed pages"
	else
		echo "free page reporting: as the machine has it ($(cat "$REPORTING_DIR/min_free_ms" 2>/dev/null || echo none) ms)"
	fi
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2
# One row per measured value; a failed run leaves one row with status failed.
echo "profile,workload,broker,round,metric,value,status" >"$OUT/raw.csv"

record() { # PROFILE WORKLOAD BROKER ROUND METRIC VALUE
	echo "$1,$2,$3,$4,$5,$6,ok" >>"$OUT/raw.csv"
}
failed() { # PROFILE WORKLOAD BROKER ROUND WHY LOGFILE
	echo "$1,$2,$3,$4,,,$5" >>"$OUT/raw.csv"
	log "$1 $2 $3 round $4: FAILED ($5; see $6)"
}

# start_brokers PROFILE: Kafka and Gregor, fresh, configured for PROFILE.
start_brokers() {
	local kprops="" gover=() dbg=()
	case $1 in
	os) gover=(--override gregor.durability=os) ;;
	fsync) kprops="log.flush.interval.messages=1" ;;
	*)
		log "unknown profile $1"
		return 1
		;;
	esac
	[[ -n "$DEBUG_ADDR" ]] && dbg=(--debug-addr "$DEBUG_ADDR")
	local http=(--http-addr off)
	if [[ $OBSERVE == 1 ]]; then
		http=(--http-addr "127.0.0.1:$((GPORT + 5))" --override gregor.console.sample.interval.ms=1000)
	fi
	rm -rf "$WORK/kafka" "$WORK/gregor-data"
	# Deleted topics leave the disk at once (Kafka's default keeps them a
	# minute): bench/load's rounds write gigabytes each.
	kprops="$kprops file.delete.delay.ms=0"
	kafka_env KAFKA_FRESH=1 KAFKA_PROPS="${kprops# }" bash "$HERE/kafka/kafka.sh" start || return 1
	KAFKA_UP=1
	mkdir -p "$WORK/gregor-data"
	# group.initial.rebalance.delay.ms=0 on both (kafka.sh sets it for
	# Kafka), so ConsumerPerformance's join is not a fixed 3 s wait.
	"$BIN" serve \
		--override "listeners=PLAINTEXT://127.0.0.1:$GPORT" \
		--override "advertised.listeners=PLAINTEXT://127.0.0.1:$GPORT" \
		--override "log.dirs=$WORK/gregor-data" \
		--override group.initial.rebalance.delay.ms=0 \
		"${gover[@]}" "${dbg[@]}" "${http[@]}" >>"$OUT/gregor-$1.log" 2>&1 &
	GREGOR_PID=$!
	if [[ $OBSERVE == 1 ]]; then
		(
			base="http://127.0.0.1:$((GPORT + 5))"
			while sleep 1; do
				for path in /metrics / /groups /topics; do
					curl -s -o /dev/null --max-time 5 "$base$path"
				done
			done
		) &
		OBSERVE_PID=$!
	fi
	local deadline=$((SECONDS + 30))
	until python3 "$HERE/probe.py" --quiet "127.0.0.1:$GPORT"; do
		if ! kill -0 "$GREGOR_PID" 2>/dev/null || ((SECONDS >= deadline)); then
			log "gregor did not come up on 127.0.0.1:$GPORT; see $OUT/gregor-$1.log"
			return 1
		fi
		sleep 0.2
	done
	log "gregor up: pid $GREGOR_PID, 127.0.0.1:$GPORT, ${gover[*]:-default durability}"
}

bootstrap_of() {
	if [[ $1 == kafka ]]; then echo "127.0.0.1:$KPORT"; else echo "127.0.0.1:$GPORT"; fi
}

tool() {
	timeout -k 10 "$RUN_TIMEOUT" bash "$RUNCLASS" "$@"
}

create_topic() { # BOOTSTRAP TOPIC
	timeout -k 5 60 "$BIN" topics --bootstrap-server "$1" --create --topic "$2" \
		--partitions "$PARTITIONS" --replication-factor 1 >/dev/null
}

# quiesce PID: wait (up to 20 s) until process PID has used less than 5 %
# of a core for a whole second. Kafka's JVM used 39 % of a core in the
# second after a fixed-rate run of its own and 2-7 % in each of the next
# 14; in the 13:29, 13:48 and 14:10 runs, the Gregor run that came right
# after two Kafka runs in a row measured a p99 of 22-28 ms, against 1.4-2.8
# in the other rounds.
quiesce() {
	local pid=$1 i a b
	[[ -n $pid && -r /proc/$pid/stat ]] || return 0
	for ((i = 0; i < 20; i++)); do
		a=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
		sleep 1
		b=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
		(((b - a) * 100 < 5 * $(getconf CLK_TCK))) && return 0
	done
	log "pid $pid still busy after 20 s; going on"
}

# await_deletes: wait (up to 150 s) until Kafka has removed the files of the
# topics just deleted, then write back what is dirty, so that no later run
# pays for either. Kafka renames a deleted partition's directory to
# *-delete and removes it log.segment.delete.delay.ms (60 s, the broker's
# default; a topic's file.delete.delay.ms does not apply) later; Gregor
# removes it before it answers the delete.
await_deletes() {
	local i
	for ((i = 0; i < 1500; i++)); do
		compgen -G "$WORK/kafka/data/*-delete" >/dev/null || break
		sleep 0.1
	done
	if ((i == 1500)); then
		log "Kafka still removing deleted topics after 150 s; going on"
	else
		log "Kafka removed the deleted topics' files in $((i / 10)) s"
	fi
	sync
}

# perf_row LINE: ProducerPerformance's final line ("N records sent, R
# records/sec (M MB/sec), A ms avg latency, X ms max latency, P50 ms 50th,
# P95 ms 95th, P99 ms 99th, P999 ms 99.9th.") as "N R M A P50 P99 X".
perf_row() {
	sed -nE 's/^([0-9]+) records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, ([0-9]+) ms 50th, [0-9]+ ms 95th, ([0-9]+) ms 99th.*/\1 \2 \3 \4 \6 \7 \5/p' <<<"$1"
}

# ppt LOGFILE TOPIC BOOTSTRAP RECORDS THROUGHPUT PROPS...: one
# ProducerPerformance; its output goes to LOGFILE, its final line to stdout.
ppt() {
	local log_file=$1 t=$2 bs=$3 n=$4 rate=$5 out
	shift 5
	out=$(tool org.apache.kafka.tools.ProducerPerformance --topic "$t" --num-records "$n" \
		--record-size "$RECORD_SIZE" --throughput "$rate" \
		--producer-props bootstrap.servers="$bs" "$@" 2>>"$log_file")
	local rc=$?
	printf '%s\n' "$out" >>"$log_file"
	tail -n 1 <<<"$out"
	return $rc
}

# produce PROFILE WORKLOAD BROKER ROUND: one ProducerPerformance run.
produce() {
	local profile=$1 w=$2 broker=$3 round=$4 bs t last n rate mb avg p50 p99 max
	bs=$(bootstrap_of "$broker")
	t="bench-$profile-$w-r$round"
	local log_file="$OUT/runs/$profile-$w-$broker-r$round.log"
	if ! create_topic "$bs" "$t" 2>"$log_file"; then
		failed "$profile" "$w" "$broker" "$round" create-failed "$log_file"
		return 0
	fi
	# shellcheck disable=SC2046 # the workload's properties are separate words
	last=$(ppt "$log_file" "$t" "$bs" "$RECORDS" -1 $(workload_props "$w"))
	local rc=$?
	read -r n rate mb avg p50 p99 max <<<"$(perf_row "$last")"
	if ((rc != 0)) || [[ "${n:-}" != "$RECORDS" ]] || grep -q ERROR "$log_file"; then
		failed "$profile" "$w" "$broker" "$round" "exit-$rc" "$log_file"
		return 0
	fi
	record "$profile" "$w" "$broker" "$round" rec_s "$rate"
	record "$profile" "$w" "$broker" "$round" mb_s "$mb"
	record "$profile" "$w" "$broker" "$round" avg_ms "$avg"
	record "$profile" "$w" "$broker" "$round" p50_ms "$p50"
	record "$profile" "$w" "$broker" "$round" p99_ms "$p99"
	record "$profile" "$w" "$broker" "$round" max_ms "$max"
	log "$profile $w $broker round $round: $last"
}

# produce_x4 PROFILE WORKLOAD BROKER ROUND: four ProducerPerformance
# processes at once on one topic, X4_RECORDS records each.
produce_x4() {
	local profile=$1 w=$2 broker=$3 round=$4 bs t i pids=()
	bs=$(bootstrap_of "$broker")
	t="bench-$profile-$w-r$round"
	local log_file="$OUT/runs/$profile-$w-$broker-r$round.log"
	local dir="$WORK/x4"
	rm -rf "$dir"
	mkdir -p "$dir"
	if ! create_topic "$bs" "$t" 2>"$log_file"; then
		failed "$profile" "$w" "$broker" "$round" create-failed "$log_file"
		return 0
	fi
	for i in 1 2 3 4; do
		# shellcheck disable=SC2046 # the workload's properties are separate words
		(
			ppt "$dir/$i.log" "$t" "$bs" "$X4_RECORDS" -1 client.id="perf-producer-$i" $(workload_props "$w") >"$dir/$i.last"
			echo $? >"$dir/$i.rc"
			date +%s.%N >"$dir/$i.end"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	local ok=1 lines=""
	for i in 1 2 3 4; do
		{
			echo "--- producer $i"
			cat "$dir/$i.log"
		} >>"$log_file"
		local row
		row=$(perf_row "$(cat "$dir/$i.last")")
		if [[ "$(cat "$dir/$i.rc")" != 0 ]] || [[ "${row%% *}" != "$X4_RECORDS" ]]; then
			ok=
		fi
		lines+="$row $(cat "$dir/$i.end")"$'\n'
	done
	if [[ -z "$ok" ]] || grep -q ERROR "$log_file"; then
		failed "$profile" "$w" "$broker" "$round" "a-producer-failed" "$log_file"
		return 0
	fi
	# Per producer: n rate mb avg p50 p99 max end. Its sending window is
	# [end - n/rate, end]; "wall" is all bytes over the union of the windows.
	local summary
	summary=$(python3 -c '
import statistics, sys
size = int(sys.argv[1])
rows = [list(map(float, l.split())) for l in sys.stdin if len(l.split()) == 8]
first = min(r[7] - r[0] / r[1] for r in rows)
last = max(r[7] for r in rows)
total = sum(r[0] for r in rows)
print("%.1f %.2f %.2f %.2f %g %g %.1f" % (sum(r[1] for r in rows), sum(r[2] for r in rows),
      total * size / 1048576 / (last - first), statistics.mean(r[3] for r in rows),
      statistics.median(r[4] for r in rows), max(r[5] for r in rows), total / (last - first)))
' "$RECORD_SIZE" <<<"$lines")
	local rate mb wall avg p50 p99 wallrate
	read -r rate mb wall avg p50 p99 wallrate <<<"$summary"
	record "$profile" "$w" "$broker" "$round" rec_s "$rate"
	record "$profile" "$w" "$broker" "$round" mb_s "$mb"
	record "$profile" "$w" "$broker" "$round" mb_s_wall "$wall"
	record "$profile" "$w" "$broker" "$round" avg_ms "$avg"
	record "$profile" "$w" "$broker" "$round" p50_ms "$p50"
	record "$profile" "$w" "$broker" "$round" p99_ms "$p99"
	log "$profile $w $broker round $round: 4 x $X4_RECORDS records, sum $mb MB/s, wall $wall MB/s ($wallrate records/s), p99 (worst) $p99 ms"
}

# consume PROFILE BROKER ROUND: ConsumerPerformance over the acks1 topic of
# that round. Its fetch.* columns exclude the group join.
consume() {
	local profile=$1 broker=$2 round=$3 bs out row
	bs=$(bootstrap_of "$broker")
	local log_file="$OUT/runs/$profile-consume-$broker-r$round.log"
	out=$(tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bs" \
		--topic "bench-$profile-acks1-r$round" --messages "$RECORDS" --timeout 60000 \
		--group "bench-$profile-$broker-r$round" 2>>"$log_file")
	local rc=$?
	printf '%s\n' "$out" >>"$log_file"
	# start, end, MB, MB.sec, nMsg, nMsg.sec, rebalance.ms, fetch.ms, fetch.MB.sec, fetch.nMsg.sec
	row=$(tail -n 1 <<<"$out" | awk -F', ' -v n="$RECORDS" 'NF >= 10 && $5 == n {print $10, $9}')
	if ((rc != 0)) || [[ -z "$row" ]] || grep -q ERROR "$log_file"; then
		failed "$profile" consume "$broker" "$round" "exit-$rc" "$log_file"
		return 0
	fi
	record "$profile" consume "$broker" "$round" rec_s "${row% *}"
	record "$profile" consume "$broker" "$round" mb_s "${row#* }"
	log "$profile consume $broker round $round: $(tail -n 1 <<<"$out")"
}

# latency PROFILE WORKLOAD BROKER ROUND RATE: one fixed-rate or round-trip run.
latency() {
	local profile=$1 w=$2 broker=$3 round=$4 rate=$5 bs t out acks n
	bs=$(bootstrap_of "$broker")
	t="bench-$profile-$w-r$round"
	acks=${w##*-acks}
	local log_file="$OUT/runs/$profile-$w-$broker-r$round.log"
	if ! create_topic "$bs" "$t" 2>"$log_file"; then
		failed "$profile" "$w" "$broker" "$round" create-failed "$log_file"
		return 0
	fi
	case $w in
	lat-pp-*)
		n=$(awk -v r="$rate" -v s="$LAT_SECONDS" 'BEGIN {printf "%d", r * s}')
		out=$(ppt "$log_file" "$t" "$bs" "$n" "$rate" acks="$acks")
		local rc=$? rrate mb avg p50 p99 max
		read -r n2 rrate mb avg p50 p99 max <<<"$(perf_row "$out")"
		if ((rc != 0)) || [[ "${n2:-}" != "$n" ]] || grep -q ERROR "$log_file"; then
			failed "$profile" "$w" "$broker" "$round" "exit-$rc" "$log_file"
			return 0
		fi
		record "$profile" "$w" "$broker" "$round" rate "$rate"
		record "$profile" "$w" "$broker" "$round" rec_s "$rrate"
		record "$profile" "$w" "$broker" "$round" avg_ms "$avg"
		record "$profile" "$w" "$broker" "$round" p50_ms "$p50"
		record "$profile" "$w" "$broker" "$round" p99_ms "$p99"
		;;
	lat-go-*)
		# bench/load rather than bench/e2e: against the same broker,
		# bench/e2e measured a p99 1-2 ms higher, its own garbage
		# collection (bench/README.md, "Latency: the client's share").
		out=$(timeout -k 10 "$RUN_TIMEOUT" "$WORK/load" -mode e2e -brokers "$bs" -topic "$t" -rate "$rate" \
			-duration "${LAT_SECONDS}s" -record-size "$RECORD_SIZE" -acks "$acks" 2>>"$log_file")
		local rc=$?
		printf '%s\n' "$out" >>"$log_file"
		local p50 p99 avg ap50 ap99
		p50=$(load_field "$out" e2e_p50_ms)
		p99=$(load_field "$out" e2e_p99_ms)
		avg=$(load_field "$out" e2e_avg_ms)
		ap50=$(load_field "$out" ack_p50_ms)
		ap99=$(load_field "$out" ack_p99_ms)
		if ((rc != 0)) || [[ -z "$p50" || -z "$p99" || -z "$avg" || -z "$ap50" || -z "$ap99" ]]; then
			failed "$profile" "$w" "$broker" "$round" "exit-$rc" "$log_file"
			return 0
		fi
		record "$profile" "$w" "$broker" "$round" rate "$rate"
		record "$profile" "$w" "$broker" "$round" p50_ms "$p50"
		record "$profile" "$w" "$broker" "$round" p99_ms "$p99"
		record "$profile" "$w" "$broker" "$round" avg_ms "$avg"
		record "$profile" "$w" "$broker" "$round" ack_p50_ms "$ap50"
		record "$profile" "$w" "$broker" "$round" ack_p99_ms "$ap99"
		;;
	lat-e2e-*)
		out=$(tool org.apache.kafka.tools.EndToEndLatency "$bs" "$t" "$E2E_MESSAGES" "$acks" "$RECORD_SIZE" 2>>"$log_file")
		local rc=$?
		printf '%s\n' "$out" >>"$log_file"
		# Avg latency: A ms / Percentiles: 50th = P, 99th = P, 99.9th = P
		local avg pcts
		avg=$(sed -nE 's/^Avg latency: ([0-9.]+) ms$/\1/p' <<<"$out")
		pcts=$(sed -nE 's/^Percentiles: 50th = ([0-9]+), 99th = ([0-9]+), .*/\1 \2/p' <<<"$out")
		if ((rc != 0)) || [[ -z "$avg" || -z "$pcts" ]] || grep -q ERROR "$log_file"; then
			failed "$profile" "$w" "$broker" "$round" "exit-$rc" "$log_file"
			return 0
		fi
		record "$profile" "$w" "$broker" "$round" avg_ms "$avg"
		record "$profile" "$w" "$broker" "$round" p50_ms "${pcts% *}"
		record "$profile" "$w" "$broker" "$round" p99_ms "${pcts#* }"
		out="avg $avg ms, p50 ${pcts% *} ms, p99 ${pcts#* } ms over $E2E_MESSAGES round trips"
		;;
	esac
	log "$profile $w $broker round $round: $(tail -n 1 <<<"$out")"
}

# broker_pid BROKER: the broker's process id (Kafka: its JVM, from kafka.sh's
# pid file), or nothing.
broker_pid() {
	if [[ $1 == kafka ]]; then cat "$WORK/kafka/kafka.pid" 2>/dev/null; else echo "$GREGOR_PID"; fi
}

# load_field LINE KEY: the value of KEY=VALUE in bench/load's final line.
load_field() {
	awk -v k="$2" '$1 == "load:" {for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' <<<"$1"
}

# go_load PROFILE WORKLOAD BROKER ROUND: one bench/load run (go-acks1,
# go-acksall: produce for GO_SECONDS; go-consume: read the round's go-acks1
# topic to its end), with the broker's CPU over the same interval.
go_load() {
	local profile=$1 w=$2 broker=$3 round=$4 bs t pid out args
	bs=$(bootstrap_of "$broker")
	pid=$(broker_pid "$broker")
	local log_file="$OUT/runs/$profile-$w-$broker-r$round.log"
	if [[ -z "$pid" ]] || [[ ! -r /proc/$pid/stat ]]; then
		failed "$profile" "$w" "$broker" "$round" no-broker-pid "$OUT/env.txt"
		return 0
	fi
	case $w in
	go-consume | go-consume-raw)
		args=(-mode "${w#go-}" -topic "bench-$profile-go-acks1-r$round" -consumers "$GO_CONSUMERS"
			-record-size "$RECORD_SIZE")
		if [[ $w == go-consume-raw ]]; then args+=(-passes "$RAW_PASSES"); fi
		;;
	*)
		t="bench-$profile-$w-r$round"
		if ! create_topic "$bs" "$t" 2>"$log_file"; then
			failed "$profile" "$w" "$broker" "$round" create-failed "$log_file"
			return 0
		fi
		local acks=${w#go-acks}
		args=(-mode produce -topic "$t" -acks "${acks%-raw}" -producers "$GO_PRODUCERS"
			-record-size "$RECORD_SIZE" -linger 5ms -batch-bytes 1048576)
		if [[ $w == *-raw ]]; then args[1]=produce-raw; fi
		if ((GO_RECORDS > 0)); then
			args+=(-records "$GO_RECORDS" -duration 0)
		else
			args+=(-duration "${GO_SECONDS}s")
		fi
		;;
	esac
	# shellcheck disable=SC2086 # BENCH_GO_ARGS is separate words
	out=$(timeout -k 10 "$RUN_TIMEOUT" "$WORK/load" -brokers "$bs" "${args[@]}" -broker-pid "$pid" $GO_ARGS 2>>"$log_file")
	local rc=$?
	printf '%s\n' "$out" >>"$log_file"
	local rate mb cpu lcpu
	rate=$(load_field "$out" records_per_sec)
	mb=$(load_field "$out" mib_per_sec)
	cpu=$(load_field "$out" broker_cpu_seconds_per_gib)
	lcpu=$(load_field "$out" cpu_seconds_per_gib)
	if ((rc != 0)) || [[ -z "$rate" || -z "$mb" || -z "$cpu" || -z "$lcpu" ]]; then
		failed "$profile" "$w" "$broker" "$round" "exit-$rc" "$log_file"
		return 0
	fi
	record "$profile" "$w" "$broker" "$round" rec_s "$rate"
	record "$profile" "$w" "$broker" "$round" mb_s "$mb"
	record "$profile" "$w" "$broker" "$round" cpu_s_gib "$cpu"
	record "$profile" "$w" "$broker" "$round" load_cpu_s_gib "$lcpu"
	record "$profile" "$w" "$broker" "$round" user_cpu_s_gib "$(load_field "$out" broker_user_cpu_seconds_per_gib)"
	if [[ $w != go-consume* ]]; then
		record "$profile" "$w" "$broker" "$round" p50_ms "$(load_field "$out" ack_p50_ms)"
		record "$profile" "$w" "$broker" "$round" p99_ms "$(load_field "$out" ack_p99_ms)"
	fi
	log "$profile $w $broker (pid $pid) round $round: $out"
}

# settle puts the page cache in the same state for every broker's produce
# run (BENCH_DROP_CACHES=1, the default where /proc/sys/vm/drop_caches is
# writable): written out and dropped, then a few seconds for the freed
# memory to settle. Writing into the page cache costs the kernel (and so
# the writing process) several times more per byte when its pages must come
# from fresh memory than when freed pages are reused (on a VM whose balloon
# takes free memory back, 2.8 against 0.2 s/GiB with dd): without this,
# whichever run follows a topic deletion gets cheap pages.
settle() {
	[[ $DROP_CACHES == 1 ]] || return 0
	sync
	if ! echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
		log "cannot drop the page cache; going on without (BENCH_DROP_CACHES=0)"
		DROP_CACHES=0
		return 0
	fi
	if [[ $PAGE_REPORTING == defer ]]; then
		# The dropped pages are the pool unless too few were cached: write
		# and delete a scratch file of POOL_MIB to leave that many freed.
		# Deleted at once, little of it reaches the disk.
		dd if=/dev/zero of="$WORK/pool" bs=1M count="$POOL_MIB" status=none
		rm -f "$WORK/pool"
	fi
	sleep 3
}

# ceiling_run PROFILE ROUND: the machine's loopback sendfile and cached-write
# limits (bench/ceiling), recorded as broker "machine".
ceiling_run() {
	local profile=$1 round=$2 mode out mb cpu
	for mode in loopback write; do
		[[ $mode == write ]] && settle
		local log_file="$OUT/runs/$profile-ceiling-$mode-r$round.log"
		out=$(timeout -k 10 "$RUN_TIMEOUT" "$WORK/ceiling" -mode "$mode" -duration "${GO_SECONDS}s" \
			-streams "$GO_CONSUMERS" -max-bytes $((GO_RECORDS > 0 ? GO_RECORDS * RECORD_SIZE : 4 << 30)) -dir "$WORK" 2>"$log_file")
		local rc=$?
		printf '%s\n' "$out" >>"$log_file"
		mb=$(awk -v k=mib_per_sec '$1 == "ceiling:" {for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' <<<"$out")
		cpu=$(awk -v k=cpu_seconds_per_gib '$1 == "ceiling:" {for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' <<<"$out")
		if ((rc != 0)) || [[ -z "$mb" || -z "$cpu" ]]; then
			failed "$profile" "ceiling-$mode" machine "$round" "exit-$rc" "$log_file"
			continue
		fi
		record "$profile" "ceiling-$mode" machine "$round" mb_s "$mb"
		record "$profile" "ceiling-$mode" machine "$round" cpu_s_gib "$cpu"
		if [[ $mode == loopback ]]; then
			# The sending side alone: the floor for a zero-copy fetch.
			record "$profile" "ceiling-$mode" machine "$round" sender_cpu_s_gib \
				"$(awk -v k=sender_cpu_seconds_per_gib '$1 == "ceiling:" {for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' <<<"$out")"
		fi
		log "$profile ceiling round $round: $out"
	done
}

# kafka_max PROFILE WORKLOAD: Kafka's median records/s in this invocation.
kafka_max() {
	python3 - "$OUT/raw.csv" "$1" "$2" <<'EOF'
import csv, statistics, sys
path, profile, workload = sys.argv[1:]
v = [float(r["value"]) for r in csv.DictReader(open(path))
     if r["profile"] == profile and r["workload"] == workload and r["broker"] == "kafka"
     and r["metric"] == "rec_s" and r["status"] == "ok"]
print(statistics.median(v) if v else "")
EOF
}

# rss PROFILE: each broker's peak and current resident set size, in MiB.
rss() {
	local profile=$1 broker pid
	for broker in kafka gregor; do
		pid=$(broker_pid "$broker")
		if [[ -z "$pid" ]] || [[ ! -r /proc/$pid/status ]]; then
			failed "$profile" rss "$broker" 1 no-process "$OUT/env.txt"
			continue
		fi
		local hwm cur
		hwm=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
		cur=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
		record "$profile" rss "$broker" 1 hwm_mib "$hwm"
		record "$profile" rss "$broker" 1 rss_mib "$cur"
		log "$profile $broker (pid $pid): VmHWM $hwm MiB, VmRSS $cur MiB"
	done
}

# startup_runs: cold starts, alternating between the brokers.
startup_runs() {
	local i broker order out row log_file
	local kport=$SPORT gport=$((SPORT + 2))
	for ((i = 1; i <= STARTUP_RUNS; i++)); do
		if ((i % 2)); then order="kafka gregor"; else order="gregor kafka"; fi
		for broker in $order; do
			log_file="$OUT/runs/startup-$broker-r$i.log"
			if [[ $broker == kafka ]]; then
				out=$("$WORK/startup" -runs 1 -addr "127.0.0.1:$kport" \
					-prepare "KAFKA_STATE={dir} KAFKA_PORT={port} bash '$HERE/kafka/kafka.sh' format" \
					-start "KAFKA_STATE={dir} KAFKA_PORT={port} exec bash '$HERE/kafka/kafka.sh' foreground" 2>>"$log_file")
			else
				out=$("$WORK/startup" -runs 1 -addr "127.0.0.1:$gport" -bin "$BIN" 2>>"$log_file")
			fi
			local rc=$?
			printf '%s\n' "$out" >>"$log_file"
			row=$(sed -nE 's/^run 1: listening after ([0-9.]+) ms, first acks=all produce after ([0-9.]+) ms$/\1 \2/p' <<<"$out")
			if ((rc != 0)) || [[ -z "$row" ]]; then
				failed startup startup "$broker" "$i" "exit-$rc" "$log_file"
				continue
			fi
			record startup startup "$broker" "$i" listen_ms "${row% *}"
			record startup startup "$broker" "$i" startup_ms "${row#* }"
			log "startup $broker run $i: $(head -n 1 <<<"$out")"
		done
	done
}

# ------------------------------------------------------------------ run

want() { [[ " $WORKLOADS " == *" $1 "* ]]; }

# The profiles start brokers only for workloads that need them.
need_brokers=
for w in $PRODUCE_WORKLOADS $LATENCY_WORKLOADS $GO_WORKLOADS consume ceiling; do
	want "$w" && need_brokers=1
done
[[ -n "$need_brokers" ]] || PROFILES=""

started=$SECONDS
for profile in $PROFILES; do
	log "== profile $profile"
	if ! start_brokers "$profile"; then
		log "profile $profile: brokers did not start; skipped"
		stop_gregor
		stop_kafka
		continue
	fi
	for ((round = 1; round <= ROUNDS; round++)); do
		if ((round % 2)); then order="kafka gregor"; else order="gregor kafka"; fi
		for w in $PRODUCE_WORKLOADS; do
			# consume reads the acks1 topics, so they are written when asked for.
			want "$w" || { [[ $w == acks1 ]] && want consume; } || continue
			for broker in $order; do
				if [[ $w == *-x4 ]]; then
					produce_x4 "$profile" "$w" "$broker" "$round"
				else
					produce "$profile" "$w" "$broker" "$round"
				fi
			done
		done
		if want consume; then
			for broker in $order; do
				consume "$profile" "$broker" "$round"
			done
		fi
		want ceiling && ceiling_run "$profile" "$round"
		# Each broker's produce run starts from a dropped cache: the
		# broker that wrote second after one drop paid 2-3x the first's
		# kernel CPU per GiB (on this VM's balloon), and with 3 rounds the
		# order gave one broker the cheap place twice. So go-acks1, and
		# the go-consume(-raw) runs that read its topic while cached, run
		# broker by broker.
		for broker in $order; do
			for w in $GO_WORKLOADS; do
				case $w in
				go-acks1) want "$w" || want go-consume || want go-consume-raw || continue ;;
				go-consume*) want "$w" || continue ;;
				*) continue ;;
				esac
				[[ $w == go-consume* ]] || settle
				go_load "$profile" "$w" "$broker" "$round"
			done
		done
		for w in $GO_WORKLOADS; do
			[[ $w == go-acks1 || $w == go-consume* ]] && continue
			want "$w" || continue
			for broker in $order; do
				settle
				go_load "$profile" "$w" "$broker" "$round"
			done
		done
		# The round's bench/load topics are read: free their disk space.
		for w in go-acks1 go-acksall go-acks1-raw go-acksall-raw; do
			for broker in kafka gregor; do
				timeout -k 5 60 "$BIN" topics --bootstrap-server "$(bootstrap_of "$broker")" \
					--delete --topic "bench-$profile-$w-r$round" >/dev/null 2>&1
			done
		done
		await_deletes
	done
	# Latency at half of Kafka's maximum for the same acks, measured above.
	declare -A rate_of=()
	for acks in acks1 acksall; do
		rate=$LAT_RATE
		if [[ -z "$rate" ]]; then
			max=$(kafka_max "$profile" "$acks")
			[[ -n "$max" ]] && rate=$(awk -v m="$max" 'BEGIN {printf "%d", m / 2}')
		fi
		rate_of[$acks]=$rate
	done
	for ((round = 1; round <= ROUNDS; round++)); do
		if ((round % 2)); then order="kafka gregor"; else order="gregor kafka"; fi
		for w in $LATENCY_WORKLOADS; do
			want "$w" || continue
			rate=${rate_of[${w##*-}]}
			if [[ -z "$rate" ]] && [[ $w != lat-e2e-* ]]; then
				((round == 1)) && log "$profile $w: skipped: no Kafka ${w##*-} throughput measured to halve (run ${w##*-} or set BENCH_LATENCY_RATE)"
				continue
			fi
			((round == 1)) && [[ $w != lat-e2e-* ]] && log "$profile $w: fixed rate $rate records/s"
			for broker in $order; do
				# Each fixed-rate run starts with nothing left to write
				# back and the other broker idle again (see quiesce).
				sync
				if [[ $broker == kafka ]]; then quiesce "$GREGOR_PID"; else quiesce "$(broker_pid kafka)"; fi
				latency "$profile" "$w" "$broker" "$round" "$rate"
			done
		done
	done
	unset rate_of
	rss "$profile"
	stop_gregor
	stop_kafka
	cp "$WORK/kafka/server.log" "$OUT/kafka-$profile.log" 2>/dev/null
done
if want startup; then
	log "== start-up"
	startup_runs
fi
log "finished in $((SECONDS - started))s"
echo "duration: $((SECONDS - started))s" >>"$OUT/env.txt"

python3 "$HERE/summary.py" "$OUT/raw.csv" | tee "$OUT/summary.txt"
log "results in $OUT"
