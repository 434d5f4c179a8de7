#!/usr/bin/env python3
"""Is a Kafka-protocol broker up and serving metadata?

    python3 bench/probe.py HOST:PORT [--timeout SECONDS] [--quiet]

Opens one connection, asks ApiVersions v0 which Metadata versions the broker
serves, then sends a Metadata request (no topics) at a version between 3 and 8,
whose response starts with the broker list in one layout. Succeeds (exit 0)
when the broker list is non-empty and names the address that was dialled;
prints "brokers=N cluster_id=X controller_id=Y". Any error exits 1, with the
reason on stderr unless --quiet. Only the standard library is used, so the
same probe serves Apache Kafka and Gregor before any client is installed.
"""
import argparse
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals[0] if len(vals) == 1 else vals

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.buf[self.pos:self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s


def roundtrip(sock, api_key, version, corr, body):
    client = b"gregor-bench-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response ended")
        buf += chunk
    r = Reader(buf[4:])
    got = r.take(">i")
    if got != corr:
        raise ValueError(f"correlation id {got}, want {corr}")
    return r


def probe(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        r = roundtrip(s, API_VERSIONS, 0, 1, b"")
        err = r.take(">h")
        if err != 0:
            raise ValueError(f"ApiVersions error code {err}")
        versions = {}
        for _ in range(r.take(">i")):
            key, lo, hi = r.take(">hhh")
            versions[key] = (lo, hi)
        if API_METADATA not in versions:
            raise ValueError("broker does not list the Metadata API")
        lo, hi = versions[API_METADATA]
        v = max(lo, 3)
        if v > min(hi, 8):
            raise ValueError(f"Metadata versions {lo}..{hi} share none with 3..8")
        body = struct.pack(">i", 0)  # an empty topic list: brokers only
        if v >= 4:
            body += b"\x00"  # allow_auto_topic_creation
        if v >= 8:
            body += b"\x00\x00"  # include cluster/topic authorized operations
        r = roundtrip(s, API_METADATA, v, 2, body)
        r.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take(">i")):
            node = r.take(">i")
            bhost = r.string()
            bport = r.take(">i")
            r.string()  # rack
            brokers.append((node, bhost, bport))
        cluster_id = r.string()
        controller = r.take(">i")
    if not brokers:
        raise ValueError("Metadata lists no brokers")
    if not any(p == port for _, _, p in brokers):
        raise ValueError(f"Metadata brokers {brokers} do not include port {port}")
    return brokers, cluster_id, controller


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("address", help="host:port")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    host, _, port = a.address.rpartition(":")
    try:
        brokers, cluster_id, controller = probe(host or "127.0.0.1", int(port), a.timeout)
    except (OSError, ValueError, struct.error) as e:
        if not a.quiet:
            print(f"probe {a.address}: {e}", file=sys.stderr)
        return 1
    if not a.quiet:
        print(f"brokers={len(brokers)} cluster_id={cluster_id} controller_id={controller}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
