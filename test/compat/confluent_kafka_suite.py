#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against Gregor.

Producer: every compression codec, idempotence with acks=all, delivery
reports checked for offsets, headers, null key/value, timestamps.
Consumer: assign() from OFFSET_BEGINNING, read to the high watermark, compare
every field with what was produced. AdminClient: create/list/describe/alter.

Named *_suite.py: a script called confluent_kafka.py would shadow the
confluent_kafka package it imports.

Consumer-group checks (subscribe/commit) run only with GREGOR_COMPAT_GROUPS=1.
"""

import os
import time

from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, Consumer, KafkaError,
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   ResourceType)

from harness import CheckFailed, Suite, expect, expect_eq, wait_until

S = Suite("ck")
B = S.bootstrap
GROUPS = os.environ.get("GREGOR_COMPAT_GROUPS") == "1"


_ADMIN = AdminClient({"bootstrap.servers": B})


def admin():
    # One long-lived client: a dropped AdminClient fails its pending futures
    # with _DESTROY before the broker answers.
    return _ADMIN


def create_topic(name, partitions, config=None):
    fs = admin().create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                         config=config or {})], operation_timeout=10)
    fs[name].result(15)


def consumer(**extra):
    # group.id is mandatory in confluent-kafka even for assign(); no commits
    # are made (enable.auto.commit=false), so no group state is needed.
    cfg = {"bootstrap.servers": B, "group.id": S.topic("assign-only"),
           "enable.auto.commit": False, "enable.partition.eof": False}
    cfg.update(extra)
    return Consumer(cfg)


def consume_all(topic, partitions, timeout=20):
    """Every message of the given partitions, from OFFSET_BEGINNING up to the
    high watermark the broker reports, in (partition, offset) order."""
    c = consumer()
    try:
        highs = {}
        for p in partitions:
            _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            highs[p] = high
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        got = []
        nxt = {p: 0 for p in partitions}
        deadline = time.monotonic() + timeout
        while any(nxt[p] < highs[p] for p in partitions):
            if time.monotonic() > deadline:
                raise CheckFailed("consume %s: reached %r, high watermarks %r" % (topic, nxt, highs))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise CheckFailed("consume %s: %s" % (topic, m.error()))
            got.append(m)
            nxt[m.partition()] = m.offset() + 1
        return sorted(got, key=lambda m: (m.partition(), m.offset()))
    finally:
        c.close()


class Deliveries:
    """Delivery-report collector; asserts every report succeeded."""

    def __init__(self):
        self.reports = []

    def __call__(self, err, msg):
        self.reports.append((err, msg.topic(), msg.partition(), msg.offset(),
                             msg.key(), msg.value()))

    def ok(self, n):
        errs = [r for r in self.reports if r[0] is not None]
        expect(not errs, "delivery errors: %r" % ([str(e[0]) for e in errs[:3]],))
        expect_eq(len(self.reports), n, "delivery reports")
        return self.reports


def flush(p, n_expected=0):
    left = p.flush(20)
    expect_eq(left, n_expected, "messages still queued after flush(20)")


def records(msgs):
    return [(m.partition(), m.offset(), m.key(), m.value(), m.headers()) for m in msgs]


# ------------------------------------------------------------------ admin

T3 = S.topic("admin-3")


@S.check("admin_create_topics_and_list_topics")
def _():
    create_topic(T3, 3)
    md = admin().list_topics(topic=T3, timeout=10)
    expect_eq(list(md.brokers), [1], "broker ids")
    host, port = B.rsplit(":", 1)
    b = md.brokers[1]
    expect_eq((b.host, b.port), (host, int(port)), "broker address")
    t = md.topics[T3]
    expect(t.error is None, "topic error %s" % t.error)
    got = sorted((p.id, p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values())
    expect_eq(got, [(i, 1, [1], [1]) for i in range(3)], "partitions")
    all_topics = admin().list_topics(timeout=10).topics
    expect(T3 in all_topics, "%s missing from list of all topics" % T3)


@S.check("admin_create_existing_topic_is_TOPIC_ALREADY_EXISTS")
def _():
    try:
        create_topic(T3, 3)
    except KafkaException as e:
        expect_eq(e.args[0].code(), KafkaError.TOPIC_ALREADY_EXISTS, "error code")
        return
    raise CheckFailed("creating %s twice succeeded" % T3)


@S.check("admin_describe_configs_topic")
def _():
    t = S.topic("configured")
    create_topic(t, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})
    res = ConfigResource(ResourceType.TOPIC, t)
    cfg = admin().describe_configs([res])[res].result(15)
    expect_eq(cfg["retention.ms"].value, "3600000", "retention.ms (set at create)")
    expect_eq(cfg["cleanup.policy"].value, "delete", "cleanup.policy")
    expect("max.message.bytes" in cfg, "max.message.bytes missing: %r" % sorted(cfg))


@S.check("admin_describe_configs_broker")
def _():
    res = ConfigResource(ResourceType.BROKER, "1")
    cfg = admin().describe_configs([res])[res].result(15)
    expect_eq(cfg["num.partitions"].value, "1", "num.partitions")
    expect_eq(cfg["auto.create.topics.enable"].value, "true", "auto.create.topics.enable")


@S.check("admin_create_partitions_1_to_3")
def _():
    # seed 004: kafka-topics.sh --topic sanguo --alter --partitions 3
    t = S.topic("sanguo")
    create_topic(t, 1)
    admin().create_partitions([NewPartitions(t, 3)])[t].result(15)
    n = wait_until(lambda: len(admin().list_topics(topic=t, timeout=10).topics[t].partitions) == 3
                   and 3, 10, what="3 partitions in metadata")
    expect_eq(n, 3, "partitions")
    p = Producer({"bootstrap.servers": B})
    d = Deliveries()
    p.produce(t, b"to-new-partition", partition=2, on_delivery=d)
    flush(p)
    expect_eq(d.ok(1)[0][2:4], (2, 0), "delivery to partition 2")


@S.check("admin_delete_topics")
def _():
    # seed 004: kafka-topics.sh --delete
    t = S.topic("deleted")
    create_topic(t, 1)
    admin().delete_topics([t], operation_timeout=10)[t].result(15)
    wait_until(lambda: t not in admin().list_topics(timeout=10).topics, 10,
               what="%s gone from metadata" % t)


def admin_error(fn):
    """Run fn, expecting a KafkaException; return its error code."""
    try:
        fn()
    except KafkaException as e:
        return e.args[0].code()
    raise CheckFailed("the request succeeded")


@S.check("admin_create_topics_invalid_requests_rejected")
def _():
    def create(name, partitions, rf):
        fs = admin().create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf)],
                                   operation_timeout=10)
        return lambda: fs[name].result(15)
    expect_eq(admin_error(create(S.topic("bad name!"), 1, 1)), KafkaError.TOPIC_EXCEPTION,
              "topic name with a space and '!' (INVALID_TOPIC_EXCEPTION)")
    expect_eq(admin_error(create("x" * 250, 1, 1)), KafkaError.TOPIC_EXCEPTION,
              "250-character topic name (INVALID_TOPIC_EXCEPTION)")
    expect_eq(admin_error(create(S.topic("zero-partitions"), 0, 1)), KafkaError.INVALID_PARTITIONS,
              "num_partitions=0")
    expect_eq(admin_error(create(S.topic("rf3"), 1, 3)), KafkaError.INVALID_REPLICATION_FACTOR,
              "replication_factor=3 on one broker")
    for name in ("bad name!", "zero-partitions", "rf3"):
        expect(S.topic(name) not in admin().list_topics(timeout=10).topics,
               "%s exists after a failed create" % S.topic(name))


@S.check("admin_incremental_alter_configs_topic")
def _():
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    t = S.topic("altered")
    create_topic(t, 1)
    res = ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    admin().incremental_alter_configs([res])[res].result(15)
    got = ConfigResource(ResourceType.TOPIC, t)
    cfg = admin().describe_configs([got])[got].result(15)
    expect_eq(cfg["retention.ms"].value, "7200000", "retention.ms after incremental alter")
    expect(not cfg["retention.ms"].is_default, "retention.ms still reported as default")


@S.check("admin_describe_cluster")
def _():
    d = admin().describe_cluster(request_timeout=10).result(15)
    host, port = B.rsplit(":", 1)
    expect_eq([(n.id, n.host, n.port) for n in d.nodes], [(1, host, int(port))], "nodes")
    expect(d.controller is not None and d.controller.id == 1, "controller %r" % (d.controller,))
    expect(d.cluster_id, "empty cluster id")


@S.check("admin_delete_records_moves_low_watermark")
def _():
    t = S.topic("delete-records")
    p = Producer({"bootstrap.servers": B})
    for i in range(10):
        p.produce(t, value=b"v%d" % i)
    flush(p)
    tp = TopicPartition(t, 0, 6)
    res = admin().delete_records([tp])[tp].result(15)
    expect_eq(res.low_watermark, 6, "low watermark reported by DeleteRecords")
    c = consumer()
    try:
        low, high = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)
    finally:
        c.close()
    expect_eq((low, high), (6, 10), "watermarks after delete_records")
    got = [(m.offset(), m.value()) for m in consume_all(t, [0])]
    expect_eq(got, [(i, b"v%d" % i) for i in range(6, 10)], "messages from the beginning")


@S.check("admin_delete_then_recreate_same_name_starts_empty")
def _():
    # A topic deleted and created again under the same name is a new topic:
    # offsets restart at 0 and none of the old records come back.
    t = S.topic("reborn")
    create_topic(t, 2)
    p = Producer({"bootstrap.servers": B})
    for i in range(5):
        p.produce(t, value=b"old-%d" % i, partition=i % 2)
    flush(p)
    admin().delete_topics([t], operation_timeout=10)[t].result(15)
    wait_until(lambda: t not in admin().list_topics(timeout=10).topics, 10,
               what="%s gone from metadata" % t)
    deadline = time.monotonic() + 15
    while True:  # Kafka may still be removing the old log
        try:
            create_topic(t, 1)
            break
        except KafkaException as e:
            if time.monotonic() > deadline or e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            time.sleep(0.5)
    p = Producer({"bootstrap.servers": B})
    d = Deliveries()
    p.produce(t, value=b"new", partition=0, on_delivery=d)
    flush(p)
    expect_eq(d.ok(1)[0][3], 0, "offset of the first record in the new topic")
    md = admin().list_topics(topic=t, timeout=10).topics[t]
    expect_eq(sorted(md.partitions), [0], "partitions of the new topic")
    got = [(m.offset(), m.value()) for m in consume_all(t, [0])]
    expect_eq(got, [(0, b"new")], "records in the new topic")


# --------------------------------------------------------------- producer

def codec_check(codec):
    t = S.topic("codec-" + codec)
    create_topic(t, 3)
    p = Producer({"bootstrap.servers": B, "compression.type": codec, "linger.ms": 20})
    d = Deliveries()
    sent = []
    for i in range(150):
        key = b"key-%d" % i
        value = (b"%s-value-%d|" % (codec.encode(), i)) * (1 + i % 20)
        headers = [("i", str(i).encode()), ("codec", codec.encode())]
        p.produce(t, value=value, key=key, partition=i % 3, headers=headers, on_delivery=d)
        sent.append((i % 3, key, value, headers))
    flush(p)
    reports = d.ok(150)
    for part in range(3):
        offs = [r[3] for r in reports if r[2] == part]
        expect_eq(offs, list(range(50)), "delivered offsets on partition %d" % part)
    want = sorted((part, i // 3, k, v, h) for i, (part, k, v, h) in enumerate(sent))
    got = records(consume_all(t, range(3)))
    expect_eq(len(got), len(want), "messages read back")
    for g, w in zip(got, want):
        expect_eq(g, w, "message")


for _codec in ("none", "gzip", "snappy", "lz4", "zstd"):
    S.check("produce_consume_compression_%s" % _codec)(lambda c=_codec: codec_check(c))


@S.check("idempotent_producer_acks_all", timeout=45)
def _():
    t = S.topic("idempotent")
    create_topic(t, 2)
    p = Producer({"bootstrap.servers": B, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "batch.num.messages": 50})
    d = Deliveries()
    for i in range(1000):
        p.produce(t, value=b"%d" % i, key=b"k%d" % (i % 7), partition=i % 2, on_delivery=d)
        p.poll(0)
    flush(p)
    # A fatal idempotence error (e.g. OUT_OF_ORDER_SEQUENCE) shows up here.
    p.poll(0)
    reports = d.ok(1000)
    for part in range(2):
        vals = [int(r[5]) for r in reports if r[2] == part]
        offs = [r[3] for r in reports if r[2] == part]
        expect_eq(offs, list(range(500)), "offsets on partition %d" % part)
        expect_eq(vals, list(range(part, 1000, 2)), "delivery order on partition %d" % part)
    got = consume_all(t, range(2))
    expect_eq([(m.partition(), int(m.value())) for m in got],
              [(part, v) for part in range(2) for v in range(part, 1000, 2)],
              "messages read back (no duplicates, in order)")


@S.check("headers_and_null_key_value")
def _():
    t = S.topic("shapes")
    p = Producer({"bootstrap.servers": B})
    d = Deliveries()
    hdrs = [("a", b"1"), ("a", b"2"), ("nul", None), ("bin", b"\x00\xff"), ("empty", b"")]
    p.produce(t, value=b"with-headers", key=b"k", headers=hdrs, on_delivery=d)
    p.produce(t, value=None, key=b"null-value", on_delivery=d)
    p.produce(t, value=b"null-key", key=None, on_delivery=d)
    p.produce(t, value=None, key=None, on_delivery=d)
    p.produce(t, value=b"", key=b"", on_delivery=d)
    flush(p)
    expect_eq([r[3] for r in d.ok(5)], [0, 1, 2, 3, 4], "delivered offsets")
    got = [(m.key(), m.value(), m.headers()) for m in consume_all(t, [0])]
    expect_eq(got, [(b"k", b"with-headers", hdrs), (b"null-value", None, None),
                    (None, b"null-key", None), (None, None, None), (b"", b"", None)],
              "messages (key, value, headers)")


@S.check("timestamps_and_offsets_for_times")
def _():
    t = S.topic("times")
    base = int(time.time() * 1000) - 120000
    p = Producer({"bootstrap.servers": B})
    d = Deliveries()
    for i in range(4):
        p.produce(t, value=b"t%d" % i, timestamp=base + i * 1000, on_delivery=d)
    flush(p)
    d.ok(4)
    got = [m.timestamp() for m in consume_all(t, [0])]
    expect_eq(got, [(TIMESTAMP_CREATE_TIME, base + i * 1000) for i in range(4)], "timestamps")
    c = consumer()
    try:
        res = c.offsets_for_times([TopicPartition(t, 0, base + 1500)], timeout=10)
        expect_eq(res[0].offset, 2, "offset for a timestamp between records 1 and 2")
        low, high = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)
        expect_eq((low, high), (0, 4), "watermarks")
    finally:
        c.close()


@S.check("log_append_time_topic_overrides_timestamps")
def _():
    t = S.topic("log-append-time")
    create_topic(t, 1, config={"message.timestamp.type": "LogAppendTime"})
    p = Producer({"bootstrap.servers": B})
    d = Deliveries()
    before = int(time.time() * 1000)
    p.produce(t, value=b"old", timestamp=1000, on_delivery=d)
    flush(p)
    d.ok(1)
    after = int(time.time() * 1000)
    (m,) = consume_all(t, [0])
    kind, ts = m.timestamp()
    expect_eq(kind, TIMESTAMP_LOG_APPEND_TIME, "timestamp type")
    expect(before - 1000 <= ts <= after + 1000, "log append time %d not within [%d, %d]" % (ts, before, after))


@S.check("admin_list_offsets_earliest_latest_max_timestamp")
def _():
    # ListOffsets through the AdminClient, including KIP-734's max timestamp
    # (the record with the largest timestamp, not the last one).
    from confluent_kafka.admin import OffsetSpec
    t = S.topic("list-offsets")
    base = int(time.time() * 1000) - 60000
    p = Producer({"bootstrap.servers": B, "linger.ms": 0})
    for i, dt in enumerate((5000, 1000, 9000, 2000)):
        p.produce(t, value=b"m%d" % i, timestamp=base + dt)
        p.flush(10)  # one batch per record
    tp = TopicPartition(t, 0)
    got = {}
    for name, spec in (("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest()),
                       ("max_timestamp", OffsetSpec.max_timestamp())):
        res = admin().list_offsets({tp: spec}, request_timeout=10)[tp].result(15)
        got[name] = res.offset if name != "max_timestamp" else (res.offset, res.timestamp)
    expect_eq(got, {"earliest": 0, "latest": 4, "max_timestamp": (2, base + 9000)},
              "list_offsets results")


def payload(producer, seq):
    """A value whose content can be checked from its own header."""
    head = b"%d-%d-" % (producer, seq)
    return head + bytes((producer * 31 + seq + i) % 251 for i in range((seq * 37) % 1500))


@S.check("concurrent_producers_and_consumers_integrity", timeout=120)
def _():
    # Several producers append to the same partitions while several
    # consumers tail them with small fetches: every consumer must see every
    # record exactly once, at dense offsets, byte for byte (librdkafka also
    # checks each batch CRC). Catches append races and fetch buffers reused
    # before they were sent.
    import threading
    t = S.topic("stress")
    parts, producers, per = 4, 4, 5000
    create_topic(t, parts)
    total = producers * per
    errors = []
    seen = []

    def produce(pid):
        try:
            p = Producer({"bootstrap.servers": B, "linger.ms": 2, "acks": "all",
                          "compression.type": "lz4" if pid % 2 else "none"})
            failed = []
            for seq in range(per):
                while True:
                    try:
                        p.produce(t, value=payload(pid, seq), key=b"%d" % pid, partition=seq % parts,
                                  on_delivery=lambda err, m: err and failed.append(err))
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
            left = p.flush(60)
            if left or failed:
                errors.append("producer %d: %d undelivered, errors %r" % (pid, left, failed[:3]))
        except Exception as e:  # noqa: BLE001
            errors.append("producer %d: %r" % (pid, e))

    def consume(cid):
        got = {}
        try:
            c = consumer(**{"fetch.max.bytes": 65536, "message.max.bytes": 65536,
                            "max.partition.fetch.bytes": 16384,
                            "fetch.wait.max.ms": 50, "check.crcs": True})
            c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for p in range(parts)])
            nxt = {p: 0 for p in range(parts)}
            n = 0
            deadline = time.monotonic() + 100
            while n < total and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    errors.append("consumer %d: %s" % (cid, m.error()))
                    return
                p, o = m.partition(), m.offset()
                if o != nxt[p]:
                    errors.append("consumer %d: partition %d offset %d, expected %d" % (cid, p, o, nxt[p]))
                    return
                nxt[p] = o + 1
                pid, seq = (int(x) for x in m.value().split(b"-", 2)[:2])
                if m.value() != payload(pid, seq) or m.key() != b"%d" % pid or seq % parts != p:
                    errors.append("consumer %d: corrupt record at %d/%d" % (cid, p, o))
                    return
                if got.setdefault((pid, seq), o) != o:
                    errors.append("consumer %d: (%d, %d) twice" % (cid, pid, seq))
                    return
                n += 1
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append("consumer %d: %r" % (cid, e))
        seen.append(len(got))

    threads = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(3)]
    threads += [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(producers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(110)
    expect_eq(errors, [], "errors")
    expect_eq(sorted(seen), [total] * 3, "distinct records each consumer saw")
    c = consumer()
    try:
        highs = [c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] for p in range(parts)]
    finally:
        c.close()
    expect_eq(highs, [total // parts] * parts, "high watermarks")


@S.check("consumer_assign_at_offset")
def _():
    t = S.topic("assign-offset")
    p = Producer({"bootstrap.servers": B, "linger.ms": 0})
    for i in range(10):
        p.produce(t, value=b"v%d" % i)
    flush(p)
    c = consumer()
    try:
        c.assign([TopicPartition(t, 0, 7)])
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 3 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.value()))
    finally:
        c.close()
    expect_eq(got, [(7, b"v7"), (8, b"v8"), (9, b"v9")], "messages from offset 7")


@S.check("message_too_large_is_rejected_by_broker")
def _():
    # Broker default message.max.bytes is 1048588; raise the client's own
    # limit so the broker is the one to say no.
    t = S.topic("too-large")
    p = Producer({"bootstrap.servers": B, "message.max.bytes": 4 << 20,
                  "compression.type": "none"})
    d = Deliveries()
    p.produce(t, value=os.urandom(2 << 20), on_delivery=d)
    p.produce(t, value=b"small", on_delivery=d)
    flush(p)
    expect_eq(len(d.reports), 2, "delivery reports")
    err = {len(r[5]): r[0] for r in d.reports}
    expect(err[2 << 20] is not None, "2 MiB message was accepted")
    expect_eq(err[2 << 20].code(), KafkaError.MSG_SIZE_TOO_LARGE, "error for 2 MiB message")
    expect(err[5] is None, "small message failed: %s" % err[5])


# ------------------------------------------------------------------ groups

if GROUPS:
    @S.check("group_subscribe_commit_committed", timeout=60)
    def _():
        t, g = S.topic("group"), S.topic("group-id")
        p = Producer({"bootstrap.servers": B})
        for i in range(5):
            p.produce(t, value=b"g%d" % i)
        flush(p)
        c = Consumer({"bootstrap.servers": B, "group.id": g, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        try:
            c.subscribe([t])
            got = []
            deadline = time.monotonic() + 30
            while len(got) < 5 and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    got.append(m.value())
            c.commit(asynchronous=False)
            committed = c.committed([TopicPartition(t, 0)], timeout=10)
        finally:
            c.close()
        expect_eq(got, [b"g%d" % i for i in range(5)], "messages")
        expect_eq(committed[0].offset, 5, "committed offset")


    def group_consumer(g, **extra):
        cfg = {"bootstrap.servers": B, "group.id": g, "auto.offset.reset": "earliest",
               "enable.auto.commit": False, "session.timeout.ms": 30000,
               "heartbeat.interval.ms": 1000}
        cfg.update(extra)
        return Consumer(cfg)

    def poll_all(consumers, seconds, until):
        """Poll every consumer in turn (one thread) until until() holds."""
        got = {id(c): [] for c in consumers}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for c in consumers:
                m = c.poll(0.1)
                if m is not None and not m.error():
                    got[id(c)].append(m)
            if until(got):
                return got
        raise CheckFailed("timed out after %ds" % seconds)

    def owned(c):
        return {tp.partition for tp in c.assignment()}

    @S.check("group_cooperative_sticky_two_members", timeout=90)
    def _():
        # librdkafka's incremental (KIP-429) rebalance protocol.
        t, g = S.topic("coop"), S.topic("coop-group")
        create_topic(t, 4)
        a = group_consumer(g, **{"partition.assignment.strategy": "cooperative-sticky"})
        b = group_consumer(g, **{"partition.assignment.strategy": "cooperative-sticky"})
        try:
            a.subscribe([t])
            poll_all([a], 30, lambda _g: owned(a) == {0, 1, 2, 3})
            b.subscribe([t])
            poll_all([a, b], 45, lambda _g: len(owned(a)) == 2 and len(owned(b)) == 2
                     and not owned(a) & owned(b))
            p = Producer({"bootstrap.servers": B})
            for part in range(4):
                p.produce(t, value=b"c%d" % part, partition=part)
            flush(p)
            got = poll_all([a, b], 30, lambda got: sum(len(v) for v in got.values()) == 4)
            for c in (a, b):
                expect_eq(sorted(m.partition() for m in got[id(c)]), sorted(owned(c)),
                          "partitions of the messages each member received")
            b.close()
            b = None
            poll_all([a], 45, lambda _g: owned(a) == {0, 1, 2, 3})
        finally:
            a.close()
            if b is not None:
                b.close()

    @S.check("group_static_member_rejoins_without_waiting", timeout=90)
    def _():
        # KIP-345: a static member (group.instance.id) that restarts within
        # session.timeout.ms gets its partitions back at once; without static
        # membership it would wait for the old member's 30 s session to end.
        t, g = S.topic("static"), S.topic("static-group")
        create_topic(t, 2)
        first = group_consumer(g, **{"group.instance.id": "static-1"})
        first.subscribe([t])
        poll_all([first], 30, lambda _g: owned(first) == {0, 1})
        first.close()  # a static member does not leave the group on close
        started = time.monotonic()
        second = group_consumer(g, **{"group.instance.id": "static-1"})
        try:
            second.subscribe([t])
            poll_all([second], 25, lambda _g: owned(second) == {0, 1})
        finally:
            second.close()
        took = time.monotonic() - started
        expect(took < 15, "rejoin took %.1fs (session.timeout.ms=30000)" % took)

    @S.check("admin_delete_consumer_groups")
    def _():
        t, g = S.topic("deletable"), S.topic("deletable-group")
        p = Producer({"bootstrap.servers": B})
        p.produce(t, value=b"x")
        flush(p)
        c = group_consumer(g)
        try:
            c.subscribe([t])
            poll_all([c], 30, lambda got: len(got[id(c)]) == 1)
            c.commit(asynchronous=False)
            code = admin_error(lambda: admin().delete_consumer_groups([g], request_timeout=10)[g].result(15))
            expect_eq(code, KafkaError.NON_EMPTY_GROUP, "deleting a group with an active member")
        finally:
            c.close()
        admin().delete_consumer_groups([g], request_timeout=10)[g].result(15)
        listed = admin().list_consumer_groups(request_timeout=10).result(15)
        expect(g not in [x.group_id for x in listed.valid], "%s still listed after delete" % g)


S.finish()
