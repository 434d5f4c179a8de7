#!/usr/bin/env python3
"""kafka-python seed examples that need consumer-group coordination.

Runs with kafka-python 2.0.2 (what the seeds were written against) and with
the newest 3.x (what `pip install kafka-python` installs today); run.sh runs
it once under each. Where 3.x removed or changed an API the seed code uses,
the check uses the 3.x equivalent and says so in a comment.

FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup, OffsetCommit/
OffsetFetch, ListGroups/DescribeGroups. run.sh runs this file only when
GREGOR_COMPAT_GROUPS=1, until Gregor implements groups.

The seed classes from shared/seeds/000_* are verbatim apart from the address
and topic names; where a seed loops forever (it was read by a human watching
a terminal) consumer_timeout_ms is set on the instance's config afterwards so
the loop ends, and what it printed is parsed and checked.
"""

import contextlib
import io
import re
import threading
import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from harness import CheckFailed, Suite, expect, expect_eq, wait_until, captured, quiet_close

# kafka-python 3.x changed APIs the seeds use (see KP3 below); its runs get
# their own topic and group prefix so the two runs never share a name.
KP3 = int(kafka.__version__.split(".")[0]) >= 3
S = Suite("kpg3" if KP3 else "kpg")
B = S.bootstrap






def create_topic(name, partitions):
    admin = KafkaAdminClient(bootstrap_servers=B)
    try:
        admin.create_topics([NewTopic(name=name, num_partitions=partitions,
                                      replication_factor=1)])
    finally:
        quiet_close(admin)


def produce(topic, records):
    p = KafkaProducer(bootstrap_servers=B)
    try:
        return [p.send(topic, **r).get(timeout=10) for r in records]
    finally:
        quiet_close(p)


def committed(group, topic, partitions):
    c = KafkaConsumer(bootstrap_servers=B, group_id=group, enable_auto_commit=False)
    try:
        return {p: c.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        quiet_close(c)


def commit(group, offsets):
    """Standalone (assign-mode) commit: {TopicPartition: offset}."""
    c = KafkaConsumer(bootstrap_servers=B, group_id=group, enable_auto_commit=False)
    try:
        c.assign(list(offsets))
        c.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        quiet_close(c)


# kafka-python 3.x prints one more field, leader_epoch, between partition and
# offset: ConsumerRecord(topic='t', partition=0, leader_epoch=0, offset=12, ...).
RECORD_RE = re.compile(r"ConsumerRecord\(topic='([^']*)', partition=(\d+), (?:leader_epoch=-?\d+, )?"
                       r"offset=(\d+),.*?value=b'([^']*)'")


def printed_records(text):
    return [(t, int(p), int(o), v.encode()) for t, p, o, v in RECORD_RE.findall(text)]


# --------------------------------------------------------------- seed code

class SimpleConsumer():
    """Seed 000 '消费者' (class Consumer), verbatim."""
    def __init__(self, topics, bootstrap_servers, group_id, consumer_id):
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id)
        self.topics = topics
        self.consumer_id = consumer_id

    def simple_consumer(self):
        self.consumer.subscribe(self.topics)
        for message in self.consumer:
            print('consumer_id={}-->receive,key:{},value:{}'.format(self.consumer_id, message.key, message.value))


class Consumer():
    """Seed 000 '升级版消费者' (class Consumer), verbatim."""
    def __init__(self, bootstrap_servers, group_id, consumer_id):
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False)
        self.consumer_id = consumer_id

    def user_defined_offset_consume(self, topic, partition):
        tp = TopicPartition(topic, partition)
        print(type(tp), tp)
        self.consumer.assign([tp])
        for i in range(12, 30):
            self.consumer.seek(tp, i)
            consumer_data = next(self.consumer)
            print(consumer_data)
            self.consumer.commit()

    def from_next_offset_consume(self, topic):
        tps = [TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic)]
        self.consumer.assign(tps)
        for tp in tps:
            next_offset = self.consumer.position(tp)
            print('分区 :{} ,的将要消费的offset是{}'.format(tp.partition, next_offset))
            self.consumer.seek(tp, next_offset)
        print('~~~~~~~~~~~~~~~~~~~~~')
        for message in self.consumer:
            print(message)
            self.consumer.commit()

    def simple_consumer(self, topic):
        self.consumer.subscribe(topic)
        for message in self.consumer:
            print('consumer_id={}-->receive,key:{},value:{}'.format(self.consumer_id, message.key, message.value))
            self.consumer.commit()


class view_accumulation():
    """Seed 000 '计算kafka堆积剩余量', verbatim."""
    def __init__(self, topic, bootstrap_servers, group_id):
        self.topic = topic
        self.group_id = group_id
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=self.group_id)
        self.tps = [TopicPartition(self.topic, p) for p in self.consumer.partitions_for_topic(self.topic)]
        self.calculation_allowance()

    def producer_write_offset(self):
        p_offset = self.consumer.end_offsets(self.tps)
        print(p_offset)
        p_offset = [(key.partition, p_offset[key]) for key in p_offset.keys()]
        print(p_offset)
        return p_offset

    def consumer_read_offset(self):
        c_offset = [(tp.partition, self.consumer.committed(tp)) for tp in self.tps]
        print('\n', c_offset)
        return c_offset

    def calculation_allowance(self):
        sum_of_p_offset = sum([x[1] for x in self.producer_write_offset()])
        sum_of_c_offset = sum([x[1] if x[1] != None else 0 for x in self.consumer_read_offset()])  # noqa: E711
        allowance = sum_of_p_offset - sum_of_c_offset
        print('\n kafka accumulate space except_group_id {} is: \n{}'.format(self.group_id, allowance))
        return allowance


def end_loop_after(kafka_consumer, ms):
    # The seed loops run until Ctrl-C; make the iterator stop when idle.
    kafka_consumer.config['consumer_timeout_ms'] = ms


# ------------------------------------------------------------------ checks

@S.check("seed001_group_consumer_iteration_latest", timeout=60)
def _():
    topic, group = S.topic("my_topic"), S.topic("group2")
    produce(topic, [{"value": b"before"}])
    consumer = KafkaConsumer(topic, group_id=group, bootstrap_servers=[B],
                             consumer_timeout_ms=1000)
    try:
        tp = TopicPartition(topic, 0)
        wait_until(lambda: consumer.poll(timeout_ms=200) is not None and tp in consumer.assignment(),
                   30, what="group assignment")
        # New group, auto_offset_reset='latest': starts after "before".
        expect_eq(consumer.position(tp), 1, "position of a new group")
        produce(topic, [{"value": b"m%d" % i} for i in range(3)])
        got = [(m.offset, m.value) for m in consumer]
    finally:
        quiet_close(consumer)
    expect_eq(got, [(1, b"m0"), (2, b"m1"), (3, b"m2")], "messages")
    # enable_auto_commit defaults to True: close() commits the position.
    expect_eq(committed(group, topic, [0]), {0: 4}, "committed after close")


@S.check("seed000_user_defined_offset_consume_commit", timeout=60)
def _():
    topic, group = S.topic("consumer_test-seek"), S.topic("consumer_group_multifunction_test")
    produce(topic, [{"value": b"ok%d" % i} for i in range(30)])
    with captured() as out:
        consumer = Consumer(bootstrap_servers=B, group_id=group, consumer_id=1)
        consumer.user_defined_offset_consume(topic=topic, partition=0)
        quiet_close(consumer.consumer)
    got = printed_records(out.getvalue())
    expect_eq([(p, o, v) for _t, p, o, v in got], [(0, i, b"ok%d" % i) for i in range(12, 30)],
              "printed records")
    expect_eq(committed(group, topic, [0]), {0: 30}, "committed offset")


@S.check("seed000_from_next_offset_consume_and_view_accumulation", timeout=60)
def _():
    topic, group = S.topic("consumer_test-next"), S.topic("consumer_group_multifunction_test")
    create_topic(topic, 3)
    produce(topic, [{"value": b"ok%d-%d" % (p, i), "partition": p} for p in range(3) for i in range(5)])
    start = {0: 2, 1: 5, 2: 0}
    commit(group, {TopicPartition(topic, p): o for p, o in start.items()})

    with captured() as out:
        view_accumulation(bootstrap_servers=B, topic=topic, group_id=group)
    m = re.search(r"is: \n(-?\d+)", out.getvalue())
    expect(m, "view_accumulation printed no allowance:\n" + out.getvalue())
    expect_eq(int(m.group(1)), 15 - 7, "lag before consuming")

    with captured() as out:
        consumer = Consumer(bootstrap_servers=B, group_id=group, consumer_id=1)
        end_loop_after(consumer.consumer, 2000)
        consumer.from_next_offset_consume(topic=topic)
        quiet_close(consumer.consumer)
    text = out.getvalue()
    positions = {int(p): int(o) for p, o in re.findall(r"分区 :(\d+) ,的将要消费的offset是(\d+)", text)}
    expect_eq(positions, start, "positions from committed offsets")
    got = sorted((p, o) for _t, p, o, _v in printed_records(text))
    expect_eq(got, sorted((p, o) for p in range(3) for o in range(start[p], 5)), "consumed")
    expect_eq(committed(group, topic, range(3)), {0: 5, 1: 5, 2: 5}, "committed after")

    with captured() as out:
        view_accumulation(bootstrap_servers=B, topic=topic, group_id=group)
    expect(re.search(r"is: \n0\b", out.getvalue()), "lag after consuming:\n" + out.getvalue())


@S.check("seed000_two_group_members_split_partitions", timeout=90)
def _():
    topic, group = S.topic("consumer_test-split"), S.topic("consumer_group_test")
    create_topic(topic, 3)
    # Committed offsets make the start position independent of when each
    # member's 'latest' reset happens.
    commit(group, {TopicPartition(topic, p): 0 for p in range(3)})
    # The seed passes one topic name as a str (topics='consumer_test') to
    # subscribe(). kafka-python 2.0.2 wraps it in a list; 3.x raises
    # TypeError('Topics must be a list (or non-str sequence)') before it sends
    # anything (the same against Apache Kafka), so on 3.x the check passes
    # the 3.x equivalent, a one-element list.
    topics = [topic] if KP3 else topic
    members = [SimpleConsumer(topics=topics, bootstrap_servers=B, group_id=group, consumer_id=i)
               for i in (1, 2)]
    errors = []

    def run(member):
        end_loop_after(member.consumer, 8000)
        try:
            member.simple_consumer()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(m,), daemon=True) for m in members]
    # redirect_stdout swaps sys.stdout for every thread; the seed prefixes
    # each line with its consumer_id, which tells the members apart.
    with captured() as out:
        try:
            threads[0].start()

            def owns_all():
                # A member thread that died (say, subscribe() raised) never
                # gets partitions: report its error, not a timeout.
                expect(not errors, "consumer errors: %r" % errors)
                return len(members[0].consumer.assignment()) == 3
            wait_until(owns_all, 30, what="first member owning all 3 partitions")
            threads[1].start()

            def split():
                expect(not errors, "consumer errors: %r" % errors)
                a = {tp.partition for tp in members[0].consumer.assignment()}
                b = {tp.partition for tp in members[1].consumer.assignment()}
                return a and b and not (a & b) and (a | b) == {0, 1, 2} and (a, b)
            a, b = wait_until(split, 40, what="rebalance over two members")
            produce(topic, [{"value": b"v%d" % p, "partition": p} for p in range(3)])
            for t in threads:
                t.join(30)
        finally:
            for m in members:
                quiet_close(m.consumer)
    expect_eq(errors, [], "consumer errors")
    text = out.getvalue()
    got = [set(re.findall(r"consumer_id=%d-->receive,key:None,value:b'v(\d)'" % i, text))
           for i in (1, 2)]
    expect_eq(got, [{str(p) for p in a}, {str(p) for p in b}],
              "values received by each member (owners %r / %r)" % (sorted(a), sorted(b)))


@S.check("seed001_subscribe_pattern_with_group", timeout=60)
def _():
    prefix = S.topic("pattern")
    t1, t2 = prefix + "-my-1", prefix + "-my-2"
    produce(t1, [{"value": b"1"}])
    produce(t2, [{"value": b"2"}])
    # The seed's loop never ends; consumer_timeout_ms ends it here. 2.0.2
    # starts that clock once the group is joined, 3.x counts the join too,
    # and a new group's first join waits group.initial.rebalance.delay.ms
    # (3 s by default, in Kafka as in Gregor). So: a budget that covers the
    # join, then 3 s of idleness ends the loop once records flow.
    consumer = KafkaConsumer(group_id=S.topic("group2-pattern"), bootstrap_servers=[B],
                             auto_offset_reset='earliest', consumer_timeout_ms=20000)
    try:
        consumer.subscribe(pattern='^' + re.escape(prefix) + '-my.*')
        got = []
        for m in consumer:
            got.append((m.topic, m.value))
            end_loop_after(consumer, 3000)
        got.sort()
    finally:
        quiet_close(consumer)
    expect_eq(got, [(t1, b"1"), (t2, b"2")], "messages")


@S.check("admin_list_describe_groups_and_offsets", timeout=60)
def _():
    # The kafka-python equivalent of the seed's
    # kafka-consumer-groups.sh --list / --describe --group G
    topic, group = S.topic("described"), S.topic("test-consumer-group")
    produce(topic, [{"value": b"x"}] * 3)
    consumer = KafkaConsumer(topic, group_id=group, bootstrap_servers=B,
                             auto_offset_reset='earliest', enable_auto_commit=False)
    admin = KafkaAdminClient(bootstrap_servers=B)
    try:
        n = 0
        deadline = time.monotonic() + 30
        while n < 3 and time.monotonic() < deadline:
            n += sum(len(v) for v in consumer.poll(timeout_ms=500).values())
        expect_eq(n, 3, "records consumed")
        consumer.commit()
        if KP3:
            # kafka-python 3.x removed list_consumer_groups,
            # describe_consumer_groups and list_consumer_group_offsets; its
            # equivalents are list_groups, describe_groups and
            # list_group_offsets, which return dicts keyed by field and group.
            groups = [g["group_id"] for g in admin.list_groups()]
            expect(group in groups, "%s not in list_groups() %r" % (group, groups))
            desc = admin.describe_groups([group])[group]
            expect_eq((desc["group_id"], desc["group_state"], desc["protocol_type"], desc["error"]),
                      (group, "Stable", "consumer", None), "group description")
            expect_eq(len(desc["members"]), 1, "members")
            # 3.x always asks for them; with no authorizer Kafka grants
            # every group operation.
            expect_eq(sorted(desc["authorized_operations"] or []),
                      ["ALTER_CONFIGS", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "READ"],
                      "authorized operations")
            expect_eq(desc["members"][0]["member_assignment"]["assigned_partitions"],
                      [{"topic": topic, "partitions": [0]}], "member assignment")
            offsets = admin.list_group_offsets(group)[group]
        else:
            groups = [g[0] for g in admin.list_consumer_groups()]
            expect(group in groups, "%s not in list_consumer_groups() %r" % (group, groups))
            desc = admin.describe_consumer_groups([group])[0]
            expect_eq((desc.group, desc.state, desc.protocol_type), (group, "Stable", "consumer"),
                      "group description")
            expect_eq(len(desc.members), 1, "members")
            offsets = admin.list_consumer_group_offsets(group)
        expect_eq({tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic},
                  {0: 3}, "group offsets")
    finally:
        quiet_close(consumer)
        quiet_close(admin)


MEMBER_SCRIPT = r"""
import sys, time
from kafka import KafkaConsumer
c = KafkaConsumer(sys.argv[2], bootstrap_servers=sys.argv[1], group_id=sys.argv[3],
                  session_timeout_ms=6000, heartbeat_interval_ms=1000)
announced = set()
while True:
    c.poll(timeout_ms=200)
    parts = sorted(tp.partition for tp in c.assignment())
    if parts and tuple(parts) not in announced:
        announced.add(tuple(parts))
        print("assigned", *parts, flush=True)
"""


@S.check("crashed_member_expires_and_partitions_move", timeout=90)
def _():
    # A member killed with SIGKILL sends no LeaveGroup: the coordinator must
    # expire it after session.timeout.ms and give its partitions away.
    import subprocess
    import sys
    topic, group = S.topic("crash"), S.topic("crash-group")
    create_topic(topic, 3)
    crash = subprocess.Popen([sys.executable, "-c", MEMBER_SCRIPT, B, topic, group],
                             stdout=subprocess.PIPE, text=True)
    survivor = None
    try:
        line = crash.stdout.readline()
        expect(line.startswith("assigned"), "first member never got partitions (%r)" % line)
        survivor = KafkaConsumer(topic, bootstrap_servers=B, group_id=group,
                                 session_timeout_ms=6000, heartbeat_interval_ms=1000)

        def mine():
            survivor.poll(timeout_ms=200)
            return {tp.partition for tp in survivor.assignment()}
        wait_until(lambda: 0 < len(mine()) < 3, 40, what="the group to split over two members")
        crash.kill()
        crash.wait(10)
        killed_at = time.monotonic()
        wait_until(lambda: mine() == {0, 1, 2}, 45,
                   what="the survivor to own all partitions after the other member was killed")
        took = time.monotonic() - killed_at
        print("  partitions moved %.1fs after SIGKILL (session.timeout.ms=6000)" % took)
    finally:
        if crash.poll() is None:
            crash.kill()
        if survivor is not None:
            quiet_close(survivor)


S.finish()
