"""
Enqueue throughput: messages per second into the queue, beside the ceiling
of the filesystem measured in the same run.

    .venv/bin/python benchmarks/enqueue.py [--count N] [--seconds S] [--dir DIR] [--clients C]

What is measured (5 KB messages, one recipient):

- ceiling: write + fsync of two small files (5 KB and 80 bytes) + a rename,
  in the same filesystem - the least any durable enqueue has to do;
- direct: L{pymta.queue.store.Queue} in this process (what C{pymta queue}
  does when no queue manager runs);
- inject, 1 client: the blocking client through C{ROOT/run/inject.sock} to
  a queue manager in a child process (L{InjectServerFactory} + L{QueueSink},
  as C{pymta-send} runs them);
- inject, C clients: C client processes at once.

The machine may be shared, and fsync latency then swings by 10x within
seconds.  So the three sequential measurements are interleaved operation by
operation (ceiling, direct, inject, ceiling, ...) and each rate is
1 / median latency; the parallel clients run in rounds alternating with
ceiling rounds, each round compared with its neighbour.  Bounded: at most
N operations of each kind, at most S seconds per part.
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
from pymta.queue.framing import inject_socket_path  # noqa: E402
from pymta.queue.layout import QueueLayout  # noqa: E402
from pymta.queue.disk import QueueDisk  # noqa: E402
from pymta.queue.store import Queue  # noqa: E402

MESSAGE = b"Subject: benchmark\nFrom: a@example.org\n\n" + (b"x" * 63 + b"\n") * 80  # ~5 KB
SENDER = "a@example.org"
RECIPIENTS = ["rcpt@example.net"]
ENVELOPE = b"u0\0p1\0Fa@example.org\0Trcpt@example.net\0" * 2


class Ceiling:
    """Two small files written and fsynced, one renamed: per call."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.n = 0
        os.mkdir(directory)

    def __call__(self) -> None:
        self.n += 1
        for name, data in ((f"a{self.n}", MESSAGE), (f"b{self.n}", ENVELOPE)):
            fd = os.open(os.path.join(self.directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
        os.rename(os.path.join(self.directory, f"b{self.n}"), os.path.join(self.directory, f"c{self.n}"))


def direct_writer(root: str):
    queue = Queue(QueueDisk.plain(QueueLayout(os.path.join(root, "queue"))))

    def step() -> None:
        m = queue.begin("by uid 0", 0, 1)
        m.write(MESSAGE)
        m.commit(SENDER, RECIPIENTS)

    return step


def inject_once(root: str):
    path = inject_socket_path(root)
    return lambda: enqueue_socket(path, MESSAGE, SENDER, RECIPIENTS)


def serve(root: str) -> None:
    """The queue manager's inject side, as pymta-send runs it."""
    from twisted.internet import reactor

    from pymta.queue.injectserver import InjectServerFactory, listen_inject
    from pymta.queue.sink import QueueSink

    sink = QueueSink(Queue(QueueDisk.plain(QueueLayout(os.path.join(root, "queue")))), reactor)
    d = listen_inject(reactor, root, InjectServerFactory(sink))
    d.addCallback(lambda port: print("listening", flush=True))
    reactor.run()


def interleaved(count: int, seconds: float, steps: dict) -> dict[str, list[float]]:
    """Latencies of each step, run in turn, up to C{count} each or C{seconds} in all."""
    latencies: dict[str, list[float]] = {name: [] for name in steps}
    deadline = time.perf_counter() + seconds
    for _ in range(count):
        if time.perf_counter() > deadline:
            break
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            latencies[name].append(time.perf_counter() - t)
    return latencies


def _client(args: tuple[str, int, float]) -> int:
    root, count, seconds = args
    step = inject_once(root)
    deadline = time.perf_counter() + seconds
    done = 0
    while done < count and time.perf_counter() < deadline:
        step()
        done += 1
    return done


def parallel_rounds(root: str, workdir: str, count: int, seconds: float, clients: int, rounds: int) -> list[tuple[float, float]]:
    """C{(clients' rate, ceiling rate)} per round."""
    out = []
    per_round = max(clients, count // rounds)
    limit = seconds / rounds / 2
    with multiprocessing.Pool(clients) as pool:
        for r in range(rounds):
            ceiling = Ceiling(os.path.join(workdir, f"round{r}"))
            start = time.perf_counter()
            done = 0
            while done < per_round and time.perf_counter() - start < limit:
                ceiling()
                done += 1
            top = done / (time.perf_counter() - start)
            start = time.perf_counter()
            done = sum(pool.map(_client, [(root, per_round // clients, limit)] * clients))
            out.append((done / (time.perf_counter() - start), top))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="operations of each kind (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per part (default 20)")
    parser.add_argument("--dir", default=None, help="where to put the test queue (default: a temporary directory)")
    parser.add_argument("--clients", type=int, default=4, help="parallel inject clients (default 4)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the parallel part (default 6)")
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
        print(f"enqueue benchmark: {len(MESSAGE)}-byte messages, up to {args.count} of each, in {workdir}")
        server = subprocess.Popen([sys.executable, __file__, "--serve", root], stdout=subprocess.PIPE)
        if server.stdout.readline().strip() != b"listening":
            print("inject server did not start", file=sys.stderr)
            return 1
        lat = interleaved(
            args.count,
            args.seconds,
            {
                "ceiling": Ceiling(os.path.join(workdir, "ceiling")),
                "direct": direct_writer(root),
                "inject": inject_once(root),
            },
        )
        rate = {name: 1 / statistics.median(values) for name, values in lat.items()}
        mean = {name: len(values) / sum(values) for name, values in lat.items()}
        top = rate["ceiling"]
        print(f"  sequential, interleaved ({len(lat['ceiling'])} each); rate = 1/median latency (1/mean latency)")
        print(f"  {'ceiling (2 x write+fsync, rename)':<36} {top:7.0f} /s  ({mean['ceiling']:.0f} /s)")
        for name, label in (("direct", "direct writer"), ("inject", "inject socket, 1 client")):
            print(
                f"  {label:<36} {rate[name]:7.0f} /s  ({mean[name]:.0f} /s)  {100 * rate[name] / top:5.1f}% of ceiling"
                f" ({100 * mean[name] / mean['ceiling']:.1f}%)"
            )
        rounds = parallel_rounds(root, workdir, args.count, args.seconds, args.clients, args.rounds)
        ratio = statistics.median(r / t for r, t in rounds)
        median_rate = statistics.median(r for r, _ in rounds)
        print(
            f"  {f'inject socket, {args.clients} clients':<36} {median_rate:7.0f} /s  {100 * ratio:5.1f}% of ceiling"
            f" (median of {len(rounds)} rounds: " + ", ".join(f"{r:.0f}/{t:.0f}" for r, t in rounds) + ")"
        )
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
