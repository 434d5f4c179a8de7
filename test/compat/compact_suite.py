#!/usr/bin/env python3
"""Log compaction seen by real clients (issue 12's acceptance, scaled down).

One compacted topic (one partition, 1 MiB segments, the smallest Kafka 4
accepts; segment.ms 2 s; min.cleanable.dirty.ratio 0.01; delete.retention.ms
20 s) gets 200,000 records over 2,000 keys (value = key, sequence number
and filler), the first half from kafka-python (gzip), the second from
confluent-kafka (lz4), then tombstones for every tenth key from
kafka-python.
Then, against the broker's cleaner:

  - the partition's size (DescribeLogDirs, a raw v1 request) falls to a
    quarter of its largest within 90 s; bytes before and after are printed;
  - a confluent-kafka consumer from the beginning sees offsets increasing
    with gaps, every record it gets is the record produced at that offset
    (offsets preserved), and every key's last record is its latest value,
    or for a deleted key its tombstone;
  - kafka-python 2.0.2 reads the same records;
  - Kafka's Java consumer (java/client CompactCompat) reads to the end
    across the gaps and sees the latest value per key;
  - Kafka 4.4's DumpLogSegments --deep-iteration decodes every segment of
    the partition in the broker's log dir (BROKER_LOG_DIR), every batch
    valid, offsets increasing;
  - after delete.retention.ms, once more records make the log dirty again,
    the deleted keys are gone entirely, and the other keys keep their
    latest values;
  - a batch with a keyless record sent to a compacted topic is refused
    whole (INVALID_RECORD).

The topic is deleted at the end, so a cleaner that runs later cannot
change what run.sh's restart snapshots compare.

Environment: BOOTSTRAP; BROKER_LOG_DIR, the broker's log dir (log.dirs of
`gregor serve`; for bench/kafka/kafka.sh bench/kafka/.cache/node-PORT/data),
without which the DumpLogSegments check fails; COMPACT_WAIT (seconds, 90).
The broker's cleaner should back off briefly (log.cleaner.backoff.ms=500):

  KAFKA_PROPS="log.cleaner.backoff.ms=500" bash bench/kafka/kafka.sh start
  BOOTSTRAP=127.0.0.1:19092 BROKER_LOG_DIR=bench/kafka/.cache/node-19092/data \\
      python3 test/compat/compact_suite.py
"""

import glob
import hashlib
import os
import re
import socket
import struct
import subprocess
import tempfile
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import CheckFailed, Suite, expect, expect_eq, wait_until

S = Suite("compact")
B = S.bootstrap
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RUNCLASS = os.path.join(ROOT, "bench", "kafka", "kafka-run-class.sh")
JAVA_CLIENT = os.path.join(HERE, "java", "client")
LOG_DIR = os.environ.get("BROKER_LOG_DIR")
WAIT = float(os.environ.get("COMPACT_WAIT", "90"))

T = S.topic("table")
# COMPACT_RECORDS / COMPACT_KEYS scale it (the figure run: 1,000,000
# over 10,000).
RECORDS = int(os.environ.get("COMPACT_RECORDS", "200000"))
KEYS = int(os.environ.get("COMPACT_KEYS", "2000"))
DELETED = [k for k in range(KEYS) if k % 10 == 3]  # 200 keys get a tombstone
DELETE_RETENTION_MS = 20_000
# Held back this long, the cleaner leaves the whole log to be measured
# before it compacts (and min.compaction.lag.ms is checked on the way).
MIN_LAG_MS = 15_000
SEGMENT_MS = 2_000
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(1 << 20),
    "segment.ms": str(SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": str(MIN_LAG_MS),
    "delete.retention.ms": str(DELETE_RETENTION_MS),
    "file.delete.delay.ms": "1000",
}


def key(k):
    return b"key-%04d" % k


def value(k, seq):
    # Key and sequence first, then filler that compresses like real data.
    return b"key-%04d:%06d:" % (k, seq) + hashlib.sha256(b"%d" % seq).hexdigest().encode()


state = {
    "produced": {},  # offset -> (key, value) of every acknowledged record
    "latest": {},    # key -> (offset, value or None)
    "max_size": 0,
}


# ------------------------------------------------------------------ helpers

def describe_log_dirs_size(topic, partition=0):
    """Partition size in bytes from a raw DescribeLogDirs v1 request (neither
    Python client has the API); None when the broker does not list it."""
    host, port = B.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        client = b"gregor-compat"
        tb = topic.encode()
        body = struct.pack(">hhih", 35, 1, 77, len(client)) + client
        body += struct.pack(">i", 1) + struct.pack(">h", len(tb)) + tb + struct.pack(">ii", 1, partition)
        s.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise CheckFailed("DescribeLogDirs: connection closed")
            buf += chunk
    finally:
        s.close()
    pos = 4
    corr, = struct.unpack_from(">i", buf, pos)
    expect_eq(corr, 77, "DescribeLogDirs correlation id")
    pos += 4 + 4  # correlation id, throttle

    def string():
        nonlocal pos
        n, = struct.unpack_from(">h", buf, pos)
        pos += 2
        v = buf[pos:pos + max(n, 0)].decode()
        pos += max(n, 0)
        return v

    dirs, = struct.unpack_from(">i", buf, pos)
    pos += 4
    size = None
    for _ in range(dirs):
        err, = struct.unpack_from(">h", buf, pos)
        pos += 2
        string()
        topics, = struct.unpack_from(">i", buf, pos)
        pos += 4
        for _ in range(topics):
            name = string()
            parts, = struct.unpack_from(">i", buf, pos)
            pos += 4
            for _ in range(parts):
                idx, sz, _lag, _fut = struct.unpack_from(">iqq?", buf, pos)
                pos += 4 + 8 + 8 + 1
                if err == 0 and name == topic and idx == partition:
                    size = sz
    return size


def track_size():
    sz = describe_log_dirs_size(T)
    if sz is not None:
        state["max_size"] = max(state["max_size"], sz)
    return sz


def read_all(group_tag):
    """Every record of partition 0 from the beginning to the high watermark,
    with confluent-kafka: [(offset, key, value)], and the watermarks."""
    c = Consumer({"bootstrap.servers": B, "group.id": S.topic(group_tag),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "fetch.max.bytes": 1 << 20})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(T, 0), timeout=10)
        c.assign([TopicPartition(T, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    if (out and out[-1][0] >= high - 1) or high == low:
                        break
                    # EOF below the high watermark read at the start: the
                    # tail was compacted away; past the last record is fine.
                    if c.position([TopicPartition(T, 0)])[0].offset >= high:
                        break
                    continue
                raise CheckFailed("consume: %s" % m.error())
            if m.offset() < high:
                out.append((m.offset(), m.key(), m.value()))
            if m.offset() >= high - 1:
                break
        else:
            raise CheckFailed("reading to the high watermark %d timed out at %d records" % (high, len(out)))
        return out, low, high
    finally:
        c.close()


def check_against_produced(recs, high):
    """Offsets strictly increase, each record is the one produced at its
    offset, and each key's last record is its latest value or tombstone."""
    prev = -1
    last = {}
    for off, k, v in recs:
        expect(off > prev, "offset %d after %d" % (off, prev))
        prev = off
        want = state["produced"].get(off)
        expect(want is not None, "offset %d was never produced" % off)
        if want != (k, v):
            raise CheckFailed("offset %d: got %r=%r, produced %r=%r" % (off, k, v, want[0], want[1]))
        last[k] = (off, v)
    expect(len(recs) < high, "%d records below the high watermark %d: no gaps, not compacted" % (len(recs), high))
    for k, (off, v) in state["latest"].items():
        got = last.get(k)
        if v is None:
            if got is not None and got[1] is not None:
                raise CheckFailed("deleted key %r ends with value %r at %d" % (k, got[1], got[0]))
        elif got != (off, v):
            raise CheckFailed("key %r ends with %r, want %r at %d" % (k, got, v, off))
    return last


def acked(offset, k, v):
    state["produced"][offset] = (k, v)
    prev = state["latest"].get(k)
    if prev is None or prev[0] < offset:
        state["latest"][k] = (offset, v)


def produce_kafka_python(records, acks_cb=None):
    """produce, with kafka-python's KafkaProducer (the seeds' client)."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=B, acks="all", linger_ms=20, compression_type="gzip",
                      batch_size=256 << 10, max_in_flight_requests_per_connection=1, retries=5)
    errors = []

    def ok(k, v):
        return lambda md: acked(md.offset, k, v)

    try:
        n = 0
        for k, v in records:
            p.send(T, key=key(k), value=v, partition=0).add_callback(ok(key(k), v)).add_errback(errors.append)
            n += 1
            if n % 20_000 == 0 and acks_cb:
                acks_cb()
        p.flush(60)
    finally:
        p.close(10)
    expect(not errors, "produce errors: %s" % errors[:3])


def produce(records, acks_cb=None):
    """records: iterable of (k, value or None). Records every acknowledged
    record by its offset."""
    p = Producer({"bootstrap.servers": B, "linger.ms": 20, "compression.type": "lz4",
                  "enable.idempotence": True, "acks": "all", "batch.size": 256 << 10})
    errors = []

    def done(err, m):
        if err is not None:
            errors.append(err)
            return
        acked(m.offset(), m.key(), m.value())

    n = 0
    for k, v in records:
        while True:
            try:
                p.produce(T, key=key(k), value=v, partition=0, on_delivery=done)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if n % 20_000 == 0:
            p.poll(0)
            if acks_cb:
                acks_cb()
    expect_eq(p.flush(60), 0, "records still queued after 60s")
    expect(not errors, "produce errors: %s" % errors[:3])


# ------------------------------------------------------------------ checks

@S.check("compact_create_topic")
def _():
    state["admin"] = AdminClient({"bootstrap.servers": B})
    state["admin"].create_topics([NewTopic(T, 1, 1, config=TOPIC_CONFIG)])[T].result(15)
    wait_until(lambda: describe_log_dirs_size(T) is not None, 15, what="DescribeLogDirs to list the topic")


@S.check("compact_produce_200k_records_over_2k_keys_and_tombstones", timeout=180)
def _():
    state["produce_started"] = time.monotonic()
    half = RECORDS // 2
    produce_kafka_python(((seq % KEYS, value(seq % KEYS, seq)) for seq in range(half)), track_size)
    produce(((seq % KEYS, value(seq % KEYS, seq)) for seq in range(half, RECORDS)), track_size)
    track_size()
    produce_kafka_python((k, None) for k in DELETED)
    # A record after segment.ms rolls the segment holding the tombstones,
    # so the cleaner may reach them (it never touches the active segment).
    time.sleep(SEGMENT_MS / 1000 + 0.5)
    produce([(0, value(0, RECORDS))])
    track_size()
    expect_eq(len(state["produced"]), RECORDS + len(DELETED) + 1, "acknowledged records")
    print("  produced %d records (%d from kafka-python), %d tombstones (kafka-python); partition size %d bytes (largest seen)"
          % (RECORDS + 1, half, len(DELETED), state["max_size"]))


@S.check("compact_min_compaction_lag_holds_cleaning_back", timeout=60)
def _():
    # The first records are younger than min.compaction.lag.ms: none of
    # them may have been cleaned yet.
    young = time.monotonic() - state["produce_started"] < MIN_LAG_MS / 1000 - 3
    c = Consumer({"bootstrap.servers": B, "group.id": S.topic("lag"), "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(T, 0, OFFSET_BEGINNING)])
        offs = []
        deadline = time.monotonic() + 20
        while len(offs) < 5000 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                offs.append(m.offset())
    finally:
        c.close()
    if not young:
        print("  (producing took longer than min.compaction.lag.ms; not checked)")
        return
    expect_eq(offs[:5000], list(range(5000)), "the first 5000 offsets while younger than min.compaction.lag.ms")


@S.check("compact_log_shrinks_within_wait", timeout=WAIT + 30)
def _():
    expect(state["max_size"] > 0, "no partition size before compaction")
    started = time.monotonic()

    def compacted():
        sz = track_size()
        return sz is not None and sz * 4 <= state["max_size"] and sz

    after = wait_until(compacted, WAIT, interval=1.0,
                       what="the partition to shrink to a quarter of %d bytes (DescribeLogDirs)" % state["max_size"])
    state["compacted_at"] = time.monotonic()
    print("  bytes before %d, after %d (%.1f%%), compacted %.1fs after the last produce"
          % (state["max_size"], after, 100.0 * after / state["max_size"], time.monotonic() - started))


@S.check("compact_consumer_sees_latest_value_per_key_offsets_preserved", timeout=90)
def _():
    recs, low, high = read_all("read1")
    state["first_read"] = recs
    last = check_against_produced(recs, high)
    tombstones = sum(1 for k in DELETED if last.get(key(k), (0, b""))[1] is None and key(k) in last)
    print("  %d records in offsets [%d, %d); %d of %d deleted keys still show their tombstone"
          % (len(recs), low, high, tombstones, len(DELETED)))
    # Before delete.retention.ms has passed since the cleaning, a consumer
    # from the beginning must still learn about every deletion.
    if time.monotonic() - state.get("compacted_at", 0) < DELETE_RETENTION_MS / 1000 - 5:
        expect_eq(tombstones, len(DELETED), "deleted keys whose tombstone is visible within delete.retention.ms")


@S.check("compact_kafka_python_reads_the_same_records", timeout=90)
def _():
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    recs = state.get("first_read")
    expect(recs, "no first read to compare with")
    tp = KTP(T, 0)
    c = KafkaConsumer(bootstrap_servers=B, enable_auto_commit=False, max_partition_fetch_bytes=65536)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = recs[-1][0]
        got = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not got or got[-1][0] < end):
            for msgs in c.poll(timeout_ms=500).values():
                got.extend((m.offset, m.key, m.value) for m in msgs if m.offset <= end)
    finally:
        c.close()
    # The cleaner may run again in between; what kafka-python sees must
    # still be a valid compacted view of the same log.
    if got != recs:
        check_against_produced(got, end + 1)
    expect(got and got[-1][0] == end, "kafka-python stopped at %s, want %d" % (got and got[-1][0], end))


def java_client_ready():
    cls = os.path.join(JAVA_CLIENT, "target", "classes", "gregor", "compat", "CompactCompat.class")
    src = os.path.join(JAVA_CLIENT, "src", "main", "java", "gregor", "compat", "CompactCompat.java")
    libs = os.path.join(JAVA_CLIENT, "target", "libs")
    if os.path.exists(cls) and os.path.isdir(libs) and os.path.getmtime(cls) >= os.path.getmtime(src):
        return
    r = subprocess.run(["mvn", "-q", "-B", "package"], cwd=JAVA_CLIENT, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise CheckFailed("mvn package in test/compat/java/client failed: %s" % (r.stdout + r.stderr)[-800:])


@S.check("compact_java_consumer_reads_across_gaps", timeout=240)
def _():
    java_client_ready()
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for k, (_, v) in sorted(state["latest"].items()):
            f.write("%s\tD\n" % k.decode() if v is None else "%s\tV\t%s\n" % (k.decode(), v.decode()))
        expected = f.name
    try:
        cp = "%s:%s" % (os.path.join(JAVA_CLIENT, "target", "classes"), os.path.join(JAVA_CLIENT, "target", "libs", "*"))
        r = subprocess.run(["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp,
                            "gregor.compat.CompactCompat", B, T, expected],
                           capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(expected)
    for line in r.stdout.splitlines():
        print("  java: " + line)
    expect(r.returncode == 0 and re.search(r"^3 passed, 0 failed$", r.stdout, re.M),
           "CompactCompat exit %d: %s" % (r.returncode, (r.stdout + r.stderr)[-600:]))


def dump_segments():
    files = sorted(glob.glob(os.path.join(LOG_DIR, T + "-0", "*.log")))
    expect(files, "no *.log in %s" % os.path.join(LOG_DIR, T + "-0"))
    env = dict(os.environ, KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    r = subprocess.run(["bash", RUNCLASS, "org.apache.kafka.tools.DumpLogSegments", "--deep-iteration",
                        "--files", ",".join(files)], capture_output=True, text=True, timeout=120, env=env)
    return files, r


@S.check("compact_dump_log_segments_decodes_cleaned_segments", timeout=300)
def _():
    expect(LOG_DIR and os.path.isdir(LOG_DIR), "BROKER_LOG_DIR=%r is not the broker's log dir" % LOG_DIR)
    # The cleaner may swap a segment while the tool reads it; one retry.
    for attempt in (1, 2):
        files, r = dump_segments()
        if r.returncode == 0 or attempt == 2:
            break
        time.sleep(2)
    expect(r.returncode == 0, "DumpLogSegments exit %d: %s" % (r.returncode, r.stderr[-800:]))
    bad = [l for l in (r.stdout + r.stderr).splitlines() if re.search(r"Exception|[Ee]rror|corrupt|isvalid: false", l)]
    expect(not bad, "DumpLogSegments reports problems: %s" % bad[:3])
    batches = [l for l in r.stdout.splitlines() if l.startswith("baseOffset:")]
    offsets = [int(m.group(1)) for m in re.finditer(r"^\| offset: (\d+)", r.stdout, re.M)]
    expect(batches and offsets, "no batches or records in the dump of %d files" % len(files))
    valid = sum(1 for l in batches if "isvalid: true" in l)
    expect_eq(valid, len(batches), "batches marked isvalid: true")
    expect(all(b > a for a, b in zip(offsets, offsets[1:])), "record offsets do not increase across the segments")
    gaps = sum(1 for a, b in zip(offsets, offsets[1:]) if b > a + 1)
    expect(gaps > 0, "no offset gaps in %d records: the segments are not compacted" % len(offsets))
    print("  %d segment files, %d batches, %d records, %d gaps; all batches valid" % (len(files), len(batches), len(offsets), gaps))


@S.check("compact_deleted_keys_gone_after_delete_retention", timeout=DELETE_RETENTION_MS / 1000 + WAIT + 60)
def _():
    # Tombstones are removed by a cleaning that runs after their
    # delete.retention.ms: wait it out, then dirty the log again (a new
    # value for every live key), and roll the segment so it is cleanable.
    left = state.get("compacted_at", 0) + DELETE_RETENTION_MS / 1000 + 1 - time.monotonic()
    if left > 0:
        time.sleep(left)
    live = [k for k in range(KEYS) if k not in DELETED]
    produce((k, value(k, RECORDS + 1 + i)) for i, k in enumerate(live))
    time.sleep(SEGMENT_MS / 1000 + 0.5)
    produce([(1, value(1, RECORDS + KEYS + 1))])

    def gone():
        recs, _, high = read_all("read-deleted-%d" % int(time.monotonic() * 1000))
        keys = {k for _, k, _ in recs}
        still = [k for k in DELETED if key(k) in keys]
        state["last_check"] = (recs, high, still)
        return not still

    try:
        wait_until(gone, WAIT, interval=2.0, what="the deleted keys to disappear")
    except CheckFailed:
        recs, high, still = state["last_check"]
        raise CheckFailed("%d of %d deleted keys still present after %.0fs (first %r)"
                          % (len(still), len(DELETED), WAIT, still[:3]))
    recs, high, _ = state["last_check"]
    check_against_produced(recs, high)
    print("  %d records left for %d live keys; partition size %s bytes"
          % (len(recs), len(live), describe_log_dirs_size(T)))


@S.check("compact_topic_refuses_keyless_records")
def _():
    # One gzip batch of a keyed and a keyless record: the broker refuses the
    # whole batch with INVALID_RECORD and stores neither.
    t = S.topic("keyless")
    a = state.get("admin") or AdminClient({"bootstrap.servers": B})
    a.create_topics([NewTopic(t, 1, 1, config={"cleanup.policy": "compact"})])[t].result(15)
    p = Producer({"bootstrap.servers": B, "linger.ms": 50, "compression.type": "gzip"})
    res = []
    p.produce(t, key=b"k", value=b"keyed", partition=0, on_delivery=lambda e, m: res.append(e))
    p.produce(t, value=b"keyless", partition=0, on_delivery=lambda e, m: res.append(e))
    expect_eq(p.flush(20), 0, "records still queued")
    expect_eq([e and e.name() for e in res], ["INVALID_RECORD", "INVALID_RECORD"], "delivery errors")
    c = Consumer({"bootstrap.servers": B, "group.id": S.topic("keyless")})
    try:
        expect_eq(c.get_watermark_offsets(TopicPartition(t, 0), timeout=10), (0, 0), "watermarks after the refused batch")
    finally:
        c.close()
    a.delete_topics([t])[t].result(30)


@S.check("compact_delete_topic")
def _():
    a = state.get("admin") or AdminClient({"bootstrap.servers": B})
    a.delete_topics([T])[T].result(30)


S.finish()
