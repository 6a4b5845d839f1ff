"""
Remote delivery throughput: messages per second from pymta's queue to
Postfix's smtp-sink on 127.0.0.1.

    .venv/bin/python benchmarks/remote.py [--count N] [--concurrency 20,100] [--seconds S]

For each concurrency C, in a fresh child process: a queue with N queued
messages (5 KB, one remote recipient each) is made with pymta's queue
writer, smtp-sink is started on a free loopback port, and pymta-send's
service (scheduler + RemoteChannel, smtproutes pointing at the sink,
concurrencyremote C) is started; the time from start until the queue is
empty is measured.  The sink's own delivery counter is checked against N.
Bounded: at most S seconds per run (the run is reported as incomplete).

C{--mode channel} measures RemoteChannel.deliver() alone (no scheduler,
no queue files); C{--idle-seconds 0} turns connection reuse off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SMTP_SINK = "/usr/sbin/smtp-sink"
MESSAGE = b"Subject: benchmark\nFrom: a@example.org\n\n" + (b"x" * 63 + b"\n") * 80  # ~5 KB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(root: str, count: int, concurrency: int, port: int) -> None:
    from pymta.queue.layout import QueueLayout
    from pymta.queue.disk import QueueDisk
    from pymta.queue.store import Queue

    os.makedirs(os.path.join(root, "control"))
    controls = {
        "me": "bench.example",
        "concurrencyremote": str(concurrency),
        "smtproutes": f":127.0.0.1:{port}",
        "timeoutremote": "60",
        "timeoutconnect": "10",
    }
    for name, value in controls.items():
        with open(os.path.join(root, "control", name), "w") as f:
            f.write(value + "\n")
    layout = QueueLayout.for_root(root)
    layout.create()
    queue = Queue(QueueDisk.plain(layout))
    for i in range(count):
        pending = queue.begin("from network", os.getuid(), os.getpid())
        pending.write(MESSAGE)
        pending.commit("a@example.org", [f"rcpt{i}@sink.example"])


def queued(root: str) -> int:
    mess = os.path.join(root, "queue", "mess")
    return sum(len(os.listdir(os.path.join(mess, d))) for d in os.listdir(mess))


def one_run(count: int, concurrency: int, seconds: float, idle_seconds: float = 3.0, mode: str = "queue") -> dict:
    """Runs in a child process (a reactor runs once per process)."""
    from twisted.internet import reactor, task


    from pymta.control import ControlReader
    from pymta.queue.service import build_send_service
    from pymta.remote.channel import RemoteChannel

    if os.environ.get("PYMTA_BENCH_LOG"):
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    work = tempfile.mkdtemp(prefix="pymta-bench-remote-")
    root = os.path.join(work, "root")
    port = free_port()
    prepare(root, count, concurrency, port)
    sink_args = [SMTP_SINK, "-c", "-u", "nobody", f"127.0.0.1:{port}", "1024"]
    sink_output = open(os.path.join(work, "sink.out"), "w+b")  # a pipe would fill up and stall the sink
    sink = subprocess.Popen(sink_args, stdout=sink_output, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    reader = ControlReader(root)
    channel = RemoteChannel(root, reader, reactor=reactor, idle_seconds=idle_seconds)
    result: dict = {"concurrency": concurrency, "count": count, "idle_seconds": idle_seconds, "mode": mode}
    if mode == "channel":
        return channel_only(work, channel, count, concurrency, seconds, result, sink, sink_output)
    service, _ = build_send_service(root, reader, {"remote": channel}, reactor, signals=False)
    start = time.perf_counter()

    def check() -> None:
        left = queued(root)
        elapsed = time.perf_counter() - start
        if left == 0 or elapsed > seconds:
            result.update(seconds=elapsed, left=left, rate=(count - left) / elapsed)
            poll.stop()
            d = service.stopService()
            d.addBoth(lambda _: reactor.stop())

    service.startService()
    poll = task.LoopingCall(check)
    poll.start(0.02, now=False)
    reactor.run()
    return finish_sink(work, sink, sink_output, result)


def finish_sink(work: str, sink: subprocess.Popen, sink_output, result: dict) -> dict:
    sink.terminate()
    sink.wait(timeout=10)
    sink_output.seek(max(0, os.path.getsize(sink_output.name) - 200))
    output = sink_output.read().decode("ascii", "replace")
    sink_output.close()
    numbers = re.findall(r"mesg=(\d+)", output)
    result["sink_count"] = int(numbers[-1]) if numbers else None
    if result["left"] == 0 or not os.environ.get("PYMTA_BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        result["workdir"] = work
    return result


def channel_only(work: str, channel, count: int, concurrency: int, seconds: float, result: dict, sink, sink_output) -> dict:
    """RemoteChannel.deliver() alone, C at a time, without the scheduler and its queue files."""
    from twisted.internet import defer, reactor

    from pymta.interfaces import SUCCESS, DeliveryJob

    path = os.path.join(work, "message")
    with open(path, "wb") as f:
        f.write(MESSAGE)
    limit = defer.DeferredSemaphore(concurrency)
    ok = [0]
    start = time.perf_counter()

    def one(i: int) -> "defer.Deferred":
        if time.perf_counter() - start > seconds:
            return defer.succeed(None)
        job = DeliveryJob(i, path, "a@example.org", (f"rcpt{i}@sink.example",))
        return channel.deliver(job).addCallback(lambda r: ok.__setitem__(0, ok[0] + (r[0].status == SUCCESS)))

    @defer.inlineCallbacks
    def run() -> "defer.Generator":
        yield defer.gatherResults([limit.run(one, i) for i in range(count)])
        elapsed = time.perf_counter() - start
        result.update(seconds=elapsed, left=count - ok[0], rate=ok[0] / elapsed)
        yield channel.stop()
        reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    return finish_sink(work, sink, sink_output, result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", default="20,100")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="connection reuse (0: a new connection per message)")
    parser.add_argument("--mode", choices=("queue", "channel"), default="queue",
                        help="queue: the whole pymta-send service; channel: RemoteChannel.deliver() alone")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.count, args.one, args.seconds, args.idle_seconds, args.mode)))
        return 0
    if not os.path.exists(SMTP_SINK):
        print("smtp-sink not found: run benchmarks/remote_install_postfix.sh as root", file=sys.stderr)
        return 1
    print(f"mode {args.mode}, connection reuse {'off' if args.idle_seconds <= 0 else f'{args.idle_seconds:g} s'}")
    print(f"{'concurrencyremote':>17} {'messages':>8} {'seconds':>8} {'msgs/s':>8} {'sink count':>10}")
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", str(concurrency), "--count", str(args.count),
             "--seconds", str(args.seconds), "--idle-seconds", str(args.idle_seconds), "--mode", args.mode],
            capture_output=True, text=True, timeout=args.seconds + 120,
        )
        lines = [l for l in child.stdout.splitlines() if l.startswith("{")]
        if child.returncode != 0 or not lines:
            print(f"run with concurrency {concurrency} failed:\n{child.stderr[-3000:]}", file=sys.stderr)
            return 1
        r = json.loads(lines[-1])
        note = "" if r["left"] == 0 else f"  (incomplete: {r['left']} left)"
        print(f"{r['concurrency']:>17} {r['count']:>8} {r['seconds']:>8.2f} {r['rate']:>8.1f} {r['sink_count']!s:>10}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
