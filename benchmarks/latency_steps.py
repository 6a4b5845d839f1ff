"""
Where one session's end of DATA -> C{250} goes (issue 19): the servers of
benchmarks/latency.py (C{twistd pymta}, C{pymta-smtpd} + C{pymta-send}, a
root made by C{pymta init}, queuesync C{fsync}) run with a probe that
takes a timestamp (CLOCK_MONOTONIC, comparable across the processes) at
each step of a message's way to the C{250}; one session sends N messages
and the median time of each step after the end of DATA is printed:

  eod        smtpd has the final C{.} (SMTPServerProtocol._finish_message)
  entry<     the early job (envelope and mess/N durable) is back in the reactor, if after eod
  staged     the queue sink has written the message and its envelope (page cache)
  commit>    the commit thread starts: fsyncs of the files and directories, the todo/ link
  commit<    the commit thread is done: the message is durable
  committed  back in the reactor thread with the receipt (pymta-send's, in split mode)
  reply      smtpd writes C{250 ok ... qp ...} (buffered by the transport)
  sent       the C{250} goes to the socket
  notify     the scheduler is told of the new message (first attempt planned, logged)

The probe wraps private names of pymta (it is a measuring tool, not a
test): a step whose name changed shows C{n=0}.

Usage: python benchmarks/latency_steps.py [--count 300] [--only pymta,pymta-split] [--queuesync fsync]
Needs root, as benchmarks/latency.py (no Postfix).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
OUT_ENV = "PYMTA_LATENCY_STEPS_OUT"
STEPS = ("entry<", "staged", "commit>", "commit<", "committed", "reply", "sent", "notify")
#: messages at the start of the session left out (imports, first files)
WARM_UP = 20


# -- the probe, in the server processes -----------------------------------

def install() -> None:
    """Wrap the steps' functions so each call appends C{[time, step]} to the file OUT_ENV names."""
    from twisted.internet import tcp

    from pymta.queue import groupcommit, scheduler, sink
    from pymta.smtpd import protocol

    path = f"{os.environ[OUT_ENV]}.{os.getpid()}"
    lock = threading.Lock()
    marks: list[tuple[float, str]] = []
    hooked: list[bool] = []

    def flush() -> None:
        with lock:
            with open(path, "a") as f:  # after twistd dropped root: the directory is world-writable
                f.writelines(json.dumps(m) + "\n" for m in marks)
            marks.clear()

    def mark(step: str) -> None:
        with lock:
            first = not marks and not hooked
            marks.append((time.monotonic(), step))
            full = len(marks) > 1000
        if first:  # the service runs in a child that leaves with os._exit: flush as the reactor stops
            from twisted.internet import reactor

            reactor.addSystemEventTrigger("after", "shutdown", flush)  # type: ignore[attr-defined]
            hooked.append(True)
        if full:
            flush()

    def around(owner: Any, name: str, before: str | None = None, after: str | None = None,
               when: Callable[..., bool] = lambda *a: True) -> None:
        original = getattr(owner, name, None)
        if original is None:  # not in this version of pymta: the step shows n=0
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            chosen = when(*args)
            if chosen and before:
                mark(before)
            result = original(*args, **kwargs)
            if chosen and after:
                mark(after)
            return result

        setattr(owner, name, wrapper)

    def is_queued_reply(*args: Any) -> bool:
        return isinstance(args[1], str) and args[1].startswith("250 ok ") and " qp " in args[1]

    def is_queued_send(*args: Any) -> bool:
        return bytes(args[1][:7]) == b"250 ok " and b" qp " in bytes(args[1])

    around(protocol.SMTPServerProtocol, "_finish_message", before="eod")
    around(sink._SinkWriter, "_entered", before="entry<")
    # staging: in _commit since the early path (finish() may return before it), in finish() before
    around(sink._SinkWriter, "_commit" if hasattr(sink._SinkWriter, "_commit") else "finish", after="staged")
    around(groupcommit, "commit_prepared", before="commit>", after="commit<")
    around(sink._SinkWriter, "_committed", before="committed")
    around(scheduler.Scheduler, "notify", after="notify")
    around(protocol.SMTPServerProtocol, "reply", before="reply", when=is_queued_reply)
    around(tcp.Connection, "writeSomeData", before="sent", when=is_queued_send)


def probed_twistd(args: list[str], log: str) -> subprocess.Popen:
    code = ("import sys; sys.path.insert(0, %r); import latency_steps; latency_steps.install(); "
            "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()" % HERE)
    return subprocess.Popen([sys.executable, "-c", code, "-n", "--pidfile=", f"--logfile={log}", *args],
                            cwd=PROJECT, stdin=subprocess.DEVNULL)


# -- the measurement ------------------------------------------------------

def per_message(marks: list[tuple[float, str]]) -> list[dict[str, float]]:
    """
    The marks cut into messages: each from its C{eod} to its C{notify} (the
    last step) or the next C{eod}, the first time of each step; a message
    counts once its C{sent} is there.
    """
    out: list[dict[str, float]] = []
    current: dict[str, float] | None = None
    for when, step in sorted(marks):
        if step == "eod":
            if current is not None and "sent" in current:
                out.append(current)
            current = {"eod": when}
        elif current is not None and step not in current:
            current[step] = when
            if step == "notify" and "sent" in current:
                out.append(current)
                current = None
    if current is not None and "sent" in current:
        out.append(current)
    return out[WARM_UP:]


def measure(name: str, where: str, count: int, queuesync: str) -> tuple[list[float], list[dict[str, float]]]:
    import end_to_end_bench
    from latency import one_session

    end_to_end_bench.twistd = probed_twistd  # PymtaServer starts its processes through it
    out_dir = os.path.join(where, "steps")
    os.makedirs(out_dir)
    os.chmod(out_dir, 0o1777)
    os.environ[OUT_ENV] = os.path.join(out_dir, "marks")
    server = end_to_end_bench.PymtaServer(where, split=(name == "pymta-split"), queuesync=queuesync)
    server.start()
    try:
        times = one_session(server.port, count + WARM_UP, 5120, server.rcpt)[WARM_UP:]
    finally:
        server.stop()
    marks: list[tuple[float, str]] = []
    for path in glob.glob(os.path.join(out_dir, "marks.*")):
        with open(path) as f:
            marks += [tuple(json.loads(line)) for line in f]  # type: ignore[misc]  # [time, step] pairs
    return times, per_message(marks)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--only", default="pymta,pymta-split")
    parser.add_argument("--queuesync", choices=("fsync", "syncfs"), default="fsync")
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("latency_steps: needs root (pymta's mail uid)")
    if not 1 <= args.count <= 5000:
        raise SystemExit("latency_steps: --count must be 1 to 5000")
    sys.path.insert(0, HERE)
    base = tempfile.mkdtemp(prefix="pymta-latency-steps-")
    os.chmod(base, 0o755)
    print(f"1 session, {args.count} x 5120 bytes; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"queuesync {args.queuesync}")
    try:
        for name in [n for n in args.only.split(",") if n]:
            where = os.path.join(base, name)
            os.makedirs(where)
            os.chmod(where, 0o755)
            times, messages = measure(name, where, args.count, args.queuesync)
            times.sort()
            print(f"\n{name}: client's end of DATA -> 250 p50 {1000 * times[len(times) // 2]:.3f} ms; "
                  f"median ms after smtpd's eod ({len(messages)} messages):")
            previous = "eod"
            for step in STEPS:
                have = [m for m in messages if step in m]
                if not have:
                    print(f"  {step:10s}      -  (n=0)")
                    continue
                at = statistics.median(1000 * (m[step] - m["eod"]) for m in have)
                delta = statistics.median(1000 * (m[step] - m[previous]) for m in have if previous in m)
                print(f"  {step:10s} {at:6.3f}  (+{delta:.3f} after {previous})  n={len(have)}")
                previous = step
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
