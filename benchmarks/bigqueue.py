"""
Benchmark of a big deferred queue at restart (issue 19): N messages whose
remote deliveries wait for their retry time, as a restart finds them.

    .venv/bin/python benchmarks/bigqueue.py memory --sizes 1000,10000
    .venv/bin/python benchmarks/bigqueue.py load --sizes 1000,10000
    .venv/bin/python benchmarks/bigqueue.py calls --sizes 1000,10000
    .venv/bin/python benchmarks/bigqueue.py restart -n 5000

C{memory}: in a fresh child per size, the scheduler (on a
L{twisted.internet.task.Clock}, instant channels) loads the queue; printed
are the bytes tracemalloc counts per deferred message once the load is
over, and the child's peak RSS.

C{load}: the scheduler's cost per message as the queue grows: CPU seconds
to load N deferred messages, then to retry them all (C{doqueue}) through an
instant channel that defers again, per message, at each size (flat = the
ratio of the largest to the smallest size close to 1.0).

C{calls}: as C{load}, counting Python function calls per message
(cProfile) instead of CPU time: flat in N whatever else runs on the
machine.

C{restart}: a root made with C{pymta init}, N deferred messages in its
queue, C{twistd pymta} started on it; while the queue loads, a client
connects and sends one message, timing connect -> C{250} after DATA; the
same on an empty queue (C{--window} seconds of sessions, one after
another, from the moment it listens).  Also printed: the daemon's RSS once
its memory has settled, and the ratio of the p50s (goal: at most 2).  Needs
root (C{pymta init}'s users), as benchmarks/end_to_end_bench.py.
Postfix's figures on the same queue: benchmarks/bigqueue_vs_postfix.py.

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


def build_deferred_queue(queuedir: str, n: int, due_in: int = 3600, recipients: int = 1) -> list[int]:
    """
    N preprocessed messages in C{queuedir} (made with split 23 if need be)
    whose remote deliveries are deferred: each has a message file, an info
    file born an hour ago and a remote channel file whose mtime (its next
    attempt) is C{due_in} seconds from now.  Each file gets its directory's
    owner and group (a queue made by C{pymta init}).  Returns their ids.
    """
    from pymta.queue.layout import QueueLayout

    sys.path.insert(0, HERE)
    from scheduler import write_message_file  # the message file as the scheduler benchmark writes it

    if not os.path.exists(os.path.join(queuedir, "split")):
        QueueLayout(queuedir, split=23).create()
    layout = QueueLayout(queuedir)
    owners: dict[str, tuple[int, int]] = {}

    def own(path: str) -> None:
        where = os.path.dirname(path)
        if where not in owners:
            st = os.stat(where)
            owners[where] = (st.st_uid, st.st_gid)
        if os.geteuid() == 0:
            os.chown(path, *owners[where])

    body = b"Received: (pymta 1 invoked by uid 0); 1 Nov 2026 10:00:00 -0000\nSubject: x\n\n" + b"y" * 2000 + b"\n"
    rcpts = b"".join(b"T" + f"user{k}@dest{k}.invalid".encode() + b"\0" for k in range(recipients))
    now = int(time.time())
    ids = []
    for i in range(n):
        mid = write_message_file(layout, i, body)
        with open(layout.info(mid), "wb") as f:
            f.write(b"Fsender@mail.example\0")
        os.utime(layout.info(mid), (now - 3600, now - 3600))
        with open(layout.remote(mid), "wb") as f:
            f.write(rcpts)
        os.utime(layout.remote(mid), (now + due_in, now + due_in))
        for path in (layout.mess(mid), layout.info(mid), layout.remote(mid)):
            own(path)
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


def _connect_to_250(port: int, rcpt: str) -> float:
    """Seconds from connect() to the C{250} after DATA for one small message (one session)."""
    import socket

    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        f = s.makefile("rb")

        def reply() -> bytes:
            while True:
                line = f.readline()
                if not line or line[3:4] != b"-":
                    return line

        reply()
        for command in (b"EHLO bench.example", b"MAIL FROM:<sender@example.org>", f"RCPT TO:<{rcpt}>".encode(),
                        b"DATA"):
            s.sendall(command + b"\r\n")
            reply()
        s.sendall(b"Subject: new\r\n\r\nnew mail during the load\r\n.\r\n")
        last = reply()
        elapsed = time.perf_counter() - start
        s.sendall(b"QUIT\r\n")
    if not last.startswith(b"250"):
        raise SystemExit(f"the message was not accepted: {last!r}")
    return elapsed


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _sessions(server, seconds: float) -> list[float]:  # type: ignore[no-untyped-def]
    """New sessions one after another for C{seconds}, each sending a message: their connect -> 250 times."""
    times = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        times.append(_connect_to_250(server.port, server.rcpt))
    return times


def restart(n: int, workdir: str, window: float) -> dict:
    """
    C{twistd pymta} on a root made by C{pymta init} (queuesync as init
    writes it): new sessions for C{window} s on the empty queue, then
    restarted on N deferred messages and new sessions for C{window} s from
    the moment it listens (while the queue loads); the daemon's RSS after each.
    """
    import statistics

    sys.path.insert(0, HERE)
    from end_to_end_bench import PymtaServer  # a pymta init root and its twistd, as the end-to-end benchmark runs it
    from smtpd_bench import wait_for

    base = tempfile.mkdtemp(prefix="pymta-bigqueue-", dir=workdir)
    os.chmod(base, 0o755)  # the daemon's users must reach the root
    try:
        server = PymtaServer(base, split=False, queuesync="fsync")
        result: dict = {"messages": n}
        for label, size in (("empty", 0), ("loading", n)):
            if size:
                build_deferred_queue(os.path.join(server.root, "queue"), size)
                os.sync()
            server.procs = []
            server.start()
            times = _sessions(server, window)
            pid = server.pids()[0]
            wait_for(lambda: _settled_rss(pid), 600, "the daemon's memory to settle")
            result[label] = {"sessions": len(times), "p50_ms": statistics.median(times) * 1e3,
                             "max_ms": max(times) * 1e3, "rss_mib": _rss_kib(pid) / 1024}
            server.stop()
        result["p50_ratio"] = result["loading"]["p50_ms"] / result["empty"]["p50_ms"]
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


_last_rss: dict[int, int] = {}


def _settled_rss(pid: int) -> bool:
    """True once the RSS of C{pid} is the same as 2 s ago (the queue is loaded)."""
    rss = _rss_kib(pid)
    settled = _last_rss.get(pid) == rss
    _last_rss[pid] = rss
    if not settled:
        time.sleep(2)
    return settled


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
    # (code from before the sliced load, measured for benchmarks/README.md, has no loader: loaded at start)
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


def _child_load(n: int, workdir: str, count_calls: bool = False) -> dict:
    """
    CPU per message to load N deferred messages, then to retry them all;
    C{count_calls}: Python function calls per message instead (cProfile:
    slower, but not timing noise).
    """
    import cProfile
    import pstats

    from twisted.internet import task

    root = _root(workdir, n)
    try:
        clock = task.Clock()
        clock.advance(time.time())
        channel = _DeferringChannel()
        scheduler = _scheduler(root, clock, channel)
        profile = cProfile.Profile() if count_calls else None

        def measured(step) -> float:  # type: ignore[no-untyped-def]
            if profile is None:
                t0 = _cpu()
                step()
                return (_cpu() - t0) / n * 1e6
            profile.enable()
            step()
            profile.disable()
            calls = pstats.Stats(profile).total_calls / n
            profile.clear()
            return calls

        def retry_all() -> None:
            before = scheduler.stats["deferred"]
            scheduler.run_all_now()
            while scheduler.stats["deferred"] - before < n:
                clock.advance(0)

        unit = "calls" if count_calls else "us"
        load = measured(lambda: _load_until_done(scheduler, clock))
        retry = measured(retry_all)
        return {"messages": n, f"load_{unit}_per_msg": load, f"retry_{unit}_per_msg": retry}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_child(kind: str, n: int, workdir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=PROJECT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--workdir", workdir, "--child", kind, str(n)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["memory", "load", "calls", "restart"], default="memory")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workdir", default=None, help="where the temporary queues go (default: system temp)")
    parser.add_argument("-n", type=int, default=5000, help="restart: deferred messages in the queue")
    parser.add_argument("--window", type=float, default=5.0, help="restart: seconds of new sessions measured")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.gettempdir()
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        if kind == "calls":
            print(json.dumps(_child_load(n, workdir, count_calls=True)))
        else:
            print(json.dumps({"memory": _child_memory, "load": _child_load}[kind](n, workdir)))
        return 0
    if args.what == "restart":
        if not 1 <= args.n <= MAX_N:
            parser.error(f"-n must be 1..{MAX_N}")
        result = restart(args.n, workdir, args.window)
        print(json.dumps(result))
        sys.path.insert(0, HERE)
        from results import print_result

        print_result(f"queue{args.n}", "restart_p50_over_empty", result["p50_ratio"], None, higher_is_better=False,
                     goal="pymta<=2")
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(not 1 <= n <= MAX_N for n in sizes):
        parser.error(f"sizes must be 1..{MAX_N}")
    for n in sizes:
        print(json.dumps(_run_child(args.what, n, workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
