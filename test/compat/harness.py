"""Tiny check runner shared by the Python compatibility suites.

Each suite creates a Suite, runs checks with @suite.check(...) (the function
runs immediately), and ends with suite.finish(), which prints exactly
"N passed, N failed" as its last line and exits non-zero on any failure.

Why not pytest: the suites must also run by hand against any broker with only
the client libraries installed, and CI reads the plain closing line.

Environment:
  BOOTSTRAP        host:port of the broker under test (required)
  COMPAT_ONLY      regex; run only checks whose name matches (for debugging)
  COMPAT_DEBUG=1   client library DEBUG logging to stderr
  COMPAT_TIMEOUT   default per-check timeout in seconds (default 30)
"""

import contextlib
import io
import logging
import os
import re
import signal
import socket
import sys
import time
import traceback
import uuid


class CheckTimeout(Exception):
    """Raised inside a check when its time budget runs out."""


class CheckFailed(AssertionError):
    pass


def expect(cond, msg):
    """Assert with a message that ends up in the FAIL line."""
    if not cond:
        raise CheckFailed(msg)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: got %r, want %r" % (what, got, want))


def wait_until(pred, timeout, interval=0.2, what="condition"):
    """Poll pred() until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise CheckFailed("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Suite:
    def __init__(self, name):
        self.name = name
        self.bootstrap = os.environ.get("BOOTSTRAP")
        if not self.bootstrap:
            print("%s: BOOTSTRAP (host:port) is not set" % name, file=sys.stderr)
            print("0 passed, 1 failed")
            sys.stdout.flush()
            os._exit(2)
        only = os.environ.get("COMPAT_ONLY")
        self.only = re.compile(only) if only else None
        self.default_timeout = float(os.environ.get("COMPAT_TIMEOUT", "30"))
        # A per-process nonce keeps topic names unique even when a suite is
        # run twice against the same long-lived broker.
        self.nonce = uuid.uuid4().hex[:6]
        self.passed = 0
        self.failed = 0
        self.failures = []
        level = logging.DEBUG if os.environ.get("COMPAT_DEBUG") == "1" else logging.ERROR
        logging.basicConfig(
            level=level, stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def topic(self, name):
        """A topic name unique to this suite run; `name` keeps it readable."""
        return "%s-%s-%s" % (self.name, self.nonce, name)

    def broker_reachable(self):
        host, port = self.bootstrap.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            return True
        except OSError:
            return False

    def check(self, name, timeout=None):
        """Decorator: run the function now as check `name` and record the result."""
        def run(fn):
            if self.only and not self.only.search(name):
                return fn
            budget = timeout or self.default_timeout
            started = time.monotonic()
            if not self.broker_reachable():
                # A dead broker fails each remaining check at once instead of
                # letting every client retry until its timeout.
                self.failed += 1
                self.failures.append((name, "broker %s unreachable" % self.bootstrap))
                print("FAIL %s: broker %s unreachable (connection refused)" % (name, self.bootstrap))
                sys.stdout.flush()
                return fn

            def on_alarm(signum, frame):
                raise CheckTimeout("check exceeded its %.0fs timeout" % budget)

            old = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, budget)
            err = None
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - a check must never abort the suite
                if isinstance(e, KeyboardInterrupt):
                    raise
                err = e
                tb = traceback.format_exc()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            took = time.monotonic() - started
            if err is None:
                self.passed += 1
                print("PASS %s (%.1fs)" % (name, took))
            else:
                self.failed += 1
                reason = "%s: %s" % (type(err).__name__, err) if str(err) else type(err).__name__
                self.failures.append((name, reason))
                print("FAIL %s (%.1fs): %s" % (name, took, reason))
                if not isinstance(err, CheckFailed):
                    # Unexpected exceptions: the traceback is the evidence.
                    sys.stderr.write("---- %s traceback ----\n%s" % (name, tb))
            sys.stdout.flush()
            return fn
        return run

    def finish(self):
        """Print the summary and exit without waiting on client threads.

        os._exit: client libraries keep background threads and atexit hooks
        that can block on a dead broker; the verdict is already decided.
        """
        if self.failures:
            print("-- %s failures --" % self.name)
            for name, reason in self.failures:
                print("  %s: %s" % (name, reason))
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if self.failed else 0)


@contextlib.contextmanager
def captured():
    """Capture what seed code prints; the text is part of what suites assert."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


def quiet_close(client):
    """Close a kafka-python client, best effort (producers get a 5 s bound)."""
    try:
        if type(client).__name__ == "KafkaProducer":
            client.close(timeout=5)
        else:
            client.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass
