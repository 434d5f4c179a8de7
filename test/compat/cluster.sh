#!/usr/bin/env bash
# Real clients against a three-node Gregor cluster (combined broker +
# controller nodes, the Raft metadata quorum): starts the cluster on free
# 127.0.0.1 ports with fresh data dirs, runs the checks below with ONE broker
# in each client's bootstrap list (which one varies), stops the nodes, and
# ends with one line "N passed, N failed". Exits non-zero on any failure.
#
#   bash test/compat/cluster.sh               # builds ./cmd/gregor
#   GREGOR_BIN=/tmp/gregor bash test/compat/cluster.sh
#   make compat-cluster                       # the same
#
# Checks:
#   cluster metadata  kcat -L; kafka-python describe_cluster (2.0.2 and 3.x);
#                     Kafka 4.4's TopicCommand --describe, MetadataQuorumCommand
#                     describe --status / --replication (--bootstrap-server and
#                     --bootstrap-controller), ClusterTool cluster-id; gregor's
#                     own metadata-quorum
#   placement         a 6-partition topic has leaders on all three nodes
#   produce/consume   every record back, exact keys and values, on 6-partition
#                     topics: kafka-python 2.0.2 and 3.x, franz-go (gregor
#                     console-producer/-consumer), kcat and confluent-kafka
#                     (librdkafka), the Java client (Kafka 4.4's console
#                     producer and consumer)
#   suites            kafka_python_seeds.py and kafka_python_groups.py under
#                     kafka-python 2.0.2 and 3.x, groups_librdkafka.py, sarama/,
#                     kafkajs/ (each against one node; their own PASS/FAIL lines)
#   coordinators      the groups the suites used have coordinators on at least
#                     two nodes (FindCoordinator), and `gregor consumer-groups
#                     --describe --state` names the same coordinator
#   shutdown          every node still alive after the checks, exits 0 on
#                     SIGTERM, and logged no panic or data race
#
# Environment:
#   GREGOR_BIN             test this binary instead of building one
#   CLUSTER_PORT_BASE      use ports BASE..BASE+5 (client, controller per node)
#                          instead of free ones
#   CLUSTER_SUITES=regex   run only the suites whose name matches (default all:
#                          kafka_python_seeds kafka_python3_seeds
#                          kafka_python_groups kafka_python3_groups
#                          groups_librdkafka sarama kafkajs); "none" runs none
#   COMPAT_ONLY=regex      run only the checks whose name matches (all suites)
#   COMPAT_SUITE_TIMEOUT   seconds one suite may take (default 300)
#   CALL_TIMEOUT           seconds one client call may take (default 60)
#   COMPAT_KEEP=1          keep the work dir (node logs and data, suite logs)
#   KAFKA_PYTHON3          python with kafka-python 3.x (default: install.sh's venv)
#
# Needs what test/compat/install.sh installs, plus go, java and node.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUNCLASS=$ROOT/bench/kafka/kafka-run-class.sh
SUITE_TIMEOUT=${COMPAT_SUITE_TIMEOUT:-300}
CALL_TIMEOUT=${CALL_TIMEOUT:-60}
KP3_PY=${KAFKA_PYTHON3:-$HERE/.venv-kafka-python3/bin/python}
SUITES=${CLUSTER_SUITES:-.}
export GREGOR_COMPAT_GROUPS=1
export PYTHONDONTWRITEBYTECODE=1
# Short-lived Kafka tools: a cheaper JIT and GC halve their start-up.
export KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-cluster-compat.XXXXXX")
NONCE=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
PIDS=(0 "" "" "")
CPORT=(0 0 0 0) # client port per node
KPORT=(0 0 0 0) # controller port per node
B=(0 "" "" "") # bootstrap per node, 127.0.0.1:port
PASSED=0
FAILED=0
SUMMARY=()
STARTED=$SECONDS

cleanup() {
	local n
	for n in 1 2 3; do
		[[ -n "${PIDS[n]}" ]] && kill -TERM "${PIDS[n]}" 2>/dev/null
	done
	for n in 1 2 3; do
		[[ -n "${PIDS[n]}" ]] || continue
		for _ in $(seq 50); do
			kill -0 "${PIDS[n]}" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "${PIDS[n]}" 2>/dev/null
		wait "${PIDS[n]}" 2>/dev/null
	done
	if [[ "${COMPAT_KEEP:-0}" == 1 ]]; then
		echo "cluster compat: work dir kept at $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record() { # record NAME OK|FAIL [reason]
	if [[ "$2" == OK ]]; then
		PASSED=$((PASSED + 1))
		echo "PASS $1${3:+: $3}"
	else
		FAILED=$((FAILED + 1))
		echo "FAIL $1: ${3:-}"
		SUMMARY+=("$1: FAIL ${3:-}")
	fi
}

finish() {
	echo
	echo "== cluster compat summary ($((SECONDS - STARTED))s)"
	((${#SUMMARY[@]})) && printf '  %s\n' "${SUMMARY[@]}"
	echo "$PASSED passed, $FAILED failed"
	((FAILED)) && exit 1
	exit 0
}

node_logs_tail() {
	local n
	for n in 1 2 3; do
		echo "---- node $n log (last ${1:-25} lines) ----"
		tail -n "${1:-25}" "$WORK/node$n.log" 2>/dev/null | sed 's/^/  | /'
	done
}

# check NAME FUNCTION [ARGS...]: runs a check function (subshell, stdout kept
# in $WORK/NAME.out); a PASS shows the function's last stdout line as a note,
# a FAIL the reason it wrote with `fail`, or its last output line.
check() {
	local name=$1
	shift
	if [[ -n "${COMPAT_ONLY:-}" ]] && ! [[ "$name" =~ $COMPAT_ONLY ]]; then
		return
	fi
	: >"$WORK/reason"
	if ("$@") >"$WORK/$name.out" 2>"$WORK/$name.err"; then
		record "$name" OK "$(tail -n 1 "$WORK/$name.out" | cut -c1-160)"
	else
		local why
		why=$(tr '\n' ' ' <"$WORK/reason" | cut -c1-400)
		[[ -n "$why" ]] || why=$(tail -n 3 "$WORK/$name.err" "$WORK/$name.out" 2>/dev/null | grep -v '^==>' | grep . | tail -n 2 | tr '\n' ' ' | cut -c1-400)
		record "$name" FAIL "${why:-exit status non-zero}"
	fi
}

fail() {
	echo "$*" >>"$WORK/reason"
	return 1
}

# bounded SECONDS CMD...: a call with a hard time limit.
bounded() {
	timeout -k 5 "$1" "${@:2}"
	local rc=$?
	((rc == 124)) && echo "$2 ${3:-} timed out after $1s" >>"$WORK/reason"
	return $rc
}

tool() { # tool CLASS ARGS...: a Kafka 4.4 tool
	bounded "$CALL_TIMEOUT" bash "$RUNCLASS" "$@"
}

gregor() { bounded "$CALL_TIMEOUT" "$BIN" "$@"; }

# keyed_lines TOPIC N: "key:value" lines, values with a ':' inside, spaces
# and non-ASCII, all distinct.
keyed_lines() {
	local i
	for ((i = 0; i < $2; i++)); do
		printf 'k%d:%s v%d:é ß %d\n' "$i" "$1" "$i" "$((i * 7919))"
	done
}

# same_lines WHAT WANT GOT: equal as sorted multisets of lines.
same_lines() {
	local w g
	w=$(sort <<<"$2")
	g=$(sort <<<"$3")
	if [[ "$w" != "$g" ]]; then
		fail "$1: want $(grep -c . <<<"$w") lines, got $(grep -c . <<<"$g"); diff (-want +got): $(diff <(echo "$w") <(echo "$g") | grep '^[<>]' | head -4 | tr '\n' ' ')"
		return 1
	fi
}

# ------------------------------------------------------------------ build

if [[ -n "${GREGOR_BIN:-}" ]]; then
	BIN=$GREGOR_BIN
else
	BIN=$WORK/gregor
	echo "== building gregor"
	if ! (cd "$ROOT" && go build -o "$BIN" ./cmd/gregor); then
		record build FAIL "go build ./cmd/gregor failed"
		finish
	fi
fi
[[ -x "$BIN" ]] || { record build FAIL "$BIN is not an executable"; finish; }

# ------------------------------------------------------------------ start

# Six ports: the given base, or six free ones held open together so they
# are distinct.
if [[ -n "${CLUSTER_PORT_BASE:-}" ]]; then
	ports=($(seq "$CLUSTER_PORT_BASE" $((CLUSTER_PORT_BASE + 5))))
else
	ports=($(python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
fi
voters=
for n in 1 2 3; do
	CPORT[n]=${ports[2 * (n - 1)]}
	KPORT[n]=${ports[2 * (n - 1) + 1]}
	B[n]=127.0.0.1:${CPORT[n]}
	voters+="${voters:+,}$n@127.0.0.1:${KPORT[n]}"
done

echo "== starting a 3-node cluster in $WORK"
CLUSTER_ID=$("$BIN" storage random-uuid) || { record cluster_format FAIL "storage random-uuid failed"; finish; }
for n in 1 2 3; do
	cat >"$WORK/server-$n.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${CPORT[n]},CONTROLLER://127.0.0.1:${KPORT[n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${CPORT[n]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$WORK/node-$n
gregor.http.listener=
EOF
	if ! "$BIN" storage format -t "$CLUSTER_ID" -c "$WORK/server-$n.properties" >>"$WORK/format.log" 2>&1; then
		record cluster_format FAIL "storage format node $n: $(tail -n 1 "$WORK/format.log")"
		finish
	fi
done
for n in 1 2 3; do
	"$BIN" serve -c "$WORK/server-$n.properties" >"$WORK/node$n.log" 2>&1 &
	PIDS[n]=$!
done
t0=$SECONDS
up=0
while ((SECONDS - t0 < 60)); do
	up=0
	for n in 1 2 3; do
		if ! kill -0 "${PIDS[n]}" 2>/dev/null; then
			wait "${PIDS[n]}"
			record cluster_start FAIL "node $n exited with status $? before serving"
			PIDS[n]=
			node_logs_tail
			finish
		fi
		grep -q "^Gregor .* started in" "$WORK/node$n.log" && up=$((up + 1))
	done
	((up == 3)) && break
	sleep 0.2
done
if ((up != 3)); then
	record cluster_start FAIL "only $up of 3 nodes printed 'Gregor ... started' within 60s"
	node_logs_tail
	finish
fi
record cluster_start OK "3 nodes serving after $((SECONDS - t0))s: ${B[1]} ${B[2]} ${B[3]}, controllers ${KPORT[1]} ${KPORT[2]} ${KPORT[3]}"

# ------------------------------------------------------------------ metadata

check_kcat_L() {
	local out
	out=$(bounded "$CALL_TIMEOUT" kcat -b "${B[1]}" -L) || fail "kcat -L failed"
	echo "$out" >&2
	[[ $(grep -c '^  broker [0-9]* at ' <<<"$out") == 3 ]] || fail "want 3 brokers in: $(head -n 5 <<<"$out" | tr '\n' ' ')" || return
	local n
	for n in 1 2 3; do
		grep -q "^  broker $n at ${B[n]}" <<<"$out" || fail "no 'broker $n at ${B[n]}' in: $(head -n 5 <<<"$out" | tr '\n' ' ')" || return
	done
	[[ $(grep -c '(controller)' <<<"$out") == 1 ]] || fail "want one broker marked (controller)" || return
	echo "3 brokers, controller: $(grep '(controller)' <<<"$out" | awk '{print $2}')"
}
check kcat_L_three_brokers check_kcat_L

check kafka_python_describe_cluster bounded "$CALL_TIMEOUT" python3 "$HERE/cluster_clients.py" describe "${B[3]}"
if [[ -x "$KP3_PY" ]]; then
	check kafka_python3_describe_cluster bounded "$CALL_TIMEOUT" "$KP3_PY" "$HERE/cluster_clients.py" describe "${B[2]}"
else
	record kafka_python3_describe_cluster FAIL "no kafka-python 3.x python at $KP3_PY (run test/compat/install.sh)"
fi

T_SIX=cluster-$NONCE-six
check_topic_describe() {
	gregor topics --bootstrap-server "${B[1]}" --create --topic "$T_SIX" --partitions 6 --replication-factor 1 >/dev/null ||
		fail "gregor topics --create $T_SIX failed" || return
	local out
	out=$(tool org.apache.kafka.tools.TopicCommand --bootstrap-server "${B[2]}" --describe --topic "$T_SIX") ||
		fail "TopicCommand --describe failed" || return
	echo "$out" >&2
	python3 - "$T_SIX" "$out" <<'EOF' 2>>"$WORK/reason"
import sys
sys.excepthook = lambda t, v, tb: print(v if t is AssertionError else f"{t.__name__}: {v}", file=sys.stderr)
t, out = sys.argv[1], sys.argv[2]
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
assert len(head) == 1 and head[0].get("PartitionCount") == "6", f"want PartitionCount 6 in {out!r}"
assert head[0].get("ReplicationFactor") == "1", f"ReplicationFactor {head[0].get('ReplicationFactor')!r}"
parts = sorted((int(r["Partition"]), r.get("Leader"), r.get("Replicas"), r.get("Isr")) for r in rows if "Partition" in r)
assert [p[0] for p in parts] == list(range(6)), f"partitions {parts}"
for p, leader, replicas, isr in parts:
    assert leader in ("1", "2", "3") and replicas == leader and isr == leader, f"partition {p}: leader {leader} replicas {replicas} isr {isr}"
leaders = sorted({p[1] for p in parts})
assert leaders == ["1", "2", "3"], f"leaders {leaders}, want all of 1, 2, 3"
print("6 partitions, leaders " + " ".join(f"{p}:{l}" for p, l, _, _ in parts))
EOF
}
check java_topic_describe_leaders_on_three_nodes check_topic_describe

check_leaders() { # from kafka-python's Metadata through node 3
	local out
	out=$(bounded "$CALL_TIMEOUT" python3 "$HERE/cluster_clients.py" leaders "${B[3]}" "$T_SIX") || fail "Metadata for $T_SIX failed" || return
	local set
	set=$(tr ' ' '\n' <<<"$out" | cut -d: -f2 | sort -u | tr '\n' ' ')
	[[ "$set" == "1 2 3 " ]] || fail "leaders $out: want all of 1 2 3" || return
	echo "partition:leader $out"
}
check metadata_six_partitions_leaders_on_three_nodes check_leaders

# quorum_ok OUTPUT: describe --status names 3 voters, a leader among them.
quorum_ok() {
	python3 - "$1" "$CLUSTER_ID" <<'EOF' 2>>"$WORK/reason"
import json, re, sys
sys.excepthook = lambda t, v, tb: print(v if t is AssertionError else f"{t.__name__}: {v}", file=sys.stderr)
out, cid = sys.argv[1], sys.argv[2]
f = dict(re.match(r"(\w+):\s*(.*)", l).groups() for l in out.splitlines() if re.match(r"\w+:", l))
assert f.get("ClusterId") == cid, f"ClusterId {f.get('ClusterId')!r}, want {cid}"
voters = json.loads(f.get("CurrentVoters", "null"))
ids = sorted(v["id"] for v in voters)
assert ids == [1, 2, 3], f"voters {ids}, want [1, 2, 3]"
assert int(f["LeaderId"]) in ids, f"LeaderId {f['LeaderId']}"
assert int(f["LeaderEpoch"]) >= 1, f"LeaderEpoch {f['LeaderEpoch']}"
assert json.loads(f.get("CurrentObservers", "[]")) == [], f"observers {f.get('CurrentObservers')}"
print(f"3 voters, leader {f['LeaderId']}, epoch {f['LeaderEpoch']}, high watermark {f['HighWatermark']}")
EOF
}

check_quorum_bootstrap_server() {
	local out
	out=$(tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "${B[1]}" describe --status) ||
		fail "MetadataQuorumCommand --bootstrap-server describe --status failed" || return
	echo "$out" >&2
	quorum_ok "$out"
}
check java_metadata_quorum_status_bootstrap_server check_quorum_bootstrap_server

check_quorum_bootstrap_controller() {
	local out
	out=$(tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-controller "127.0.0.1:${KPORT[3]}" describe --status) ||
		fail "MetadataQuorumCommand --bootstrap-controller describe --status failed" || return
	echo "$out" >&2
	quorum_ok "$out"
}
check java_metadata_quorum_status_bootstrap_controller check_quorum_bootstrap_controller

# describe --replication: one row per voter, exactly one of them "Leader".
check_quorum_replication() {
	local out
	out=$(tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "${B[2]}" describe --replication) ||
		fail "MetadataQuorumCommand describe --replication failed" || return
	echo "$out" >&2
	local leaders followers
	leaders=$(awk 'NR > 1 && $NF == "Leader"' <<<"$out" | wc -l)
	followers=$(awk 'NR > 1 && $NF == "Follower"' <<<"$out" | wc -l)
	((leaders == 1 && followers == 2)) || fail "want 1 Leader and 2 Follower rows, got: $(tr '\n' ' ' <<<"$out" | tr -s ' \t' ' ')" || return
	echo "1 leader, 2 followers"
}
check java_metadata_quorum_replication check_quorum_replication

check_cluster_id() {
	local out
	out=$(tool org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server "${B[3]}") || fail "ClusterTool cluster-id failed" || return
	[[ "$out" == "Cluster ID: $CLUSTER_ID" ]] || fail "got '$out', want 'Cluster ID: $CLUSTER_ID'" || return
	echo "$out"
}
check java_cluster_tool_cluster_id check_cluster_id

check_gregor_quorum() {
	local out
	out=$(gregor metadata-quorum --bootstrap-server "${B[3]}" describe --status) || fail "gregor metadata-quorum failed" || return
	echo "$out" >&2
	quorum_ok "$out"
}
check gregor_metadata_quorum_status check_gregor_quorum

# ------------------------------------------------------------------ first group
# The first FindCoordinator of a fresh cluster makes the node that receives it
# create __consumer_offsets (at the active controller). Sent to a node that is
# NOT the controller, it must still name a coordinator within a few seconds.

CONTROLLER=$(bounded "$CALL_TIMEOUT" python3 "$HERE/cluster_clients.py" describe "${B[1]}" 2>/dev/null | sed -n 's/.* controller=\([0-9]*\) .*/\1/p')
OTHER=1
[[ "$CONTROLLER" == 1 ]] && OTHER=2
check first_find_coordinator_via_non_controller_node bounded "$CALL_TIMEOUT" \
	python3 "$HERE/cluster_clients.py" find-coordinator "${B[OTHER]}" "$OTHER" "cluster-$NONCE-first" 15
if [[ -n "$CONTROLLER" ]] && ! python3 "$HERE/cluster_clients.py" find-coordinator "${B[CONTROLLER]}" "$CONTROLLER" "cluster-$NONCE-first" 15 >/dev/null 2>&1; then
	record find_coordinator_via_controller_node FAIL "FindCoordinator sent to the controller (node $CONTROLLER) names no coordinator either"
fi

# ------------------------------------------------------------------ produce / consume
# Each client gets its own 6-partition topic (so every node leads two of its
# partitions) and one node to bootstrap from; what it reads back must be
# exactly what it wrote.

N=60
check kafka_python_produce_consume bounded "$CALL_TIMEOUT" python3 "$HERE/cluster_clients.py" kp-roundtrip "${B[2]}" "cluster-$NONCE-kp" "$N"
if [[ -x "$KP3_PY" ]]; then
	check kafka_python3_produce_consume bounded "$CALL_TIMEOUT" "$KP3_PY" "$HERE/cluster_clients.py" kp-roundtrip "${B[3]}" "cluster-$NONCE-kp3" "$N"
fi
check confluent_kafka_produce_consume bounded "$CALL_TIMEOUT" python3 "$HERE/cluster_clients.py" ck-roundtrip "${B[1]}" "cluster-$NONCE-ck" "$N"

check_franz_go() { # gregor's console tools are franz-go
	local t=cluster-$NONCE-franz want got
	gregor topics --bootstrap-server "${B[3]}" --create --topic "$t" --partitions 6 --replication-factor 1 >/dev/null ||
		fail "gregor topics --create failed" || return
	want=$(keyed_lines "$t" "$N")
	gregor console-producer --bootstrap-server "${B[3]}" --topic "$t" --property parse.key=true --property key.separator=: \
		--request-required-acks -1 <<<"$want" || fail "console-producer failed" || return
	got=$(gregor console-consumer --bootstrap-server "${B[1]}" --topic "$t" --from-beginning --max-messages "$N" \
		--timeout-ms 20000 --property print.key=true --property key.separator=:) || fail "console-consumer failed" || return
	same_lines "franz-go console consumer" "$want" "$got" || return
	echo "$N records via ${B[3]}, read back via ${B[1]}"
}
check franz_go_produce_consume check_franz_go

check_kcat() {
	local t=cluster-$NONCE-kcat want got
	gregor topics --bootstrap-server "${B[2]}" --create --topic "$t" --partitions 6 --replication-factor 1 >/dev/null ||
		fail "gregor topics --create failed" || return
	want=$(keyed_lines "$t" "$N")
	bounded "$CALL_TIMEOUT" kcat -b "${B[2]}" -q -P -t "$t" -K : -X acks=all <<<"$want" || fail "kcat -P failed" || return
	got=$(bounded "$CALL_TIMEOUT" kcat -b "${B[2]}" -q -C -t "$t" -o beginning -e -f '%k:%s\n') || fail "kcat -C failed" || return
	same_lines "kcat -C" "$want" "$got" || return
	# The records must be spread over all 6 partitions (kcat's partitioner is
	# consistent_random on the key).
	local parts
	parts=$(bounded "$CALL_TIMEOUT" kcat -b "${B[2]}" -q -C -t "$t" -o beginning -e -f '%p\n' | sort -un | tr '\n' ' ')
	[[ "$parts" == "0 1 2 3 4 5 " ]] || fail "records in partitions '$parts', want 0..5" || return
	echo "$N records over partitions $parts via ${B[2]}"
}
check kcat_produce_consume check_kcat

check_java() {
	local t=cluster-$NONCE-java want got
	tool org.apache.kafka.tools.TopicCommand --bootstrap-server "${B[1]}" --create --topic "$t" --partitions 6 \
		--replication-factor 1 >/dev/null || fail "TopicCommand --create failed" || return
	want=$(keyed_lines "$t" "$N")
	tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "${B[1]}" --topic "$t" \
		--reader-property parse.key=true --reader-property key.separator=: --command-property acks=all <<<"$want" ||
		fail "ConsoleProducer failed" || return
	# No --partition: the consumer joins a generated group, its coordinator
	# on whichever node leads that group's __consumer_offsets partition.
	got=$(tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "${B[3]}" --topic "$t" \
		--from-beginning --max-messages "$N" --timeout-ms 30000 \
		--formatter-property print.key=true --formatter-property key.separator=:) || fail "ConsoleConsumer failed" || return
	same_lines "Java ConsoleConsumer" "$want" "$got" || return
	echo "$N records via ${B[1]}, read back via ${B[3]}"
}
check java_console_produce_consume check_java

# ------------------------------------------------------------------ suites

# run_suite NAME BOOTSTRAP COMMAND...: a suite of this directory against one
# node; its "N passed, N failed" line adds to the totals.
run_suite() {
	local name=$1 bootstrap=$2
	shift 2
	[[ "$name" =~ $SUITES ]] || return 0
	local out=$WORK/$name.out err=$WORK/$name.err rc line p f
	echo
	echo "== $name (BOOTSTRAP=$bootstrap)"
	BOOTSTRAP=$bootstrap timeout -k 10 "$SUITE_TIMEOUT" "$@" 2>"$err" | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [[ -z "$line" ]]; then
		local why="exit $rc, no summary line"
		((rc == 124 || rc == 137)) && why="timed out after ${SUITE_TIMEOUT}s"
		FAILED=$((FAILED + 1))
		SUMMARY+=("$name: CRASHED ($why)")
		echo "FAIL $name: $why"
	else
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed}
		((rc != 0 && f == 0)) && f=1
		PASSED=$((PASSED + p))
		FAILED=$((FAILED + f))
		((f)) && SUMMARY+=("$name: $p passed, $f failed: $(grep '^FAIL' "$out" | cut -c1-200 | tr '\n' ';')")
	fi
	if ((rc != 0)) && [[ -s "$err" ]]; then
		echo "---- $name stderr (last 30 lines) ----"
		tail -n 30 "$err" | sed 's/^/  | /'
	fi
}

cd "$HERE" || exit 1
if [[ "$SUITES" != none ]]; then
	run_suite kafka_python_seeds "${B[1]}" python3 kafka_python_seeds.py
	[[ -x "$KP3_PY" ]] && run_suite kafka_python3_seeds "${B[2]}" "$KP3_PY" kafka_python_seeds.py
	run_suite kafka_python_groups "${B[3]}" python3 kafka_python_groups.py
	[[ -x "$KP3_PY" ]] && run_suite kafka_python3_groups "${B[1]}" "$KP3_PY" kafka_python_groups.py
	run_suite groups_librdkafka "${B[2]}" python3 groups_librdkafka.py
	COMPAT_BROKERS=3 run_suite sarama "${B[3]}" go -C sarama run .
	COMPAT_BROKERS=3 run_suite kafkajs "${B[1]}" node kafkajs/suite.js
	echo
fi

# ------------------------------------------------------------------ coordinators

# Every group the checks and suites left behind: FindCoordinator for each
# must name at least two different nodes, and gregor consumer-groups
# --describe --state must agree with FindCoordinator for two groups on
# different nodes.
check_coordinators() {
	local groups out
	groups=$(gregor consumer-groups --bootstrap-server "${B[2]}" --list | grep . | sort) || fail "gregor consumer-groups --list failed" || return
	(($(wc -l <<<"$groups") >= 2)) || fail "want at least 2 groups, --list gave: $(tr '\n' ' ' <<<"$groups")" || return
	out=$(bounded "$CALL_TIMEOUT" python3 "$HERE/cluster_clients.py" coordinators "${B[1]}" $groups 2>"$WORK/coordinators.err") ||
		fail "$(tail -n 1 "$WORK/coordinators.err")" || return
	echo "$out" >&2
	local g1 n1 g2 n2
	read -r g1 n1 <<<"$(head -n 1 <<<"$out")"
	read -r g2 n2 <<<"$(awk -v n="$n1" '$2 != n' <<<"$out" | head -n 1)"
	[[ -n "$g2" ]] || fail "every group's coordinator is node $n1" || return
	local g n desc cid
	for g in "$g1:$n1" "$g2:$n2"; do
		n=${g##*:}
		g=${g%:*}
		desc=$(gregor consumer-groups --bootstrap-server "${B[3]}" --describe --group "$g" --state) ||
			fail "consumer-groups --describe --group $g --state failed" || return
		echo "$desc" >&2
		cid=$(grep -F "$g " <<<"$desc" | grep -oE '\(([0-9]+)\)' | head -n 1 | tr -d '()')
		[[ "$cid" == "$n" ]] || fail "group $g: --describe --state says coordinator '$cid', FindCoordinator $n" || return
	done
	echo "$(wc -l <<<"$groups") groups on nodes $(awk '{print $2}' <<<"$out" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')(node:groups); $g1 on $n1, $g2 on $n2 by both FindCoordinator and consumer-groups --state"
}
check group_coordinators_on_different_nodes check_coordinators

# ------------------------------------------------------------------ shutdown

alive=
for n in 1 2 3; do
	if ! kill -0 "${PIDS[n]}" 2>/dev/null; then
		wait "${PIDS[n]}"
		alive+=" node $n exited with status $?;"
		PIDS[n]=
	fi
done
if [[ -z "$alive" ]]; then record nodes_alive_after_checks OK; else record nodes_alive_after_checks FAIL "$alive"; fi

# SIGTERM all at once (as an operator stopping the cluster would); each must
# exit 0 within 20s.
for n in 1 2 3; do [[ -n "${PIDS[n]}" ]] && kill -TERM "${PIDS[n]}"; done
bad=
for n in 1 2 3; do
	[[ -n "${PIDS[n]}" ]] || continue
	st=hung
	for _ in $(seq 100); do
		if ! kill -0 "${PIDS[n]}" 2>/dev/null; then
			wait "${PIDS[n]}"
			st=$?
			break
		fi
		sleep 0.2
	done
	if [[ "$st" == hung ]]; then
		kill -KILL "${PIDS[n]}" 2>/dev/null
		wait "${PIDS[n]}" 2>/dev/null
	fi
	PIDS[n]=
	[[ "$st" == 0 ]] || bad+=" node $n: exit $st;"
done
if [[ -z "$bad" ]]; then record nodes_sigterm_clean_exit OK; else record nodes_sigterm_clean_exit FAIL "$bad (hung = still running 20s after SIGTERM)"; fi

panics=
for n in 1 2 3; do
	grep -qE '^panic:|goroutine [0-9]+ \[|WARNING: DATA RACE' "$WORK/node$n.log" && panics+=" node $n"
done
if [[ -z "$panics" ]]; then
	record node_logs_no_panic_or_race OK
else
	record node_logs_no_panic_or_race FAIL "see the log of$panics"
	for n in 1 2 3; do grep -n -m 5 -E '^panic:|WARNING: DATA RACE' "$WORK/node$n.log" | sed "s/^/  node $n | /"; done
fi
if ((FAILED)); then
	node_logs_tail 25
	grep -h -E 'level=(ERROR|WARN)' "$WORK"/node?.log | tail -n 30 | sed 's/^/  warn | /'
fi
finish
