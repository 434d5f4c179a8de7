#!/usr/bin/env bash
# Gregor against Apache Kafka 4.1, side by side on this machine, with Kafka's
# own load generators (ProducerPerformance, ConsumerPerformance).
#
#   bash bench/run.sh                          # builds ./cmd/gregor
#   GREGOR_BIN=/tmp/gregor BENCH_RECORDS=200000 bash bench/run.sh
#
# Two durability profiles, each with both brokers started fresh:
#   os     Kafka's defaults (the OS flushes the page cache when it likes)
#          against Gregor with gregor.durability=os: the like-for-like row.
#   fsync  Kafka with log.flush.interval.messages=1 (fsync after every
#          append) against Gregor's default (gregor.durability=fsync).
# In each profile four producer workloads on an 8-partition topic with
# 1 KiB records, acks=1 and acks=all, each with the producer's default
# batching and with batch.size=1048576 linger.ms=5; then ConsumerPerformance
# reading one of the topics back. Every run gets a fresh topic. The brokers
# take turns run by run (Kafka, Gregor, Kafka, Gregor, ...), and which goes
# first alternates by round, so drift in machine load hits both alike.
#
# Prints a table of medians over the rounds with the min–max range and the
# Gregor/Kafka ratio of the medians (throughput: above 1 means Gregor is
# faster; latency: below 1 means Gregor is faster). Raw results, the table
# and the broker logs go to bench/results/<timestamp>/.
#
# Environment (defaults in brackets):
#   BENCH_RECORDS [50000]      records per run; the default finishes in about
#                              10 minutes on 2 cores
#   BENCH_ROUNDS [3]           runs per broker and workload
#   BENCH_PROFILES ["os fsync"]
#   BENCH_WORKLOADS            names to run, of: acks1 acks1-batch1m acksall
#                              acksall-batch1m consume [all]
#   BENCH_PARTITIONS [8], BENCH_RECORD_SIZE [1024]
#   BENCH_KAFKA_PORT [19192]   (and +1 for its controller), BENCH_GREGOR_PORT [19292]
#   GREGOR_BIN                 a built broker; otherwise go build ./cmd/gregor
#   BENCH_OUT                  results directory [bench/results/<timestamp>]
#
# Both brokers listen on 127.0.0.1 only and are stopped on exit. The load
# generator runs on the same machine as the broker, so the numbers compare
# the brokers with each other, not with a real deployment.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNCLASS=$HERE/kafka/kafka-run-class.sh
RECORDS=${BENCH_RECORDS:-50000}
ROUNDS=${BENCH_ROUNDS:-3}
PROFILES=${BENCH_PROFILES:-os fsync}
ALL_WORKLOADS="acks1 acks1-batch1m acksall acksall-batch1m consume"
WORKLOADS=${BENCH_WORKLOADS:-$ALL_WORKLOADS}
PARTITIONS=${BENCH_PARTITIONS:-8}
RECORD_SIZE=${BENCH_RECORD_SIZE:-1024}
KPORT=${BENCH_KAFKA_PORT:-19192}
GPORT=${BENCH_GREGOR_PORT:-19292}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
RUN_TIMEOUT=600
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-bench.XXXXXX")
GREGOR_PID=
KAFKA_UP=

log() { echo "bench: $*" >&2; }

# Producer settings per workload, on top of bootstrap.servers.
workload_props() {
	case $1 in
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
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup

mkdir -p "$OUT"
bash "$HERE/kafka/fetch.sh" || exit 1
if [[ -n "${GREGOR_BIN:-}" ]]; then
	BIN=$GREGOR_BIN
else
	BIN=$WORK/gregor
	log "building gregor"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/gregor) || exit 1
fi
KAFKA_VERSION=$(cat "$HERE/kafka/.cache/libs/.version")
GREGOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then
	GREGOR_REV="$GREGOR_REV+dirty"
fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "command: BENCH_RECORDS=$RECORDS BENCH_ROUNDS=$ROUNDS BENCH_PROFILES=\"$PROFILES\" BENCH_WORKLOADS=\"$WORKLOADS\" bash bench/run.sh"
	echo "kafka: $KAFKA_VERSION (KRaft, one node, -Xms1g -Xmx1g, G1)"
	echo "gregor: $GREGOR_REV ($BIN)"
	echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), $(java -version 2>&1 | head -1)"
	echo "records: $RECORDS x $RECORD_SIZE B per run, $PARTITIONS partitions, $ROUNDS rounds"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2
echo "profile,workload,broker,round,records_per_sec,mb_per_sec,avg_ms,p50_ms,p99_ms,max_ms,status" >"$OUT/raw.csv"

# start_brokers PROFILE: Kafka and Gregor, fresh, configured for PROFILE.
start_brokers() {
	local kprops="" gover=()
	case $1 in
	os) gover=(--override gregor.durability=os) ;;
	fsync) kprops="log.flush.interval.messages=1" ;;
	*)
		log "unknown profile $1"
		return 1
		;;
	esac
	rm -rf "$WORK/kafka" "$WORK/gregor-data"
	kafka_env KAFKA_FRESH=1 KAFKA_PROPS="$kprops" bash "$HERE/kafka/kafka.sh" start || return 1
	KAFKA_UP=1
	mkdir -p "$WORK/gregor-data"
	# group.initial.rebalance.delay.ms=0 on both (kafka.sh sets it for
	# Kafka), so ConsumerPerformance's join is not a fixed 3 s wait.
	"$BIN" serve \
		--override "listeners=PLAINTEXT://127.0.0.1:$GPORT" \
		--override "advertised.listeners=PLAINTEXT://127.0.0.1:$GPORT" \
		--override "log.dirs=$WORK/gregor-data" \
		--override group.initial.rebalance.delay.ms=0 \
		"${gover[@]}" >>"$OUT/gregor-$1.log" 2>&1 &
	GREGOR_PID=$!
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

create_topic() {
	KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" tool org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "$1" --create --topic "$2" --partitions "$PARTITIONS" --replication-factor 1 >/dev/null
}

# produce PROFILE WORKLOAD BROKER ROUND: one ProducerPerformance run, one CSV row.
produce() {
	local profile=$1 w=$2 broker=$3 round=$4 bs t out last row
	bs=$(bootstrap_of "$broker")
	t="bench-$profile-$w-r$round"
	local log_file="$OUT/runs/$profile-$w-$broker-r$round.log"
	mkdir -p "$OUT/runs"
	if ! create_topic "$bs" "$t" 2>"$log_file"; then
		echo "$profile,$w,$broker,$round,,,,,,,create-failed" >>"$OUT/raw.csv"
		log "$profile $w $broker round $round: topic creation failed (see $log_file)"
		return 0
	fi
	# shellcheck disable=SC2046 # the workload's properties are separate words
	out=$(tool org.apache.kafka.tools.ProducerPerformance --topic "$t" --num-records "$RECORDS" \
		--record-size "$RECORD_SIZE" --throughput -1 \
		--producer-props bootstrap.servers="$bs" $(workload_props "$w") 2>>"$log_file")
	local rc=$?
	printf '%s\n' "$out" >>"$log_file"
	last=$(tail -n 1 <<<"$out")
	# "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max
	# latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
	row=$(sed -nE 's/^([0-9]+) records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, ([0-9]+) ms 50th, [0-9]+ ms 95th, ([0-9]+) ms 99th.*/\1,\2,\3,\4,\6,\7,\5/p' <<<"$last")
	if ((rc != 0)) || [[ -z "$row" ]] || [[ "${row%%,*}" != "$RECORDS" ]] || grep -q ERROR "$log_file"; then
		echo "$profile,$w,$broker,$round,,,,,,,failed" >>"$OUT/raw.csv"
		log "$profile $w $broker round $round: FAILED (exit $rc; see $log_file)"
		return 0
	fi
	echo "$profile,$w,$broker,$round,${row#*,},ok" >>"$OUT/raw.csv"
	log "$profile $w $broker round $round: $last"
}

# consume PROFILE BROKER ROUND: ConsumerPerformance over the acks1 topic of
# that round. Its fetch.* columns exclude the group join; reported as
# records/s and MB/s with the latency columns empty.
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
	row=$(tail -n 1 <<<"$out" | awk -F', ' -v n="$RECORDS" 'NF >= 10 && $5 == n {print $10 "," $9}')
	if ((rc != 0)) || [[ -z "$row" ]] || grep -q ERROR "$log_file"; then
		echo "$profile,consume,$broker,$round,,,,,,,failed" >>"$OUT/raw.csv"
		log "$profile consume $broker round $round: FAILED (exit $rc; see $log_file)"
		return 0
	fi
	echo "$profile,consume,$broker,$round,$row,,,,,ok" >>"$OUT/raw.csv"
	log "$profile consume $broker round $round: $(tail -n 1 <<<"$out")"
}

# ------------------------------------------------------------------ run

want() { [[ " $WORKLOADS " == *" $1 "* ]]; }

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
		for w in acks1 acks1-batch1m acksall acksall-batch1m; do
			# consume reads the acks1 topics, so they are written when asked for.
			want "$w" || { [[ $w == acks1 ]] && want consume; } || continue
			for broker in $order; do
				produce "$profile" "$w" "$broker" "$round"
			done
		done
		if want consume; then
			for broker in $order; do
				consume "$profile" "$broker" "$round"
			done
		fi
	done
	stop_gregor
	stop_kafka
	cp "$WORK/kafka/server.log" "$OUT/kafka-$profile.log" 2>/dev/null
done
log "finished in $((SECONDS - started))s"

python3 - "$OUT/raw.csv" <<'EOF' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
order = ["acks1", "acks1-batch1m", "acksall", "acksall-batch1m", "consume"]
label = {
    "acks1": "produce acks=1",
    "acks1-batch1m": "produce acks=1 batch 1 MiB linger 5",
    "acksall": "produce acks=all",
    "acksall-batch1m": "produce acks=all batch 1 MiB linger 5",
    "consume": "consume (fetch rate)",
}
pair = {"os": "kafka defaults | gregor durability=os",
        "fsync": "kafka flush.messages=1 | gregor fsync"}

def cell(vals, fmt):
    if not vals:
        return "-"
    return f"{fmt.format(statistics.median(vals))} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"

def ratio(g, k):
    if not g or not k or statistics.median(k) == 0:
        return "-"
    return f"{statistics.median(g) / statistics.median(k):.2f}"

profiles = list(dict.fromkeys(r["profile"] for r in rows))
head = f"{'workload':40} {'metric':8} {'kafka median [min-max]':26} {'gregor median [min-max]':26} {'gregor/kafka':>12}"
failed = [r for r in rows if r["status"] != "ok"]
for p in profiles:
    print(f"\n## {p}: {pair.get(p, p)}")
    print(head)
    for w in order:
        sel = [r for r in rows if r["profile"] == p and r["workload"] == w and r["status"] == "ok"]
        if not sel and not any(r["profile"] == p and r["workload"] == w for r in rows):
            continue
        get = lambda b, k: [float(r[k]) for r in sel if r["broker"] == b and r[k]]
        for metric, key, fmt in (("MB/s", "mb_per_sec", "{:.1f}"), ("p99 ms", "p99_ms", "{:.0f}")):
            k, g = get("kafka", key), get("gregor", key)
            if metric == "p99 ms" and w == "consume":
                continue
            name = label[w] if metric == "MB/s" else ""
            print(f"{name:40} {metric:8} {cell(k, fmt):26} {cell(g, fmt):26} {ratio(g, k):>12}")
if failed:
    print(f"\n{len(failed)} run(s) failed:")
    for r in failed:
        print(f"  {r['profile']} {r['workload']} {r['broker']} round {r['round']}: {r['status']}")
EOF
log "results in $OUT"
