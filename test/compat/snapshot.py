#!/usr/bin/env python3
"""Print a JSON digest of everything a broker holds, for run.sh's restart
checks: per partition of every non-internal topic the low/high watermarks and
a SHA-256 over every record (offset, timestamp, key, value, headers); per
consumer group its committed offsets.

  BOOTSTRAP=host:port python3 snapshot.py > before.json
  ... restart the broker ...
  BOOTSTRAP=host:port python3 snapshot.py > after.json
  python3 snapshot.py --diff before.json after.json   # exit 1 and a report if they differ
"""

import hashlib
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient


def snapshot(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=15)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gregor-compat-snapshot",
                  "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
    topics = {}
    try:
        tps = []
        for name, t in sorted(md.topics.items()):
            if name.startswith("__"):
                continue
            if t.error is not None:
                raise RuntimeError("metadata error for %s: %s" % (name, t.error))
            for p in sorted(t.partitions):
                low, high = c.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                topics.setdefault(name, {})[str(p)] = {"low": low, "high": high}
                if high > low:
                    tps.append(TopicPartition(name, p, OFFSET_BEGINNING))
        digests = {(tp.topic, tp.partition): hashlib.sha256() for tp in tps}
        nxt = {(tp.topic, tp.partition): topics[tp.topic][str(tp.partition)]["low"] for tp in tps}
        if tps:
            c.assign(tps)
        deadline = time.monotonic() + 120
        progress = time.monotonic()
        while any(nxt[k] < topics[k[0]][str(k[1])]["high"] for k in nxt):
            if time.monotonic() > deadline:
                raise RuntimeError("reading all records timed out")
            m = c.poll(0.5)
            if time.monotonic() - progress > 10:
                # librdkafka stalls silently on a batch it cannot parse;
                # record where each unfinished partition stopped.
                for k in nxt:
                    part = topics[k[0]][str(k[1])]
                    if nxt[k] < part["high"]:
                        digests[k].update(b"stalled at %d" % nxt[k])
                        part["unreadable_at"] = nxt[k]
                        nxt[k] = part["high"]
            if m is None:
                continue
            k = (m.topic(), m.partition())
            if m.error():
                if k not in nxt or m.error().fatal():
                    raise RuntimeError("consume: %s" % m.error())
                # A partition a consumer cannot read past (e.g. a batch that
                # does not decompress) is recorded, not fatal: the digest
                # still shows whether a restart changed it.
                if nxt[k] < topics[k[0]][str(k[1])]["high"]:
                    digests[k].update(("unreadable at %d: %s" % (nxt[k], m.error().str())).encode())
                    topics[k[0]][str(k[1])]["unreadable_at"] = nxt[k]
                    nxt[k] = topics[k[0]][str(k[1])]["high"]
                continue
            if m.offset() < nxt[k]:
                continue
            h = digests[k]
            h.update(repr((m.offset(), m.timestamp(), m.key(), m.value(), m.headers())).encode())
            nxt[k] = m.offset() + 1
            progress = time.monotonic()
        for (t, p), h in digests.items():
            topics[t][str(p)]["sha256"] = h.hexdigest()
    finally:
        c.close()

    groups = {}
    try:
        listed = admin.list_consumer_groups(request_timeout=10).result(15)
        for g in sorted(x.group_id for x in listed.valid if x.group_id != "gregor-compat-snapshot"):
            req = ConsumerGroupTopicPartitions(g)
            res = admin.list_consumer_group_offsets([req])[g].result(15)
            groups[g] = {"%s/%d" % (tp.topic, tp.partition): tp.offset
                         for tp in res.topic_partitions if tp.offset >= 0}
    except Exception as e:  # noqa: BLE001 - a broker without groups
        groups = {"error": str(e)}
    return {"topics": topics, "groups": groups}


def diff(a, b):
    out = []
    for name in sorted(set(a["topics"]) | set(b["topics"])):
        pa, pb = a["topics"].get(name), b["topics"].get(name)
        if pa is None or pb is None:
            out.append("topic %s: %s" % (name, "lost" if pb is None else "appeared"))
            continue
        for p in sorted(set(pa) | set(pb), key=int):
            if pa.get(p) != pb.get(p):
                out.append("%s[%s]: before %s, after %s" % (name, p, pa.get(p), pb.get(p)))
    if a["groups"] != b["groups"]:
        for g in sorted(set(a["groups"]) | set(b["groups"])):
            if a["groups"].get(g) != b["groups"].get(g):
                out.append("group %s: before %s, after %s" % (g, a["groups"].get(g), b["groups"].get(g)))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--diff":
        with open(sys.argv[2]) as f1, open(sys.argv[3]) as f2:
            before, after = json.load(f1), json.load(f2)
        problems = diff(before, after)
        n = sum(len(ps) for ps in before["topics"].values())
        if problems:
            print("%d differences over %d partitions:" % (len(problems), n))
            print("\n".join(problems[:20]))
            sys.exit(1)
        stuck = sum(1 for ps in before["topics"].values() for p in ps.values() if "unreadable_at" in p)
        print("%d topics, %d partitions, %d groups identical%s"
              % (len(before["topics"]), n, len(before["groups"]),
                 " (%d partitions unreadable by librdkafka, before and after)" % stuck if stuck else ""))
        sys.exit(0)
    json.dump(snapshot(os.environ["BOOTSTRAP"]), sys.stdout, indent=1, sort_keys=True)
    print()
