#!/usr/bin/env python3
"""Transactions with confluent-kafka (librdkafka): consume-transform-produce.

A keyed input topic is read by a read_committed consumer of a group with no
auto commit; a transactional producer writes each polled batch, transformed,
to an output topic and puts the consumer's positions into the same
transaction (send_offsets_to_transaction). Every third transaction is
aborted instead of committed, after which the consumer seeks back to the
group's committed offsets and the batch is done again in a new transaction.

Then, as a user would check it:
  - a read_committed consumer of the output sees every input record exactly
    once, transformed, and nothing an aborted transaction wrote;
  - a read_uncommitted consumer sees the aborted attempts too (more records
    than were committed, the aborted ones among them);
  - the group's committed offsets equal the input's end offsets;
  - an open transaction holds back read_committed readers (the last stable
    offset) until it commits, while read_uncommitted readers see it at once.

Each record carries a header "txn" with the number of the transaction that
wrote it, so a record in the output tells which attempt produced it.
"""

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import CheckFailed, Suite, expect, expect_eq

S = Suite("txn-ck")
B = S.bootstrap


N = 300            # input records
PARTITIONS = 3
BATCH = 25         # records per transaction, at most
ABORT_EVERY = 3    # the 3rd, 6th, ... transaction aborts

T_IN = S.topic("in")
T_OUT = S.topic("out")
GROUP = S.topic("ctp-group")
TXN_ID = S.topic("ctp-txn")

ADMIN = AdminClient({"bootstrap.servers": B})


def create_topics(*names):
    fs = ADMIN.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names],
                             operation_timeout=10)
    for f in fs.values():
        f.result(15)


def read_all(topic, isolation, timeout=20):
    """Every data record of topic's partitions up to each partition's end for
    this isolation level (partition EOF: the high watermark, or the last
    stable offset for read_committed), as (key, value, txn header) tuples."""
    c = Consumer({"bootstrap.servers": B, "group.id": S.topic("reader"), "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        eof, got = set(), []
        deadline = time.monotonic() + timeout
        while len(eof) < PARTITIONS:
            if time.monotonic() > deadline:
                raise CheckFailed("%s read of %s: EOF on %s only after %ds" % (isolation, topic, sorted(eof), timeout))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise CheckFailed("%s read of %s: %s" % (isolation, topic, m.error()))
            eof.discard(m.partition())
            got.append((m.key(), m.value(), dict(m.headers() or []).get("txn")))
        return got
    finally:
        c.close()


# Results of the loop, for the checks that follow it.
state = {"committed": set(), "aborted": set(), "committed_records": 0, "aborted_records": 0}


@S.check("setup_input_topic_with_keyed_records")
def _():
    create_topics(T_IN, T_OUT)
    p = Producer({"bootstrap.servers": B, "enable.idempotence": True, "linger.ms": 5})
    errs = []
    for i in range(N):
        p.produce(T_IN, key=b"k%03d" % i, value=b"v%03d" % i,
                  on_delivery=lambda err, _m: err and errs.append(str(err)))
    expect_eq(p.flush(20), 0, "input records still queued after flush(20)")
    expect(not errs, "input delivery errors: %s" % errs[:3])


@S.check("consume_transform_produce_aborting_every_third_txn", timeout=90)
def _():
    c = Consumer({"bootstrap.servers": B, "group.id": GROUP, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    p = Producer({"bootstrap.servers": B, "transactional.id": TXN_ID, "linger.ms": 5,
                  "transaction.timeout.ms": 60000})
    try:
        p.init_transactions(20)
        c.subscribe([T_IN])
        txn = 0
        done = 0
        deadline = time.monotonic() + 75
        while done < N:
            if time.monotonic() > deadline:
                raise CheckFailed("%d of %d input records committed after 75s (%d txns)" % (done, N, txn))
            msgs = c.consume(num_messages=BATCH, timeout=1)
            for m in msgs:
                if m.error():
                    raise CheckFailed("input consumer: %s" % m.error())
            if not msgs:
                continue
            txn += 1
            tag = str(txn).encode()
            p.begin_transaction()
            for m in msgs:
                p.produce(T_OUT, key=m.key(), value=b"out-" + m.value(), headers=[("txn", tag)])
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 20)
            if txn % ABORT_EVERY == 0:
                # abort_transaction purges what is still queued: flush
                # first, so the aborted records are in the log (and
                # read_uncommitted can count them).
                expect_eq(p.flush(20), 0, "records of the aborted transaction still queued")
                p.abort_transaction(20)
                state["aborted"].add(tag)
                state["aborted_records"] += len(msgs)
                # Redo the batch: back to what the group has committed.
                for tp in c.committed(c.assignment(), timeout=10):
                    off = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                    c.seek(TopicPartition(tp.topic, tp.partition, off))
            else:
                p.commit_transaction(20)
                state["committed"].add(tag)
                state["committed_records"] += len(msgs)
                done += len(msgs)
        expect_eq(done, N, "records committed")
        expect(len(state["aborted"]) >= 2, "want at least 2 aborted transactions, got %d" % len(state["aborted"]))
        print("  %d transactions: %d committed (%d records), %d aborted (%d records)"
              % (txn, len(state["committed"]), state["committed_records"], len(state["aborted"]),
                 state["aborted_records"]))
    finally:
        p.flush(5)
        c.close()


@S.check("read_committed_sees_each_input_exactly_once")
def _():
    got = read_all(T_OUT, "read_committed")
    want = sorted((b"k%03d" % i, b"out-v%03d" % i) for i in range(N))
    kv = sorted((k, v) for k, v, _ in got)
    dups = len(kv) - len(set(kv))
    expect(dups == 0, "%d duplicated records among %d" % (dups, len(kv)))
    missing = sorted(set(want) - set(kv))
    extra = sorted(set(kv) - set(want))
    expect(not missing and not extra, "read_committed output: %d of %d input records missing (first %s), "
           "%d unexpected (first %s)" % (len(missing), N, missing[:3], len(extra), extra[:3]))
    bad = sorted({t for _, _, t in got if t not in state["committed"]})
    expect(not bad, "records of aborted or unknown transactions %s visible to read_committed" % bad[:5])


@S.check("read_uncommitted_sees_aborted_records_too")
def _():
    got = read_all(T_OUT, "read_uncommitted")
    want = state["committed_records"] + state["aborted_records"]
    expect_eq(len(got), want, "read_uncommitted records (committed + aborted)")
    expect(len(got) > N, "read_uncommitted saw %d records, not more than the %d committed" % (len(got), N))
    seen = {t for _, _, t in got}
    expect_eq(seen & state["aborted"], state["aborted"], "aborted transactions seen by read_uncommitted")


@S.check("group_committed_offsets_equal_input_end_offsets")
def _():
    c = Consumer({"bootstrap.servers": B, "group.id": GROUP, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(T_IN, p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
        ends = {p: c.get_watermark_offsets(TopicPartition(T_IN, p), timeout=10)[1] for p in range(PARTITIONS)}
        expect_eq(committed, ends, "committed offsets vs input end offsets")
        expect_eq(sum(ends.values()), N, "input end offsets sum")
    finally:
        c.close()


@S.check("open_txn_held_back_from_read_committed_until_commit")
def _():
    t = S.topic("lso")
    create_topics(t)
    p = Producer({"bootstrap.servers": B, "transactional.id": S.topic("lso-txn"), "linger.ms": 0})
    p.init_transactions(20)
    p.begin_transaction()
    for i in range(PARTITIONS):
        p.produce(t, partition=i, value=b"open-%d" % i)
    expect_eq(p.flush(10), 0, "records of the open transaction still queued")
    expect_eq(len(read_all(t, "read_uncommitted")), PARTITIONS, "read_uncommitted records of the open txn")
    expect_eq(read_all(t, "read_committed"), [], "read_committed records while the txn is open")
    p.commit_transaction(20)
    got = sorted(v for _, v, _ in read_all(t, "read_committed"))
    expect_eq(got, [b"open-%d" % i for i in range(PARTITIONS)], "read_committed records after commit")


S.finish()
