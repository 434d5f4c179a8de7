#!/usr/bin/env python3
"""Small probes that cluster.sh runs against a multi-node Gregor cluster.

Each command talks to ONE bootstrap broker and exits 0 on success, non-zero
with a one-line reason on stderr otherwise. Runs under kafka-python 2.0.2
(python3) or 3.x (the venv's python); `ck-*` commands need confluent-kafka.

  describe BOOTSTRAP                  describe_cluster: 3 brokers, a controller id
  leaders BOOTSTRAP TOPIC             prints the set of partition leaders (node ids)
  kp-roundtrip BOOTSTRAP TOPIC N      kafka-python: produce N keyed records to
                                      TOPIC (created here, 6 partitions), read every
                                      partition from the beginning, compare exactly
  ck-roundtrip BOOTSTRAP TOPIC N      the same with confluent-kafka (librdkafka),
                                      the consumer in a group
  find-coordinator BOOTSTRAP NODE GROUP SECONDS
                                      FindCoordinator sent to node NODE itself
                                      until it names a coordinator
  coordinators BOOTSTRAP GROUP...     prints "group node" per group (FindCoordinator)
                                      and fails unless two groups differ
"""

import sys
import time

OUT = sys.stdout


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def records(topic, n):
    # key and value both carry the index: a record's value must come back
    # with its own key. Values include a few non-ASCII bytes.
    return [(("k%d" % i).encode(), ("%s-v%d-\u00e9\u00df" % (topic, i)).encode()) for i in range(n)]


def cmd_describe(bootstrap):
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        d = admin.describe_cluster()
    finally:
        admin.close()
    # 2.0.2 reads Metadata (node_id); 3.x sends DescribeCluster (broker_id,
    # is_fenced).
    ids = sorted(b.get("node_id", b.get("broker_id")) for b in d["brokers"])
    fenced = [b.get("broker_id") for b in d["brokers"] if b.get("is_fenced")]
    ports = sorted(b["port"] for b in d["brokers"])
    print("brokers=%s ports=%s controller=%s cluster=%s" % (ids, ports, d["controller_id"], d["cluster_id"]))
    if ids != [1, 2, 3]:
        die("want brokers [1, 2, 3], got %s" % ids)
    if fenced:
        die("brokers %s are fenced" % fenced)
    if d["controller_id"] not in ids:
        die("controller id %r is not one of the brokers" % d["controller_id"])


def leaders(bootstrap, topic):
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.time() + 20
        while True:
            parts = c.partitions_for_topic(topic)
            if parts:
                return {p: c._client.cluster.leader_for_partition(_tp(topic, p)) for p in parts}
            if time.time() > deadline:
                die("no metadata for %s" % topic)
            time.sleep(0.3)
            c._client.poll(future=c._client.cluster.request_update(), timeout_ms=2000)
    finally:
        c.close()


def _tp(topic, p):
    from kafka import TopicPartition
    return TopicPartition(topic, p)


def cmd_leaders(bootstrap, topic):
    ls = leaders(bootstrap, topic)
    print(" ".join("%d:%s" % (p, ls[p]) for p in sorted(ls)))


def create_topic(bootstrap, topic, partitions):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    # The topic must be in the metadata of the broker we bootstrap from.
    deadline = time.time() + 20
    while True:
        ls = leaders(bootstrap, topic)
        if len(ls) == partitions and all(v is not None and v >= 0 for v in ls.values()):
            return ls
        if time.time() > deadline:
            die("topic %s: leaders %s after 20s" % (topic, ls))
        time.sleep(0.3)


def compare(want, got):
    want_s, got_s = sorted(want), sorted(got)
    if want_s == got_s:
        return
    missing = [r for r in want_s if r not in got_s][:3]
    extra = [r for r in got_s if r not in want_s][:3]
    die("got %d records, want %d; missing e.g. %s, unexpected e.g. %s" % (len(got), len(want), missing, extra))


def cmd_kp_roundtrip(bootstrap, topic, n):
    import kafka
    from kafka import KafkaConsumer, KafkaProducer
    ls = create_topic(bootstrap, topic, 6)
    want = records(topic, n)
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        metas = [p.send(topic, key=k, value=v, partition=i % 6).get(timeout=15) for i, (k, v) in enumerate(want)]
    finally:
        p.close()
    if sorted({m.partition for m in metas}) != list(range(6)):
        die("records went to partitions %s" % sorted({m.partition for m in metas}))
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    got = []
    try:
        tps = [_tp(topic, i) for i in range(6)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        deadline = time.time() + 30
        while len(got) < n and time.time() < deadline:
            for r in c:
                got.append((r.key, r.value))
    finally:
        c.close()
    compare(want, got)
    print("kafka-python %s: %d records over leaders %s" % (kafka.__version__, n, sorted(set(ls.values()))))


def cmd_ck_roundtrip(bootstrap, topic, n):
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    fs[topic].result(timeout=20)
    # Metadata through the same broker until all 6 partitions have a leader.
    deadline = time.time() + 20
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t and t.error is None and len(t.partitions) == 6 and all(pm.leader >= 0 for pm in t.partitions.values()):
            lead = sorted({pm.leader for pm in t.partitions.values()})
            break
        if time.time() > deadline:
            die("topic %s has no full metadata after 20s" % topic)
        time.sleep(0.3)
    want = records(topic, n)
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i, (k, v) in enumerate(want):
        p.produce(topic, key=k, value=v, partition=i % 6,
                  on_delivery=lambda err, msg: err and errors.append(err))
    left = p.flush(30)
    if left or errors:
        die("producer: %d undelivered, errors %s" % (left, errors[:3]))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic + "-g",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.time() + 40
        while len(got) < n and time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append((m.key(), m.value()))
        compare(want, got)
        c.commit(asynchronous=False)
    finally:
        c.close()
    print("confluent-kafka: %d records over leaders %s" % (n, lead))


def cmd_find_coordinator(bootstrap, node, group, timeout):
    """FindCoordinator for GROUP sent to NODE itself until it answers with a
    coordinator or TIMEOUT seconds pass; prints the coordinator and the time."""
    from kafka.client_async import KafkaClient
    from kafka.protocol.commit import GroupCoordinatorRequest
    cl = KafkaClient(bootstrap_servers=bootstrap)
    try:
        start = time.time()
        f = cl.cluster.request_update()
        cl.poll(future=f, timeout_ms=10000)
        if cl.cluster.broker_metadata(node) is None:
            die("node %d is not in the metadata" % node)
        answers = []
        while time.time() - start < timeout:
            if not cl.ready(node):
                cl.poll(timeout_ms=100)
                continue
            f = cl.send(node, GroupCoordinatorRequest[0](group))
            cl.poll(future=f, timeout_ms=5000)
            if f.failed():
                answers.append(repr(f.exception))
            else:
                r = f.value
                if r.error_code == 0:
                    print("node %d answered: coordinator %d after %.1fs" % (node, r.coordinator_id, time.time() - start))
                    return
                answers.append(r.error_code)
            time.sleep(0.5)
        die("FindCoordinator(%s) sent to node %d: no coordinator after %ds; error codes %s" % (
            group, node, timeout, sorted(set(answers))))
    finally:
        cl.close()


def cmd_coordinators(bootstrap, groups):
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # kafka-python 2.0.2 has _find_coordinator_ids (one FindCoordinator
        # per group); some versions only _find_coordinator_id.
        if hasattr(admin, "_find_coordinator_ids"):
            nodes = admin._find_coordinator_ids(groups)
        else:
            nodes = {g: admin._find_coordinator_id(g) for g in groups}
        for g in groups:
            print("%s %s" % (g, nodes[g]))
    finally:
        admin.close()
    if len(set(nodes.values())) < 2:
        die("all %d groups have their coordinator on node %s" % (len(groups), set(nodes.values())))


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "describe":
        cmd_describe(*args)
    elif cmd == "leaders":
        cmd_leaders(*args)
    elif cmd == "kp-roundtrip":
        cmd_kp_roundtrip(args[0], args[1], int(args[2]))
    elif cmd == "ck-roundtrip":
        cmd_ck_roundtrip(args[0], args[1], int(args[2]))
    elif cmd == "find-coordinator":
        cmd_find_coordinator(args[0], int(args[1]), args[2], float(args[3]))
    elif cmd == "coordinators":
        cmd_coordinators(args[0], args[1:])
    else:
        die("unknown command %s" % cmd)


if __name__ == "__main__":
    main(sys.argv)
