#!/usr/bin/env python3
"""Consumer groups with librdkafka: confluent-kafka static members and kcat -G.

Static membership (KIP-345), two members "a" and "b" (group.instance.id,
session.timeout.ms=10000) on a 4-partition topic:
  - a member closed without leaving (librdkafka's static members send no
    LeaveGroup) and started again with the same group.instance.id within the
    session timeout gets its partitions back with NO rebalance: the
    generation both members hold is unchanged, the other member sees no
    revoke/assign callback, DescribeGroups stays Stable with the same
    assignment, and the restarted member resumes at its committed offsets.
    Done once for the leader ("a", joined first) and once for the follower.
  - the converse, so the checks above can fail: a static member that does
    not come back is removed only when its session times out, and then the
    group does rebalance (new generation, the survivor gets all partitions).

The generation is what each librdkafka client holds from its last JoinGroup:
read from consumer_group_metadata() (librdkafka's serialized group metadata,
"CGMDv2:" + generation + group + member id + instance id). DescribeGroups
has no generation field; it is used for state, member ids and assignments.

kcat -G: two kcat processes in one group split the partitions, every record
is consumed exactly once, and their offsets are committed when they exit.

Environment: BOOTSTRAP (required), COMPAT_ONLY, KCAT (default: kcat on PATH).
"""

import ctypes
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import CheckFailed, Suite, expect, expect_eq, wait_until

S = Suite("rdg")
B = S.bootstrap
SESSION_MS = 10000
_ADMIN = AdminClient({"bootstrap.servers": B})


def create_topic(name, partitions):
    _ADMIN.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(15)


def produce(topic, counts, tag):
    """counts: {partition: n}; value b"<tag>-<partition>-<i>"."""
    p = Producer({"bootstrap.servers": B})
    errs = []
    for part, n in sorted(counts.items()):
        for i in range(n):
            p.produce(topic, value=b"%s-%d-%d" % (tag.encode(), part, i), partition=part,
                      on_delivery=lambda err, msg: err and errs.append(err))
    left = p.flush(15)
    expect(left == 0 and not errs, "produce: %d undelivered, errors %s" % (left, errs[:3]))


def describe(group):
    return _ADMIN.describe_consumer_groups([group], request_timeout=10)[group].result(15)


# ------------------------------------------------------------------ static members

class Member:
    """One confluent-kafka consumer with a group.instance.id; records every
    rebalance callback and every message it receives."""

    def __init__(self, topic, group, instance):
        self.instance = instance
        self.events = []
        self.msgs = []
        self.c = Consumer({
            "bootstrap.servers": B, "group.id": group, "group.instance.id": instance,
            "client.id": "rdg-" + instance, "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest",
            "enable.auto.commit": False})
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, c, parts):
        self.events.append(("assign", sorted(p.partition for p in parts)))

    def _on_revoke(self, c, parts):
        self.events.append(("revoke", sorted(p.partition for p in parts)))

    def poll(self):
        m = self.c.poll(0.1)
        if m is not None and not m.error():
            self.msgs.append((m.partition(), m.offset(), m.value()))

    def owned(self):
        return {tp.partition for tp in self.c.assignment()}

    def group_metadata(self):
        """(generation, member id) from librdkafka's serialized metadata."""
        raw = self.c.consumer_group_metadata()
        if not isinstance(raw, bytes) or not raw.startswith(b"CGMDv2:"):
            raise CheckFailed("unexpected consumer_group_metadata() format: %r" % (raw,))
        gen = struct.unpack("=i", raw[7:11])[0]
        fields = raw[11:].split(b"\0")
        return gen, fields[1].decode()

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def poll_until(members, seconds, cond, what):
    deadline = time.monotonic() + seconds
    while True:
        for m in members:
            m.poll()
        if cond():
            return
        if time.monotonic() > deadline:
            raise CheckFailed("timed out after %.0fs waiting for %s; owned %s, events %s"
                              % (seconds, what, {m.instance: sorted(m.owned()) for m in members},
                                 {m.instance: m.events for m in members}))


ST = {}  # state shared by the static-membership checks


def snapshot_group(expect_members):
    """DescribeGroups: {instance: (member id, sorted partitions, host)}, state."""
    d = describe(ST["group"])
    got = {}
    for mem in d.members:
        parts = sorted(tp.partition for tp in mem.assignment.topic_partitions)
        got[mem.group_instance_id] = (mem.member_id, parts, mem.host)
    expect_eq(sorted(got), sorted(expect_members), "group.instance.ids in DescribeGroups")
    return d.state, got


def check_consumes(members, tag):
    """Produce one record per partition; each member must get exactly the
    records of the partitions it owns, at the offset after the committed one."""
    t = ST["topic"]
    for m in members:
        m.msgs = []
    produce(t, {p: 1 for p in range(4)}, tag)
    poll_until(members, 20, lambda: sum(len(m.msgs) for m in members) >= 4, "4 new records")
    for m in members:
        m.poll()
    for m in members:
        want = sorted((p, ST["next"][p], b"%s-%d-0" % (tag.encode(), p)) for p in m.owned())
        expect_eq(sorted(m.msgs), want, "records member %s received after %s" % (m.instance, tag))
        m.c.commit(asynchronous=False)
    for p in range(4):
        ST["next"][p] += 1


@S.check("static_two_members_split_4_partitions", timeout=90)
def _():
    t, g = S.topic("static"), S.topic("static-group")
    ST.update(topic=t, group=g, next={p: 0 for p in range(4)})
    create_topic(t, 4)
    a = Member(t, g, "a")
    ST["a"] = a
    poll_until([a], 30, lambda: a.owned() == {0, 1, 2, 3}, "a to own all 4 partitions")
    b = Member(t, g, "b")
    ST["b"] = b

    def split():
        oa, ob = a.owned(), b.owned()
        return len(oa) == 2 and len(ob) == 2 and not oa & ob and a.group_metadata()[0] == b.group_metadata()[0]
    poll_until([a, b], 45, split, "a and b to hold 2 partitions each in one generation")
    state, members = snapshot_group(["a", "b"])
    expect_eq(state, ConsumerGroupState.STABLE, "group state")
    for m in (a, b):
        gen, mid = m.group_metadata()
        expect_eq(members[m.instance][0], mid, "DescribeGroups member id of %s" % m.instance)
        expect_eq(members[m.instance][1], sorted(m.owned()), "DescribeGroups assignment of %s" % m.instance)
        expect_eq(members[m.instance][2], "/127.0.0.1", "DescribeGroups client host of %s" % m.instance)
    ST["gen"] = a.group_metadata()[0]
    check_consumes([a, b], "first")
    print("  rdg: generation %d, a owns %s, b owns %s"
          % (ST["gen"], sorted(a.owned()), sorted(b.owned())))


def restart_without_rebalance(name):
    expect("gen" in ST, "the group did not form")
    other_name = "b" if name == "a" else "a"
    old, other = ST[name], ST[other_name]
    old_parts, other_parts = old.owned(), other.owned()
    old_mid = old.group_metadata()[1]
    other_mid = other.group_metadata()[1]
    other_events = len(other.events)
    old.close()  # static member: no LeaveGroup
    started = time.monotonic()
    new = Member(ST["topic"], ST["group"], name)
    ST[name] = new
    poll_until([new, other], SESSION_MS / 1000 - 2, lambda: new.owned(),
               "restarted %s to get partitions back within the session timeout" % name)
    took = time.monotonic() - started
    # Poll on for a few heartbeats: a rebalance started by the rejoin would
    # show up as a revoke on the other member by now.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        new.poll()
        other.poll()
    new_gen, new_mid = new.group_metadata()
    expect_eq(other.events[other_events:], [], "rebalance callbacks on %s while %s restarted"
              % (other_name, name))
    expect_eq(new.owned(), old_parts, "partitions of the restarted member %s" % name)
    expect_eq(other.owned(), other_parts, "partitions of %s" % other_name)
    expect_eq(new_gen, ST["gen"], "generation held by the restarted member %s" % name)
    expect_eq(other.group_metadata()[0], ST["gen"], "generation held by %s" % other_name)
    expect(new_mid != old_mid, "the rejoined static member kept its old member id %s "
           "(Kafka replaces it, which fences the old instance)" % old_mid)
    state, members = snapshot_group(["a", "b"])
    expect_eq(state, ConsumerGroupState.STABLE, "group state after the restart")
    expect_eq(members[name][:2], (new_mid, sorted(old_parts)), "DescribeGroups entry of %s" % name)
    expect_eq(members[other_name][:2], (other_mid, sorted(other_parts)),
              "DescribeGroups entry of %s" % other_name)
    check_consumes([new, other], "after-restart-" + name)
    print("  rdg: %s back in %.1fs with %s, generation still %d"
          % (name, took, sorted(new.owned()), new_gen))


@S.check("static_leader_restart_keeps_generation_and_partitions", timeout=60)
def _():
    restart_without_rebalance("a")


@S.check("static_follower_restart_keeps_generation_and_partitions", timeout=60)
def _():
    restart_without_rebalance("b")


@S.check("static_member_gone_past_session_timeout_rebalances", timeout=60)
def _():
    expect("gen" in ST, "the group did not form")
    a, b = ST["a"], ST["b"]
    b_events = len(b.events)
    a.close()
    started = time.monotonic()
    poll_until([b], SESSION_MS / 1000 + 20, lambda: b.owned() == {0, 1, 2, 3},
               "b to get all partitions after a's session timed out")
    took = time.monotonic() - started
    expect(took > SESSION_MS / 1000 - 2, "b got a's partitions after %.1fs, before a's %d ms session "
           "could have expired (a static member's close must not leave the group)" % (took, SESSION_MS))
    expect(b.events[b_events:], "b saw no rebalance callback")
    expect(b.group_metadata()[0] > ST["gen"], "generation %d did not move past %d"
           % (b.group_metadata()[0], ST["gen"]))
    state, members = snapshot_group(["b"])
    expect_eq(state, ConsumerGroupState.STABLE, "group state")
    check_consumes([b], "after-expiry")
    print("  rdg: a expired after %.1fs; b owns all 4 at generation %d" % (took, b.group_metadata()[0]))


for _name in ("a", "b"):
    if _name in ST:
        ST[_name].close()


# ------------------------------------------------------------------ kcat -G

KCAT = os.environ.get("KCAT") or shutil.which("kcat") or shutil.which("kafkacat")


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def last_assignment(errfile, topic):
    """Partitions of the last "rebalanced ...: assigned:" line, or None if
    the last rebalance line is a revoke."""
    with open(errfile, "rb") as f:
        lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if "rebalanced" in l]
    if not lines or "assigned:" not in lines[-1]:
        return None
    return {int(p) for p in re.findall(re.escape(topic) + r" \[(\d+)\]", lines[-1])}


@S.check("kcat_G_two_members_split_partitions", timeout=120)
def _():
    expect(KCAT, "kcat not found (run test/compat/install.sh)")
    t, g = S.topic("kcat-g"), S.topic("kcat-g-group")
    create_topic(t, 4)
    work = tempfile.mkdtemp(prefix="gregor-compat-kcat-g.")
    procs = []
    try:
        def start(i):
            out = open(os.path.join(work, "k%d.out" % i), "wb")
            err = os.path.join(work, "k%d.err" % i)
            procs.append(subprocess.Popen(
                [KCAT, "-b", B, "-G", g, "-u", "-X", "auto.offset.reset=earliest",
                 "-X", "session.timeout.ms=%d" % SESSION_MS, "-f", "%p %o %s\\n", t],
                stdout=out, stderr=open(err, "wb"), stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent))
            return err

        e1 = start(1)
        wait_until(lambda: last_assignment(e1, t) == {0, 1, 2, 3}, 30,
                   what="the first kcat to be assigned all 4 partitions")
        e2 = start(2)
        last = {}

        def split():
            a1, a2 = last_assignment(e1, t), last_assignment(e2, t)
            last["v"] = (a1, a2)
            return a1 and a2 and not a1 & a2 and a1 | a2 == {0, 1, 2, 3}
        try:
            wait_until(split, 45, what="the two kcats to split the partitions")
        except CheckFailed:
            raise CheckFailed("kcat assignments: %r" % (last.get("v"),))
        assigned = last["v"]
        produce(t, {p: 50 for p in range(4)}, "kcat")

        def read(i):
            with open(os.path.join(work, "k%d.out" % i), "rb") as f:
                return [tuple(l.split(b" ", 2)) for l in f.read().splitlines()]
        wait_until(lambda: len(read(1)) + len(read(2)) >= 200, 30, what="200 records from the two kcats")
        time.sleep(1)  # a duplicate would arrive now
        for p in procs:
            p.send_signal(signal.SIGTERM)  # kcat closes its consumer: final commit, LeaveGroup
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                raise CheckFailed("kcat did not exit within 20s of SIGTERM")
        got = [read(1), read(2)]
        seen = {}
        for i, recs in enumerate(got):
            parts = {int(r[0]) for r in recs}
            expect(parts, "kcat %d consumed nothing" % (i + 1))
            expect(parts <= assigned[i], "kcat %d consumed partitions %s outside its assignment %s"
                   % (i + 1, sorted(parts), sorted(assigned[i])))
            for r in recs:
                key = (int(r[0]), int(r[1]))
                expect(key not in seen, "record %s consumed twice" % (key,))
                seen[key] = r[2]
        want = {(p, o): b"kcat-%d-%d" % (p, o) for p in range(4) for o in range(50)}
        expect_eq(seen, want, "records consumed by the two kcats (partition, offset) -> value")
        res = _ADMIN.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result(15)
        committed = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == t}
        expect_eq(committed, {p: 50 for p in range(4)}, "offsets committed by the kcats")
        print("  rdg: kcat 1 had %s (%d records), kcat 2 had %s (%d records)"
              % (sorted(assigned[0]), len(got[0]), sorted(assigned[1]), len(got[1])))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


S.finish()
