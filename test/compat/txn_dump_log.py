#!/usr/bin/env python3
"""Kafka's DumpLogSegments reads the transactional files the broker wrote.

A transactional producer (confluent-kafka) commits, aborts and commits again
on a one-partition topic. Then Kafka 4.4's DumpLogSegments (the tool behind
kafka-dump-log.sh, run from the broker's log dir as an operator would)
must decode:

  - the partition's segment with --deep-iteration: the records and, between
    the transactions, COMMIT / ABORT control records (`endTxnMarker`) at the
    offsets that follow each transaction, in transactional batches of one
    producer id;
  - the segment's .txnindex: one aborted-transaction entry covering the
    aborted records and their marker;
  - the __transaction_state segment holding the transactional id, with
    --transaction-log-decoder: the id's state changes Empty, Ongoing,
    PrepareCommit, CompleteCommit, Ongoing, PrepareAbort, CompleteAbort, ...
    with its producer id and partitions, in the partition Kafka's rule
    picks (hash of the id modulo the partition count).

Environment: BOOTSTRAP, and BROKER_LOG_DIR, the broker's log dir (`log.dirs`
of `gregor serve`; for bench/kafka/kafka.sh, bench/kafka/.cache/node-PORT/data).
Skips (0 passed, 0 failed) when the broker does not advertise the

  BOOTSTRAP=127.0.0.1:19092 BROKER_LOG_DIR=bench/kafka/.cache/node-19092/data \\
      python3 test/compat/txn_dump_log.py
"""

import glob
import json
import os
import re
import subprocess

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import CheckFailed, Suite, expect, expect_eq

S = Suite("txn-dump")
B = S.bootstrap
HERE = os.path.dirname(os.path.abspath(__file__))
RUNCLASS = os.path.join(HERE, "..", "..", "bench", "kafka", "kafka-run-class.sh")
TOOL = "org.apache.kafka.tools.DumpLogSegments"  # kafka.tools.DumpLogSegments before Kafka 4.0

LOG_DIR = os.environ.get("BROKER_LOG_DIR")
if not LOG_DIR or not os.path.isdir(LOG_DIR):
    print("FAIL setup: BROKER_LOG_DIR=%r is not the broker's log dir" % LOG_DIR)
    S.failed += 1
    S.finish()

T = S.topic("dump")
TID = S.topic("dump-txn")
# The workload: (tag, records, commit?) per transaction, in order.
TXNS = [("c1", 3, True), ("a1", 2, False), ("c2", 1, True)]


def dump(*args):
    env = dict(os.environ, KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    r = subprocess.run(["bash", RUNCLASS, TOOL, *args], capture_output=True, text=True, timeout=60, env=env)
    if r.returncode != 0:
        raise CheckFailed("DumpLogSegments %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr[-800:]))
    return r.stdout


def fields(line):
    """'a: 1 b: x y: z' → {'a': '1', ...}; values are single tokens except
    payload/key/endTxnMarker, taken to the end or to the next field."""
    out = {}
    for m in re.finditer(r"(\w+): (\S+)", line):
        out[m.group(1)] = m.group(2)
    return out


def kafka_partition_for(key, count):
    """Kafka's rule for an id's coordinator partition: the non-negative
    (Integer.MIN_VALUE maps to 0) Java String.hashCode of the id, modulo
    the partition count. Names here are ASCII: one UTF-16 unit per char."""
    h = 0
    for ch in key:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= (1 << 31) else h
    return 0 if h == -(1 << 31) else abs(h) % count


state = {}


@S.check("txn_workload_commit_abort_commit")
def _():
    # A kept reference: a dropped AdminClient fails its futures with _DESTROY.
    state["admin"] = AdminClient({"bootstrap.servers": B})
    state["admin"].create_topics([NewTopic(T, 1, 1)])[T].result(15)
    p = Producer({"bootstrap.servers": B, "transactional.id": TID, "linger.ms": 0})
    p.init_transactions(20)
    for tag, n, commit in TXNS:
        p.begin_transaction()
        for i in range(n):
            p.produce(T, value=b"%s-%d" % (tag.encode(), i), key=b"k")
        expect_eq(p.flush(10), 0, "records still queued")
        (p.commit_transaction if commit else p.abort_transaction)(20)


def segment(ext):
    files = sorted(glob.glob(os.path.join(LOG_DIR, T + "-0", "*." + ext)))
    expect(files, "no *.%s in %s" % (ext, os.path.join(LOG_DIR, T + "-0")))
    return files


@S.check("dump_log_deep_iteration_shows_commit_and_abort_markers")
def _():
    out = dump("--deep-iteration", "--print-data-log", "--files", ",".join(segment("log")))
    batches, records = [], []
    for line in out.splitlines():
        if line.startswith("baseOffset:"):
            batches.append(fields(line))
        elif line.startswith("| offset:"):
            f = fields(line)
            if "endTxnMarker" in f:
                records.append((int(f["offset"]), f["endTxnMarker"]))
            else:
                records.append((int(f["offset"]), re.search(r"payload: (.*)$", line).group(1)))
    want, off = [], 0
    for tag, n, commit in TXNS:
        for i in range(n):
            want.append((off, "%s-%d" % (tag, i)))
            off += 1
        want.append((off, "COMMIT" if commit else "ABORT"))
        off += 1
    expect_eq(records, want, "records and markers (offset, payload or endTxnMarker)")
    expect(all(b.get("isTransactional") == "true" for b in batches), "a batch is not transactional: %s" % batches)
    expect(all(b.get("isvalid") == "true" for b in batches), "a batch fails its CRC: %s" % batches)
    controls = [b for b in batches if b.get("isControl") == "true"]
    expect_eq(len(controls), len(TXNS), "control batches")
    pids = {b["producerId"] for b in batches}
    expect_eq(len(pids), 1, "producer ids across batches")
    state["pid"] = pids.pop()
    state["aborted"] = [(o, v) for o, v in want if v.startswith("a1-") or v == "ABORT"]


@S.check("dump_txnindex_lists_the_aborted_transaction")
def _():
    expect("pid" in state, "no producer id from the segment check")
    files = [f for f in segment("txnindex") if os.path.getsize(f) > 0]
    out = dump("--files", ",".join(files))
    entries = [fields(l) for l in out.splitlines() if l.startswith("version:")]
    first, last = state["aborted"][0][0], state["aborted"][-1][0]
    got = [(e.get("producerId"), int(e["firstOffset"]), int(e["lastOffset"]), int(e["lastStableOffset"]))
           for e in entries]
    # The last stable offset once the abort completes: the log end, as no
    # other transaction is open on the partition.
    expect_eq(got, [(state["pid"], first, last, last + 1)],
              "txnindex entries (producerId, firstOffset, lastOffset, lastStableOffset)")


@S.check("dump_transaction_log_decoder_shows_state_changes")
def _():
    expect("pid" in state, "no producer id from the segment check")
    parts = sorted(glob.glob(os.path.join(LOG_DIR, "__transaction_state-*")))
    expect(parts, "no __transaction_state-* partitions in %s" % LOG_DIR)
    logs = [f for d in parts for f in sorted(glob.glob(os.path.join(d, "*.log"))) if os.path.getsize(f) > 0]
    out = dump("--transaction-log-decoder", "--files", ",".join(logs))
    where, states, current = set(), [], None
    for line in out.splitlines():
        if line.startswith("Dumping "):
            current = os.path.basename(os.path.dirname(line.split(" ", 1)[1].strip()))
            continue
        m = re.search(r" key: (\{.*\}) payload: (.*)$", line)
        if not m:
            continue
        try:
            key = json.loads(m.group(1))
            payload = json.loads(m.group(2)) if m.group(2) != "<DELETE>" else None
        except ValueError as e:
            raise CheckFailed("undecodable transaction log record in %s: %s (%s)" % (current, line[:300], e))
        if key.get("data", {}).get("transactionalId") != TID or payload is None:
            continue
        where.add(current)
        d = payload["data"]
        expect_eq(str(d["producerId"]), state["pid"], "producerId in the transaction log")
        tps = sorted((x["topic"], p) for x in (d.get("transactionPartitions") or []) for p in x["partitionIds"])
        states.append((d["transactionStatus"], tps))
    expect_eq(len(where), 1, "__transaction_state partitions holding %s (%s)" % (TID, sorted(where)))
    collapsed = []
    for s in states:
        if not collapsed or collapsed[-1] != s:
            collapsed.append(s)
    mine = [(T, 0)]
    want = [("Empty", [])]
    for _tag, _n, commit in TXNS:
        end = "Commit" if commit else "Abort"
        want += [("Ongoing", mine), ("Prepare" + end, mine), ("Complete" + end, [])]
    expect_eq(collapsed, want, "%s's (transactionStatus, partitions) in order" % TID)
    state["partition"] = int(where.pop().rsplit("-", 1)[1])
    state["count"] = len(parts)


def gregor_dump_log_matches():
    """gregor dump-log (GREGOR_BIN) against DumpLogSegments, line for line,
    on the same files: the transactional segment with its control records,
    the non-empty .txnindex files, the producer snapshots."""
    gregor = os.environ["GREGOR_BIN"]
    files = segment("log") + [f for f in glob.glob(os.path.join(LOG_DIR, T + "-0", "*.txnindex")) if os.path.getsize(f) > 0]
    files += sorted(glob.glob(os.path.join(LOG_DIR, T + "-0", "*.snapshot")))
    for args in (["--deep-iteration", "--print-data-log"], []):
        full = args + ["--files", ",".join(files)]
        want = dump(*full)
        r = subprocess.run([gregor, "dump-log", *full], capture_output=True, text=True, timeout=60)
        expect_eq(r.returncode, 0, "gregor dump-log %s exit status (stderr %r)" % (" ".join(full), r.stderr[-500:]))
        expect_eq(r.stdout.splitlines(), want.splitlines(), "gregor dump-log %s output" % " ".join(args))


if os.environ.get("GREGOR_BIN"):
    S.check("gregor_dump_log_prints_what_kafkas_prints")(gregor_dump_log_matches)
else:
    print("SKIP gregor_dump_log_prints_what_kafkas_prints: needs GREGOR_BIN")

@S.check("txn_state_partition_is_kafkas_choice")
def _():
    expect("partition" in state, "no partition from the decoder check")
    want = kafka_partition_for(TID, state["count"])
    expect_eq(state["partition"], want, "__transaction_state partition of %s (of %d)" % (TID, state["count"]))


S.finish()
