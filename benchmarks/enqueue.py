"""
Enqueue throughput: messages per second into the queue, beside the ceiling
of the filesystem measured in the same run.

    .venv/bin/python benchmarks/enqueue.py [--count N] [--seconds S] [--dir DIR] [--clients C]

Phases (each stops after N messages or S seconds, whichever comes first):

- ceiling: write + fsync of two small files (5 KB and 60 bytes) + a rename,
  in the same filesystem - the least any durable enqueue has to do;
- direct: L{pymta.queue.store.Queue} in this process (what C{pymta queue}
  does when no queue manager runs), 5 KB messages;
- inject: the blocking client through C{ROOT/run/inject.sock} to a queue
  manager in a child process (L{InjectServerFactory} + L{QueueSink}), one
  client, then C clients in parallel processes.

The phases run in interleaved rounds (the machine may be shared and fsync
latency drifts); each round's rates are divided by that round's ceiling and
the medians are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pymta.queue.client import enqueue_socket  # noqa: E402
from pymta.queue.inject import inject_socket_path  # noqa: E402
from pymta.queue.layout import QueueLayout  # noqa: E402
from pymta.queue.store import Queue  # noqa: E402

MESSAGE = b"Subject: benchmark\nFrom: a@example.org\n\n" + (b"x" * 63 + b"\n") * 80  # ~5 KB
RECIPIENTS = ["rcpt@example.net"]


def bounded(count: int, seconds: float, step) -> float:
    """Run C{step(i)} up to C{count} times or C{seconds}; returns operations per second."""
    start = time.perf_counter()
    done = 0
    while done < count and time.perf_counter() - start < seconds:
        step(done)
        done += 1
    return done / (time.perf_counter() - start)


def ceiling(workdir: str, count: int, seconds: float) -> float:
    d = workdir
    os.mkdir(d)

    def step(i: int) -> None:
        for name, data in ((f"a{i}", MESSAGE), (f"b{i}", b"u0\0p1\0Fa@example.org\0Trcpt@example.net\0" * 2)):
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
        os.rename(os.path.join(d, f"b{i}"), os.path.join(d, f"c{i}"))

    return bounded(count, seconds, step)


def direct(root: str, count: int, seconds: float) -> float:
    queue = Queue(QueueLayout(os.path.join(root, "queue")))

    def step(i: int) -> None:
        m = queue.begin("by uid 0", 0, 1)
        m.write(MESSAGE)
        m.commit("a@example.org", RECIPIENTS)

    return bounded(count, seconds, step)


def serve(root: str) -> None:
    """The queue manager's inject side, as pymta-send runs it."""
    from twisted.internet import reactor

    from pymta.queue.inject import InjectServerFactory, listen_inject
    from pymta.queue.store import QueueSink

    sink = QueueSink(Queue(QueueLayout(os.path.join(root, "queue"))), reactor)
    d = listen_inject(reactor, root, InjectServerFactory(sink))
    d.addCallback(lambda port: print("listening", flush=True))
    reactor.run()


def inject_client(args: tuple[str, int, float]) -> tuple[int, float]:
    root, count, seconds = args
    path = inject_socket_path(root)
    start = time.perf_counter()
    done = 0
    while done < count and time.perf_counter() - start < seconds:
        enqueue_socket(path, MESSAGE, "a@example.org", RECIPIENTS)
        done += 1
    return done, time.perf_counter() - start


def inject(root: str, count: int, seconds: float, clients: int) -> float:
    if clients == 1:
        done, elapsed = inject_client((root, count, seconds))
        return done / elapsed
    with multiprocessing.Pool(clients) as pool:
        start = time.perf_counter()
        results = pool.map(inject_client, [(root, count // clients, seconds)] * clients)
        elapsed = time.perf_counter() - start
    return sum(done for done, _ in results) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="messages per phase (default 1000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="time limit per phase (default 15)")
    parser.add_argument("--dir", default=None, help="where to put the test queue (default: a temporary directory)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--clients", type=int, default=4, help="parallel inject clients in the last phase (default 4)")
    parser.add_argument("--serve", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    workdir = tempfile.mkdtemp(prefix="pymta-bench-", dir=args.dir)
    server = None
    try:
        root = os.path.join(workdir, "root")
        QueueLayout(os.path.join(root, "queue")).create()
        print(
            f"enqueue benchmark: {len(MESSAGE)}-byte messages, up to {args.count} per phase or {args.seconds:g} s,"
            f" {args.rounds} rounds, in {workdir}"
        )
        # The machine is shared and fsync latency drifts: the phases run in
        # interleaved rounds, and each round's rate is compared with the
        # ceiling measured in the same round; medians are reported.
        server = subprocess.Popen([sys.executable, __file__, "--serve", root], stdout=subprocess.PIPE)
        if server.stdout.readline().strip() != b"listening":
            print("inject server did not start", file=sys.stderr)
            return 1
        names = ["direct writer", "inject socket, 1 client", f"inject socket, {args.clients} clients"]
        per_round = max(1, args.count // args.rounds)
        limit = args.seconds / args.rounds
        tops, rates = [], {name: [] for name in names}
        for r in range(args.rounds):
            top = ceiling(os.path.join(workdir, f"c{r}"), per_round, limit)
            tops.append(top)
            rates[names[0]].append(direct(root, per_round, limit) / top)
            rates[names[1]].append(inject(root, per_round, limit, 1) / top)
            rates[names[2]].append(inject(root, per_round, limit, args.clients) / top)
        top = statistics.median(tops)
        print(f"  {'ceiling (2 x write+fsync, rename)':<36} {top:8.0f} /s  (rounds: {', '.join(f'{t:.0f}' for t in tops)})")
        for name in names:
            ratio = statistics.median(rates[name])
            print(f"  {name:<36} {ratio * top:8.0f} /s  {100 * ratio:5.1f}% of ceiling (median of per-round ratios)")
        messages = sum(len(files) for _, _, files in os.walk(os.path.join(root, "queue", "todo")))
        print(f"  messages queued in total: {messages}")
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
