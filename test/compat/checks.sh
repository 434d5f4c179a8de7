# shellcheck shell=bash
# Check runner shared by the shell suites (kcat.sh, kafka_cli.sh); source it.
#
#   suite_init NAME      sets NONCE, WORK (removed on exit), counters
#   run NAME FUNCTION    runs FUNCTION in a subshell with `set -e`, so the
#                        first failing step ends the check; prints PASS/FAIL
#   suite_finish         prints "N passed, N failed"; returns non-zero on failure
#
# Inside a check: `cmd || fail "why"`, `expect_same what "$want" "$got"`,
# and tools' stderr appended to "$WORK/stderr" (shown when the check fails).

: "${BOOTSTRAP:?BOOTSTRAP=host:port is required}"
CALL_TIMEOUT=${CALL_TIMEOUT:-30}

suite_init() {
	SUITE=$1
	NONCE=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	WORK=$(mktemp -d)
	trap 'rm -rf "$WORK"' EXIT
	PASSED=0
	FAILED=0
	FAILURES=()
}

# topic NAME: unique to this suite run.
topic() { echo "$SUITE-$NONCE-$1"; }

fail() {
	echo "$*" >>"$WORK/reason"
	return 1
}

# bounded SECONDS CMD...: run CMD with a hard time limit; a timeout is
# recorded as the reason.
bounded() {
	local secs=$1 rc
	shift
	timeout -k 5 "$secs" "$@"
	rc=$?
	if ((rc == 124 || rc == 137)); then
		echo "timed out after ${secs}s: $*" >>"$WORK/reason"
	fi
	return $rc
}

# expect_same WHAT WANT GOT: exact comparison, with a diff as the reason.
expect_same() {
	if [[ "$2" != "$3" ]]; then
		{
			echo "$1 differs (-want +got):"
			diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -20
		} >>"$WORK/reason"
		return 1
	fi
}

# expect_contains WHAT NEEDLE HAYSTACK: a whole line of HAYSTACK equals NEEDLE.
expect_line() {
	if ! grep -qxF -- "$2" <<<"$3"; then
		{
			echo "$1: no line '$2' in:"
			head -c 1500 <<<"$3"
		} >>"$WORK/reason"
		return 1
	fi
}

# make_topic NAME PARTITIONS: via the confluent-kafka AdminClient.
make_topic() {
	bounded "$CALL_TIMEOUT" python3 - "$1" "$2" <<'EOF' 2>>"$WORK/stderr" || fail "create topic $1 failed"
import os, sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": os.environ["BOOTSTRAP"]})
fs = a.create_topics([NewTopic(sys.argv[1], num_partitions=int(sys.argv[2]), replication_factor=1)])
fs[sys.argv[1]].result(15)
EOF
}

run() {
	local name=$1 fn=$2 start=$SECONDS rc reason
	if [[ -n "${COMPAT_ONLY:-}" && ! "$name" =~ $COMPAT_ONLY ]]; then
		return 0
	fi
	: >"$WORK/reason"
	: >"$WORK/stderr"
	if ! (exec 3<>"/dev/tcp/${BOOTSTRAP%:*}/${BOOTSTRAP##*:}") 2>/dev/null; then
		# A dead broker fails each remaining check at once.
		FAILED=$((FAILED + 1))
		FAILURES+=("$name")
		echo "FAIL $name: broker $BOOTSTRAP unreachable (connection refused)"
		return 0
	fi
	# Not under `if`: that would switch -e off inside the subshell.
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
		reason=$(head -c 2000 "$WORK/reason")
		[[ -n "$reason" ]] || reason="(exit $rc, no reason recorded)"
		FAILURES+=("$name")
		echo "FAIL $name ($((SECONDS - start))s): $reason"
		if [[ -s "$WORK/stderr" ]]; then
			echo "---- $name stderr (last 20 lines) ----" >&2
			tail -n 20 "$WORK/stderr" >&2
		fi
	fi
}

suite_finish() {
	if ((FAILED)); then
		echo "-- $SUITE failures: ${FAILURES[*]}"
	fi
	echo "$PASSED passed, $FAILED failed"
	((FAILED == 0))
}
