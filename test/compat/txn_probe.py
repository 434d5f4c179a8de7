#!/usr/bin/env python3
"""Does the broker under test serve transactions?

The transaction suites (txn_*.py, java/txn.sh, txn_dump_log.sh) need the
transactional APIs. Gregor serves them only once its transaction
coordinator lands; until then a suite would fail every check for one
missing feature. Each suite asks this probe first:

  - the broker advertises AddPartitionsToTxn (24), AddOffsetsToTxn (25),
    EndTxn (26) and TxnOffsetCommit (28) in ApiVersions: run the suite;
  - it does not, and GREGOR_COMPAT_TXN=1 is unset: the suite prints one
    SKIP line naming the missing APIs and "0 passed, 0 failed";
  - it does not, and GREGOR_COMPAT_TXN=1: the suite runs and fails, which
    is what CI wants once transactions are supposed to be there.

  python3 txn_probe.py host:port   exit 0: served; 3: missing (reason on stdout)
"""

import os
import socket
import struct
import sys

TXN_APIS = {24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit"}


def advertised_apis(bootstrap, timeout=5):
    """The API keys in an ApiVersions v0 answer (raw socket: no client library)."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        client = b"gregor-txn-probe"
        body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
        s.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("connection closed during ApiVersions")
            buf += chunk
    corr, err, n = struct.unpack(">ihi", buf[4:14])
    if corr != 7 or err != 0:
        raise OSError("ApiVersions answer: correlation %d, error %d" % (corr, err))
    return {struct.unpack(">h", buf[14 + 6 * i:16 + 6 * i])[0] for i in range(n)}


def missing_txn_apis(bootstrap):
    have = advertised_apis(bootstrap)
    return ["%s(%d)" % (name, key) for key, name in sorted(TXN_APIS.items()) if key not in have]


def required():
    return os.environ.get("GREGOR_COMPAT_TXN") == "1"


def skip_reason(bootstrap):
    """None when the suite should run; else the SKIP line's reason."""
    missing = missing_txn_apis(bootstrap)
    if not missing or required():
        return None
    return ("broker %s does not advertise %s: no transactions yet "
            "(GREGOR_COMPAT_TXN=1 runs the checks anyway)" % (bootstrap, ", ".join(missing)))


if __name__ == "__main__":
    why = skip_reason(sys.argv[1])
    if why:
        print(why)
        sys.exit(3)
    sys.exit(0)
