#!/usr/bin/env bash
# Apache Kafka's own command-line tools and Java client (4.4) against a broker.
#
#   BOOTSTRAP=127.0.0.1:9092 bash test/compat/java/run.sh     # a running broker
#   GREGOR_BIN=/tmp/gregor bash test/compat/java/run.sh       # start one here
#   BOOTSTRAP=127.0.0.1:19092 bash test/compat/java/run.sh    # real Kafka, from
#                                                             # bench/kafka/kafka.sh
#
# Checks the topic tool (create, describe, list, alter, delete), the console
# producer and consumer (keys, exact line comparison), GetOffsetShell,
# ProducerPerformance, and the Java client program in client/ (AdminClient,
# idempotent producer, assign/seek consumer). Prints PASS, FAIL or SKIP per
# check and ends with exactly one line "N passed, N failed"; exits non-zero
# if any check failed. Every check must pass against Apache Kafka itself.
#
# Environment:
#   BOOTSTRAP=host:port      the broker to test
#   GREGOR_BIN               when BOOTSTRAP is unset: start this binary on a free
#                            port with a temporary log dir, stop it at the end
#                            (group.initial.rebalance.delay.ms=0, as kafka.sh
#                            sets for Kafka, so groups form at once)
#   GREGOR_COMPAT_GROUPS=1   also run the checks that need consumer groups:
#                            console consumer without --partition (it joins a
#                            generated group), --group, the consumer-group
#                            tool, ConsumerPerformance, and the client's
#                            subscribe/commitSync; otherwise they are SKIPped
#   COMPAT_ONLY=regex        run only the checks whose name matches
#   JAVA_COMPAT_TIMEOUT      seconds one tool invocation may take (default 60)
#   COMPAT_KEEP=1            keep the work dir (tool stderr, Gregor's log)
#
# Needs Java 17 and Maven; the first run resolves Kafka's jars into
# bench/kafka/.cache/libs and builds client/ (both need Maven Central).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RUNCLASS=$ROOT/bench/kafka/kafka-run-class.sh
PROBE=$ROOT/bench/probe.py
CALL_TIMEOUT=${JAVA_COMPAT_TIMEOUT:-60}
WITH_GROUPS=${GREGOR_COMPAT_GROUPS:-0}
NONCE=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-compat-java.XXXXXX")
BROKER_PID=
CHECKS_STARTED=
PASSED=0
FAILED=0
FAILURES=()
SKIPPED=()

# The admin tools are short-lived: a cheaper JIT and GC halve their start-up.
# ProducerPerformance gets the full JIT (see perf_opts).
export KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"

cleanup() {
	if [[ -n "$CHECKS_STARTED" && -z "$BROKER_PID" ]]; then
		# Best effort, not a check: drop this run's topics so that a
		# long-lived broker does not collect them. (A broker started here
		# goes away with its data dir.)
		timeout 30 bash "$RUNCLASS" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
			--delete --topic "javacompat-$NONCE-.*" >/dev/null 2>&1
	fi
	if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
		kill -TERM "$BROKER_PID"
		for _ in $(seq 50); do
			kill -0 "$BROKER_PID" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$BROKER_PID" 2>/dev/null; then
			echo "java compat: gregor still running 10s after SIGTERM; killing it" >&2
			kill -KILL "$BROKER_PID" 2>/dev/null
		fi
		wait "$BROKER_PID" 2>/dev/null
	fi
	if [[ "${COMPAT_KEEP:-0}" == 1 ]]; then
		echo "java compat: work dir kept at $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# setup_failed WHY: nothing can be checked; still end with the summary line.
setup_failed() {
	echo "FAIL setup: $1"
	echo "0 passed, 1 failed"
	exit 1
}

# ------------------------------------------------------------------ broker

if [[ -z "${BOOTSTRAP:-}" ]]; then
	[[ -n "${GREGOR_BIN:-}" ]] || setup_failed "set BOOTSTRAP=host:port or GREGOR_BIN=/path/to/gregor"
	[[ -x "$GREGOR_BIN" ]] || setup_failed "$GREGOR_BIN is not an executable"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	mkdir -p "$WORK/gregor-data"
	"$GREGOR_BIN" serve \
		--override "listeners=PLAINTEXT://127.0.0.1:$port" \
		--override "advertised.listeners=PLAINTEXT://127.0.0.1:$port" \
		--override "log.dirs=$WORK/gregor-data" \
		--override group.initial.rebalance.delay.ms=0 \
		>"$WORK/gregor.log" 2>&1 &
	BROKER_PID=$!
	deadline=$((SECONDS + 30))
	until python3 "$PROBE" --quiet "127.0.0.1:$port"; do
		if ! kill -0 "$BROKER_PID" 2>/dev/null || ((SECONDS >= deadline)); then
			tail -n 20 "$WORK/gregor.log" | sed 's/^/  | /'
			setup_failed "gregor did not answer Metadata on 127.0.0.1:$port within 30s"
		fi
		sleep 0.2
	done
	BOOTSTRAP=127.0.0.1:$port
	echo "started gregor (pid $BROKER_PID) at $BOOTSTRAP"
fi
export BOOTSTRAP
python3 "$PROBE" "$BOOTSTRAP" >/dev/null || setup_failed "no Metadata answer from $BOOTSTRAP"

# ------------------------------------------------------------------ build

bash "$ROOT/bench/kafka/fetch.sh" >"$WORK/fetch.log" 2>&1 || {
	tail -n 20 "$WORK/fetch.log"
	setup_failed "bench/kafka/fetch.sh could not resolve the Kafka jars"
}
# Rebuild the client only when a source or the pom is newer than the build.
client_class=$HERE/client/target/classes/gregor/compat/ClientCompat.class
if [[ ! -f "$client_class" || ! -d "$HERE/client/target/libs" ]] ||
	[[ -n "$(find "$HERE/client/pom.xml" "$HERE/client/src" -newer "$client_class" -type f)" ]]; then
	(cd "$HERE/client" && mvn -q -B package) >"$WORK/mvn.log" 2>&1 || {
		tail -n 30 "$WORK/mvn.log"
		setup_failed "mvn package in test/compat/java/client failed"
	}
fi
kafka_version=$(cat "$ROOT/bench/kafka/.cache/libs/.version")
echo "java compat: Kafka $kafka_version tools and client against $BOOTSTRAP"

# ------------------------------------------------------------------ helpers

topic() { echo "javacompat-$NONCE-$1"; }

# tool CLASS ARGS...: one Kafka tool with a time limit. stdout is the tool's
# output; stderr is appended to $WORK/stderr, shown when the check fails.
tool() {
	local cls=$1
	shift
	timeout -k 5 "$CALL_TIMEOUT" bash "$RUNCLASS" "$cls" "$@" 2>>"$WORK/stderr"
	local rc=$?
	if ((rc == 124)); then
		echo "${cls##*.} timed out after ${CALL_TIMEOUT}s" >>"$WORK/reason"
	fi
	return $rc
}

topics() { tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }
consumer_groups() { tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" "$@"; }

fail() {
	echo "$*" >>"$WORK/reason"
	return 1
}

# expect_same WHAT WANT GOT: exact comparison, a diff as the reason.
expect_same() {
	if [[ "$2" != "$3" ]]; then
		{
			echo "$1 differs (-want +got):"
			diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -20
		} >>"$WORK/reason"
		return 1
	fi
}

# describe_ok TOPIC PARTITIONS: `--describe` says PartitionCount and
# ReplicationFactor 1, and lists partitions 0..N-1, each led by broker 1,
# replicas 1, in-sync 1. The tool prints tab-separated "Key: value" fields.
describe_ok() {
	local t=$1 n=$2 out
	out=$(topics --describe --topic "$t") || fail "--describe $t failed"
	python3 - "$t" "$n" "$out" <<'EOF' 2>>"$WORK/reason"
import sys
# A failed assertion is the reason, without a traceback.
sys.excepthook = lambda t, v, tb: print(v if t is AssertionError else f"{t.__name__}: {v}", file=sys.stderr)
t, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def fields(line):
    d = {}
    for part in line.strip().split("\t"):
        k, sep, v = part.partition(": ")
        if sep:
            d[k.strip()] = v.strip()
        elif part.endswith(":"):
            d[part[:-1].strip()] = ""
    return d
rows = [fields(l) for l in out.splitlines() if l.strip()]
head = [r for r in rows if "PartitionCount" in r]
assert len(head) == 1, f"want one topic summary line, got {out!r}"
h = head[0]
assert h.get("Topic") == t, f"summary names topic {h.get('Topic')!r}"
assert h.get("PartitionCount") == str(n), f"PartitionCount {h.get('PartitionCount')!r}, want {n}"
assert h.get("ReplicationFactor") == "1", f"ReplicationFactor {h.get('ReplicationFactor')!r}, want 1"
parts = [r for r in rows if "Partition" in r]
got = sorted((int(r["Partition"]), r.get("Leader"), r.get("Replicas"), r.get("Isr")) for r in parts)
want = [(i, "1", "1", "1") for i in range(n)]
assert got == want, f"partitions (id, leader, replicas, isr) {got}, want {want}"
EOF
}

# end_offsets TOPIC: "partition offset" lines from GetOffsetShell (latest).
end_offsets() {
	tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$1" --time -1 |
		awk -F: '{print $2, $3}' | sort -n
}

# console_produce TOPIC < lines: keyed records, "key:value" per line.
console_produce() {
	tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic "$1" \
		--reader-property parse.key=true --reader-property key.separator=: \
		--command-property acks=all
}

# console_consume TOPIC N [ARGS...]: N records as "key:value" lines.
console_consume() {
	local t=$1 n=$2
	shift 2
	tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$t" \
		--max-messages "$n" --timeout-ms 20000 \
		--formatter-property print.key=true --formatter-property key.separator=: "$@"
}

# keyed_lines N [FIRST]: "key:value" lines with a few awkward values — a
# separator inside the value, an empty value, spaces, non-ASCII.
keyed_lines() {
	local n=$1 first=${2:-1} i
	for ((i = first; i < first + n; i++)); do
		case $((i % 10)) in
		3) echo "k$((i % 7)):value $i has a : inside" ;;
		5) echo "k$((i % 7)):" ;;
		7) echo "k$((i % 7)):zażółć gęślą jaźń $i" ;;
		*) echo "k$((i % 7)):value-$i" ;;
		esac
	done
}

run() {
	local name=$1 fn=$2
	if [[ -n "${COMPAT_ONLY:-}" && ! "$name" =~ $COMPAT_ONLY ]]; then
		return 0
	fi
	: >"$WORK/reason"
	: >"$WORK/stderr"
	local start=$SECONDS rc
	# set -e inside the subshell: the first failing step ends the check.
	(
		set -e -o pipefail
		"$fn"
	)
	rc=$?
	if ((rc == 0)); then
		PASSED=$((PASSED + 1))
		echo "PASS $name ($((SECONDS - start))s)"
	else
		FAILED=$((FAILED + 1))
		FAILURES+=("$name")
		local reason
		reason=$(head -c 3000 "$WORK/reason")
		echo "FAIL $name ($((SECONDS - start))s): ${reason:-(no reason recorded)}"
		if [[ -s "$WORK/stderr" ]]; then
			echo "---- $name tool stderr (last 15 lines) ----"
			tail -n 15 "$WORK/stderr" | sed 's/^/  | /'
		fi
	fi
}

# run_groups NAME FN: a check that needs consumer-group support in the broker.
run_groups() {
	if [[ "$WITH_GROUPS" == 1 ]]; then
		run "$1" "$2"
	elif [[ -z "${COMPAT_ONLY:-}" || "$1" =~ $COMPAT_ONLY ]]; then
		SKIPPED+=("$1")
		echo "SKIP $1: needs consumer groups (GREGOR_COMPAT_GROUPS=1)"
	fi
}

# gregor TOOL ARGS...: a gregor tool (GREGOR_BIN) against the same broker.
gregor_tool() {
	local t=$1
	shift
	timeout -k 5 "$CALL_TIMEOUT" "$GREGOR_BIN" "$t" --bootstrap-server "$BOOTSTRAP" "$@" 2>>"$WORK/stderr"
}

# ------------------------------------------------------------------ topic tool

T_ADMIN=$(topic admin)

check_topic_create() {
	local out
	out=$(topics --create --topic "$T_ADMIN" --partitions 3 --replication-factor 1) || fail "--create failed"
	expect_same "--create output" "Created topic $T_ADMIN." "$out"
}

check_topic_create_existing() {
	local out rc=0
	out=$(topics --create --topic "$T_ADMIN" --partitions 3 --replication-factor 1) || rc=$?
	((rc != 0)) || fail "a second --create of $T_ADMIN succeeded: $out"
	grep -q "already exists" "$WORK/stderr" || fail "want 'already exists' on stderr"
}

check_topic_describe() {
	describe_ok "$T_ADMIN" 3
}

check_topic_list() {
	local out
	out=$(topics --list) || fail "--list failed"
	grep -qxF "$T_ADMIN" <<<"$out" || fail "--list lacks $T_ADMIN: $(head -c 500 <<<"$out")"
}

check_topic_alter_partitions() {
	topics --alter --topic "$T_ADMIN" --partitions 5 >/dev/null || fail "--alter --partitions 5 failed"
	describe_ok "$T_ADMIN" 5
}

check_topic_delete() {
	topics --delete --topic "$T_ADMIN" >/dev/null || fail "--delete failed"
	local deadline=$((SECONDS + 20)) out
	while ((SECONDS < deadline)); do
		out=$(topics --list) || fail "--list failed"
		grep -qxF "$T_ADMIN" <<<"$out" || return 0
		sleep 1
	done
	fail "$T_ADMIN still listed 20s after --delete"
}

# Topic configs at creation, including compression.zstd.level (a topic
# config since Kafka 3.8, KIP-390), then shown by --describe and used for
# records that must read back unchanged.
T_CFG=$(topic configs)

check_topic_create_with_configs() {
	local out want got
	out=$(topics --create --topic "$T_CFG" --partitions 1 --replication-factor 1 \
		--config retention.ms=3600000 --config compression.type=zstd \
		--config compression.zstd.level=9 --config max.message.bytes=2097152) || fail "--create with --config failed"
	expect_same "--create output" "Created topic $T_CFG." "$out"
	out=$(topics --describe --topic "$T_CFG") || fail "--describe $T_CFG failed"
	python3 - "$out" <<'PY' 2>>"$WORK/reason"
import sys
# A failed assertion is the reason, without a traceback.
sys.excepthook = lambda t, v, tb: print(v if t is AssertionError else f"{t.__name__}: {v}", file=sys.stderr)
head = next(l for l in sys.argv[1].splitlines() if "PartitionCount" in l)
configs = head.split("Configs:", 1)[1].strip() if "Configs:" in head else ""
got = dict(kv.split("=", 1) for kv in configs.split(",") if "=" in kv)
want = {"retention.ms": "3600000", "compression.type": "zstd",
        "compression.zstd.level": "9", "max.message.bytes": "2097152"}
missing = {k: v for k, v in want.items() if got.get(k) != v}
assert not missing, f"--describe Configs lacks {missing}; got {configs!r}"
PY
	want=$(for i in $(seq 1 50); do echo "k$i:$(printf 'compressible %.0s' $(seq 1 40))$i"; done)
	console_produce "$T_CFG" <<<"$want" || fail "console producer failed"
	got=$(console_consume "$T_CFG" 50 --partition 0 --from-beginning) || fail "console consumer failed"
	expect_same "records through the zstd topic" "$want" "$got"
}

# kafka-configs (ConfigCommand): set, show and remove a topic override.
T_ALTER=$(topic alter-configs)

topic_overrides() {
	tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" --describe \
		--entity-type topics --entity-name "$T_ALTER"
}

check_configs_alter() {
	local out
	topics --create --topic "$T_ALTER" --partitions 1 --replication-factor 1 >/dev/null || fail "create $T_ALTER failed"
	out=$(tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics \
		--entity-name "$T_ALTER" --add-config retention.ms=7200000,segment.bytes=16777216) || fail "--alter --add-config failed"
	expect_same "--alter output" "Completed updating config for topic $T_ALTER." "$out"
	out=$(topic_overrides) || fail "--describe failed"
	grep -q "retention.ms=7200000 sensitive=false" <<<"$out" || fail "--describe lacks retention.ms=7200000: $out"
	grep -q "segment.bytes=16777216 sensitive=false" <<<"$out" || fail "--describe lacks segment.bytes=16777216: $out"
	tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics \
		--entity-name "$T_ALTER" --delete-config retention.ms >/dev/null || fail "--alter --delete-config failed"
	out=$(topic_overrides) || fail "--describe failed"
	! grep -q "retention.ms=" <<<"$out" || fail "retention.ms still set after --delete-config: $out"
	grep -q "segment.bytes=16777216" <<<"$out" || fail "segment.bytes lost by deleting retention.ms: $out"
}

# ------------------------------------------------------------------ console

T_ONE=$(topic console-1p)
T_KEYED=$(topic console-3p)
ONE_N=100

check_console_roundtrip() {
	local want got
	topics --create --topic "$T_ONE" --partitions 1 --replication-factor 1 >/dev/null || fail "create $T_ONE failed"
	want=$(keyed_lines "$ONE_N")
	console_produce "$T_ONE" <<<"$want" || fail "console producer failed"
	# --partition makes the console consumer assign instead of joining a group.
	got=$(console_consume "$T_ONE" "$ONE_N" --partition 0 --from-beginning) || fail "console consumer failed"
	expect_same "console consumer output" "$want" "$got"
}

# Three partitions: the producer's key hash places each key in one
# partition; reading partition by partition (to the end offsets that
# GetOffsetShell reports) must give back every line, each key in a single
# partition, in the order it was produced.
check_console_keyed_partitions() {
	local want offsets got="" p end total=0
	topics --create --topic "$T_KEYED" --partitions 3 --replication-factor 1 >/dev/null || fail "create $T_KEYED failed"
	want=$(keyed_lines 300)
	console_produce "$T_KEYED" <<<"$want" || fail "console producer failed"
	offsets=$(end_offsets "$T_KEYED") || fail "GetOffsetShell failed"
	[[ $(wc -l <<<"$offsets") == 3 ]] || fail "GetOffsetShell: want 3 partitions, got: $offsets"
	while read -r p end; do
		total=$((total + end))
		((end > 0)) || continue
		got+=$(console_consume "$T_KEYED" "$end" --partition "$p" --offset earliest | sed "s/^/$p /") || fail "console consumer partition $p failed"
		got+=$'\n'
	done <<<"$offsets"
	((total == 300)) || fail "end offsets sum to $total, want 300: $offsets"
	python3 - "$want" "$got" <<'EOF' 2>>"$WORK/reason"
import sys
# A failed assertion is the reason, without a traceback.
sys.excepthook = lambda t, v, tb: print(v if t is AssertionError else f"{t.__name__}: {v}", file=sys.stderr)
want = sys.argv[1].splitlines()
got = [l.split(" ", 1) for l in sys.argv[2].splitlines() if l]
assert sorted(l for _, l in got) == sorted(want), "the lines read differ from the lines produced"
home = {}
for p, l in got:
    k = l.split(":", 1)[0]
    assert home.setdefault(k, p) == p, f"key {k} in partitions {home[k]} and {p}"
for k in home:
    w = [l for l in want if l.split(":", 1)[0] == k]
    g = [l for _, l in got if l.split(":", 1)[0] == k]
    assert w == g, f"key {k}: order differs"
EOF
}

# Without --partition the 4.1 console consumer subscribes under a generated
# group id ("console-consumer-NNNNN"), so it needs the group coordinator.
check_console_subscribe_from_beginning() {
	local got
	got=$(console_consume "$T_ONE" "$ONE_N" --from-beginning) || fail "console consumer failed"
	expect_same "console consumer output" "$(keyed_lines "$ONE_N")" "$got"
}

G_CONSOLE=$(topic group)

check_console_group() {
	local got
	got=$(console_consume "$T_ONE" "$ONE_N" --group "$G_CONSOLE" --from-beginning) || fail "console consumer --group failed"
	expect_same "console consumer --group output" "$(keyed_lines "$ONE_N")" "$got"
}

# ------------------------------------------------------------------ groups tool

# group_rows GROUP: "topic partition current log-end lag" for GROUP's rows,
# found by the column headers of `--describe`.
group_rows() {
	local out
	out=$(consumer_groups --describe --group "$1") || return 1
	awk '
		$1 == "GROUP" { for (i = 1; i <= NF; i++) col[$i] = i; next }
		col["TOPIC"] && NF >= col["LAG"] {
			print $col["TOPIC"], $col["PARTITION"], $col["CURRENT-OFFSET"], $col["LOG-END-OFFSET"], $col["LAG"]
		}' <<<"$out"
}

check_groups_describe_lag() {
	local rows
	keyed_lines 20 $((ONE_N + 1)) | console_produce "$T_ONE" || fail "console producer failed"
	consumer_groups --list | grep -qxF "$G_CONSOLE" || fail "--list lacks $G_CONSOLE"
	rows=$(group_rows "$G_CONSOLE") || fail "--describe --group failed"
	expect_same "--describe rows (topic partition current log-end lag)" "$T_ONE 0 $ONE_N $((ONE_N + 20)) 20" "$rows"
}

check_groups_reset_to_earliest() {
	local out rows got
	out=$(consumer_groups --reset-offsets --to-earliest --execute --group "$G_CONSOLE" --topic "$T_ONE") || fail "--reset-offsets failed"
	awk '$1 == "GROUP" { for (i = 1; i <= NF; i++) col[$i] = i; next } col["NEW-OFFSET"] { print $col["TOPIC"], $col["PARTITION"], $col["NEW-OFFSET"] }' <<<"$out" |
		grep -qxF "$T_ONE 0 0" || fail "--reset-offsets output lacks '$T_ONE 0 0' (NEW-OFFSET): $out"
	rows=$(group_rows "$G_CONSOLE") || fail "--describe --group failed"
	expect_same "--describe rows after reset" "$T_ONE 0 0 $((ONE_N + 20)) $((ONE_N + 20))" "$rows"
	# The group resumes from the reset position, not from the old commit.
	got=$(console_consume "$T_ONE" $((ONE_N + 20)) --group "$G_CONSOLE") || fail "console consumer after reset failed"
	expect_same "records after reset" "$(keyed_lines $((ONE_N + 20)))" "$got"
}

# ------------------------------------------------------------------ perf tools

T_PERF=$(topic perf)
PERF_N=20000

# stderr_clean: the tool logged no errors or exceptions.
stderr_clean() {
	if grep -nE 'ERROR|Exception' "$WORK/stderr" | head -5 >"$WORK/errs" && [[ -s "$WORK/errs" ]]; then
		fail "$1 logged errors: $(cat "$WORK/errs")"
	fi
}

check_producer_perf() {
	local out last offsets
	topics --create --topic "$T_PERF" --partitions 3 --replication-factor 1 >/dev/null || fail "create $T_PERF failed"
	out=$(KAFKA_TOOL_OPTS="" tool org.apache.kafka.tools.ProducerPerformance --topic "$T_PERF" \
		--num-records "$PERF_N" --record-size 1024 --throughput -1 \
		--producer-props bootstrap.servers="$BOOTSTRAP" acks=all) || fail "ProducerPerformance failed"
	last=$(tail -n 1 <<<"$out")
	echo "  $last"
	[[ "$last" =~ ^$PERF_N\ records\ sent, ]] || fail "last line: $last"
	stderr_clean ProducerPerformance
	offsets=$(end_offsets "$T_PERF") || fail "GetOffsetShell failed"
	local sum
	sum=$(awk '{s += $2} END {print s + 0}' <<<"$offsets")
	((sum == PERF_N)) || fail "end offsets sum to $sum, want $PERF_N: $offsets"
}

check_consumer_perf() {
	local out row n
	out=$(KAFKA_TOOL_OPTS="" tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$BOOTSTRAP" \
		--topic "$T_PERF" --messages "$PERF_N" --timeout 30000) || fail "ConsumerPerformance failed"
	row=$(tail -n 1 <<<"$out")
	echo "  $row"
	n=$(awk -F', ' '{print $5}' <<<"$row")
	[[ "$n" == "$PERF_N" ]] || fail "data.consumed.in.nMsg is '$n', want $PERF_N; output: $out"
	stderr_clean ConsumerPerformance
}

# ------------------------------------------------------------------ run

CHECKS_STARTED=1
# ------------------------------------------------------------------ gregor's own tools

T_TOOLS=$(topic tools)

# gregor get-offsets, delete-records and log-dirs print what GetOffsetShell,
# DeleteRecordsCommand and LogDirsCommand print, on the same broker (Kafka
# lists the last two's partitions in hash order: compared sorted).
check_gregor_tools() {
	local k g
	topics --create --topic "$T_TOOLS" --partitions 3 --replication-factor 1 >/dev/null || fail "create $T_TOOLS failed"
	keyed_lines 90 | console_produce "$T_TOOLS" || fail "console producer failed"
	for args in "--topic $T_TOOLS" "--topic $T_TOOLS --time earliest" "--topic-partitions $T_TOOLS:1-" "--topic $T_TOOLS --time -3" "--topic $T_TOOLS --time 0 --partitions 2"; do
		# shellcheck disable=SC2086 # word splitting of args is intended
		k=$(tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" $args) || fail "GetOffsetShell $args failed"
		# shellcheck disable=SC2086
		g=$(gregor_tool get-offsets $args) || fail "gregor get-offsets $args failed"
		expect_same "get-offsets $args" "$k" "$g"
	done
	local norm='import json, sys
d = json.loads(sys.stdin.read().splitlines()[-1])
for b in d["brokers"]:
    for l in b["logDirs"]:
        l["partitions"].sort(key=lambda p: p["partition"])
print(json.dumps(d, sort_keys=True))'
	k=$(tool org.apache.kafka.tools.LogDirsCommand --bootstrap-server "$BOOTSTRAP" --describe --topic-list "$T_TOOLS") || fail "LogDirsCommand failed"
	g=$(gregor_tool log-dirs --describe --topic-list "$T_TOOLS") || fail "gregor log-dirs failed"
	expect_same "log-dirs's first two lines" "$(head -n 2 <<<"$k")" "$(head -n 2 <<<"$g")"
	expect_same "log-dirs's JSON" "$(python3 -c "$norm" <<<"$k")" "$(python3 -c "$norm" <<<"$g")"
	# Each deletes in turn; the outputs differ only in the low watermark.
	local end
	end=$(end_offsets "$T_TOOLS" | awk '$2 >= 2 {print $1; exit}')
	[[ -n "$end" ]] || fail "no partition of $T_TOOLS holds 2 records"
	echo "{\"partitions\": [{\"topic\": \"$T_TOOLS\", \"partition\": $end, \"offset\": 1}], \"version\": 1}" >"$WORK/del1.json"
	echo "{\"partitions\": [{\"topic\": \"$T_TOOLS\", \"partition\": $end, \"offset\": 2}], \"version\": 1}" >"$WORK/del2.json"
	k=$(tool org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$BOOTSTRAP" --offset-json-file "$WORK/del1.json") || fail "DeleteRecordsCommand failed"
	g=$(gregor_tool delete-records --offset-json-file "$WORK/del2.json") || fail "gregor delete-records failed"
	expect_same "delete-records" "${k/low_watermark: 1/low_watermark: 2}" "$g"
}

run topic_create_3_partitions check_topic_create
run topic_create_existing_fails check_topic_create_existing
run topic_describe_3_partitions check_topic_describe
run topic_list check_topic_list
run topic_alter_partitions_5 check_topic_alter_partitions
run topic_delete check_topic_delete
run topic_create_with_configs check_topic_create_with_configs
run configs_alter_describe_delete check_configs_alter
run console_producer_consumer_keys check_console_roundtrip
run console_keyed_3_partitions check_console_keyed_partitions
run_groups console_consumer_subscribe_from_beginning check_console_subscribe_from_beginning
run_groups console_consumer_group check_console_group
run_groups consumer_groups_describe_lag check_groups_describe_lag
run_groups consumer_groups_reset_to_earliest check_groups_reset_to_earliest
run producer_performance_20000 check_producer_perf
run_groups consumer_performance_20000 check_consumer_perf
if [[ -n "${GREGOR_BIN:-}" ]]; then
	run gregor_tools_match_kafkas check_gregor_tools
elif [[ -z "${COMPAT_ONLY:-}" || gregor_tools_match_kafkas =~ $COMPAT_ONLY ]]; then
	SKIPPED+=(gregor_tools_match_kafkas)
	echo "SKIP gregor_tools_match_kafkas: needs GREGOR_BIN"
fi

# The client program prints its own PASS/FAIL/SKIP lines and summary, and
# reads COMPAT_ONLY and GREGOR_COMPAT_GROUPS itself.
echo "== java client (client/)"
timeout -k 10 300 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
	-cp "$HERE/client/target/classes:$HERE/client/target/libs/*" \
	gregor.compat.ClientCompat "$BOOTSTRAP" 2>"$WORK/client.err" | tee "$WORK/client.out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/client.out" | tail -n 1)
if [[ -z "$line" ]]; then
	FAILED=$((FAILED + 1))
	FAILURES+=(java_client)
	echo "FAIL java_client: exit $rc without a summary line"
else
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed}
	((rc != 0 && f == 0)) && f=1
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	while read -r name; do FAILURES+=("client:$name"); done < <(sed -n 's/^FAIL \([^ ]*\).*/\1/p' "$WORK/client.out")
	while read -r name; do SKIPPED+=("client:$name"); done < <(sed -n 's/^SKIP \([^:]*\):.*/\1/p' "$WORK/client.out")
fi
if ((rc != 0)) && [[ -s "$WORK/client.err" ]]; then
	echo "---- java client stderr (last 30 lines) ----"
	tail -n 30 "$WORK/client.err" | sed 's/^/  | /'
fi

echo
if ((${#SKIPPED[@]})); then
	echo "-- skipped (${#SKIPPED[@]}): ${SKIPPED[*]}"
fi
if ((FAILED)); then
	echo "-- failures: ${FAILURES[*]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
