"""
One session's latency (issue 19): a single SMTP session sends N messages
one after the other (no pipelining), and for each one the time from the
end-of-data C{.} sent to the C{250} received is taken; p50 and p99 of
those times, and delivered/s (N / time until the N-th Maildir file
exists, from the session's connect), for

 - C{twistd pymta} (one process);
 - C{twistd pymta-smtpd} + C{twistd pymta-send} (C{pymta-split});
 - a throw-away Postfix delivering to a Maildir;

all in the same run, each from a fresh root made with C{pymta init} and
its default C{control/queuesync} (C{fsync}; C{--queuesync syncfs} to
compare), with the ratios pymta/Postfix printed.  The servers are
L{end_to_end_bench.PymtaServer} and L{end_to_end_bench.PostfixServer}.

Usage: python benchmarks/latency.py [--count 500] [--size 5120] [--rounds 1] [--only pymta,pymta-split,postfix]
       [--settle-us 60]
Needs root (pymta's mail uid, the Postfix instance); run it through
C{sh benchmarks/latency.sh}, which installs Debian's postfix first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from end_to_end_bench import PostfixServer, PymtaServer, available_postfix, make_run_dir  # noqa: E402
from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402
from results import print_result  # noqa: E402

TARGETS = ("pymta", "pymta-split", "postfix")
#: the bounds on one run: messages, and seconds for the whole session
MAX_COUNT = 20000
SESSION_SECONDS = 600.0


class Session:
    """A blocking SMTP client on one connection (reads whole replies, multi-line too)."""

    def __init__(self, port: int, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.expect("220")

    def reply(self) -> bytes:
        while True:
            if time.monotonic() > self.deadline:
                raise SystemExit(f"latency: the session took more than {SESSION_SECONDS} s")
            while b"\r\n" in self._buf:
                line, self._buf = self._buf.split(b"\r\n", 1)
                if line[3:4] != b"-":
                    return line
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("latency: the server closed the connection")
            self._buf += data

    def expect(self, code: str) -> bytes:
        line = self.reply()
        if not line.startswith(code.encode()):
            raise SystemExit(f"latency: expected {code}, got {line!r}")
        return line

    def command(self, line: str, code: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")
        self.expect(code)

    def close(self) -> None:
        try:
            self.command("QUIT", "221")
        finally:
            self.sock.close()


def message(number: int, size: int, rcpt: str) -> bytes:
    """A C{size}-byte message (CRLF line ends, dot-stuffing not needed), without the final C{.}."""
    head = (f"From: sender@example.org\r\nTo: {rcpt}\r\nSubject: latency {number}\r\n"
            f"Message-ID: <latency.{number}@example.org>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    body = line * max(0, (size - len(head)) // len(line))
    return head + body


def one_session(port: int, count: int, size: int, rcpt: str) -> list[float]:
    """Sends C{count} messages in one session; the seconds from each final C{.} sent to its C{250}."""
    session = Session(port, time.monotonic() + SESSION_SECONDS)
    session.command("EHLO latency.example.org", "250")
    times = []
    for number in range(count):
        session.command("MAIL FROM:<sender@example.org>", "250")
        session.command(f"RCPT TO:<{rcpt}>", "250")
        session.command("DATA", "354")
        session.sock.sendall(message(number, size, rcpt))
        sent = time.perf_counter()
        session.sock.sendall(b".\r\n")
        session.expect("250")
        times.append(time.perf_counter() - sent)
    session.close()
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(server: "PymtaServer | PostfixServer", count: int, size: int, deliver_timeout: float) -> dict:
    server.start()
    try:
        start = time.monotonic()
        times = one_session(server.port, count, size, server.rcpt)
        deadline = time.monotonic() + deliver_timeout
        while server.delivered() < count and time.monotonic() < deadline:
            time.sleep(0.01)
        delivered_at = time.monotonic()
        delivered = server.delivered()
    finally:
        server.stop()
    if delivered < count:
        raise SystemExit(f"{server.name}: only {delivered} of {count} messages delivered in {deliver_timeout} s")
    return {"p50": 1000 * percentile(times, 0.50), "p99": 1000 * percentile(times, 0.99),
            "delivered": count / (delivered_at - start)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated subset to run")
    parser.add_argument("--queuesync", choices=("fsync", "syncfs"), default="fsync",
                        help="pymta's control/queuesync (default fsync, what pymta init writes)")
    parser.add_argument("--deliver-timeout", type=float, default=120)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, Maildirs)")
    parser.add_argument("--settle-us", type=float, default=0,
                        help="before each run, wait (up to 3 min) until a file creation costs at most this many us")
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("latency: needs root (pymta's mail uid, the Postfix instance)")
    if not 1 <= args.count <= MAX_COUNT:
        raise SystemExit(f"latency: --count must be 1 to {MAX_COUNT}")
    wanted = [name for name in args.only.split(",") if name]
    unknown = [name for name in wanted if name not in TARGETS]
    if unknown:
        raise SystemExit(f"latency: no target {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    if "postfix" in wanted:
        reason = available_postfix()
        if reason:
            print(f"postfix: not run ({reason})")
            wanted.remove("postfix")

    base = spread_tree("pymta-latency-bench-")
    results: dict[str, list[dict]] = {name: [] for name in wanted}
    print(f"1 session, {args.count} x {args.size} bytes, end of DATA -> 250; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; pymta's queuesync {args.queuesync}", flush=True)
    try:
        for rnd in range(args.rounds):
            for name in rotated(wanted, rnd):
                where = os.path.join(base, f"{name}-{rnd}")
                make_run_dir(where)
                server: PymtaServer | PostfixServer
                if name == "postfix":
                    server = PostfixServer(where)
                else:
                    server = PymtaServer(where, split=(name == "pymta-split"), queuesync=args.queuesync)
                create_us = (wait_for_cheap_creates(where, args.settle_us)[0] if args.settle_us
                             else create_cost_us(where))
                r = measure(server, args.count, args.size, args.deliver_timeout)
                results[name].append(r)
                print(f"round {rnd + 1} {name:12s} p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
                      f"  delivered {r['delivered']:6.0f} msg/s  file create {create_us:.0f} us", flush=True)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"\nmedian of {args.rounds} round(s):")
    print(f"  {'server':12s} {'p50 ms':>7s} {'p99 ms':>7s} {'delivered/s':>11s}")
    for name in wanted:
        print(f"  {name:12s} {median(name, 'p50'):7.2f} {median(name, 'p99'):7.2f} {median(name, 'delivered'):11.0f}")
    if "postfix" in wanted:
        for name in wanted:
            if name != "postfix":
                print(f"  ratio {name}/postfix: p50 {median(name, 'p50') / median('postfix', 'p50'):.2f}, "
                      f"p99 {median(name, 'p99') / median('postfix', 'p99'):.2f} (lower is better), "
                      f"delivered {median(name, 'delivered') / median('postfix', 'delivered'):.2f}")
        for name in [name for name in wanted if name != "postfix"]:
            load = "1session" + ("" if name == "pymta" else f"-{name}")  # issue 19's goals: pymta
            for key, better in (("delivered", True), ("p50", False), ("p99", False)):
                print_result(load, key + ("_per_s" if better else "_ms"), median(name, key), median("postfix", key),
                             higher_is_better=better, goal="1.0" if name == "pymta" else "-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
