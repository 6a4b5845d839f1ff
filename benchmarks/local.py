"""
Local delivery throughput: deliveries per second through the privilege-
separated spawner (fork, setuid, qmail-local logic, Maildir with fsync)
beside writing the same Maildir files in-process, in the same run.

    .venv/bin/python benchmarks/local.py [--count N] [--concurrency C] [--size BYTES]

As root the recipient is uid/gid 4242 (a home chowned to it), as qmail would
deliver; otherwise the invoking user.  Prints one line per path and the
ratio spawner / in-process (target: at least 0.5).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from pymta.control import ControlReader  # noqa: E402
from pymta.interfaces import DeliveryJob  # noqa: E402
from pymta.local.channel import LocalChannel  # noqa: E402
from pymta.local.envelope import dtline, read_chunks, rpline  # noqa: E402
from pymta.local.maildir import deliver_maildir  # noqa: E402

UID = 4242 if os.getuid() == 0 else os.getuid()
GID = 4242 if os.getuid() == 0 else os.getgid()


def make_root(base: str, size: int) -> tuple[str, str, str]:
    root = os.path.join(base, "root")
    home = os.path.join(root, "home", "bench")
    for sub in ("control", "users", "queue/mess/0", "alias"):
        os.makedirs(os.path.join(root, sub))
    for sub in ("", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"):
        os.makedirs(os.path.join(home, sub), exist_ok=True)
        os.chmod(os.path.join(home, sub), 0o700)
    for path in (base, root, os.path.join(root, "home")):
        os.chmod(path, 0o755)
    if os.getuid() == 0:
        for dirpath, _, _ in os.walk(home):
            os.chown(dirpath, UID, GID)
    with open(os.path.join(root, "users", "assign"), "w") as f:
        f.write(f"=bench:bench:{UID}:{GID}:{home}:::\n.\n")
    message = os.path.join(root, "queue", "mess", "0", "1")
    body = b"Subject: benchmark\nFrom: a@example.org\n\n" + (b"x" * 75 + b"\n") * max(1, size // 76)
    with open(message, "wb") as f:
        f.write(body)
    return root, home, message


def in_process(home: str, message: str, count: int) -> float:
    maildir = os.path.join(home, "Maildir")
    prefix = rpline("a@example.org") + dtline("bench", "example.org")
    fd = os.open(message, os.O_RDONLY)
    try:
        start = time.perf_counter()
        for _ in range(count):
            deliver_maildir(maildir, prefix, read_chunks(fd))
        return time.perf_counter() - start
    finally:
        os.close(fd)


@defer.inlineCallbacks
def through_spawner(reactor, root: str, message: str, count: int, concurrency: int):
    channel = LocalChannel(root, ControlReader(root), sink=None, reactor=reactor)
    channel.start()
    yield channel.when_ready()
    job = DeliveryJob(1, message, "a@example.org", ("bench@example.org",))
    remaining = iter(range(count))
    failures = []

    @defer.inlineCallbacks
    def worker():
        for _ in remaining:
            [result] = yield channel.deliver(job)
            if result.status != "K":
                failures.append(result)

    start = time.perf_counter()
    yield defer.gatherResults([worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    yield channel.stop()
    if failures:
        raise SystemExit(f"spawner deliveries failed: {failures[:3]}")
    return elapsed


def count_new(home: str) -> int:
    return len(os.listdir(os.path.join(home, "Maildir", "new")))


def main(reactor, argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="pymta-bench-local-")
    try:
        root, home, message = make_root(base, args.size)
        rates = {}
        inproc = in_process(home, message, args.count)
        rates["in-process Maildir writes"] = args.count / inproc
        for concurrency in (1, args.concurrency):
            elapsed = yield through_spawner(reactor, root, message, args.count, concurrency)
            rates[f"spawner, {concurrency} in flight"] = args.count / elapsed
        delivered = count_new(home)
        expected = args.count * 3
        print(f"uid {UID}, {args.count} deliveries per path, message {os.path.getsize(message)} bytes, "
              f"{delivered}/{expected} files in new/")
        for name, rate in rates.items():
            print(f"{name:32s} {rate:8.1f} deliveries/s")
        base_rate = rates["in-process Maildir writes"]
        for name, rate in rates.items():
            if name.startswith("spawner"):
                print(f"ratio {name} / in-process: {rate / base_rate:.2f}")
        if delivered != expected:
            raise SystemExit("some deliveries are missing")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    task.react(main, [sys.argv[1:]])
