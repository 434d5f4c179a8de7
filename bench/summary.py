#!/usr/bin/env python3
"""The side-by-side table from bench/run.sh's raw.csv.

    python3 bench/summary.py bench/results/<timestamp>/raw.csv

For each profile and measured value: Kafka's and Gregor's median over the
rounds with the min-max range, the Gregor/Kafka ratio of the medians, and
which broker the medians favour ("tie" within 5 %), marked "?" when the two
min-max ranges overlap, i.e. this run cannot tell them apart.
"""
import csv
import statistics
import sys

HIGHER, LOWER = True, False

# workload -> (label, [(metric, name, format, higher is better)])
THROUGHPUT = [("mb_s", "MB/s", "{:.1f}", HIGHER), ("p99_ms", "p99 ms", "{:.0f}", LOWER)]
X4 = [("mb_s", "MB/s sum", "{:.1f}", HIGHER), ("mb_s_wall", "MB/s wall", "{:.1f}", HIGHER),
      ("p99_ms", "p99 ms worst", "{:.0f}", LOWER)]
ROWS = [
    ("acks1", "produce acks=1", THROUGHPUT),
    ("acks1-batch1m", "produce acks=1 batch 1 MiB linger 5", THROUGHPUT),
    ("acksall", "produce acks=all", THROUGHPUT),
    ("acksall-batch1m", "produce acks=all batch 1 MiB linger 5", THROUGHPUT),
    ("acks1-x4", "4 producers acks=1", X4),
    ("acks1-batch1m-x4", "4 producers acks=1 batch 1 MiB linger 5", X4),
    ("acksall-x4", "4 producers acks=all", X4),
    ("acksall-batch1m-x4", "4 producers acks=all batch 1 MiB linger 5", X4),
    ("consume", "consume (fetch rate)", [("mb_s", "MB/s", "{:.1f}", HIGHER)]),
]
# bench/load (franz-go): the broker's CPU per GiB of values is the headline.
GO_CPU = [("cpu_s_gib", "broker CPU s/GiB", "{:.2f}", LOWER),
          ("user_cpu_s_gib", "broker user s/GiB", "{:.2f}", LOWER),
          ("load_cpu_s_gib", "load CPU s/GiB", "{:.2f}", LOWER)]
GO_PRODUCE = [("mb_s", "MB/s", "{:.1f}", HIGHER), ("p99_ms", "ack p99 ms", "{:.0f}", LOWER)] + GO_CPU
ROWS += [
    ("go-acks1", "bench/load produce acks=1", GO_PRODUCE),
    ("go-acksall", "bench/load produce acks=all (idempotent)", GO_PRODUCE),
    ("go-acks1-raw", "bench/load produce-raw acks=1 (batches built once)", GO_PRODUCE),
    ("go-acksall-raw", "bench/load produce-raw acks=all (idempotent)", GO_PRODUCE),
    ("go-consume", "bench/load consume", [("mb_s", "MB/s", "{:.1f}", HIGHER)] + GO_CPU),
    ("go-consume-raw", "bench/load consume-raw (no record decoding)", [("mb_s", "MB/s", "{:.1f}", HIGHER)] + GO_CPU),
]
for acks, name in (("acks1", "acks=1"), ("acksall", "acks=all")):
    ROWS += [
        (f"lat-pp-{acks}", f"ProducerPerformance {name} at {{rate}}/s: send to ack",
         [("p50_ms", "p50 ms", "{:.0f}", LOWER), ("p99_ms", "p99 ms", "{:.0f}", LOWER)]),
        (f"lat-go-{acks}", f"franz-go e2e {name} at {{rate}}/s: send to consume",
         [("p50_ms", "p50 ms", "{:.2f}", LOWER), ("p99_ms", "p99 ms", "{:.2f}", LOWER),
          ("ack_p50_ms", "ack p50 ms", "{:.2f}", LOWER), ("ack_p99_ms", "ack p99 ms", "{:.2f}", LOWER)]),
        (f"lat-e2e-{acks}", f"EndToEndLatency {name}: one at a time",
         [("p50_ms", "p50 ms", "{:.0f}", LOWER), ("p99_ms", "p99 ms", "{:.0f}", LOWER),
          ("avg_ms", "avg ms", "{:.2f}", LOWER)]),
    ]
ROWS += [
    ("rss", "broker peak RSS at end of profile", [("hwm_mib", "VmHWM MiB", "{:.0f}", LOWER)]),
    ("startup", "start-up (launch to first acks=all produce)",
     [("startup_ms", "produce ms", "{:.0f}", LOWER), ("listen_ms", "listen ms", "{:.0f}", LOWER)]),
]
PAIR = {
    "os": "kafka defaults | gregor durability=os",
    "fsync": "kafka log.flush.interval.messages=1 | gregor durability=fsync (default)",
    "startup": "kafka defaults, JVM launched on formatted storage | gregor serve on an empty dir",
}


def cell(vals, fmt):
    if not vals:
        return "-"
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f"{med} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


def verdict(k, g, higher):
    if not k or not g:
        return "-", "-"
    mk, mg = statistics.median(k), statistics.median(g)
    if mk == 0 or mg == 0:
        # Whole milliseconds that round to 0: no meaningful ratio.
        who = "tie" if mk == mg else "gregor" if (mg > mk) == higher else "kafka"
        if who != "tie" and max(min(k), min(g)) <= min(max(k), max(g)):
            who += "?"
        return "-", who
    r = mg / mk
    better = r if higher else 1 / r if r else float("inf")
    who = "tie" if 1 / 1.05 <= better <= 1.05 else "gregor" if better > 1 else "kafka"
    if who != "tie" and max(min(k), min(g)) <= min(max(k), max(g)) and (len(k) > 1 or len(g) > 1):
        who += "?"
    return f"{r:.2f}", who


# The go-* rows against the machine's limits measured in the same rounds.
CEILINGS = [("ceiling-loopback", "loopback TCP, sendfile of 16 MiB answers (cached)",
             [("go-consume", "bench/load consume"), ("go-consume-raw", "bench/load consume-raw")]),
            ("ceiling-write", "1 MiB writes to new files (page cache)",
             [("go-acks1", "bench/load produce acks=1"), ("go-acks1-raw", "bench/load produce-raw acks=1")])]


def ceilings(ok):
    profiles = list(dict.fromkeys(r["profile"] for r in ok if r["workload"].startswith("ceiling-")))
    for p in profiles:
        print(f"\n## {p}: the machine's ceilings (no broker), and each broker's share of them")
        for cw, clabel, against in CEILINGS:
            c = [float(r["value"]) for r in ok if r["profile"] == p and r["workload"] == cw and r["metric"] == "mb_s"]
            cpu = [float(r["value"]) for r in ok if r["profile"] == p and r["workload"] == cw and r["metric"] == "cpu_s_gib"]
            if not c:
                continue
            print(f"{clabel:54} MiB/s {cell(c, '{:.0f}'):24} CPU s/GiB {cell(cpu, '{:.2f}')}")
            sender = [float(r["value"]) for r in ok if r["profile"] == p and r["workload"] == cw
                      and r["metric"] == "sender_cpu_s_gib" and r["value"]]
            if sender:
                print(f"{'  its sending side alone (the zero-copy floor)':54} {'':30} CPU s/GiB {cell(sender, '{:.2f}')}")
            for (w, wlabel), broker in ((x, b) for x in against for b in ("kafka", "gregor")):
                v = [float(r["value"]) for r in ok if r["profile"] == p and r["workload"] == w
                     and r["broker"] == broker and r["metric"] == "mb_s"]
                bcpu = [float(r["value"]) for r in ok if r["profile"] == p and r["workload"] == w
                        and r["broker"] == broker and r["metric"] == "cpu_s_gib"]
                if v:
                    share = 100 * statistics.median(v) / statistics.median(c)
                    print(f"  {broker:6} {wlabel:45} MiB/s {cell(v, '{:.0f}'):24} {share:.0f} % of the ceiling's median"
                          + (f"; broker CPU s/GiB {cell(bcpu, '{:.2f}')}" if bcpu else ""))


def main(path):
    rows = list(csv.DictReader(open(path)))
    ok = [r for r in rows if r["status"] == "ok"]
    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    head = (f"{'workload':54} {'metric':16} {'kafka median [min-max]':24} "
            f"{'gregor median [min-max]':24} {'g/k':>5} {'favours':7}")
    for p in profiles:
        print(f"\n## {p}: {PAIR.get(p, p)}")
        print(head)
        for w, label, metrics in ROWS:
            sel = [r for r in ok if r["profile"] == p and r["workload"] == w]
            if not sel and not any(r["profile"] == p and r["workload"] == w for r in rows):
                continue
            rates = sorted({r["value"] for r in sel if r["metric"] == "rate"})
            label = label.replace("{rate}", "/".join(f"{float(x):.0f}" for x in rates) or "?")
            for i, (m, name, fmt, higher) in enumerate(metrics):
                k = [float(r["value"]) for r in sel if r["broker"] == "kafka" and r["metric"] == m]
                g = [float(r["value"]) for r in sel if r["broker"] == "gregor" and r["metric"] == m]
                ratio, who = verdict(k, g, higher)
                print(f"{label if i == 0 else '':54} {name:16} {cell(k, fmt):24} {cell(g, fmt):24} {ratio:>5} {who:7}")
    ceilings(ok)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        print(f"\n{len(failed)} run(s) failed:")
        for r in failed:
            print(f"  {r['profile']} {r['workload']} {r['broker']} round {r['round']}: {r['status']}")
    print("\ng/k: Gregor's median over Kafka's. Throughput (MB/s): above 1 is Gregor faster;"
          " latency, RSS, start-up, CPU s/GiB: below 1 is Gregor better.")
    print("broker CPU s/GiB: CPU seconds (user+system) the broker process used per GiB of record"
          " values moved; load CPU s/GiB: bench/load's own, driving that broker.")


if __name__ == "__main__":
    main(sys.argv[1])
