"""
Benchmark of pymta-send's scheduler: N queued messages through an instant
in-process channel, on the real reactor.

    .venv/bin/python benchmarks/scheduler.py [--sizes 1000,10000] [--recipients 2]

For each size, in a fresh child process (so peak memory is per run):

- C{todo}: N messages committed to todo/ (as the queue writer leaves them);
  the scheduler preprocesses (with fsyncs), delivers and removes them all;
- C{resume}: N messages already preprocessed (info + channel files), as
  after a restart; the scheduler resumes, delivers and removes them.

Printed: messages per second, microseconds per message, peak RSS of the
child, and the ratio of the per-message time at the largest vs the smallest
size (flat = close to 1.0).  Queue setup is not timed.  Every qmail log
line is formatted and written to /dev/null, as a real log would cost.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymta.queue.layout import QueueLayout

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)


def write_message_file(layout: QueueLayout, i: int, body: bytes) -> int:
    """Write C{body} in pid/ and link it into mess/ under its inode number, as inject does; the new id."""
    tmp = os.path.join(layout.dir("pid"), f"bench.{i}")
    with open(tmp, "wb") as f:
        f.write(body)
        mid = os.fstat(f.fileno()).st_ino
    os.link(tmp, layout.mess(mid))
    os.unlink(tmp)
    return mid


def _make_queue(root: str, n: int, recipients: int, preprocessed: bool) -> None:
    from pymta.queue.layout import QueueLayout

    os.makedirs(os.path.join(root, "control"))
    with open(os.path.join(root, "control", "me"), "w") as f:
        f.write("mail.example\n")
    with open(os.path.join(root, "control", "concurrencyremote"), "w") as f:
        f.write("200\n")
    layout = QueueLayout(os.path.join(root, "queue"), split=23)
    layout.create()
    body = b"Received: (pymta 1 invoked by uid 0); 1 Nov 2026 10:00:00 -0000\nSubject: x\n\n" + b"y" * 2000 + b"\n"
    rcpts = [f"user{k}@dest{k}.example" for k in range(recipients)]
    now = time.time()
    for i in range(n):
        mid = write_message_file(layout, i, body)
        if preprocessed:
            with open(layout.info(mid), "wb") as f:
                f.write(b"Fsender@mail.example\0")
            with open(layout.remote(mid), "wb") as f:
                f.write(b"".join(b"T" + r.encode() + b"\0" for r in rcpts))
            os.utime(layout.remote(mid), (now - 1, now - 1))
        else:
            with open(layout.todo(mid), "wb") as f:
                f.write(b"u0\0p1\0Fsender@mail.example\0" + b"".join(b"T" + r.encode() + b"\0" for r in rcpts))


def _child(mode: str, n: int, recipients: int, workdir: str) -> dict:
    from twisted.internet import defer, reactor
    from twisted.logger import Logger, formatEvent
    from twisted.python.threadpool import ThreadPool

    from pymta.control import ControlReader
    from pymta.interfaces import DeliveryResult
    from pymta.queue.layout import QueueLayout
    from pymta.queue.disk import QueueDisk
    from pymta.queue.qmaillog import QmailLog
    from pymta.queue.scheduler import Scheduler

    root = tempfile.mkdtemp(prefix="pymta-bench-", dir=workdir)
    try:
        _make_queue(root, n, recipients, preprocessed=(mode == "resume"))
        os.sync()  # the setup's dirty pages must not be written back during the timed run

        class InstantChannel:
            max_recipients = 100

            def start(self):
                pass

            def deliver(self, job):
                return defer.succeed([DeliveryResult("K", "accepted\n")] * len(job.recipients))

            def stop(self):
                return None

        devnull = open(os.devnull, "w")
        lines = [0]

        def observe(event: dict) -> None:
            devnull.write(formatEvent(event) + "\n")
            lines[0] += 1

        layout = QueueLayout(os.path.join(root, "queue"))
        scheduler = Scheduler(
            QueueDisk.plain(layout), ControlReader(root), {"local": InstantChannel(), "remote": InstantChannel()}, None, reactor,
            log=QmailLog(Logger(namespace="pymta.send", observer=observe)),
            threadpool=ThreadPool(minthreads=1, maxthreads=1, name="bench-preprocess"),  # as build_send_service
        )
        result: dict = {}

        def check() -> None:
            if scheduler.stats["messages_done"] >= n:
                result["elapsed"] = time.perf_counter() - result["start"]
                usage = resource.getrusage(resource.RUSAGE_SELF)
                result["cpu"] = usage.ru_utime + usage.ru_stime - result["cpu0"]
                scheduler.threadpool.stop()
                reactor.stop()
            elif time.perf_counter() - result["start"] > 600:
                result["elapsed"] = None
                scheduler.threadpool.stop()
                reactor.stop()
            else:
                reactor.callLater(0.01, check)

        def go() -> None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            result["cpu0"] = usage.ru_utime + usage.ru_stime
            result["start"] = time.perf_counter()
            scheduler.startService()
            check()

        reactor.callWhenRunning(go)
        reactor.run()
        elapsed = result["elapsed"]
        return {
            "mode": mode,
            "messages": n,
            "recipients": recipients,
            "elapsed_s": elapsed,
            "msgs_per_s": n / elapsed if elapsed else None,
            "us_per_msg": elapsed / n * 1e6 if elapsed else None,
            "cpu_us_per_msg": result.get("cpu", 0) / n * 1e6,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "log_lines": lines[0],
            "delivered": scheduler.stats["delivered"],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--recipients", type=int, default=2, help="remote recipients per message")
    parser.add_argument("--modes", default="todo,resume")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest counts")
    parser.add_argument("--workdir", default=None, help="where the temporary queues go (default: system temp)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "N", "RECIPIENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.gettempdir()
    if args.child:
        mode, n, recipients = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(_child(mode, n, recipients, workdir)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    env = dict(os.environ, PYTHONPATH=PROJECT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"{'mode':<7} {'messages':>8} {'msgs/s':>9} {'us/msg':>8} {'cpu us/msg':>11} {'peak RSS MiB':>13} {'log lines':>10}")
    for mode in args.modes.split(","):
        per_size = {}
        cpu_per_size = {}
        for n in sizes:
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--workdir", workdir, "--child", mode, str(n),
                     str(args.recipients)],
                    check=True, capture_output=True, text=True, env=env,
                ).stdout
                r = json.loads(out.strip().splitlines()[-1])
                if r["elapsed_s"] is not None:
                    runs.append(r)
            if not runs:
                print(f"{mode:<7} {n:>8} did not finish in 600 s")
                continue
            r = min(runs, key=lambda x: x["elapsed_s"])
            per_size[n] = r["us_per_msg"]
            cpu_per_size[n] = min(x["cpu_us_per_msg"] for x in runs)
            print(f"{mode:<7} {n:>8} {r['msgs_per_s']:>9.0f} {r['us_per_msg']:>8.0f} {cpu_per_size[n]:>11.0f} "
                  f"{r['peak_rss_mib']:>13.1f} {r['log_lines']:>10}")
        if len(per_size) >= 2:
            lo, hi = min(per_size), max(per_size)
            print(f"{mode:<7} per message at {hi} vs {lo} queued: wall x{per_size[hi] / per_size[lo]:.2f}, "
                  f"cpu x{cpu_per_size[hi] / cpu_per_size[lo]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
