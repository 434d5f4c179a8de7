#!/usr/bin/env bash
# kcat (librdkafka) against Gregor.
#
# Each check produces with `kcat -P`, reads back with `kcat -C -e` and a
# format string, and compares the output byte for byte with what it sent.
# Every kcat call is bounded by `timeout`, so a hang fails one check instead
# of stalling CI. Ends with "N passed, N failed"; exits non-zero on failure.
#
# Environment: BOOTSTRAP=host:port (required); COMPAT_ONLY=regex runs only
# matching checks; GREGOR_COMPAT_GROUPS=1 adds the -G (consumer group) check;
# CALL_TIMEOUT seconds per kcat call (default 30).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=checks.sh
source "$HERE/checks.sh"
suite_init kcat

KCAT=${KCAT:-$(command -v kcat || command -v kafkacat || true)}
if [[ -z "$KCAT" ]]; then
	echo "kcat not found (run test/compat/install.sh)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# k: kcat with the bootstrap, quiet, and a hard time limit.
k() {
	bounded "$CALL_TIMEOUT" "$KCAT" -b "$BOOTSTRAP" -q "$@" 2>>"$WORK/stderr"
}

# consume TOPIC FORMAT [kcat args...]: everything from the beginning to the end.
consume() {
	local t=$1 fmt=$2
	shift 2
	k -C -t "$t" -o beginning -e -f "$fmt" "$@"
}

# ------------------------------------------------------------------ checks

check_metadata_list() {
	local t out
	t=$(topic listed)
	printf 'hello\n' | k -P -t "$t" || fail "produce to auto-create $t failed"
	out=$(k -L) || fail "kcat -L failed"
	grep -q '^ 1 brokers:$' <<<"$out" || fail "want ' 1 brokers:' in: $out"
	grep -q "^  broker 1 at $BOOTSTRAP" <<<"$out" || fail "want 'broker 1 at $BOOTSTRAP' in: $out"
	grep -q "^  topic \"$t\" with 1 partitions:$" <<<"$out" || fail "topic $t missing in: $out"
	grep -q '^    partition 0, leader 1, replicas: 1, isrs: 1$' <<<"$out" || fail "partition line missing in: $out"
}

check_metadata_json() {
	local t out
	t=$(topic json-listed)
	make_topic "$t" 3 || return 1
	out=$(k -L -J -t "$t") || fail "kcat -L -J failed"
	python3 - "$t" "$BOOTSTRAP" "$out" <<'EOF' 2>>"$WORK/reason"
import json, sys
t, bootstrap, raw = sys.argv[1], sys.argv[2], sys.argv[3]
md = json.loads(raw)
assert md["brokers"] == [{"id": 1, "name": bootstrap}], md["brokers"]
topics = {x["topic"]: x for x in md["topics"]}
assert t in topics, list(topics)
parts = sorted(topics[t]["partitions"], key=lambda p: p["partition"])
got = [(p["partition"], p["leader"], [r["id"] for r in p["replicas"]], [r["id"] for r in p["isrs"]]) for p in parts]
assert got == [(i, 1, [1], [1]) for i in range(3)], got
EOF
}

check_produce_keys_consume_format() {
	local t want got
	t=$(topic keyed)
	printf 'k1:v1\nk2:hello world\nk3:v:with:colons\n' | k -P -t "$t" -K: || fail "produce failed"
	want=$'k1 v1  0 0\nk2 hello world  0 1\nk3 v:with:colons  0 2'
	got=$(consume "$t" '%k %s %h %p %o\n') || fail "consume failed"
	expect_same "consumed records" "$want" "$got"
}

check_headers() {
	local t want got
	t=$(topic headers)
	printf 'key:value\n' | k -P -t "$t" -K: -H trace=abc123 -H dup=1 -H dup=2 -H empty= || fail "produce failed"
	want='key value trace=abc123,dup=1,dup=2,empty= 0 0'
	got=$(consume "$t" '%k %s %h %p %o\n') || fail "consume failed"
	expect_same "record with headers" "$want" "$got"
}

codec_check() {
	local z=$1 t want got i
	t=$(topic "codec-$z")
	want=$(for i in $(seq 0 199); do echo "key$i value-$i-$(printf 'x%.0s' $(seq 1 $((i % 50))))  0 $i"; done)
	sed -E 's/^(key[0-9]+) ([^ ]*)  0 [0-9]+$/\1:\2/' <<<"$want" | k -P -t "$t" -K: -z "$z" \
		-X linger.ms=50 || fail "produce with -z $z failed"
	got=$(consume "$t" '%k %s %h %p %o\n') || fail "consume failed"
	expect_same "records compressed with $z" "$want" "$got"
}
check_codec_gzip() { codec_check gzip; }
check_codec_snappy() { codec_check snappy; }
check_codec_lz4() { codec_check lz4; }
check_codec_zstd() { codec_check zstd; }

check_null_value_and_key() {
	local t want got
	t=$(topic nulls)
	# -Z: an empty key or value is sent as NULL.
	printf 'nullvalue:\n:nullkey\nboth:set\n' | k -P -t "$t" -K: -Z || fail "produce failed"
	want=$'nullvalue|NULL|9|-1\nNULL|nullkey|-1|7\nboth|set|4|3'
	got=$(consume "$t" '%k|%s|%K|%S\n' -Z) || fail "consume failed"
	expect_same "null keys/values" "$want" "$got"
}

check_partition_target_and_offsets() {
	local t want got
	t=$(topic partitions)
	make_topic "$t" 3 || return 1
	seq 0 9 | sed 's/^/p2-/' | k -P -t "$t" -p 2 || fail "produce to partition 2 failed"
	printf 'p0\n' | k -P -t "$t" -p 0 || fail "produce to partition 0 failed"
	got=$(k -C -t "$t" -p 2 -o beginning -e -f '%p %o %s\n') || fail "consume p2 failed"
	want=$(for i in $(seq 0 9); do echo "2 $i p2-$i"; done)
	expect_same "partition 2" "$want" "$got" || return 1
	got=$(k -C -t "$t" -p 1 -o beginning -e -f '%p %o %s\n') || fail "consume p1 failed"
	expect_same "empty partition 1" "" "$got" || return 1
	# -o -3: three from the end; -o 4 -c 2: absolute offset and a count.
	got=$(k -C -t "$t" -p 2 -o -3 -e -f '%o ') || fail "consume -o -3 failed"
	expect_same "relative offset -3" "7 8 9 " "$got" || return 1
	got=$(k -C -t "$t" -p 2 -o 4 -c 2 -f '%o ') || fail "consume -o 4 -c 2 failed"
	expect_same "absolute offset 4 count 2" "4 5 " "$got"
}

check_query_offsets() {
	local t got
	t=$(topic query)
	seq 1 5 | k -P -t "$t" || fail "produce failed"
	got=$(k -Q -t "$t:0:-1") || fail "query -1 failed"
	grep -q "^$t \[0\] offset 5$" <<<"$got" || fail "-Q latest: want offset 5, got: $got"
	got=$(k -Q -t "$t:0:-2") || fail "query -2 failed"
	grep -q "^$t \[0\] offset 0$" <<<"$got" || fail "-Q earliest: want offset 0, got: $got"
}

check_timestamps_and_start_at_time() {
	local t got ts
	t=$(topic timestamps)
	printf 'early\n' | k -P -t "$t" || fail "produce failed"
	sleep 1.1
	ts=$(($(date +%s%3N) - 200))
	sleep 0.3
	printf 'late\n' | k -P -t "$t" || fail "produce failed"
	got=$(consume "$t" '%T\n') || fail "consume failed"
	local now=$(date +%s%3N) x
	for x in $got; do
		((x > now - 60000 && x <= now)) || fail "timestamp $x not within the last minute of $now"
	done
	got=$(k -C -t "$t" -o "s@$ts" -e -f '%o %s\n') || fail "consume -o s@$ts failed"
	expect_same "start at timestamp" "1 late" "$got"
}

check_many_messages() {
	local t got
	t=$(topic bulk)
	seq 1 20000 | k -P -t "$t" -z lz4 || fail "produce failed"
	got=$(consume "$t" '%s\n' | md5sum) || fail "consume failed"
	expect_same "20000 records (md5 of values)" "$(seq 1 20000 | md5sum)" "$got"
}

check_group_consumer() {
	local t g got
	t=$(topic group)
	g=$(topic group-id)
	seq 1 10 | k -P -t "$t" || fail "produce failed"
	got=$(k -G "$g" -X auto.offset.reset=earliest -c 10 -f '%s\n' "$t") || fail "kcat -G failed"
	expect_same "records via -G" "$(seq 1 10)" "$got"
}

run metadata_list check_metadata_list
run metadata_json_3_partitions check_metadata_json
run produce_keys_consume_format check_produce_keys_consume_format
run headers check_headers
run codec_gzip check_codec_gzip
run codec_snappy check_codec_snappy
run codec_lz4 check_codec_lz4
run codec_zstd check_codec_zstd
run null_value_and_key check_null_value_and_key
run partition_target_and_offsets check_partition_target_and_offsets
run query_offsets check_query_offsets
run timestamps_and_start_at_time check_timestamps_and_start_at_time
run many_messages_20000 check_many_messages
if [[ "${GREGOR_COMPAT_GROUPS:-0}" == 1 ]]; then
	run group_consumer check_group_consumer
fi

suite_finish
