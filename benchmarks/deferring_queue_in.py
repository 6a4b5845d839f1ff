"""
Queue-in rate into a queue whose deliveries defer (issue 19): smtp-source
sends N messages (default 20,000 x 5 KB) over 20 sessions to a remote
domain into C{twistd pymta} (a root from C{pymta init}, queuesync C{fsync})
and into a private Postfix, in the same run.  On both, every delivery
attempt fails and defers: the route leads to a port on 127.0.0.9 where
nothing listens (pymta: C{control/smtproutes} C{:127.0.0.9:PORT}; Postfix:
C{relayhost = [127.0.0.9]:PORT}); 127.0.0.1 may relay on both (pymta
init's tcp.smtp, Postfix's mynetworks).  Printed: messages accepted per
second (N / smtp-source's run time) and the ratio pymta/Postfix, and how
many messages each queue holds at the end.

Each run is bounded by C{--seconds} (default 120): a server slower than
that fails the run instead of stretching it.

Usage (as root): .venv/bin/python benchmarks/deferring_queue_in.py [--count 20000] [--sessions 20]
       [--rounds 1] [--only pymta,postfix] [--settle-us 60] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from end_to_end_bench import PostfixServer, PymtaServer, make_run_dir, wanted_servers  # noqa: E402
from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402
from remote import queued  # noqa: E402
from results import print_result  # noqa: E402
from smtpd_bench import smtp_source  # noqa: E402

TARGETS = ("pymta", "postfix")
DEAD_HOST = "127.0.0.9"
RCPT = "rcpt@defer.example"
MAX_COUNT = 200_000
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred")


def closed_port(address: str = DEAD_HOST) -> int:
    """A port on C{address} that nobody listens on: a connection there is refused."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def route_to_closed_port(server: "PymtaServer | PostfixServer", port: int) -> None:
    """Every remote delivery of C{server} goes to DEAD_HOST:port (and defers)."""
    if isinstance(server, PostfixServer):
        server.inst.override({"relayhost": f"[{DEAD_HOST}]:{port}"})
        return
    with open(os.path.join(server.root, "control", "smtproutes"), "w") as f:
        f.write(f":{DEAD_HOST}:{port}\n")


def postfix_queued(server: PostfixServer, queues: tuple[str, ...] = POSTFIX_QUEUES) -> int:
    """Queue files in C{queues} of the Postfix instance."""
    return sum(len(files) for q in queues for _, _, files in os.walk(os.path.join(server.inst.base, "queue", q)))


def in_queue(server: "PymtaServer | PostfixServer") -> int:
    return postfix_queued(server) if isinstance(server, PostfixServer) else queued(server.root)


def measure(server: "PymtaServer | PostfixServer", count: int, sessions: int, size: int, seconds: float) -> dict:
    server.start()
    try:
        try:
            elapsed = smtp_source(server.port, count, sessions, size, RCPT, timeout=seconds)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{server.name}: {count} messages not accepted within {seconds} s") from None
        held = in_queue(server)
    finally:
        server.stop()
    return {"accepted": count / elapsed, "seconds": elapsed, "queued": held}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default=",".join(TARGETS))
    parser.add_argument("--seconds", type=float, default=120, help="bound of one run")
    parser.add_argument("--settle-us", type=float, default=0)
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("deferring_queue_in: needs root (pymta's mail uid, the Postfix instance)")
    if not 1 <= args.count <= MAX_COUNT:
        raise SystemExit(f"deferring_queue_in: --count must be 1 to {MAX_COUNT}")
    wanted = wanted_servers("deferring_queue_in", args.only, TARGETS)

    base = spread_tree("pymta-deferring-bench-")
    results: dict[str, list[float]] = {name: [] for name in wanted}
    print(f"smtp-source -s {args.sessions} -m {args.count} -l {args.size} to {RCPT}, routed to a closed port on "
          f"{DEAD_HOST} (every delivery defers); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"pymta's queuesync fsync", flush=True)
    try:
        for rnd in range(args.rounds):
            for name in rotated(wanted, rnd):
                where = os.path.join(base, f"{name}-{rnd}")
                make_run_dir(where)
                server: PymtaServer | PostfixServer
                server = PostfixServer(where) if name == "postfix" else PymtaServer(where, split=False,
                                                                                     queuesync="fsync")
                route_to_closed_port(server, closed_port())
                create_us = (wait_for_cheap_creates(where, args.settle_us)[0] if args.settle_us
                             else create_cost_us(where))
                r = measure(server, args.count, args.sessions, args.size, args.seconds)
                results[name].append(r["accepted"])
                print(f"round {rnd + 1} {name:8s} accepted {r['accepted']:6.0f} msg/s ({r['seconds']:.1f} s); "
                      f"{r['queued']} messages in the queue at the end  file create {create_us:.0f} us", flush=True)
                shutil.rmtree(where, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    median = {name: statistics.median(rates) for name, rates in results.items()}
    print(f"\nmedian of {args.rounds} round(s): " + ", ".join(f"{name} {r:.0f} msg/s" for name, r in median.items()))
    if "pymta" in median:
        print_result("deferring-queue-in", "accepted_per_s", median["pymta"], median.get("postfix"), goal="1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
