"""
Local delivery throughput: deliveries per second through the privilege-
separated spawner (fork, setuid, qmail-local logic, Maildir with fsync)
beside writing the same Maildir files in-process, in the same run.

    .venv/bin/python benchmarks/local.py [--count N] [--concurrency C] [--size BYTES] [--users U]

As root the recipients are uids 4242, 4243, ... (homes chowned to them), as
qmail would deliver; otherwise the invoking user.  With C{--users 1} (the
default) a delivery child serves many deliveries in a row; with as many
users as deliveries every delivery forks a child of its own (the worst
case; only as root).  Prints one line per path and the ratio spawner /
in-process (target: at least 0.5).
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


def make_root(base: str, size: int, users: int = 1) -> tuple[str, list[str], str]:
    root = os.path.join(base, "root")
    for sub in ("control", "users", "queue/mess/0", "alias", "home"):
        os.makedirs(os.path.join(root, sub))
    for path in (base, root, os.path.join(root, "home")):
        os.chmod(path, 0o755)
    homes = []
    lines = []
    for n in range(users):
        home = os.path.join(root, "home", f"bench{n}")
        uid, gid = (UID + n, GID + n) if os.getuid() == 0 else (UID, GID)
        for sub in ("", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
            os.chmod(os.path.join(home, sub), 0o700)
            if os.getuid() == 0:
                os.chown(os.path.join(home, sub), uid, gid)
        homes.append(home)
        lines.append(f"=bench{n}:bench{n}:{uid}:{gid}:{home}:::\n")
    with open(os.path.join(root, "users", "assign"), "w") as f:
        f.write("".join(lines) + ".\n")
    message = os.path.join(root, "queue", "mess", "0", "1")
    body = b"Subject: benchmark\nFrom: a@example.org\n\n" + (b"x" * 75 + b"\n") * max(1, size // 76)
    with open(message, "wb") as f:
        f.write(body)
    return root, homes, message


def in_process(homes: list[str], message: str, count: int) -> float:
    prefix = rpline("a@example.org") + dtline("bench0", "example.org")
    fd = os.open(message, os.O_RDONLY)
    try:
        start = time.perf_counter()
        for n in range(count):
            deliver_maildir(os.path.join(homes[n % len(homes)], "Maildir"), prefix, read_chunks(fd))
        return time.perf_counter() - start
    finally:
        os.close(fd)


@defer.inlineCallbacks
def through_spawner(reactor, root: str, message: str, count: int, concurrency: int, users: int):
    channel = LocalChannel(root, ControlReader(root), sink=None, reactor=reactor)
    channel.start()
    yield channel.when_ready()
    jobs = [DeliveryJob(1, message, "a@example.org", (f"bench{n}@example.org",)) for n in range(users)]
    remaining = iter(range(count))
    failures = []

    @defer.inlineCallbacks
    def worker():
        for n in remaining:
            [result] = yield channel.deliver(jobs[n % users])
            if result.status != "K":
                failures.append(result)

    start = time.perf_counter()
    yield defer.gatherResults([worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    yield channel.stop()
    if failures:
        raise SystemExit(f"spawner deliveries failed: {failures[:3]}")
    return elapsed


def count_new(homes: list[str]) -> int:
    return sum(len(os.listdir(os.path.join(home, "Maildir", "new"))) for home in homes)


def main(reactor, argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--users", type=int, default=1, help="distinct recipient uids (more than 1 only as root)")
    args = parser.parse_args(argv)
    if args.users > 1 and os.getuid() != 0:
        raise SystemExit("--users above 1 needs root (one uid per user)")
    base = tempfile.mkdtemp(prefix="pymta-bench-local-")
    try:
        root, homes, message = make_root(base, args.size, args.users)
        rates = {}
        inproc = in_process(homes, message, args.count)
        rates["in-process Maildir writes"] = args.count / inproc
        for concurrency in (1, args.concurrency):
            elapsed = yield through_spawner(reactor, root, message, args.count, concurrency, args.users)
            rates[f"spawner, {concurrency} in flight"] = args.count / elapsed
        delivered = count_new(homes)
        expected = args.count * 3
        print(f"{args.users} recipient uid(s) from {UID}, {args.count} deliveries per path, "
              f"message {os.path.getsize(message)} bytes, "
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
