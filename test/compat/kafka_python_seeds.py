#!/usr/bin/env python3
"""kafka-python (2.0.2, and the newest 3.x) against Gregor: the examples from the user's seed posts.

The seed code (shared/seeds/000_*, 001_*) is kept as close to verbatim as
possible: only the bootstrap address and the topic names change (every check
gets its own topic so checks and suites never see each other's records).
Whatever the seed code prints is captured and parsed, then everything it sent
is read back with an independent consumer and compared: partition, offset,
key, value, headers, timestamp.

Nothing here needs consumer-group coordination (group_id + subscribe/commit);
those seed examples live in kafka_python_groups.py.
"""

import contextlib
import io
import json
import re
import socket
import threading
import time
import traceback

import kafka
import msgpack
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import kafka_errors  # noqa: F401 - the seed imports it
from kafka.protocol.parser import KafkaProtocol
try:  # kafka-python 2.x
    from kafka.protocol.metadata import MetadataRequest
    from kafka.protocol.produce import ProduceRequest
except ImportError:  # kafka-python 3.x keeps the classic structs under protocol.old
    from kafka.protocol.old.metadata import MetadataRequest
    from kafka.protocol.old.produce import ProduceRequest
from kafka.record.memory_records import MemoryRecordsBuilder

from harness import CheckFailed, Suite, expect, expect_eq, wait_until, captured, quiet_close

# run.sh runs this file under kafka-python 2.0.2 and again under 3.x; the
# 3.x run gets its own topic prefix so the two runs never share a name.
KP3 = int(kafka.__version__.split(".")[0]) >= 3
S = Suite("kp3" if KP3 else "kp")
B = S.bootstrap


# ---------------------------------------------------------------- helpers





def create_topic(name, partitions):
    admin = KafkaAdminClient(bootstrap_servers=B)
    try:
        # create_topics raises on a non-zero per-topic error code.
        admin.create_topics([NewTopic(name=name, num_partitions=partitions,
                                      replication_factor=1)])
    finally:
        quiet_close(admin)


def consume_all(topic, partitions=None, timeout=15, **consumer_cfg):
    """Read every record of `topic` from the beginning up to the end offsets.

    Uses assign() (no group) and stops when each partition's position reaches
    the end offset the broker reported, so the result is exact, not "whatever
    arrived within a timeout".
    """
    c = KafkaConsumer(bootstrap_servers=B, group_id=None, enable_auto_commit=False,
                      **consumer_cfg)
    try:
        if partitions is None:
            partitions = wait_until(lambda: c.partitions_for_topic(topic), 10,
                                    what="metadata for %s" % topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        records = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                got = {tp.partition: c.position(tp) for tp in tps}
                raise CheckFailed("consume %s: positions %r never reached end offsets %r"
                                  % (topic, got, {tp.partition: o for tp, o in end.items()}))
            for _tp, recs in c.poll(timeout_ms=500).items():
                records.extend(recs)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        quiet_close(c)


def by_position(records):
    return {(r.partition, r.offset): r for r in records}


# ------------------------------------------------------------- seed code
# Verbatim from seed 000 except: bootstrap/topic are parameters, the results
# of future.get() are kept (the seed discards them), and the blog's mixed
# tab/space indentation is normalised so Python can parse it.

def seed000_create_producer(bootstrap, topic, sent):
    # 假设生产的消息为键值对（不是一定要键值对），且序列化方式为json
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap],
        acks=1,
        key_serializer=lambda k: json.dumps(k).encode(),
        value_serializer=lambda v: json.dumps(v).encode()
    )
    for i in range(0, 10):
        # send（）return 一个future metadata类型。
        future = producer.send(
            topic,
            key='count_num',  # 同一个key值，会被送至同一个分区
            value=str(i),
            partition=2   # 向分区2发送消息
        )
        print('send {}'.format(str(i)))
        try:
            sent.append(future.get(timeout=10))  # 监控是否发送成功
            print('producer send %d is ok! ' % (i))
            print(type(future))  # FutureRecordMetadata 类型
        except kafka_errors:
            traceback.format_exc()
    producer.close()


class Producer():
    def __init__(self, bootstrap_servers, topic, acks):
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            value_serializer=lambda v: json.dumps(v).encode(),
            acks=acks)
        self.topic = topic

    # 同步发送 数据
    def sync_producer(self, data_list):
        for data in data_list:
            future = self.producer.send(self.topic, data)
            record_metadata = future.get(timeout=10)
            partition = record_metadata.partition
            offset = record_metadata.offset
            print('save success,partition:{},offset:{}'.format(partition, offset))

    # 异步发送数据
    def asyn_producer(self, data_list):
        for data in data_list:
            self.producer.send(self.topic, data)
        self.producer.flush()

    # 异步发送数据 + 用回调函数 调用指定方法。
    def asyn_producer_callback(self, data_list):
        for data in data_list:
            self.producer.send(self.topic, data).\
                add_callback(self.send_ok).\
                add_errback(self.send_no_ok)
        self.producer.flush()

    def send_ok(self, record_meta):
        """异步发送成功回调函数"""
        print('asyn_callback save sucess')
        print(type(record_meta), '\n',
              'partition:{},offset:{}'.format(record_meta.partition, record_meta.offset))

    def send_no_ok(self, *args, **kwargs):
        """异步发送错误回调函数"""
        print('asyn_callback save error')

    def close_proceder(self):
        try:
            self.producer.close()
        except:  # noqa: E722 - verbatim
            print('close producer false')


# ----------------------------------------------------------------- checks

@S.check("broker_version_probe")
def _():
    # kafka-python infers the broker version from ApiVersions; headers need
    # >= 0.11 (message format v2) and zstd needs >= 2.1 (Fetch v10).
    p = KafkaProducer(bootstrap_servers=B)
    try:
        v = p.config["api_version"]
        print("  kafka-python inferred broker version %s" % (v,))
        expect(v >= (2, 1, 0), "inferred broker version %r < 2.1.0" % (v,))
    finally:
        quiet_close(p)


T_SEED = S.topic("test-topic")


@S.check("admin_create_topic_3_partitions")
def _():
    create_topic(T_SEED, 3)
    admin = KafkaAdminClient(bootstrap_servers=B)
    try:
        expect(T_SEED in admin.list_topics(), "%s missing from list_topics()" % T_SEED)
    finally:
        quiet_close(admin)
    c = KafkaConsumer(bootstrap_servers=B)
    try:
        parts = wait_until(lambda: c.partitions_for_topic(T_SEED), 10, what="metadata")
        expect_eq(parts, {0, 1, 2}, "partitions_for_topic")
    finally:
        quiet_close(c)


@S.check("seed000_sync_send_json_partition2")
def _():
    sent = []
    with captured() as out:
        seed000_create_producer(B, T_SEED, sent)
    expect_eq(out.getvalue().count("is ok!"), 10, "'producer send N is ok!' lines")
    expect_eq([m.partition for m in sent], [2] * 10, "RecordMetadata.partition")
    expect_eq([m.offset for m in sent], list(range(10)), "RecordMetadata.offset")
    recs = consume_all(T_SEED)
    expect_eq([(r.partition, r.offset) for r in recs], [(2, i) for i in range(10)],
              "consumed (partition, offset)")
    expect_eq([r.key for r in recs], [b'"count_num"'] * 10, "keys")
    expect_eq([json.loads(r.value) for r in recs], [str(i) for i in range(10)], "values")


DATA = [1, 3, 5, 7, 9]
META_RE = re.compile(r"partition:(\d+),offset:(-?\d+)")


def verify_reported(out, topic, data, in_send_order):
    """The (partition, offset) pairs the seed printed are exactly where the
    records are. Synchronous sends report in send order, so each position
    must hold its value; callbacks of batches to different partitions may
    complete in any order, so then only the sets are compared."""
    reported = [(int(p), int(o)) for p, o in META_RE.findall(out)]
    expect_eq(len(reported), len(data), "reported deliveries")
    recs = by_position(consume_all(topic))
    expect_eq(sorted(recs), sorted(reported), "positions read back vs reported")
    if in_send_order:
        got = [json.loads(recs[po].value) for po in reported]
    else:
        got = sorted(json.loads(r.value) for r in recs.values())
        data = sorted(data)
    expect_eq(got, data, "values at the reported positions")


@S.check("seed000_Producer_sync_producer_acks_-1")
def _():
    topic = S.topic("test-topic-sync")
    create_topic(topic, 3)
    with captured() as out:
        P = Producer(topic=topic, bootstrap_servers=B, acks=-1)
        P.sync_producer(DATA)
        P.close_proceder()
    expect("close producer false" not in out.getvalue(), "close failed")
    verify_reported(out.getvalue(), topic, DATA, in_send_order=True)


@S.check("seed000_Producer_asyn_producer_acks_0")
def _():
    topic = S.topic("test-topic-acks0")
    topic2 = S.topic("test-topic-acks0-second")
    create_topic(topic, 3)
    with captured():
        P = Producer(topic=topic, bootstrap_servers=B, acks=0)
        P.asyn_producer(DATA)
        # Same producer, a topic it has no metadata for yet: the metadata
        # round trip runs on the connection that carried the acks=0
        # produce requests, so a broker answering acks=0 would desync it.
        P.topic = topic2
        P.asyn_producer(DATA)
        P.close_proceder()
    for t in (topic, topic2):
        got = sorted(json.loads(r.value) for r in consume_all(t))
        expect_eq(got, sorted(DATA), "values in %s" % t)


def leader_of(topic, partition):
    """host, port of a partition's leader, from a raw Metadata v0 to B."""
    proto = KafkaProtocol(client_id="gregor-compat")
    proto.send_request(MetadataRequest[0]([topic]))
    host, port = B.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(proto.send_bytes())
        responses = []
        while not responses:
            chunk = sock.recv(1 << 20)
            expect(chunk, "broker closed the connection during Metadata")
            responses = proto.receive_bytes(chunk)
    resp = responses[0][1]
    brokers = {b[0]: (b[1], b[2]) for b in resp.brokers}
    for t in resp.topics:
        for p in t[2]:
            if p[1] == partition and p[2] in brokers:
                return brokers[p[2]]
    return host, int(port)


@S.check("wire_acks0_produce_gets_no_response")
def _():
    # Kafka's contract: a Produce with acks=0 is never answered. Send one
    # followed by Metadata v0 on a raw socket; the first response must carry
    # the Metadata request's correlation id.
    topic = S.topic("acks0-wire")
    create_topic(topic, 1)
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 16)
    builder.append(int(time.time() * 1000), b"k", b"acks0-raw", [])
    builder.close()
    # bytes(): kafka-python 3.x's buffer() is a bytearray, which its
    # kafka.protocol.old Bytes type would try to .encode().
    proto = KafkaProtocol(client_id="gregor-compat")
    produce = ProduceRequest[3](transactional_id=None, required_acks=0, timeout=5000,
                                topics=[(topic, [(0, bytes(builder.buffer()))])])
    proto.send_request(produce)
    meta_corr = proto.send_request(MetadataRequest[0]([topic]))
    # To the partition's leader: in a cluster that may not be the bootstrap
    # broker (and a non-leader drops an acks=0 produce, as Kafka does).
    host, port = leader_of(topic, 0)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(proto.send_bytes())
        responses = []
        while not responses:
            chunk = sock.recv(65536)
            expect(chunk, "broker closed the connection (acks=0 produce rejected?)")
            # raises CorrelationIdError if the produce was answered
            responses = proto.receive_bytes(chunk)
    expect_eq(responses[0][0], meta_corr, "correlation id of first response")
    recs = consume_all(topic)
    expect_eq([r.value for r in recs], [b"acks0-raw"], "stored value")


@S.check("seed000_Producer_asyn_producer_callback_acks_1")
def _():
    topic = S.topic("test-topic-callback")
    create_topic(topic, 3)
    with captured() as out:
        P = Producer(topic=topic, bootstrap_servers=B, acks=1)
        P.asyn_producer_callback(DATA)
        P.close_proceder()
    text = out.getvalue()
    expect("save error" not in text, "errback was called:\n" + text)
    expect_eq(text.count("asyn_callback save sucess"), len(DATA), "callbacks")
    verify_reported(text, topic, DATA, in_send_order=False)


def compression_check(codec):
    topic = S.topic("compressed-" + codec)
    # Seed 001, verbatim apart from address/topic.
    producer = KafkaProducer(bootstrap_servers=[B], compression_type=codec)
    try:
        future = producer.send(topic, key=b'key_3', value=b'value_3', partition=0)
        first = future.get(timeout=10)
        # A burst that lands in one compressed batch of many records.
        futures = [producer.send(topic, key=b'k%d' % i, value=(b'value-%d;' % i) * 40,
                                 partition=0, headers=[("n", b"%d" % i)])
                   for i in range(200)]
        producer.flush(timeout=15)
        metas = [f.get(timeout=10) for f in futures]
    finally:
        quiet_close(producer)
    expect_eq(first.offset, 0, "offset of first record")
    expect_eq([m.offset for m in metas], list(range(1, 201)), "batch offsets")
    recs = consume_all(topic)
    expect_eq(len(recs), 201, "records read back")
    expect_eq((recs[0].key, recs[0].value), (b'key_3', b'value_3'), "first record")
    for i, r in enumerate(recs[1:]):
        expect_eq((r.partition, r.offset, r.key, r.value, r.headers),
                  (0, i + 1, b'k%d' % i, (b'value-%d;' % i) * 40, [("n", b"%d" % i)]),
                  "record %d" % (i + 1))


for _codec in ("gzip", "snappy", "lz4", "zstd"):
    S.check("seed001_compression_%s" % _codec)(lambda c=_codec: compression_check(c))


@S.check("seed001_send_key_value_partition0_and_future_get")
def _():
    topic = S.topic("my_topic")
    producer = KafkaProducer(bootstrap_servers=[B])
    try:
        future = producer.send(topic, key=b'my_key', value=b'my_value', partition=0)
        result = future.get(timeout=10)
    finally:
        quiet_close(producer)
    expect_eq((result.topic, result.partition, result.offset), (topic, 0, 0), "RecordMetadata")
    recs = consume_all(topic)
    expect_eq([(r.key, r.value) for r in recs], [(b'my_key', b'my_value')], "records")


@S.check("seed001_producer_example_raw_keyed_json_100async_callbacks")
def _():
    topic = S.topic("my-topic")
    json_topic = S.topic("json-topic")
    ok, errs = [], []
    producer = KafkaProducer(bootstrap_servers=[B])
    try:
        future = producer.send(topic, b'raw_bytes')
        record_metadata = future.get(timeout=10)
        expect_eq((record_metadata.topic, record_metadata.partition, record_metadata.offset),
                  (topic, 0, 0), "first RecordMetadata")
        producer.send(topic, key=b'foo', value=b'bar')
        for _ in range(100):
            producer.send(topic, b'msg')
        producer.send(topic, b'raw_bytes').add_callback(ok.append).add_errback(errs.append)
        producer.flush(timeout=15)
    finally:
        quiet_close(producer)
    expect_eq(errs, [], "errback calls")
    expect_eq([m.offset for m in ok], [102], "callback offset")
    json_producer = KafkaProducer(bootstrap_servers=[B],
                                  value_serializer=lambda m: json.dumps(m).encode('ascii'))
    try:
        json_producer.send(json_topic, {'key': 'value'}).get(timeout=10)
    finally:
        quiet_close(json_producer)
    recs = consume_all(topic)
    expect_eq([(r.key, r.value) for r in recs],
              [(None, b'raw_bytes'), (b'foo', b'bar')] + [(None, b'msg')] * 100
              + [(None, b'raw_bytes')], "my-topic records")
    expect_eq([r.offset for r in recs], list(range(103)), "offsets")
    recs = consume_all(json_topic, value_deserializer=lambda m: json.loads(m.decode('ascii')))
    expect_eq([r.value for r in recs], [{'key': 'value'}], "json-topic")


@S.check("seed001_msgpack_serializer")
def _():
    topic = S.topic("msgpack-topic")
    producer = KafkaProducer(bootstrap_servers=[B], value_serializer=msgpack.dumps)
    try:
        producer.send(topic, {'key': 'value'}).get(timeout=10)
    finally:
        quiet_close(producer)
    recs = consume_all(topic, value_deserializer=msgpack.unpackb)
    expect_eq([r.value for r in recs], [{'key': 'value'}], "values")


@S.check("seed001_retries_5_producer")
def _():
    topic = S.topic("retries")
    producer = KafkaProducer(bootstrap_servers=[B], retries=5)
    try:
        md = producer.send(topic, b'x').get(timeout=10)
    finally:
        quiet_close(producer)
    expect_eq(md.offset, 0, "offset")


@S.check("seed002_json_value_loop")
def _():
    # Seed 002 sends 30 json records with time.sleep(3) between them; the
    # sleep is cut so the check stays fast, and a flush added so none is lost.
    topic = S.topic("testTopic")
    producer = KafkaProducer(bootstrap_servers=[B])
    sent = []
    try:
        for i in range(1, 31):
            result = {"key": str(i), "value": "2024-01-01 00:00:%02d" % i}
            sent.append(result)
            producer.send(topic, value=json.dumps(result).encode('utf-8'))
        producer.flush(timeout=15)
    finally:
        quiet_close(producer)
    got = [json.loads(r.value) for r in consume_all(topic)]
    expect_eq(got, sent, "values")


def produce_sync(topic, records, **producer_cfg):
    """records: list of dicts of send() kwargs. Returns RecordMetadata list."""
    p = KafkaProducer(bootstrap_servers=B, **producer_cfg)
    try:
        return [p.send(topic, **r).get(timeout=10) for r in records]
    finally:
        quiet_close(p)


@S.check("seed001_consumer_iteration_consumer_timeout_ms")
def _():
    # Seed: KafkaConsumer('my_topic', group_id='group2', consumer_timeout_ms=1000)
    # Without a group here (see kafka_python_groups.py), and reading from the
    # earliest offset so records produced before the consumer are seen.
    topic = S.topic("iter")
    produce_sync(topic, [{"value": b"m%d" % i} for i in range(5)])
    consumer = KafkaConsumer(topic, bootstrap_servers=[B], auto_offset_reset='earliest',
                             consumer_timeout_ms=1000)
    try:
        got = []
        started = time.monotonic()
        for msg in consumer:
            got.append(msg)
        took = time.monotonic() - started
    finally:
        quiet_close(consumer)
    expect_eq([(m.topic, m.partition, m.offset, m.value) for m in got],
              [(topic, 0, i, b"m%d" % i) for i in range(5)], "messages")
    expect(took < 15, "iteration took %.1fs to end" % took)


@S.check("consumer_timeout_ms_loop_ends_on_empty_topic")
def _():
    topic = S.topic("empty")
    create_topic(topic, 1)
    consumer = KafkaConsumer(topic, bootstrap_servers=[B], consumer_timeout_ms=1000)
    started = time.monotonic()
    try:
        got = list(consumer)
    finally:
        quiet_close(consumer)
    took = time.monotonic() - started
    expect_eq(got, [], "messages from empty topic")
    expect(0.9 <= took < 10, "loop ended after %.1fs (want ~1s)" % took)


@S.check("seed001_assign_partition0")
def _():
    topic = S.topic("assign")
    create_topic(topic, 2)
    produce_sync(topic, [{"value": b"p0-%d" % i, "partition": 0} for i in range(3)]
                 + [{"value": b"p1", "partition": 1}])
    consumer = KafkaConsumer(bootstrap_servers=[B], auto_offset_reset='earliest',
                             consumer_timeout_ms=1000)
    try:
        consumer.assign([TopicPartition(topic=topic, partition=0)])
        got = [(m.partition, m.value) for m in consumer]
    finally:
        quiet_close(consumer)
    expect_eq(got, [(0, b"p0-%d" % i) for i in range(3)], "messages from partition 0 only")


@S.check("seed001_subscribe_multiple_topics_no_group")
def _():
    t1, t2 = S.topic("my_topic-sub"), S.topic("topic_1-sub")
    produce_sync(t1, [{"value": b"a"}])
    produce_sync(t2, [{"value": b"b"}])
    consumer = KafkaConsumer(bootstrap_servers=[B], auto_offset_reset='earliest',
                             consumer_timeout_ms=2000)
    try:
        consumer.subscribe(topics=[t1, t2])
        got = sorted((m.topic, m.value) for m in consumer)
    finally:
        quiet_close(consumer)
    expect_eq(got, sorted([(t1, b"a"), (t2, b"b")]), "messages")


@S.check("seed001_subscribe_pattern_json_and_bytes_decode")
def _():
    prefix = S.topic("pat")
    mine = [prefix + "-my-a", prefix + "-my-b"]
    other = prefix + "-notmine"
    for i, t in enumerate(mine):
        produce_sync(t, [{"key": b"k%d" % i, "value": json.dumps({"n": i}).encode()}])
    produce_sync(other, [{"value": b"{}"}])
    consumer = KafkaConsumer(bootstrap_servers=[B], auto_offset_reset='earliest',
                             consumer_timeout_ms=2000, key_deserializer=bytes.decode,
                             value_deserializer=lambda m: json.loads(m.decode('ascii')))
    try:
        consumer.subscribe(pattern='^' + re.escape(prefix) + '-my.*')
        got = sorted((m.topic, m.key, m.value["n"]) for m in consumer)
    finally:
        quiet_close(consumer)
    expect_eq(got, [(mine[0], "k0", 0), (mine[1], "k1", 1)], "messages matched by pattern")


@S.check("seed000_user_defined_offset_consume_seek_next")
def _():
    # Seed's user_defined_offset_consume minus commit() (a group operation).
    topic = S.topic("consumer_test-seek")
    produce_sync(topic, [{"value": b"ok%d" % i, "partition": 0} for i in range(30)])
    consumer = KafkaConsumer(bootstrap_servers=B, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        seen = []
        for i in range(12, 30):
            consumer.seek(tp, i)
            consumer_data = next(consumer)
            seen.append((consumer_data.offset, consumer_data.value))
        pos = consumer.position(tp)
    finally:
        quiet_close(consumer)
    expect_eq(seen, [(i, b"ok%d" % i) for i in range(12, 30)], "records after seek")
    expect_eq(pos, 30, "position after the last next()")


@S.check("seed000_from_next_offset_consume_position_seek")
def _():
    topic = S.topic("consumer_test-next")
    create_topic(topic, 3)
    produce_sync(topic, [{"value": b"old-%d-%d" % (p, i), "partition": p}
                         for p in range(3) for i in range(p + 1)])
    # auto_offset_reset defaults to 'latest': with no group, position() is
    # the end offset, so only records produced afterwards are consumed.
    consumer = KafkaConsumer(bootstrap_servers=B, consumer_timeout_ms=2000)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        positions = {}
        for tp in tps:
            next_offset = consumer.position(tp)
            positions[tp.partition] = next_offset
            consumer.seek(tp, next_offset)
        expect_eq(positions, {0: 1, 1: 2, 2: 3}, "positions (latest)")
        produce_sync(topic, [{"value": b"new-%d" % p, "partition": p} for p in range(3)])
        got = sorted((m.partition, m.offset, m.value) for m in consumer)
    finally:
        quiet_close(consumer)
    expect_eq(got, [(p, p + 1, b"new-%d" % p) for p in range(3)], "new messages")


@S.check("beginning_end_offsets_and_partitions_for_topic")
def _():
    topic = S.topic("offsets")
    create_topic(topic, 3)
    produce_sync(topic, [{"value": b"v", "partition": p} for p in range(3) for _ in range(p * 2)])
    consumer = KafkaConsumer(bootstrap_servers=B)
    try:
        parts = consumer.partitions_for_topic(topic)
        expect_eq(parts, {0, 1, 2}, "partitions_for_topic")
        tps = [TopicPartition(topic, p) for p in parts]
        end = {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
        begin = {tp.partition: o for tp, o in consumer.beginning_offsets(tps).items()}
    finally:
        quiet_close(consumer)
    expect_eq(end, {0: 0, 1: 2, 2: 4}, "end_offsets")
    expect_eq(begin, {0: 0, 1: 0, 2: 0}, "beginning_offsets")


@S.check("offsets_for_times")
def _():
    topic = S.topic("times")
    base = int(time.time() * 1000) - 60000
    produce_sync(topic, [{"value": b"t%d" % i, "timestamp_ms": base + i * 1000} for i in range(3)])
    consumer = KafkaConsumer(bootstrap_servers=B)
    try:
        tp = TopicPartition(topic, 0)
        consumer.partitions_for_topic(topic)
        exact = consumer.offsets_for_times({tp: base + 1000})[tp]
        between = consumer.offsets_for_times({tp: base + 1500})[tp]
        future = consumer.offsets_for_times({tp: base + 10 ** 7})[tp]
    finally:
        quiet_close(consumer)
    expect_eq((exact.offset, exact.timestamp), (1, base + 1000), "exact timestamp")
    expect_eq((between.offset, between.timestamp), (2, base + 2000), "between timestamps")
    expect_eq(future, None, "timestamp after the last record")


@S.check("headers_null_key_null_value_timestamp")
def _():
    topic = S.topic("shapes")
    ts = int(time.time() * 1000) - 5000
    produce_sync(topic, [
        {"key": b"k", "value": b"v", "headers": [("h1", b"v1"), ("h1", b"dup"), ("empty", b"")]},
        {"value": b"no-key"},
        {"key": b'my_value', "value": None},
        {"key": b"", "value": b""},
        {"key": b"ts", "value": b"ts", "timestamp_ms": ts},
    ])
    recs = consume_all(topic)
    expect_eq(len(recs), 5, "records")
    r = recs[0]
    expect_eq(r.headers, [("h1", b"v1"), ("h1", b"dup"), ("empty", b"")], "headers")
    r = recs[1]
    expect_eq((r.key, r.value, r.serialized_key_size), (None, b"no-key", -1), "null key")
    r = recs[2]
    # Seed 001 shows exactly this record: value=None, serialized_value_size=-1
    expect_eq((r.key, r.value, r.serialized_key_size, r.serialized_value_size),
              (b'my_value', None, 8, -1), "null value")
    r = recs[3]
    expect_eq((r.key, r.value, r.serialized_key_size, r.serialized_value_size),
              (b"", b"", 0, 0), "empty (not null) key and value")
    r = recs[4]
    expect_eq((r.timestamp, r.timestamp_type), (ts, 0), "CreateTime timestamp")


@S.check("auto_create_topic_on_send")
def _():
    topic = S.topic("auto-created")
    producer = KafkaProducer(bootstrap_servers=B)
    try:
        parts = producer.partitions_for(topic)
        md = producer.send(topic, b"x").get(timeout=10)
    finally:
        quiet_close(producer)
    expect_eq(parts, {0}, "partitions of an auto-created topic (num.partitions=1)")
    expect_eq((md.partition, md.offset), (0, 0), "metadata")


@S.check("large_value_512KiB")
def _():
    topic = S.topic("large")
    value = bytes(range(256)) * 2048
    produce_sync(topic, [{"value": value}, {"value": b"after"}], max_request_size=2 << 20)
    recs = consume_all(topic)
    expect_eq([len(r.value) for r in recs], [len(value), 5], "value sizes")
    expect(recs[0].value == value, "large value corrupted")


@S.check("live_tail_consume_while_producing")
def _():
    topic = S.topic("live")
    create_topic(topic, 1)
    consumer = KafkaConsumer(topic, bootstrap_servers=B, consumer_timeout_ms=5000)
    errors = []
    try:
        # Let the consumer settle on the (empty) end offset before producing.
        consumer.poll(timeout_ms=1000)
        tp = TopicPartition(topic, 0)
        wait_until(lambda: tp in consumer.assignment(), 10, what="assignment")
        expect_eq(consumer.position(tp), 0, "start position")

        def produce():
            try:
                p = KafkaProducer(bootstrap_servers=B, linger_ms=0)
                for i in range(20):
                    p.send(topic, b"live-%d" % i).get(timeout=10)
                    time.sleep(0.05)
                p.close(timeout=5)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t = threading.Thread(target=produce, daemon=True)
        t.start()
        got = []
        for msg in consumer:
            got.append(msg.value)
            if len(got) == 20:
                break
        t.join(10)
    finally:
        quiet_close(consumer)
    expect_eq(errors, [], "producer errors")
    expect_eq(got, [b"live-%d" % i for i in range(20)], "tailed messages")


@S.check("seek_into_middle_of_compressed_batch")
def _():
    # The broker indexes batches, not records: a fetch at offset 150 must
    # return the batch holding 150 (the client skips what is before it), not
    # the next batch.
    topic = S.topic("mid-batch")
    p = KafkaProducer(bootstrap_servers=B, compression_type="gzip", linger_ms=200,
                      batch_size=1 << 20)
    try:
        futures = [p.send(topic, value=b"r%d" % i, partition=0) for i in range(200)]
        p.flush(timeout=15)
        offsets = [f.get(timeout=10).offset for f in futures]
    finally:
        quiet_close(p)
    expect_eq(offsets, list(range(200)), "offsets")
    c = KafkaConsumer(bootstrap_servers=B, consumer_timeout_ms=3000)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 150)
        got = [(m.offset, m.value) for m in c]
    finally:
        quiet_close(c)
    expect_eq(got, [(i, b"r%d" % i) for i in range(150, 200)], "records from offset 150")


@S.check("fetch_smaller_than_a_batch_still_progresses")
def _():
    # KIP-74: the first batch is returned even when it exceeds the fetch
    # limits, else a consumer with small limits is stuck forever.
    topic = S.topic("small-fetch")
    value = b"x" * 10000
    produce_sync(topic, [{"value": value + b"%d" % i} for i in range(5)])
    recs = consume_all(topic, max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    expect_eq([r.value for r in recs], [value + b"%d" % i for i in range(5)], "values")


@S.check("fetch_limits_inside_batches_lose_and_repeat_nothing")
def _():
    # A limit that falls inside a batch: the broker fills it and cuts the
    # last batch, as Kafka does; the client drops the partial batch and
    # fetches it again.
    topic = S.topic("cut-batches")
    p = KafkaProducer(bootstrap_servers=B, linger_ms=100, batch_size=6000)
    try:
        futures = [p.send(topic, value=b"%d:" % i + b"x" * 500, partition=0) for i in range(300)]
        p.flush(timeout=10)
        offsets = [f.get(timeout=10).offset for f in futures]
    finally:
        quiet_close(p)
    expect_eq(offsets, list(range(300)), "produced offsets")
    recs = consume_all(topic, partitions=[0], max_partition_fetch_bytes=8000, fetch_max_bytes=8000)
    expect_eq([(r.offset, r.value.split(b":")[0]) for r in recs], [(i, b"%d" % i) for i in range(300)],
              "records (offset, sequence)")


@S.check("offsets_for_times_inside_one_batch")
def _():
    topic = S.topic("times-batch")
    base = int(time.time() * 1000) - 100000
    p = KafkaProducer(bootstrap_servers=B, linger_ms=200, compression_type="lz4")
    try:
        futures = [p.send(topic, value=b"t%d" % i, partition=0, timestamp_ms=base + i * 1000)
                   for i in range(10)]
        p.flush(timeout=15)
        [f.get(timeout=10) for f in futures]
    finally:
        quiet_close(p)
    c = KafkaConsumer(bootstrap_servers=B)
    try:
        tp = TopicPartition(topic, 0)
        c.partitions_for_topic(topic)
        got = c.offsets_for_times({tp: base + 4500})[tp]
    finally:
        quiet_close(c)
    expect_eq((got.offset, got.timestamp), (5, base + 5000), "offset for a timestamp mid-batch")


@S.check("out_of_range_offset_resets_to_earliest")
def _():
    topic = S.topic("out-of-range")
    produce_sync(topic, [{"value": b"v%d" % i} for i in range(5)])
    c = KafkaConsumer(bootstrap_servers=B, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 1000)
        got = [m.offset for m in c]
    finally:
        quiet_close(c)
    expect_eq(got, list(range(5)), "offsets after OFFSET_OUT_OF_RANGE reset")


S.finish()
