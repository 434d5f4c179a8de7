#!/usr/bin/env bash
# Transactions with Apache Kafka's Java client and kafka-transactions.sh (4.4).
#
#   BOOTSTRAP=127.0.0.1:9092 bash test/compat/java/txn.sh
#   BOOTSTRAP=127.0.0.1:19092 bash test/compat/java/txn.sh   # real Kafka (bench/kafka/kafka.sh)
#
# client/'s TxnCompat: commit with sendOffsetsToTransaction, abort, a second
# producer with the same transactional.id fencing the first
# (ProducerFencedException on its commit), read_committed vs
# read_uncommitted, Admin listTransactions/describeTransactions; it leaves
# one transactional id completed and one with an open transaction. Then
# TransactionsCommand (kafka-transactions.sh) must show both: `list` with
# their coordinator, producer id and state, `describe --transactional-id`
# with state, timeout and partitions, and an unknown id must fail with
# TRANSACTIONAL_ID_NOT_FOUND. Last, a new producer with the open
# transaction's id aborts it (then Empty at a later epoch), so nothing is left open.
#
# Prints PASS/FAIL per check and ends with "N passed, N failed". COMPAT_ONLY=regex selects
# checks; COMPAT_KEEP=1 keeps the work dir. Needs Java 17 and Maven, as run.sh.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RUNCLASS=$ROOT/bench/kafka/kafka-run-class.sh
CALL_TIMEOUT=${JAVA_COMPAT_TIMEOUT:-60}
NONCE=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-compat-javatxn.XXXXXX")
TXN_ID=javatxn-$NONCE
OPEN_ID=javatxn-$NONCE-open
PASSED=0
FAILED=0
FAILURES=()
export KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"

cleanup() {
	if [[ "${COMPAT_KEEP:-0}" == 1 ]]; then
		echo "java txn: work dir kept at $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

summary() {
	((FAILED)) && echo "-- failures: ${FAILURES[*]}"
	echo "$PASSED passed, $FAILED failed"
	((FAILED == 0))
	exit
}

[[ -n "${BOOTSTRAP:-}" ]] || { echo "FAIL setup: set BOOTSTRAP=host:port"; FAILED=1; summary; }

bash "$ROOT/bench/kafka/fetch.sh" >"$WORK/fetch.log" 2>&1 || {
	tail -n 20 "$WORK/fetch.log"
	echo "FAIL setup: bench/kafka/fetch.sh could not resolve the Kafka jars"
	FAILED=1
	summary
}
txn_class=$HERE/client/target/classes/gregor/compat/TxnCompat.class
if [[ ! -f "$txn_class" || ! -d "$HERE/client/target/libs" ]] ||
	[[ -n "$(find "$HERE/client/pom.xml" "$HERE/client/src" -newer "$txn_class" -type f)" ]]; then
	(cd "$HERE/client" && mvn -q -B package) >"$WORK/mvn.log" 2>&1 || {
		tail -n 30 "$WORK/mvn.log"
		echo "FAIL setup: mvn package in test/compat/java/client failed"
		FAILED=1
		summary
	}
fi

# ------------------------------------------------------------------ client

echo "== java transactional client (client/TxnCompat) against $BOOTSTRAP"
timeout -k 10 120 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
	-cp "$HERE/client/target/classes:$HERE/client/target/libs/*" \
	gregor.compat.TxnCompat "$BOOTSTRAP" "$TXN_ID" "$OPEN_ID" 2>"$WORK/client.err" | tee "$WORK/client.out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/client.out" | tail -n 1)
if [[ -z "$line" ]]; then
	FAILED=$((FAILED + 1))
	FAILURES+=(java_txn_client)
	echo "FAIL java_txn_client: exit $rc without a summary line"
	tail -n 30 "$WORK/client.err" | sed 's/^/  | /'
else
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed}
	((rc != 0 && f == 0)) && f=1
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	while read -r name; do FAILURES+=("client:$name"); done < <(sed -n 's/^FAIL \([^ ]*\).*/\1/p' "$WORK/client.out")
fi

# ------------------------------------------------------------------ kafka-transactions.sh

txns() {
	timeout -k 5 "$CALL_TIMEOUT" bash "$RUNCLASS" org.apache.kafka.tools.TransactionsCommand \
		--bootstrap-server "$BOOTSTRAP" "$@" 2>>"$WORK/stderr"
}

# table_check WHAT OUTPUT PYTHON-ASSERTIONS: the tool prints a header row and
# tab-separated rows with padded cells; `rows` is a list of dicts by header.
table_check() {
	python3 - "$1" "$2" "$3" <<'EOF' 2>>"$WORK/reason"
import sys
sys.excepthook = lambda t, v, tb: print(v if t is AssertionError else f"{t.__name__}: {v}", file=sys.stderr)
what, out, code = sys.argv[1:]
lines = [l for l in out.splitlines() if l.strip()]
assert lines, f"{what}: no output"
head = [c.strip() for c in lines[0].split("\t")]
rows = [dict(zip(head, (c.strip() for c in l.split("\t")))) for l in lines[1:]]
by_id = {r.get("TransactionalId"): r for r in rows}
exec(code)
EOF
}

run() {
	local name=$1 fn=$2
	if [[ -n "${COMPAT_ONLY:-}" && ! "$name" =~ $COMPAT_ONLY ]]; then
		return 0
	fi
	: >"$WORK/reason"
	: >"$WORK/stderr"
	if (set -e -o pipefail; "$fn"); then
		PASSED=$((PASSED + 1))
		echo "PASS $name"
	else
		FAILED=$((FAILED + 1))
		FAILURES+=("$name")
		echo "FAIL $name: $(head -c 2000 "$WORK/reason")"
		[[ -s "$WORK/stderr" ]] && tail -n 10 "$WORK/stderr" | sed 's/^/  | /'
	fi
	return 0
}

check_list() {
	local out
	out=$(txns list) || { echo "list failed" >>"$WORK/reason"; return 1; }
	table_check list "$out" "
want = {'$TXN_ID': 'CompleteCommit', '$OPEN_ID': 'Ongoing'}
assert head[:4] == ['TransactionalId', 'Coordinator', 'ProducerId', 'TransactionState'], f'header {head}'
for tid, state in want.items():
    r = by_id.get(tid)
    assert r, f'list lacks {tid}: {out!r}'
    assert r['TransactionState'] == state, f'{tid}: state {r[\"TransactionState\"]!r}, want {state}'
    assert r['Coordinator'].isdigit() and r['ProducerId'].isdigit(), f'{tid}: row {r}'
assert by_id['$TXN_ID']['ProducerId'] != by_id['$OPEN_ID']['ProducerId'], 'two ids share a producer id'
"
}

check_describe_committed() {
	local out
	out=$(txns describe --transactional-id "$TXN_ID") || { echo "describe failed" >>"$WORK/reason"; return 1; }
	table_check describe "$out" "
r = by_id.get('$TXN_ID')
assert r and len(rows) == 1, f'describe rows {rows}'
assert r['TransactionState'] == 'CompleteCommit', f'state {r[\"TransactionState\"]!r}'
assert r['TransactionTimeoutMs'] == '60000', f'timeout {r[\"TransactionTimeoutMs\"]!r}'
assert r['TopicPartitions'] == '', f'a completed transaction lists partitions {r[\"TopicPartitions\"]!r}'
assert int(r['ProducerEpoch']) >= 1, f'epoch {r[\"ProducerEpoch\"]} after a second producer fenced the first'
assert r['CoordinatorId'].isdigit() and r['ProducerId'].isdigit(), f'row {r}'
"
}

check_describe_open() {
	local out
	out=$(txns describe --transactional-id "$OPEN_ID") || { echo "describe failed" >>"$WORK/reason"; return 1; }
	table_check describe "$out" "
r = by_id.get('$OPEN_ID')
assert r and len(rows) == 1, f'describe rows {rows}'
assert r['TransactionState'] == 'Ongoing', f'state {r[\"TransactionState\"]!r}'
assert r['TopicPartitions'] == '$TXN_ID-open-0', f'partitions {r[\"TopicPartitions\"]!r}'
assert r['TransactionTimeoutMs'] == '60000', f'timeout {r[\"TransactionTimeoutMs\"]!r}'
assert int(r['CurrentTransactionStartTimeMs']) > 0, f'start time {r[\"CurrentTransactionStartTimeMs\"]!r}'
"
}

check_describe_unknown() {
	if txns describe --transactional-id "$TXN_ID-nosuch" >/dev/null; then
		echo "describe of an unknown transactional id succeeded" >>"$WORK/reason"
		return 1
	fi
	# TRANSACTIONAL_ID_NOT_FOUND, as the Java client words it.
	grep -q "could not be found" "$WORK/stderr" || { echo "want TRANSACTIONAL_ID_NOT_FOUND on stderr" >>"$WORK/reason"; return 1; }
}

# The open transaction must not outlive the suite (its timeout would add an
# abort marker later, under whatever runs next): a new producer with the id
# aborts it, and the tool shows that.
check_end_open() {
	local out
	timeout -k 5 "$CALL_TIMEOUT" java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
		-cp "$HERE/client/target/classes:$HERE/client/target/libs/*" \
		gregor.compat.TxnCompat --end-open "$BOOTSTRAP" "$OPEN_ID" 2>>"$WORK/stderr" ||
		{ echo "initTransactions of a second producer with $OPEN_ID failed" >>"$WORK/reason"; return 1; }
	out=$(txns describe --transactional-id "$OPEN_ID") || { echo "describe failed" >>"$WORK/reason"; return 1; }
	# The coordinator answers InitProducerId only once the abort is complete;
	# the new producer then owns the id with no transaction (Empty), at an
	# epoch past the abort's bump (the open one ran at epoch 0).
	table_check describe "$out" "
r = by_id.get('$OPEN_ID')
assert r and r['TransactionState'] == 'Empty', f'after a new producer took over the id: {rows}'
assert int(r['ProducerEpoch']) >= 2, f'epoch {r[\"ProducerEpoch\"]}, want >= 2 (abort + init)'
assert r['TopicPartitions'] == '', f'partitions {r[\"TopicPartitions\"]!r}'
"
}

echo "== kafka-transactions.sh (TransactionsCommand)"
run txn_tool_list_shows_both_ids check_list
run txn_tool_describe_completed check_describe_committed
run txn_tool_describe_ongoing_with_partition check_describe_open
run txn_tool_describe_unknown_id_not_found check_describe_unknown
run txn_tool_open_txn_aborted_by_new_producer check_end_open

summary
