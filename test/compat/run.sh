#!/usr/bin/env bash
# Real-client compatibility suite: one fresh Gregor broker, every suite in
# this directory against it, then two restarts on the same data dir; one
# closing line "N passed, N failed". See README.md for the suites.
#
#   bash test/compat/run.sh            # builds ./cmd/gregor
#   GREGOR_BIN=/path/gregor bash test/compat/run.sh
#
# Environment:
#   GREGOR_BIN             use this binary instead of building one
#   GREGOR_COMPAT_GROUPS=0 skip the consumer-group suites and checks (default 1:
#                          run them; exported, so every suite sees the choice)
#   GREGOR_COMPAT_RACE=1   build the broker with -race (a race report fails the run)
#   COMPAT_ONLY=regex      run only checks whose name matches (all suites)
#   COMPAT_SUITE_TIMEOUT   seconds one suite may take (default 300)
#   COMPAT_KEEP=1          keep the work dir (broker log, data dir, suite logs)
#   KAFKA_PYTHON3          the python that runs the kafka_python3_* suites
#                          (default: install.sh's test/compat/.venv-kafka-python3)
#
# The kafka-python suites run twice: under python3 with kafka-python 2.0.2
# (kafka_python_seeds, kafka_python_groups) and under the venv's python with
# kafka-python 3.x, what `pip install kafka-python` installs today
# (kafka_python3_seeds, kafka_python3_groups).
#
# Needs what test/compat/install.sh installs (kcat, kafka-python 2.0.2 and the
# kafka-python 3.x venv, confluent-kafka,
# Burrow and ZooKeeper for burrow.py, sarama's Go modules, kafkajs' node_modules),
# plus go and node.
# Exits non-zero if any check failed, a suite crashed or timed out, the
# broker died, logged a panic, did not exit 0 on SIGTERM, or lost data
# across a restart.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUITE_TIMEOUT=${COMPAT_SUITE_TIMEOUT:-300}
# Groups exist now: on unless turned off. The suites read it themselves.
export GREGOR_COMPAT_GROUPS=${GREGOR_COMPAT_GROUPS:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gregor-compat.XXXXXX")
BROKER_PID=
TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()

cleanup() {
	if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
		kill -TERM "$BROKER_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$BROKER_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
	fi
	if [[ "${COMPAT_KEEP:-0}" == 1 ]]; then
		echo "compat: work dir kept at $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record NAME OK|FAIL [detail]: a check made by this script itself.
record() {
	if [[ "$2" == OK ]]; then
		TOTAL_PASSED=$((TOTAL_PASSED + 1))
		echo "PASS $1"
	else
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		echo "FAIL $1: ${3:-}"
		SUMMARY+=("$1: FAIL ${3:-}")
	fi
}

finish() {
	echo
	echo "== compat summary"
	printf '  %s\n' "${SUMMARY[@]}"
	echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
	if ((TOTAL_FAILED)); then exit 1; fi
	exit 0
}

broker_log_tail() {
	echo "---- broker log (last ${1:-40} lines) ----"
	tail -n "${1:-40}" "$WORK/broker.log" 2>/dev/null | sed 's/^/  | /'
}

# ------------------------------------------------------------------ build

if [[ -n "${GREGOR_BIN:-}" ]]; then
	BIN=$GREGOR_BIN
else
	BIN=$WORK/gregor
	race=()
	[[ "${GREGOR_COMPAT_RACE:-0}" == 1 ]] && race=(-race)
	echo "== building gregor ${race[*]}"
	if ! (cd "$ROOT" && go build "${race[@]}" -o "$BIN" ./cmd/gregor); then
		record build FAIL "go build ./cmd/gregor failed"
		finish
	fi
fi
if [[ ! -x "$BIN" ]]; then
	record build FAIL "$BIN is not an executable"
	finish
fi
# The suites that compare gregor's own tools with Kafka's use it too.
export GREGOR_BIN=$BIN

# ------------------------------------------------------------------ start

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ready PORT: TCP accept plus an ApiVersions v0 round trip with a matching
# correlation id and error code 0.
ready() {
	python3 - "$1" <<'EOF' 2>/dev/null
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
client = b"gregor-compat"
body = struct.pack(">hhih", 18, 0, 4242, len(client)) + client
s.sendall(struct.pack(">i", len(body)) + body)
buf = b""
while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit(1)
    buf += chunk
corr, err = struct.unpack(">ih", buf[4:10])
sys.exit(0 if corr == 4242 and err == 0 else 1)
EOF
}

start_broker() {
	PORT=$(free_port)
	mkdir -p "$WORK/data"
	"$BIN" serve \
		--override "listeners=PLAINTEXT://127.0.0.1:$PORT" \
		--override "advertised.listeners=PLAINTEXT://127.0.0.1:$PORT" \
		--override "log.dirs=$WORK/data" \
		--override "log.cleaner.backoff.ms=500" \
		>>"$WORK/broker.log" 2>&1 &
	BROKER_PID=$!
	local deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$BROKER_PID" 2>/dev/null; then
			wait "$BROKER_PID" 2>/dev/null
			BROKER_PID=
			return 1
		fi
		ready "$PORT" && return 0
		sleep 0.2
	done
	return 1
}

# start: start_broker with retries (a retry covers losing the free port to
# another process in between); exports BOOTSTRAP.
start() {
	local attempt
	for attempt in 1 2 3; do
		if start_broker; then
			export BOOTSTRAP=127.0.0.1:$PORT
			echo "broker pid $BROKER_PID at $BOOTSTRAP, data dir $WORK/data"
			return 0
		fi
		echo "compat: broker start attempt $attempt failed" >&2
		if [[ -n "$BROKER_PID" ]]; then
			kill -KILL "$BROKER_PID" 2>/dev/null
			wait "$BROKER_PID" 2>/dev/null
			BROKER_PID=
		fi
	done
	return 1
}

# stop SIGNAL: signal the broker and wait up to 10s; sets STOP_STATUS to its
# exit status, or to "hung" (it is then killed).
stop() {
	STOP_STATUS=hung
	if [[ "$1" == KILL ]]; then
		# No exit status to judge; disown keeps bash from printing "Killed".
		disown "$BROKER_PID" 2>/dev/null
	fi
	kill "-$1" "$BROKER_PID" 2>/dev/null
	for _ in $(seq 50); do
		if ! kill -0 "$BROKER_PID" 2>/dev/null; then
			wait "$BROKER_PID" 2>/dev/null
			STOP_STATUS=$?
			BROKER_PID=
			return 0
		fi
		sleep 0.2
	done
	kill -KILL "$BROKER_PID" 2>/dev/null
	wait "$BROKER_PID" 2>/dev/null
	BROKER_PID=
	return 1
}

echo "== starting broker"
if ! start; then
	record broker_start FAIL "no ApiVersions answer within 30s (3 attempts)"
	broker_log_tail
	finish
fi

# ------------------------------------------------------------------ suites

# run_suite NAME COMMAND...: streams the suite's stdout, keeps its stderr for
# a failure, and adds its closing "N passed, N failed" line to the totals.
run_suite() {
	local name=$1
	shift
	local out=$WORK/$name.out err=$WORK/$name.err rc line p f
	echo
	echo "== $name"
	timeout -k 10 "$SUITE_TIMEOUT" "$@" 2>"$err" | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [[ -z "$line" ]]; then
		local why="exit $rc, no summary line"
		((rc == 124 || rc == 137)) && why="timed out after ${SUITE_TIMEOUT}s"
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		SUMMARY+=("$name: CRASHED ($why)")
		echo "FAIL $name: $why"
	else
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed}
		if ((rc != 0 && f == 0)); then
			f=1 # non-zero exit with no failed check is still a failure
		fi
		TOTAL_PASSED=$((TOTAL_PASSED + p))
		TOTAL_FAILED=$((TOTAL_FAILED + f))
		SUMMARY+=("$name: $p passed, $f failed")
	fi
	if ((rc != 0)) && [[ -s "$err" ]]; then
		echo "---- $name stderr (last 60 lines) ----"
		tail -n 60 "$err" | sed 's/^/  | /'
	fi
}

# run_kp3_suite NAME SCRIPT: SCRIPT under kafka-python 3.x's python.
KP3_PY=${KAFKA_PYTHON3:-$HERE/.venv-kafka-python3/bin/python}
run_kp3_suite() {
	if [[ ! -x "$KP3_PY" ]]; then
		record "$1" FAIL "no kafka-python 3.x python at $KP3_PY (run test/compat/install.sh)"
		return
	fi
	run_suite "$1" "$KP3_PY" "$2"
}

cd "$HERE" || exit 1
export PYTHONDONTWRITEBYTECODE=1
run_suite kafka_python_seeds python3 kafka_python_seeds.py
run_kp3_suite kafka_python3_seeds kafka_python_seeds.py
run_suite kcat bash kcat.sh
run_suite confluent_kafka python3 confluent_kafka_suite.py
run_suite wire_probes python3 wire_probes.py
if [[ -f java/run.sh ]]; then
	# Kafka's own CLI tools and Java client; uses the broker in $BOOTSTRAP.
	run_suite java bash java/run.sh
fi
# IBM/sarama, a Go module of its own (sarama/go.mod): go run builds it.
run_suite sarama go -C sarama run .
# KafkaJS (kafkajs/node_modules from install.sh: npm ci).
run_suite kafkajs node kafkajs/suite.js
if [[ "$GREGOR_COMPAT_GROUPS" == 1 ]]; then
	run_suite kafka_python_groups python3 kafka_python_groups.py
	run_kp3_suite kafka_python3_groups kafka_python_groups.py
	# confluent-kafka static members, kcat -G with two processes.
	run_suite groups_librdkafka python3 groups_librdkafka.py
	# Burrow reads __consumer_offsets itself and reports lag (runs ZooKeeper).
	run_suite burrow python3 burrow.py
fi

# Transactions (KIP-98/KIP-890) with librdkafka, kafka-python 3.x and the
# Java client, and Kafka's DumpLogSegments on the files they leave.
run_suite txn_confluent_kafka python3 txn_confluent_kafka.py
run_kp3_suite txn_kafka_python txn_kafka_python.py
run_suite java_txn bash java/txn.sh
BROKER_LOG_DIR=$WORK/data run_suite txn_dump_log python3 txn_dump_log.py

# Log compaction (issue 12): 200,000 records over 2,000 keys and tombstones
# through the broker's cleaner (log.cleaner.backoff.ms=500 above), read back
# by confluent-kafka, kafka-python and the Java consumer, the segments by
# DumpLogSegments. It deletes its topic, so the restart checks below never
# see a log the cleaner may still change.
BROKER_LOG_DIR=$WORK/data run_suite compact python3 compact_suite.py

# ------------------------------------------------------------------ restart
# The data the suites left must survive a clean stop and a SIGKILL, byte for
# byte (snapshot.py digests every record and every committed group offset),
# and offsets must continue where they were.

echo
echo "== broker restart"
snap() {
	timeout -k 5 180 python3 snapshot.py >"$WORK/$1.json" 2>"$WORK/$1.err" ||
		{ echo "snapshot $1 failed: $(tail -n 3 "$WORK/$1.err")" >"$WORK/$1.why"; return 1; }
}
same() { # same BEFORE AFTER CHECK-NAME
	local out
	if out=$(python3 snapshot.py --diff "$WORK/$1.json" "$WORK/$2.json"); then
		record "$3" OK
		echo "  $out"
	else
		record "$3" FAIL "$out"
	fi
}
probe_topic=compat-restart-probe
restart_ok=
if ! kill -0 "$BROKER_PID" 2>/dev/null; then
	wait "$BROKER_PID"
	record broker_alive_after_suites FAIL "broker exited with status $? during the suites"
	BROKER_PID=
else
	record broker_alive_after_suites OK
	if ! printf 'a\nb\nc\n' | timeout 30 kcat -b "$BOOTSTRAP" -q -P -t "$probe_topic"; then
		record restart_probe_produce FAIL "kcat -P to $probe_topic failed"
	elif ! snap before; then
		record restart_snapshot FAIL "$(cat "$WORK/before.why")"
	else
		stop TERM
		if [[ "$STOP_STATUS" == 0 ]]; then
			record broker_sigterm_clean_exit OK
		else
			record broker_sigterm_clean_exit FAIL "exit status $STOP_STATUS after SIGTERM (hung = still running after 10s)"
		fi
		if ! start; then
			record restart_after_sigterm FAIL "broker did not come back on the same data dir"
		elif ! snap after_term; then
			record restart_after_sigterm_keeps_every_record FAIL "$(cat "$WORK/after_term.why")"
		else
			same before after_term restart_after_sigterm_keeps_every_record
			restart_ok=1
		fi
	fi
fi
if [[ -n "$restart_ok" ]]; then
	got=$(printf 'd\n' | timeout 30 kcat -b "$BOOTSTRAP" -q -P -t "$probe_topic" &&
		timeout 30 kcat -b "$BOOTSTRAP" -q -C -t "$probe_topic" -o beginning -e -f '%o:%s ')
	if [[ "$got" == "0:a 1:b 2:c 3:d " ]]; then
		record offsets_continue_after_restart OK
	else
		record offsets_continue_after_restart FAIL "want '0:a 1:b 2:c 3:d ', got '$got'"
	fi
	if snap before_kill; then
		stop KILL
		if ! start; then
			record restart_after_sigkill FAIL "broker did not come back after SIGKILL"
		elif ! snap after_kill; then
			record restart_after_sigkill_keeps_every_record FAIL "$(cat "$WORK/after_kill.why")"
		else
			same before_kill after_kill restart_after_sigkill_keeps_every_record
		fi
	else
		record restart_snapshot FAIL "$(cat "$WORK/before_kill.why")"
	fi
fi
if [[ -n "$BROKER_PID" ]]; then
	stop TERM
	[[ "$STOP_STATUS" == 0 ]] || record broker_final_sigterm_clean_exit FAIL "exit status $STOP_STATUS"
fi
if grep -qE '^panic:|goroutine [0-9]+ \[|WARNING: DATA RACE' "$WORK/broker.log"; then
	record broker_log_no_panic_or_race FAIL "see broker log"
	grep -n -m 5 -E '^panic:|WARNING: DATA RACE' "$WORK/broker.log" | sed 's/^/  | /'
else
	record broker_log_no_panic_or_race OK
fi
if ((TOTAL_FAILED)); then
	broker_log_tail 40
fi
finish
