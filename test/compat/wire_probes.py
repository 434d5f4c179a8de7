#!/usr/bin/env python3
"""Wire-level probes of the Kafka contract that clients rely on but rarely
exercise on purpose: response ordering under pipelining, Fetch long-polling,
idempotent-producer sequence checks, CRC validation, version negotiation,
and staying up on malformed frames.

Requests are encoded with kafka-python's protocol classes where it has them
and by hand (struct) where it does not; every probe was checked against
Apache Kafka 3.9 as the reference.
"""

import socket
import struct
import threading
import time

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.offset import OffsetRequest
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.produce import ProduceRequest
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

from harness import CheckFailed, Suite, expect, expect_eq

S = Suite("wire")
B = S.bootstrap
HOST, PORT = B.rsplit(":", 1)
PORT = int(PORT)

NONE, CORRUPT_MESSAGE, UNSUPPORTED_VERSION = 0, 2, 35
OUT_OF_ORDER_SEQUENCE_NUMBER, DUPLICATE_SEQUENCE_NUMBER = 45, 46


class Conn:
    """One broker connection; kafka-python's KafkaProtocol frames requests
    and checks that responses come back in request order."""

    def __init__(self, timeout=10):
        self.sock = socket.create_connection((HOST, PORT), timeout=timeout)
        self.proto = KafkaProtocol(client_id="gregor-compat-wire")
        self.pending = []

    def send(self, *requests):
        ids = [self.proto.send_request(r) for r in requests]
        self.sock.sendall(self.proto.send_bytes())
        return ids

    def recv(self, n=1):
        """The next n responses as [(correlation_id, response)]; raises
        CorrelationIdError if they arrive out of request order."""
        while len(self.pending) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self.pending.extend(self.proto.receive_bytes(chunk))
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def close(self):
        self.sock.close()


def raw_roundtrip(frame, timeout=10):
    """Send one hand-encoded request frame; return the response payload
    (after the 4-byte size), or None if the broker closed the connection."""
    with socket.create_connection((HOST, PORT), timeout=timeout) as s:
        s.sendall(frame)
        return read_frame(s)


def read_frame(s):
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
        chunk = s.recv(1 << 16)
        if not chunk:
            return None
        buf += chunk
    return buf[4:4 + struct.unpack(">i", buf[:4])[0]]


def header_v1(api_key, version, corr, client=b"gregor-compat-wire"):
    return struct.pack(">hhih", api_key, version, corr, len(client)) + client


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def create_topic(name, partitions=1):
    """Create and wait until partition 0 has a leader that answers
    ListOffsets (Kafka elects leaders after CreateTopics returns)."""
    admin = KafkaAdminClient(bootstrap_servers=B)
    try:
        admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    c = Conn()
    try:
        deadline = time.monotonic() + 10
        while True:
            c.send(OffsetRequest[1](replica_id=-1, topics=[(name, [(0, -1)])]))
            (_c, resp), = c.recv()
            err = resp.topics[0][1][0][1]
            if err == NONE:
                return
            expect(time.monotonic() < deadline, "topic %s not ready: ListOffsets error %d" % (name, err))
            time.sleep(0.1)
    finally:
        c.close()


def batch(records, producer_id=-1, epoch=-1, base_sequence=-1):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=producer_id, producer_epoch=epoch,
                                  base_sequence=base_sequence, batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, (k, v) in enumerate(records):
        b.append(i, now, k, v, [])
    return bytes(b.build())


def produce(conn, topic, data, acks=-1):
    """One Produce v3 for partition 0; returns (error_code, base_offset)."""
    req = ProduceRequest[3](transactional_id=None, required_acks=acks, timeout=10000,
                            topics=[(topic, [(0, data)])])
    conn.send(req)
    (_corr, resp), = conn.recv()
    _t, partitions = resp.topics[0]
    _p, err, offset = partitions[0][:3]
    return err, offset


def end_offset(conn, topic):
    conn.send(OffsetRequest[1](replica_id=-1, topics=[(topic, [(0, -1)])]))
    (_c, resp), = conn.recv()
    _p, err, _ts, offset = resp.topics[0][1][0]
    expect_eq(err, NONE, "ListOffsets error")
    return offset


def fetch_request(topic, offset, max_wait_ms):
    return FetchRequest[4](replica_id=-1, max_wait_time=max_wait_ms, min_bytes=1,
                           max_bytes=1 << 20, isolation_level=0,
                           topics=[(topic, [(0, offset, 1 << 20)])])


def broker_answers():
    """A fresh connection still gets an ApiVersions answer."""
    payload = raw_roundtrip(frame(header_v1(18, 0, 77)), timeout=5)
    return payload is not None and struct.unpack(">ih", payload[:6]) == (77, 0)


# ------------------------------------------------------------------ checks

@S.check("apiversions_unsupported_version_answers_v0_with_error_35")
def _():
    # KIP-511: a client opens with its newest ApiVersions; a broker that
    # does not know that version answers in v0 with UNSUPPORTED_VERSION and
    # its own ranges, so the client can retry with one it supports.
    client = b"gregor-compat-wire"
    hdr = struct.pack(">hhih", 18, 127, 31337, len(client)) + client + b"\x00"  # header v2
    body = b"\x0egregor-compat" + b"\x041.0" + b"\x00"  # compact strings + tags
    payload = raw_roundtrip(frame(hdr + body))
    expect(payload is not None, "broker closed the connection")
    corr, err, n = struct.unpack(">ihi", payload[:10])
    expect_eq((corr, err), (31337, UNSUPPORTED_VERSION), "correlation id, error code")
    keys = {}
    for i in range(n):
        k, lo, hi = struct.unpack(">hhh", payload[10 + 6 * i:16 + 6 * i])
        keys[k] = (lo, hi)
    expect(18 in keys and keys[18][1] >= 3, "ApiVersions range in reply: %r" % (keys.get(18),))


@S.check("pipelined_requests_answered_in_order")
def _():
    # Kafka answers requests on one connection strictly in order. A long-
    # polling Fetch (empty partition, max_wait 1500ms) is followed by a
    # Metadata request: Metadata must not overtake the Fetch.
    topic = S.topic("order")
    create_topic(topic)
    c = Conn()
    try:
        started = time.monotonic()
        ids = c.send(fetch_request(topic, 0, 1500), MetadataRequest[0]([topic]),
                     *[MetadataRequest[1]([topic]) for _ in range(20)])
        got = c.recv(len(ids))  # KafkaProtocol raises on any reordering
        took = time.monotonic() - started
    finally:
        c.close()
    expect_eq([corr for corr, _r in got], ids, "response correlation ids")
    expect(took >= 1.0, "empty-partition Fetch with max_wait 1500ms answered after %.2fs" % took)


@S.check("fetch_long_poll_wakes_on_produce")
def _():
    # A Fetch waiting on an empty partition returns as soon as a record is
    # appended, not when max_wait runs out.
    topic = S.topic("wake")
    create_topic(topic)
    c = Conn()
    t0 = [None]

    def produce_later():
        time.sleep(0.7)
        p = KafkaProducer(bootstrap_servers=B)
        t0[0] = time.monotonic()
        p.send(topic, b"wake-up").get(timeout=10)
        p.close(timeout=5)
    th = threading.Thread(target=produce_later, daemon=True)
    try:
        c.send(fetch_request(topic, 0, 8000))
        th.start()
        (_corr, resp), = c.recv()
        answered = time.monotonic()
    finally:
        c.close()
    th.join(10)
    _p, err, hw = resp.topics[0][1][0][:3]
    expect_eq((err, hw), (NONE, 1), "fetch error, high watermark")
    expect(b"wake-up" in resp.topics[0][1][0][-1], "record missing from the fetch response")
    expect(t0[0] is not None and answered - t0[0] < 3.0,
           "fetch answered %.2fs after the produce (max_wait was 8s)" % (answered - (t0[0] or 0)))


def init_producer_id():
    hdr = header_v1(22, 0, 901)
    body = struct.pack(">hi", -1, 60000)  # transactional_id null, timeout
    deadline = time.monotonic() + 15
    while True:
        payload = raw_roundtrip(frame(hdr + body))
        expect(payload is not None, "InitProducerId: connection closed")
        corr, _throttle, err, pid, epoch = struct.unpack(">iihqh", payload[:20])
        # COORDINATOR_LOAD_IN_PROGRESS / NOT_AVAILABLE are retriable (Kafka
        # answers so for a while after it starts).
        if err in (14, 15) and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        expect_eq((corr, err), (901, NONE), "InitProducerId correlation id, error")
        return pid, epoch


@S.check("idempotent_duplicate_batch_not_appended_twice")
def _():
    topic = S.topic("idem")
    create_topic(topic)
    pid, epoch = init_producer_id()
    c = Conn()
    try:
        first = batch([(b"k", b"seq0")], pid, epoch, 0)
        expect_eq(produce(c, topic, first), (NONE, 0), "first batch (error, offset)")
        err, offset = produce(c, topic, first)  # a retry of the same batch
        expect(err in (NONE, DUPLICATE_SEQUENCE_NUMBER), "retry error code %d" % err)
        if err == NONE:
            expect_eq(offset, 0, "offset reported for the duplicate")
        expect_eq(end_offset(c, topic), 1, "log end offset after a duplicate")
        err, _o = produce(c, topic, batch([(b"k", b"seq5")], pid, epoch, 5))
        expect_eq(err, OUT_OF_ORDER_SEQUENCE_NUMBER, "error for a sequence gap (5 after 0)")
        expect_eq(produce(c, topic, batch([(b"k", b"seq1")], pid, epoch, 1)), (NONE, 1),
                  "next in-order batch (error, offset)")
        expect_eq(end_offset(c, topic), 2, "log end offset")
    finally:
        c.close()


@S.check("corrupt_batch_crc_rejected")
def _():
    topic = S.topic("crc")
    create_topic(topic)
    data = bytearray(batch([(b"key", b"value-that-gets-a-flipped-bit")]))
    data[-3] ^= 0x01  # inside the record, covered by the batch CRC
    c = Conn()
    try:
        err, _o = produce(c, topic, bytes(data), acks=1)
        expect_eq(err, CORRUPT_MESSAGE, "error code for a batch with a bad CRC")
        expect_eq(end_offset(c, topic), 0, "log end offset (nothing appended)")
    finally:
        c.close()


def expect_closed_and_alive(payload_bytes, what):
    with socket.create_connection((HOST, PORT), timeout=10) as s:
        s.sendall(payload_bytes)
        s.settimeout(5)
        try:
            data = s.recv(1 << 16)
        except socket.timeout:
            data = "timeout"
        except ConnectionResetError:
            data = b""
    expect(data == b"", "%s: connection not closed within 5s (got %r)" % (what, data[:40]))
    expect(broker_answers(), "%s: broker stopped answering new connections" % what)


@S.check("malformed_frames_close_connection_broker_survives")
def _():
    # Bad input is never a crash: the connection is closed, the broker goes on.
    expect_closed_and_alive(struct.pack(">i", -5) + b"xxxx", "negative frame size")
    expect_closed_and_alive(struct.pack(">i", 1 << 30) + b"\x00" * 64, "1 GiB frame size")
    # Metadata v1 whose topic array claims 2^31-1 entries.
    bogus = header_v1(3, 1, 5) + struct.pack(">i", 0x7fffffff) + b"\x00\x01a"
    expect_closed_and_alive(frame(bogus), "Metadata with a huge array count")
    expect_closed_and_alive(frame(header_v1(9999, 0, 6)), "unknown API key 9999")
    expect_closed_and_alive(frame(b"\x00\x03"), "frame shorter than a request header")


def advertised_versions():
    payload = raw_roundtrip(frame(header_v1(18, 0, 55)))
    corr, err, n = struct.unpack(">ihi", payload[:10])
    expect_eq((corr, err), (55, NONE), "ApiVersions v0")
    return {k: (lo, hi) for k, lo, hi in
            (struct.unpack(">hhh", payload[10 + 6 * i:16 + 6 * i]) for i in range(n))}


def versions(adv, key, lowest, highest):
    """The versions of `key` both the broker advertises and kafka-python
    can encode, starting at `lowest` (KIP-896 dropped older Produce/Fetch)."""
    lo, hi = adv.get(key, (0, -1))
    return list(range(max(lo, lowest), min(hi, highest) + 1))


def by_names(cls, values):
    """Instantiate a kafka-python request from a name -> value map, so one
    map serves every version (each takes the fields its schema names)."""
    args = []
    for name, field in zip(cls.SCHEMA.names, cls.SCHEMA.fields):
        v = values[name]
        if callable(v):
            v = v(field)
        args.append(v)
    return cls(*args)


def array_of(values):
    """A nested array field: build each element from the element schema."""
    def build(field):
        names = field.array_of.names
        fields = field.array_of.fields
        row = []
        for name, f in zip(names, fields):
            v = values[name]
            row.append(v(f) if callable(v) else v)
        return [tuple(row)]
    return build


def fetch_versioned(c, v, topic):
    parts = array_of({"partition": 0, "current_leader_epoch": -1, "offset": 0, "fetch_offset": 0,
                      "log_start_offset": -1, "max_bytes": 1 << 20})
    req = by_names(FetchRequest[v], {
        "replica_id": -1, "max_wait_time": 100, "min_bytes": 1, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": array_of({"topic": topic, "partitions": parts}),
        "forgotten_topics_data": [], "rack_id": ""})
    c.send(req)
    (_corr, resp), = c.recv()
    part = resp.topics[0][1][0]
    values = []
    records = MemoryRecords(part[-1])
    while True:
        b = records.next_batch()
        if b is None:
            break
        values.extend((r.offset, r.value) for r in b)
    return resp, part, values


@S.check("version_sweep_produce_fetch_listoffsets_metadata")
def _():
    # Clients pick the newest version both sides know, so older versions a
    # broker advertises are rarely exercised; each one must still work.
    adv = advertised_versions()
    topic = S.topic("versions")
    create_topic(topic)
    c = Conn()
    try:
        produced = []
        for v in versions(adv, 0, 3, 7):
            req = ProduceRequest[v](transactional_id=None, required_acks=-1, timeout=10000,
                                    topics=[(topic, [(0, batch([(None, b"p%d" % v)]))])])
            c.send(req)
            (_corr, resp), = c.recv()
            part = resp.topics[0][1][0]
            expect_eq(part[1:3], (NONE, len(produced)), "Produce v%d (error, offset)" % v)
            if v >= 5:
                expect_eq(part[4], 0, "Produce v%d log_start_offset" % v)
            produced.append((len(produced), b"p%d" % v))
        expect(produced, "no common Produce version in 3..7: broker %r" % (adv.get(0),))
        n = len(produced)
        for v in versions(adv, 1, 4, 11):
            resp, part, values = fetch_versioned(c, v, topic)
            if v >= 7:
                expect_eq(resp.error_code, NONE, "Fetch v%d top-level error" % v)
            expect_eq((part[1], part[2], part[3]), (NONE, n, n),
                      "Fetch v%d (error, high watermark, last stable offset)" % v)
            if v >= 5:
                expect_eq(part[4], 0, "Fetch v%d log_start_offset" % v)
            expect_eq(values, produced, "Fetch v%d records" % v)
        # kafka-python 2.0.2 encodes ListOffsets v4/v5's current_leader_epoch
        # as an int64 (Kafka: int32), so stop at v3.
        for v in versions(adv, 2, 0, 3):
            for ts, want in ((-2, 0), (-1, n)):
                parts = array_of({"partition": 0, "current_leader_epoch": -1, "timestamp": ts,
                                  "max_offsets": 1})
                req = by_names(OffsetRequest[v], {
                    "replica_id": -1, "isolation_level": 0,
                    "topics": array_of({"topic": topic, "partitions": parts})})
                c.send(req)
                (_corr, resp), = c.recv()
                topics = resp.topics
                part = topics[0][1][0]
                got = part[2][0] if v == 0 and part[2] else (part[3] if v > 0 else None)
                expect_eq((part[1], got), (NONE, want), "ListOffsets v%d timestamp %d (error, offset)" % (v, ts))
        for v in versions(adv, 3, 0, 5):
            args = ([topic],) if v < 4 else ([topic], False)
            c.send(MetadataRequest[v](*args))
            (_corr, resp), = c.recv()
            expect_eq([(b[0], b[2]) for b in resp.brokers], [(1, PORT)], "Metadata v%d brokers" % v)
            t = [x for x in resp.topics if x[1] == topic]
            expect(t, "Metadata v%d: topic missing" % v)
            parts = t[0][3] if v >= 1 else t[0][2]
            expect_eq([(p[1], p[2]) for p in parts], [(0, 1)], "Metadata v%d (partition, leader)" % v)
            if v >= 1:
                expect_eq(resp.controller_id, 1, "Metadata v%d controller_id" % v)
            if v >= 2:
                expect(resp.cluster_id, "Metadata v%d cluster_id empty" % v)
    finally:
        c.close()


def recrc(data):
    """Recompute a v2 batch's CRC-32C (it covers bytes 21..end), so a
    deliberately malformed batch is not caught by the CRC alone."""
    struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[21:])))
    return bytes(data)


def expect_rejected(topic, data, what):
    """Produce must fail and append nothing; if the broker took the batch,
    say what a consumer then gets from the partition."""
    c = Conn()
    try:
        err, offset = produce(c, topic, data, acks=-1)
        end = end_offset(c, topic)
        if err != NONE:
            expect_eq(end, 0, "%s: rejected with error %d, but log end offset" % (what, err))
            return err
        try:
            _resp, part, values = fetch_versioned(c, 4, topic)
            after = "a fetch then decodes to %r" % (values,)
        except Exception as e:  # noqa: BLE001 - the evidence is the point
            after = "consumers then fail to decode it: %s: %s" % (type(e).__name__, e)
    finally:
        c.close()
    raise CheckFailed("%s: accepted at offset %d (Kafka rejects it); %s" % (what, offset, after))


@S.check("crc_valid_batch_with_malformed_record_rejected")
def _():
    # Kafka parses every record of a batch before appending it, so a
    # producer bug cannot store bytes that no consumer can decode.
    topic = S.topic("bad-record")
    create_topic(topic)
    data = bytearray(batch([(b"k", b"v")]))
    data[61] = 0x7e  # the first record's length varint: 63 bytes, but only 8 follow
    expect_rejected(topic, recrc(data), "record length past the end of the batch")


@S.check("crc_valid_batch_with_undecodable_compression_rejected")
def _():
    # Attributes say gzip, the payload is plain records: Kafka decompresses
    # to validate and refuses it; storing it would stop every consumer of
    # the partition at this offset.
    topic = S.topic("bad-gzip")
    create_topic(topic)
    data = bytearray(batch([(b"k", b"v")]))
    struct.pack_into(">h", data, 21, 1)  # compression codec gzip
    expect_rejected(topic, recrc(data), "gzip batch that is not gzip")


@S.check("client_written_control_batch_rejected")
def _():
    # Control batches (transaction markers) are written by the broker only;
    # consumers skip them, so a client-written one hides its records.
    topic = S.topic("control")
    create_topic(topic)
    data = bytearray(batch([(b"k", b"v")]))
    struct.pack_into(">h", data, 21, 0x20)  # isControl
    expect_rejected(topic, recrc(data), "control batch sent by a producer")


S.finish()
