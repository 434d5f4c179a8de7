#!/usr/bin/env python3
"""Burrow (LinkedIn's lag monitor, Debian's burrow 1.2.1) against Gregor.

Burrow does not ask the broker for committed offsets: it reads the internal
topic __consumer_offsets with a plain Sarama consumer (kafka-version 2.0.0)
and decodes every record itself, then computes lag as the partition's head
offset (ListOffsets) minus the last committed offset. So a lag figure from
Burrow proves that Gregor's offset-commit records (key v1, value v3) are
Kafka's exact bytes, and that the Fetch/ListOffsets/Metadata paths work for a
Sarama consumer.

Scenario, on a 3-partition topic with 10 records in each partition:
  group S: kafka-python assign + commit 4, 5, 6 (the seeds' lag script way)
           -> lag 6 + 5 + 4 = 15
  group M: a confluent-kafka member subscribes, reads all 30 records,
           commits 7, 8, 9, leaves                    -> lag 3 + 2 + 1 = 6
Then Burrow starts and must find both groups by reading the topic from the
beginning; then group S commits 8, 9, 10 and 5 more records go to partition 2
while Burrow runs -> lag 2 + 1 + 5 = 8.

Burrow 1.2.1 decodes group metadata values v0 and v1 only (v3 came with
Kafka 2.3's static membership; Burrow learned it in a later release). It
logs Gregor's v3 metadata records as "failed to decode ... value version 3",
as it would for Kafka >= 2.3 itself; the check on Burrow's log accepts that
one reason and nothing else. The group metadata records are instead decoded
here, field by field against Kafka's schema (group_metadata_v3_decodes).

Burrow 1.2 needs ZooKeeper for its own coordination: the suite runs
ZooKeeper (Debian's zookeeper package) and Burrow on free 127.0.0.1 ports
and stops both at the end.

Environment: BOOTSTRAP (required), COMPAT_ONLY, COMPAT_KEEP=1 (keep the work
dir with burrow.log and zookeeper.log), BURROW_BIN (default: Burrow on PATH),
ZOOKEEPER_JAR (default /usr/share/java/zookeeper.jar).
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.structs import OffsetAndMetadata

from harness import CheckFailed, Suite, expect, expect_eq, wait_until

S = Suite("burrow")
B = S.bootstrap
CLUSTER = "gregor"
TOPIC = S.topic("lag")
GROUP_S = S.topic("simple-group")   # commits only, never joins
GROUP_M = S.topic("member-group")   # a real member: JoinGroup/SyncGroup, then commits
SESSION_MS = 10000

WORK = tempfile.mkdtemp(prefix="gregor-compat-burrow.")
PROCS = {}          # name -> Popen
STATE = {}          # what later checks need from earlier ones
COMMITS = set()     # (group, topic, partition, offset) committed by this suite

_ADMIN = AdminClient({"bootstrap.servers": B})


# ------------------------------------------------------------------ processes

def _die_with_parent():
    # The children must not outlive this suite, even if run.sh's timeout
    # kills it: PR_SET_PDEATHSIG (1) = SIGKILL when the parent goes.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def spawn(name, argv, cwd):
    log = open(os.path.join(WORK, name + ".log"), "ab")
    PROCS[name] = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    return PROCS[name]


def stop_all():
    for name in ("burrow", "zookeeper"):
        p = PROCS.pop(name, None)
        if p is None or p.poll() is not None:
            continue
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def on_term(signum, frame):
    stop_all()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, on_term)


def log_tail(name, n=15):
    try:
        with open(os.path.join(WORK, name + ".log"), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return ""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def zk_serving(port):
    # "srvr" answers "not currently serving requests" until the server has
    # loaded its database; "ruok" says imok before that.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"srvr")
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        return b"Mode: standalone" in out
    except OSError:
        return False


def http_json(path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (STATE["http_port"], path), timeout=5) as r:
        return json.loads(r.read())


def burrow_alive():
    p = PROCS.get("burrow")
    if p is None or p.poll() is not None:
        raise CheckFailed("Burrow is not running (exit %s); log tail:\n%s"
                          % (None if p is None else p.returncode, log_tail("burrow")))


# ------------------------------------------------------------------ helpers

def lag_status(group):
    burrow_alive()
    try:
        return http_json("/v3/kafka/%s/consumer/%s/lag" % (CLUSTER, group))["status"]
    except OSError:
        return None


def wait_lag(group, want_total, want_parts, timeout):
    """Poll Burrow until the group's lag is exactly want_total and the
    per-partition current lag and committed offset are as given:
    want_parts = {partition: (committed offset, lag)}."""
    last = {}

    def seen():
        st = lag_status(group)
        if st is None:
            return False
        parts = {p["partition"]: (p["end"]["offset"], p["current_lag"])
                 for p in st.get("partitions") or [] if p["topic"] == TOPIC}
        last["v"] = (st.get("status"), st.get("totallag"), parts)
        return st.get("totallag") == want_total and parts == want_parts

    try:
        wait_until(seen, timeout, interval=1, what="Burrow lag of %s" % group)
    except CheckFailed:
        raise CheckFailed("Burrow never reported totallag %d %s for %s; last (status, totallag, "
                          "{partition: (offset, lag)}): %r" % (want_total, want_parts, group, last.get("v")))
    return last["v"]


def produce(counts):
    """counts: {partition: n}; record values name partition and index."""
    p = Producer({"bootstrap.servers": B})
    errs = []
    for part, n in counts.items():
        for i in range(n):
            p.produce(TOPIC, value=b"p%d-%d" % (part, i), partition=part,
                      on_delivery=lambda err, msg: err and errs.append(err))
    left = p.flush(15)
    expect(left == 0 and not errs, "produce: %d undelivered, errors %s" % (left, errs[:3]))


def kp_commit(group, offsets):
    """kafka-python, assign mode: commit {partition: offset} without joining."""
    c = KafkaConsumer(bootstrap_servers=B, group_id=group, enable_auto_commit=False)
    try:
        tps = {KTopicPartition(TOPIC, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
        c.assign(list(tps))
        c.commit(tps)
        got = {tp.partition: c.committed(tp) for tp in tps}
    finally:
        c.close()
    expect_eq(got, offsets, "committed() after commit for %s" % group)
    for p, o in offsets.items():
        COMMITS.add((group, TOPIC, p, o))


def java_string_hash(s):
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


# --------------------------------------------- Kafka's __consumer_offsets schemas
# Written from Kafka's message definitions (OffsetCommitKey/Value,
# GroupMetadataKey/Value); every decoder must consume the bytes exactly.

class Reader:
    def __init__(self, b, what):
        self.b, self.i, self.what = b, 0, what

    def take(self, n):
        if self.i + n > len(self.b):
            raise CheckFailed("%s: truncated at byte %d (need %d more of %d)"
                              % (self.what, self.i, n, len(self.b)))
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self, nullable=False):
        n = self.i16()
        if n == -1:
            expect(nullable, "%s: null in a non-nullable string at byte %d" % (self.what, self.i - 2))
            return None
        return self.take(n).decode("utf-8")

    def bytes_(self):
        n = self.i32()
        return None if n == -1 else self.take(n)

    def done(self):
        expect(self.i == len(self.b), "%s: %d trailing bytes after the schema's last field"
               % (self.what, len(self.b) - self.i))


def decode_offset_key(r):
    return {"group": r.string(), "topic": r.string(), "partition": r.i32()}


def decode_offset_value_v3(r):
    v = {"offset": r.i64(), "leader_epoch": r.i32(), "metadata": r.string(),
         "commit_timestamp": r.i64()}
    r.done()
    return v


def decode_consumer_assignment(b):
    r = Reader(b, "consumer protocol assignment")
    version = r.i16()
    parts = {}
    for _ in range(r.i32()):
        t = r.string()
        parts[t] = sorted(r.i32() for _ in range(r.i32()))
    r.bytes_()  # user data
    if version == 0:
        r.done()
    return parts


def decode_group_metadata_value_v3(r):
    v = {"protocol_type": r.string(), "generation": r.i32(),
         "protocol": r.string(nullable=True), "leader": r.string(nullable=True),
         "current_state_timestamp": r.i64(), "members": []}
    for _ in range(r.i32()):
        v["members"].append({
            "member_id": r.string(), "group_instance_id": r.string(nullable=True),
            "client_id": r.string(), "client_host": r.string(),
            "rebalance_timeout": r.i32(), "session_timeout": r.i32(),
            "subscription": r.bytes_(), "assignment": r.bytes_()})
    r.done()
    return v


def read_offsets_topic(groups):
    """Every record of __consumer_offsets whose key names one of `groups`:
    [(partition, offset, key bytes, value bytes or None)]."""
    md = _ADMIN.list_topics("__consumer_offsets", timeout=10)
    t = md.topics["__consumer_offsets"]
    expect(t.error is None, "metadata for __consumer_offsets: %s" % t.error)
    n = len(t.partitions)
    c = Consumer({"bootstrap.servers": B, "group.id": S.topic("offsets-reader"),
                  "enable.auto.commit": False, "enable.partition.eof": True})
    out = []
    try:
        todo = set()
        tps = []
        for p in range(n):
            low, high = c.get_watermark_offsets(TopicPartition("__consumer_offsets", p), timeout=10)
            if high > low:
                todo.add(p)
                tps.append(TopicPartition("__consumer_offsets", p, OFFSET_BEGINNING))
        c.assign(tps)
        wanted = [g.encode() for g in groups]
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(m.partition())
                    continue
                raise CheckFailed("reading __consumer_offsets: %s" % m.error())
            k = m.key() or b""
            if any(g in k for g in wanted):
                out.append((m.partition(), m.offset(), k, m.value()))
        expect(not todo, "reading __consumer_offsets timed out; partitions left %s" % sorted(todo))
    finally:
        c.close()
    return n, out


# ------------------------------------------------------------------ checks

@S.check("setup_topic_records_and_commits", timeout=90)
def _():
    _ADMIN.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(15)
    produce({0: 10, 1: 10, 2: 10})
    # group S: the seeds' way (kafka-python, assign, commit) -> lag 15.
    kp_commit(GROUP_S, {0: 4, 1: 5, 2: 6})
    # group M: a real member with a JoinGroup/SyncGroup generation.
    c = Consumer({"bootstrap.servers": B, "group.id": GROUP_M, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": SESSION_MS,
                  "client.id": "burrow-compat-member"})
    try:
        c.subscribe([TOPIC])
        got = 0
        deadline = time.monotonic() + 45
        while got < 30 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        expect_eq(got, 30, "records consumed by the member of %s" % GROUP_M)
        STATE["member_assignment"] = sorted(tp.partition for tp in c.assignment())
        res = c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in ((0, 7), (1, 8), (2, 9))],
                       asynchronous=False)
        expect(all(tp.error is None for tp in res), "commit errors: %s" % res)
    finally:
        c.close()  # a dynamic member: sends LeaveGroup, the group becomes Empty
    for p, o in ((0, 7), (1, 8), (2, 9)):
        COMMITS.add((GROUP_M, TOPIC, p, o))


@S.check("burrow_starts_against_gregor", timeout=90)
def _():
    burrow = os.environ.get("BURROW_BIN") or shutil.which("Burrow") or shutil.which("burrow")
    zk_jar = os.environ.get("ZOOKEEPER_JAR", "/usr/share/java/zookeeper.jar")
    java = shutil.which("java")
    expect(burrow and os.path.exists(zk_jar) and java,
           "needs Burrow (%s), %s and java (%s): run test/compat/install.sh" % (burrow, zk_jar, java))
    zk_port, http_port = free_port(), free_port()
    STATE["http_port"] = http_port
    zkdir = os.path.join(WORK, "zookeeper")
    os.makedirs(os.path.join(zkdir, "data"))
    with open(os.path.join(zkdir, "zoo.cfg"), "w") as f:
        f.write("tickTime=2000\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\n4lw.commands.whitelist=srvr\n" % (zkdir, zk_port))
    spawn("zookeeper", [java, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.enableServer=false",
                        "-cp", zk_jar, "org.apache.zookeeper.server.ZooKeeperServerMain",
                        os.path.join(zkdir, "zoo.cfg")], zkdir)
    wait_until(lambda: zk_serving(zk_port) or PROCS["zookeeper"].poll() is not None, 40,
               what="ZooKeeper on 127.0.0.1:%d" % zk_port)
    expect(PROCS["zookeeper"].poll() is None, "ZooKeeper exited:\n%s" % log_tail("zookeeper"))

    bdir = os.path.join(WORK, "burrow")
    os.makedirs(bdir)
    # Burrow 1.2's TOML: one client profile, a cluster module (head offsets
    # via ListOffsets every second), a consumer module reading
    # __consumer_offsets from the beginning, in-memory storage, the caching
    # evaluator with a 1 s cache, and the HTTP server on loopback.
    with open(os.path.join(bdir, "burrow.toml"), "w") as f:
        f.write("""
[general]
pidfile="{bdir}/burrow.pid"

[logging]
level="debug"

[zookeeper]
servers=["127.0.0.1:{zk}"]
timeout=6
root-path="/burrow-compat"

[client-profile.gregor]
client-id="burrow-compat"
kafka-version="2.0.0"

[cluster.{cluster}]
class-name="kafka"
servers=["{bootstrap}"]
client-profile="gregor"
topic-refresh=2
offset-refresh=1

[consumer.{cluster}]
class-name="kafka"
cluster="{cluster}"
servers=["{bootstrap}"]
client-profile="gregor"
offsets-topic="__consumer_offsets"
start-latest=false

[httpserver.default]
address="127.0.0.1:{http}"

[storage.default]
class-name="inmemory"
workers=4
intervals=10
expire-group=604800
min-distance=1

[evaluator.default]
class-name="caching"
expire-cache=1
""".format(bdir=bdir, zk=zk_port, cluster=CLUSTER, bootstrap=B, http=http_port))
    spawn("burrow", [burrow, "-config-dir", bdir], bdir)

    def up():
        burrow_alive()
        try:
            return CLUSTER in http_json("/v3/kafka")["clusters"]
        except OSError:
            return False
    wait_until(up, 40, interval=0.5, what="Burrow's HTTP API to list cluster %s" % CLUSTER)
    # The cluster module's view of the topic: partitions and head offsets.
    last = {}

    def offsets():
        try:
            last["v"] = http_json("/v3/kafka/%s/topic/%s" % (CLUSTER, TOPIC)).get("offsets")
        except OSError as e:
            last["v"] = e
        return last["v"] == [10, 10, 10]
    try:
        wait_until(offsets, 20, interval=0.5, what="Burrow's head offsets of %s" % TOPIC)
    except CheckFailed:
        raise CheckFailed("Burrow's head offsets of %s: %r, want [10, 10, 10]" % (TOPIC, last.get("v")))


@S.check("burrow_lists_both_groups", timeout=150)
def _():
    # Sarama subscribes the 50 partitions of __consumer_offsets one at a time
    # (two ListOffsets per partition, queued behind 250 ms fetch long-polls on
    # the same connection), so reading the whole topic takes ~30 s.
    last = {}

    def listed():
        burrow_alive()
        try:
            last["v"] = http_json("/v3/kafka/%s/consumer" % CLUSTER)["consumers"]
        except OSError:
            return False
        return GROUP_S in last["v"] and GROUP_M in last["v"]
    try:
        wait_until(listed, 140, interval=1, what="both groups in Burrow's consumer list")
    except CheckFailed:
        raise CheckFailed("Burrow's consumer list after 140s: %r; want %s and %s"
                          % (last.get("v"), GROUP_S, GROUP_M))


@S.check("burrow_lag_commit_only_group_is_15", timeout=60)
def _():
    wait_lag(GROUP_S, 15, {0: (4, 6), 1: (5, 5), 2: (6, 4)}, 50)


@S.check("burrow_lag_member_group_is_6", timeout=60)
def _():
    wait_lag(GROUP_M, 6, {0: (7, 3), 1: (8, 2), 2: (9, 1)}, 50)


@S.check("burrow_follows_live_commit_and_produce", timeout=90)
def _():
    kp_commit(GROUP_S, {0: 8, 1: 9, 2: 10})
    wait_lag(GROUP_S, 3, {0: (8, 2), 1: (9, 1), 2: (10, 0)}, 40)
    produce({2: 5})
    wait_lag(GROUP_S, 8, {0: (8, 2), 1: (9, 1), 2: (10, 5)}, 40)


@S.check("burrow_decoded_every_offset_record", timeout=30)
def _():
    # Burrow's debug log has one "consumer offset" line per offset record it
    # decoded, and a "failed to decode" warning for any record it could not.
    decoded, bad, metadata_v3 = set(), [], 0
    with open(os.path.join(WORK, "burrow.log"), "rb") as f:
        for raw in f:
            try:
                e = json.loads(raw)
            except ValueError:
                continue
            if e.get("msg") == "consumer offset" and e.get("group") in (GROUP_S, GROUP_M):
                decoded.add((e["group"], e["topic"], e["partition"], e["offset"]))
            elif e.get("msg") == "failed to decode":
                if (e.get("message_type") == "metadata" and e.get("reason") == "value version"
                        and e.get("version") == 3):
                    metadata_v3 += 1   # Burrow 1.2.1 knows metadata v0/v1 only
                else:
                    bad.append(raw.decode("utf-8", "replace").strip())
    expect(not bad, "Burrow could not decode %d record(s), e.g.: %s" % (len(bad), bad[:3]))
    expect_eq(sorted(decoded), sorted(COMMITS), "offset commits Burrow decoded for this suite's groups")
    print("  burrow: %d offset records of this suite decoded; %d group metadata v3 records skipped "
          "(Burrow 1.2.1 decodes metadata v0/v1 only)" % (len(decoded), metadata_v3))


@S.check("group_metadata_v3_decodes", timeout=90)
def _():
    # What Burrow 1.2.1 skips, decoded here against Kafka's schema.
    n, recs = read_offsets_topic([GROUP_S, GROUP_M])
    want_part = {g: abs(java_string_hash(g)) % n for g in (GROUP_S, GROUP_M)}
    offsets, metadata = [], []
    for part, off, k, v in recs:
        r = Reader(k, "key at __consumer_offsets[%d]@%d" % (part, off))
        kv = r.i16()
        if kv in (0, 1):
            key = decode_offset_key(r)
            r.done()
            expect_eq(kv, 1, "offset commit key version")
            expect_eq(part, want_part[key["group"]], "partition of %s's records" % key["group"])
            if v is None:
                continue
            vr = Reader(v, "offset commit value at [%d]@%d" % (part, off))
            expect_eq(vr.i16(), 3, "offset commit value version")
            val = decode_offset_value_v3(vr)
            offsets.append((key["group"], key["topic"], key["partition"], val["offset"]))
            now = time.time() * 1000
            expect(now - 600000 < val["commit_timestamp"] <= now + 5000,
                   "commit timestamp %d is not recent" % val["commit_timestamp"])
        elif kv == 2:
            group = r.string()
            r.done()
            expect_eq(part, want_part.get(group), "partition of %s's metadata" % group)
            if v is None:
                continue
            vr = Reader(v, "group metadata value at [%d]@%d" % (part, off))
            expect_eq(vr.i16(), 3, "group metadata value version")
            metadata.append((group, decode_group_metadata_value_v3(vr)))
        else:
            raise CheckFailed("key version %d at __consumer_offsets[%d]@%d" % (kv, part, off))
    expect_eq(sorted(offsets), sorted(COMMITS), "offset commit records of this suite's groups")
    with_member = [m for _, m in metadata if m["members"]]
    expect(with_member, "no group metadata record of %s has a member: %s" % (GROUP_M, metadata))
    m = with_member[-1]
    expect_eq(m["protocol_type"], "consumer", "protocol_type")
    expect(m["generation"] >= 1, "generation %d" % m["generation"])
    expect(m["protocol"] in ("range", "roundrobin"), "protocol %r" % m["protocol"])
    expect_eq(len(m["members"]), 1, "members")
    mem = m["members"][0]
    expect_eq(m["leader"], mem["member_id"], "leader")
    expect_eq(mem["group_instance_id"], None, "group_instance_id")
    expect_eq(mem["client_id"], "burrow-compat-member", "client_id")
    expect_eq(mem["client_host"], "/127.0.0.1", "client_host")
    expect_eq(mem["session_timeout"], SESSION_MS, "session_timeout")
    expect_eq(mem["rebalance_timeout"], 300000, "rebalance_timeout (max.poll.interval.ms)")
    expect_eq(decode_consumer_assignment(mem["assignment"]), {TOPIC: STATE["member_assignment"]},
              "assignment")
    last = metadata[-1][1]
    expect(not last["members"] and last["generation"] == m["generation"] + 1
           and last["protocol"] is None and last["leader"] is None,
           "after the member left: want an Empty group record at generation %d, got %r"
           % (m["generation"] + 1, last))


stop_all()
if os.environ.get("COMPAT_KEEP") == "1":
    print("  burrow: work dir kept at %s" % WORK)
else:
    shutil.rmtree(WORK, ignore_errors=True)
S.finish()
