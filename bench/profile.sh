#!/usr/bin/env bash
# pprof CPU and allocation profiles of Gregor under bench/run.sh's producer
# load, saved as `go tool pprof -top` text in bench/profiles/.
#
#   GREGOR_BIN=/tmp/gregor bash bench/profile.sh
#   PROFILE_WORKLOADS=acksall PROFILE_DURABILITY=fsync bash bench/profile.sh
#
# For each durability and workload, a fresh `gregor serve --debug-addr`
# and a fresh PARTITIONS-partition topic; Kafka's ProducerPerformance (1 KiB
# records, --throughput -1, the workload's producer settings) runs in a loop
# against it, and after a warm-up of a few seconds:
#   cpu-<durability>-<workload>.txt      /debug/pprof/profile?seconds=N, -top (flat)
#   cpu-cum-<durability>-<workload>.txt  the same profile, -top -cum
#   allocs-<durability>-<workload>.txt   /debug/pprof/allocs at the end,
#                                        -sample_index=alloc_space -top
#   allocs-objects-<durability>-<workload>.txt  -sample_index=alloc_objects -top
# The allocation profile counts from the broker's start, so it covers the
# warm-up and the profiled window of that one workload. Each file opens with
# the date, the Gregor revision, the load's own result lines and how many
# GC cycles ran in the profiled window (the broker runs with
# GODEBUG=gctrace=1, one line per cycle in its log). The
# profiles themselves go to a temporary directory and are deleted: text only.
#
# Environment (defaults in brackets):
#   GREGOR_BIN                   otherwise go build ./cmd/gregor
#   PROFILE_WORKLOADS ["acks1 acksall"]   any of run.sh's single-producer ones,
#                                or consume (ConsumerPerformance in a loop over a
#                                topic of 200000 records written beforehand)
#   PROFILE_DURABILITY ["os fsync"]
#   PROFILE_PRODUCERS [1]        concurrent producer loops (files get -x<N>),
#                                like run.sh's -x4 workloads with 4
#   PROFILE_SECONDS [20]         CPU profile length
#   PROFILE_TOP [25]             rows per -top
#   BENCH_PARTITIONS [8], BENCH_RECORD_SIZE [1024]
#   PROFILE_PORT [19492], PROFILE_DEBUG_ADDR [127.0.0.1:6060]
#   PROFILE_OUT [bench/profiles]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORKLOADS=${PROFILE_WORKLOADS:-acks1 acksall}
DURABILITY=${PROFILE_DURABILITY:-os fsync}
SECS=${PROFILE_SECONDS:-20}
PRODUCERS=${PROFILE_PRODUCERS:-1}
TOP=${PROFILE_TOP:-25}
PARTITIONS=${BENCH_PARTITIONS:-8}
RECORD_SIZE=${BENCH_RECORD_SIZE:-1024}
PORT=${PROFILE_PORT:-19492}
DEBUG=${PROFILE_DEBUG_ADDR:-127.0.0.1:6060}
OUT=${PROFILE_OUT:-$HERE/profiles}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-profile.XXXXXX")
GREGOR_PID=
LOAD_PIDS=()

log() { echo "profile: $*" >&2; }

props() {
	case $1 in
	acks1) echo "acks=1" ;;
	acks1-batch1m) echo "acks=1 batch.size=1048576 linger.ms=5" ;;
	acksall) echo "acks=all" ;;
	acksall-batch1m) echo "acks=all batch.size=1048576 linger.ms=5" ;;
	consume) echo "ConsumerPerformance over 200000 records written with acks=1, a new group per pass" ;;
	*) return 1 ;;
	esac
}

stop_load() {
	local pid
	# Each loop's shell and its tool share a process group (setsid).
	for pid in "${LOAD_PIDS[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	LOAD_PIDS=()
}

stop_gregor() {
	[[ -n "$GREGOR_PID" ]] || return 0
	kill -TERM "$GREGOR_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$GREGOR_PID" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$GREGOR_PID" 2>/dev/null
	wait "$GREGOR_PID" 2>/dev/null
	GREGOR_PID=
}

cleanup() {
	stop_load
	stop_gregor
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
bash "$HERE/kafka/fetch.sh" || exit 1
if [[ -n "${GREGOR_BIN:-}" ]]; then
	BIN=$GREGOR_BIN
else
	BIN=$WORK/gregor
	(cd "$ROOT" && go build -o "$BIN" ./cmd/gregor) || exit 1
fi
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
export PPROF_TMPDIR=$WORK/pprof

for d in $DURABILITY; do
	for w in $WORKLOADS; do
		props "$w" >/dev/null || {
			log "unknown workload $w"
			exit 2
		}
		tag=$d-$w
		((PRODUCERS > 1)) && [[ $w != consume ]] && tag=$tag-x$PRODUCERS
		rm -rf "$WORK/data"
		mkdir -p "$WORK/data"
		# gctrace: one stderr line per GC cycle, counted for the header.
		GODEBUG=gctrace=1 "$BIN" serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" \
			--override "advertised.listeners=PLAINTEXT://127.0.0.1:$PORT" \
			--override "log.dirs=$WORK/data" --override "gregor.durability=$d" \
			--override group.initial.rebalance.delay.ms=0 \
			--debug-addr "$DEBUG" --log-level warn >"$WORK/gregor.log" 2>&1 &
		GREGOR_PID=$!
		until python3 "$HERE/probe.py" --quiet "127.0.0.1:$PORT"; do
			kill -0 "$GREGOR_PID" 2>/dev/null || {
				log "gregor did not start:"
				cat "$WORK/gregor.log" >&2
				exit 1
			}
			sleep 0.2
		done
		"$BIN" topics --bootstrap-server "127.0.0.1:$PORT" --create --topic "profile-$w" \
			--partitions "$PARTITIONS" --replication-factor 1 >/dev/null || exit 1
		: >"$WORK/load.log"
		if [[ $w == consume ]]; then
			# A topic to read: 200000 records written once, before the clock.
			bash "$HERE/kafka/kafka-run-class.sh" org.apache.kafka.tools.ProducerPerformance \
				--topic "profile-$w" --num-records 200000 --record-size "$RECORD_SIZE" --throughput -1 \
				--producer-props bootstrap.servers="127.0.0.1:$PORT" acks=1 >/dev/null 2>&1 || exit 1
			# shellcheck disable=SC2016 # $0.. expand in the loop's shell
			setsid bash -c 'while :; do bash "$0" org.apache.kafka.tools.ConsumerPerformance --topic "$1" \
				--messages 200000 --timeout 60000 --bootstrap-server "$2" --group "profile-$RANDOM$RANDOM" | tail -n 1; done' \
				"$HERE/kafka/kafka-run-class.sh" "profile-$w" "127.0.0.1:$PORT" >>"$WORK/load.log" 2>&1 &
		else
			for ((i = 1; i <= PRODUCERS; i++)); do
				# shellcheck disable=SC2046,SC2016 # separate words; $0.. expand in the loop's shell
				setsid bash -c 'while :; do bash "$0" org.apache.kafka.tools.ProducerPerformance --topic "$1" \
					--num-records 200000 --record-size "$2" --throughput -1 \
					--producer-props bootstrap.servers="$3" "${@:4}" | tail -n 1; done' \
					"$HERE/kafka/kafka-run-class.sh" "profile-$w" "$RECORD_SIZE" "127.0.0.1:$PORT" \
					client.id="perf-producer-$i" $(props "$w") >>"$WORK/load.log" 2>&1 &
				LOAD_PIDS+=($!)
			done
		fi
		[[ $w == consume ]] && LOAD_PIDS+=($!)
		log "$tag: gregor pid $GREGOR_PID, load pids ${LOAD_PIDS[*]}; warming up"
		sleep 5
		log "$tag: CPU profile, ${SECS}s"
		gc_before=$(grep -c '^gc ' "$WORK/gregor.log")
		if ! go tool pprof -proto -output "$WORK/cpu.pb.gz" "$BIN" \
			"http://$DEBUG/debug/pprof/profile?seconds=$SECS" 2>"$WORK/pprof.err"; then
			cat "$WORK/pprof.err" >&2
			exit 1
		fi
		cpu=$WORK/cpu.pb.gz
		gc_during=$(($(grep -c '^gc ' "$WORK/gregor.log") - gc_before))
		gc_last=$(grep '^gc ' "$WORK/gregor.log" | tail -n 1)
		go tool pprof -proto -output "$WORK/allocs.pb.gz" "$BIN" "http://$DEBUG/debug/pprof/allocs" 2>/dev/null
		stop_load
		header() {
			echo "# $1"
			echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ); gregor $REV ($BIN); gregor.durability=$d"
			if [[ $w == consume ]]; then
				echo "# load: Kafka $(props "$w"), ${RECORD_SIZE} B records, $PARTITIONS partitions; its results while profiled (start, end, MB, MB/s, n, n/s, rebalance ms, fetch ms, fetch MB/s, fetch n/s):"
			else
				echo "# load: $PRODUCERS x Kafka ProducerPerformance in a loop, $(props "$w"), ${RECORD_SIZE} B records, $PARTITIONS partitions; its results while profiled:"
			fi
			sed 's/^/#   /' "$WORK/load.log"
			echo "# GC cycles in the ${SECS}s window (GODEBUG=gctrace=1): $gc_during; the last: $gc_last"
			echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
			echo
		}
		{
			header "CPU, ${SECS}s under load: go tool pprof -top"
			go tool pprof -top -nodecount="$TOP" "$BIN" "$cpu" 2>&1
		} >"$OUT/cpu-$tag.txt"
		{
			header "CPU, ${SECS}s under load: go tool pprof -top -cum"
			go tool pprof -top -cum -nodecount="$TOP" "$BIN" "$cpu" 2>&1
		} >"$OUT/cpu-cum-$tag.txt"
		{
			header "allocations since start (warm-up + profiled window): go tool pprof -sample_index=alloc_space -top"
			go tool pprof -sample_index=alloc_space -top -nodecount="$TOP" "$BIN" "$WORK/allocs.pb.gz" 2>&1
		} >"$OUT/allocs-$tag.txt"
		{
			header "allocations since start (warm-up + profiled window): go tool pprof -sample_index=alloc_objects -top"
			go tool pprof -sample_index=alloc_objects -top -nodecount="$TOP" "$BIN" "$WORK/allocs.pb.gz" 2>&1
		} >"$OUT/allocs-objects-$tag.txt"
		stop_gregor
		log "$tag: wrote $OUT/{cpu,cpu-cum,allocs,allocs-objects}-$tag.txt"
	done
done
