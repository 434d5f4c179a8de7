#!/usr/bin/env python3
"""The table from bench/replication.sh's raw.csv.

    python3 bench/replication_summary.py bench/results/repl-<timestamp>/raw.csv

One row per profile, system and replication factor: acks=all throughput
(ProducerPerformance), its send-to-ack p50/p99, end-to-end and ack latency at
the fixed rate (bench/e2e), the brokers' CPU time and ISR shrinks during
those runs. Each cell is the median over rounds, with the min-max range when
there was more than one. Then, per system, RF 3 (or the largest RF) relative
to RF 1, and each system's peak RSS.
"""
import csv
import statistics
import sys
from collections import defaultdict

PAIR = {
    "default": "kafka defaults | gregor defaults (durability=fsync)",
    "os": "kafka defaults | gregor durability=os",
    "fsync": "kafka log.flush.interval.messages=1 | gregor durability=fsync",
}

# Tables: (title, [(header, workload, metric, format)]). "*" sums a metric
# over both workloads of a round (load1: all values).
TABLES = [
    ("summary", [
        ("MB/s", "tput", "mb_s", "{:.1f}"),
        ("records/s", "tput", "rec_s", "{:.0f}"),
        ("e2e p50 ms", "e2e", "p50_ms", "{:.2f}"),
        ("e2e p99 ms", "e2e", "p99_ms", "{:.2f}"),
    ]),
    ("throughput: ProducerPerformance acks=all, --throughput -1; its send-to-ack latency", [
        ("MB/s", "tput", "mb_s", "{:.1f}"),
        ("records/s", "tput", "rec_s", "{:.0f}"),
        ("ack p50 ms", "tput", "p50_ms", "{:.0f}"),
        ("ack p99 ms", "tput", "p99_ms", "{:.0f}"),
        ("ack max ms", "tput", "max_ms", "{:.0f}"),
        ("brokers CPU s", "tput", "cpu_s", "{:.1f}"),
        ("of it sys s", "tput", "cpu_sys_s", "{:.1f}"),
        ("ISR shrinks", "tput", "isr_shrinks", "{:.0f}"),
        ("load", "tput", "load1", "{:.1f}"),
    ]),
    ("e2e: bench/e2e acks=all at {rate} records/s, scheduled send to consume", [
        ("p50 ms", "e2e", "p50_ms", "{:.2f}"),
        ("p99 ms", "e2e", "p99_ms", "{:.2f}"),
        ("max ms", "e2e", "max_ms", "{:.0f}"),
        ("slow 100ms", "e2e", "slow_intervals", "{:.0f}"),
        ("ack p50 ms", "e2e", "ack_p50_ms", "{:.2f}"),
        ("ack p99 ms", "e2e", "ack_p99_ms", "{:.2f}"),
        ("brokers CPU s", "e2e", "cpu_s", "{:.1f}"),
        ("of it sys s", "e2e", "cpu_sys_s", "{:.1f}"),
        ("ISR shrinks", "e2e", "isr_shrinks", "{:.0f}"),
        ("load", "e2e", "load1", "{:.1f}"),
    ]),
]
NOTES = """max ms: the slowest record (after the first second's warm-up); slow 100ms: how many
100 ms intervals of send time had a record slower than 100 ms; brokers CPU s: the three
brokers' CPU time during the run, of it sys s in the kernel; ISR shrinks: as the brokers'
logs report them during the run; load: the 1-minute load average as the run started."""


def main(path):
    vals = defaultdict(list)  # (profile, system, rf, workload, metric) -> values
    failures = []
    rates = set()
    for r in csv.DictReader(open(path)):
        if r["status"] != "ok":
            failures.append(r)
            continue
        key = (r["profile"], r["system"], r["rf"], r["workload"], r["metric"])
        vals[key].append(float(r["value"]))
        if r["workload"] == "e2e" and r["metric"] == "rate":
            rates.add(float(r["value"]))

    def cell(profile, system, rf, workload, metric, fmt):
        v = vals[(profile, system, rf, workload, metric)]
        if not v:
            return "-"
        out = fmt.format(statistics.median(v))
        if len(v) > 1:
            out += " [" + fmt.format(min(v)) + "-" + fmt.format(max(v)) + "]"
        return out

    profiles = sorted({k[0] for k in vals} | {f["profile"] for f in failures},
                      key=lambda p: list(PAIR).index(p) if p in PAIR else 99)
    rate = "/".join("%g" % r for r in sorted(rates)) or "?"
    for profile in profiles:
        systems = sorted({k[1] for k in vals if k[0] == profile}, key=lambda s: (s != "kafka", s))
        rfs = sorted({k[2] for k in vals if k[0] == profile and k[2] != "all"}, key=int)
        print(f"## {profile}: {PAIR.get(profile, profile)}")
        for title, cols in TABLES:
            if not any(vals[(profile, sy, rf, w, m)] for sy in systems for rf in rfs for _, w, m, _ in cols):
                continue
            print()
            if title == "summary":
                print(f"acks=all: throughput from ProducerPerformance; e2e p50/p99 from bench/e2e at {rate} records/s")
            else:
                print(title.format(rate=rate))
            rows = [["system", "RF"] + [c[0] for c in cols]]
            for system in systems:
                for rf in rfs:
                    if any(k[:3] == (profile, system, rf) for k in vals):
                        rows.append([system, rf] + [cell(profile, system, rf, w, m, f) for _, w, m, f in cols])
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip())
        print()
        print(NOTES)
        print()
        if len(rfs) > 1:
            lo, hi = rfs[0], rfs[-1]
            print(f"RF {hi} relative to RF {lo} (ratio of medians):")
            for system in systems:
                parts = []
                for name, w, m in (("MB/s", "tput", "mb_s"), ("throughput ack p99", "tput", "p99_ms"),
                                   ("e2e p50", "e2e", "p50_ms"), ("e2e p99", "e2e", "p99_ms")):
                    a, b = vals[(profile, system, lo, w, m)], vals[(profile, system, hi, w, m)]
                    if a and b and statistics.median(a) > 0:
                        parts.append(f"{name} x{statistics.median(b) / statistics.median(a):.2f}")
                print(f"  {system}: " + (", ".join(parts) or "-"))
            print()
        for system in systems:
            s, m = vals[(profile, system, "all", "rss", "hwm_sum_mib")], vals[(profile, system, "all", "rss", "hwm_max_mib")]
            if s:
                print(f"{system} peak RSS (VmHWM): {statistics.median(s):.0f} MiB for the three nodes, "
                      f"largest node {statistics.median(m):.0f} MiB")
        print()
    for f in failures:
        print(f"FAILED: {f['profile']} {f['system']} RF {f['rf']} {f['workload']} round {f['round']}: {f['status']}")


if __name__ == "__main__":
    main(sys.argv[1])
