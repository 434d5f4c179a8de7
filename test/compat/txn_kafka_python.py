#!/usr/bin/env python3
"""Transactions with kafka-python 3.x (what `pip install kafka-python` gives).

kafka-python grew a transactional producer in 2.1; Debian's 2.0.2 has none,
so run.sh runs this under install.sh's venv (.venv-kafka-python3).

A transactional producer commits one transaction (records plus a group's
offsets through send_offsets_to_transaction) and aborts the next one
(records plus later offsets). A read_committed consumer must see exactly
the committed records; a read_uncommitted consumer must see both sets and
nothing more (the commit and abort markers are not records); the group's
offsets must be the committed transaction's.

  BOOTSTRAP=127.0.0.1:9092 test/compat/.venv-kafka-python3/bin/python test/compat/txn_kafka_python.py
"""

import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from harness import CheckFailed, Suite, expect, expect_eq, quiet_close

S = Suite("txn-kp3")
B = S.bootstrap

if not hasattr(KafkaProducer, "init_transactions"):
    print("FAIL setup: kafka-python %s has no transactional producer (want 3.x: run under "
          ".venv-kafka-python3/bin/python)" % kafka.__version__)
    S.failed += 1
    S.finish()

PARTITIONS = 3
T = S.topic("txn")
GROUP = S.topic("group")
TP0 = TopicPartition(T, 0)
COMMITTED = [b"committed-%d" % i for i in range(9)]
ABORTED = [b"aborted-%d" % i for i in range(9)]

_admin = KafkaAdminClient(bootstrap_servers=B)
_producer = {}


def group_offset():
    got = _admin.list_group_offsets(GROUP)[GROUP]
    om = got.get(TP0)
    return om.offset if om is not None else None


def read_all(isolation, timeout=20):
    """Every value of T's partitions up to the end offsets for this isolation
    level (the last stable offset for read_committed)."""
    c = KafkaConsumer(bootstrap_servers=B, isolation_level=isolation, enable_auto_commit=False)
    try:
        tps = [TopicPartition(T, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        got = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise CheckFailed("%s read: positions %s, ends %s" % (
                    isolation, [c.position(tp) for tp in tps], [end[tp] for tp in tps]))
            for recs in c.poll(timeout_ms=500).values():
                got.extend(r.value for r in recs)
        return got
    finally:
        quiet_close(c)


@S.check("txn_setup_topic")
def _():
    _admin.create_topics([NewTopic(name=T, num_partitions=PARTITIONS, replication_factor=1)])


@S.check("txn_commit_records_and_group_offsets")
def _():
    p = KafkaProducer(bootstrap_servers=B, transactional_id=S.topic("txn-id"), max_block_ms=20000)
    _producer["p"] = p
    p.init_transactions()
    p.begin_transaction()
    for i, v in enumerate(COMMITTED):
        p.send(T, value=v, key=b"k%d" % i, partition=i % PARTITIONS)
    p.send_offsets_to_transaction({TP0: OffsetAndMetadata(3, "", -1)}, GROUP)
    p.commit_transaction()
    expect_eq(group_offset(), 3, "group offset after the commit")


@S.check("txn_abort_records_and_group_offsets")
def _():
    p = _producer.get("p")
    expect(p is not None, "no producer from the commit check")
    p.begin_transaction()
    for i, v in enumerate(ABORTED):
        p.send(T, value=v, key=b"k%d" % i, partition=i % PARTITIONS)
    p.send_offsets_to_transaction({TP0: OffsetAndMetadata(6, "", -1)}, GROUP)
    p.flush()
    p.abort_transaction()
    expect_eq(group_offset(), 3, "group offset after the abort (the committed one)")


@S.check("txn_read_committed_sees_only_committed")
def _():
    expect_eq(sorted(read_all("read_committed")), sorted(COMMITTED), "read_committed values")


@S.check("txn_read_uncommitted_sees_both_and_no_markers")
def _():
    expect_eq(sorted(read_all("read_uncommitted")), sorted(COMMITTED + ABORTED), "read_uncommitted values")


@S.check("txn_markers_take_offsets")
def _():
    # Each transaction ends with a marker on every partition it wrote to, so
    # the end offsets are past the records by two per partition here.
    c = KafkaConsumer(bootstrap_servers=B)
    try:
        end = c.end_offsets([TopicPartition(T, p) for p in range(PARTITIONS)])
        expect_eq(sum(end.values()), len(COMMITTED) + len(ABORTED) + 2 * PARTITIONS, "sum of end offsets")
    finally:
        quiet_close(c)


if "p" in _producer:
    quiet_close(_producer["p"])
quiet_close(_admin)
S.finish()
