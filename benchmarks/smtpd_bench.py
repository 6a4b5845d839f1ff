"""
SMTP acceptance rate: Postfix's smtp-source against pymta-smtpd writing into
the real queue (twistd pymta-send + twistd pymta-smtpd on a temporary root),
and against a private Postfix instance on another loopback port, in the same
run.  Both hold deliveries (pymta: concurrencylocal/remote 0; Postfix:
defer_transports), so the figure is "messages durably queued per second".

Usage: python benchmarks/smtpd_bench.py [--count 2000] [--sessions 20] [--size 5120] [--rounds 1] [--settle-us US]
Needs root (Postfix instance, queue owner) and /usr/sbin/smtp-source.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, PROJECT)
sys.path.insert(0, HERE)

from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.recv(100)
            s.sendall(b"QUIT\r\n")
        return True
    except OSError:
        return False


def twistd(args: list[str], log: str) -> subprocess.Popen:
    code = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    return subprocess.Popen(
        [PYTHON, "-c", code, "-n", "--pidfile=", f"--logfile={log}", *args],
        cwd=PROJECT,
        stdin=subprocess.DEVNULL,
    )


def smtp_source(port: int, count: int, sessions: int, size: int, rcpt: str, timeout: float = 900) -> float:
    start = time.monotonic()
    result = subprocess.run(
        [SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(size), "-f", "sender@example.org", "-t", rcpt,
         f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"smtp-source failed ({result.returncode}): {result.stdout}{result.stderr}")
    return elapsed


def count_files(directory: str) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))


class Pymta:
    def __init__(self, base: str, uid: int, gid: int, queuesync: str = "syncfs") -> None:
        self.root = os.path.join(base, "pymta")
        self.port = free_port()
        subprocess.run(
            [os.path.join(PROJECT, ".venv", "bin", "pymta"), "init", self.root, "--me", "bench.example",
             "--mail-uid", f"{uid}:{gid}"],
            check=True,
            capture_output=True,
        )
        control = os.path.join(self.root, "control")
        for name, value in (("rcpthosts", "bench.example"), ("concurrencylocal", "0"), ("concurrencyremote", "0"),
                            ("concurrencyincoming", "200"), ("concurrencyperip", "200"), ("queuesync", queuesync)):
            with open(os.path.join(control, name), "w") as f:
                f.write(value + "\n")
        # bob@bench.example has no mailbox: measure acceptance as before pymta init turned the RCPT check on
        os.unlink(os.path.join(control, "rcptcheck"))
        os.makedirs(os.path.join(self.root, "etc"), exist_ok=True)
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write(":allow\n")
        self.uid, self.gid = uid, gid
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        ids = ["-u", str(self.uid), "-g", str(self.gid)]
        self.procs.append(twistd([*ids, "pymta-send", "--root", self.root], os.path.join(self.root, "send.log")))
        sock = os.path.join(self.root, "run", "inject.sock")
        wait_for(lambda: os.path.exists(sock), 30, "the inject socket")
        self.procs.append(
            twistd([*ids, "pymta-smtpd", "--root", self.root, "--listen", f"tcp:{self.port}:interface=127.0.0.1"],
                   os.path.join(self.root, "smtpd.log"))
        )
        wait_for(lambda: port_open(self.port), 30, "pymta-smtpd")

    def start_file_sink(self) -> None:
        """pymta-smtpd without the queue manager: each message written and fsynced to its own file."""
        self.procs.append(subprocess.Popen(
            [PYTHON, os.path.join(HERE, "smtpd_filesink.py"), self.root, str(self.port)], cwd=PROJECT,
            stdin=subprocess.DEVNULL,
        ))
        wait_for(lambda: port_open(self.port), 30, "pymta-smtpd (file sink)")

    def queued(self) -> int:
        return count_files(os.path.join(self.root, "queue", "mess"))

    def stop(self) -> None:
        stop_processes(self.procs, 30)


def stop_processes(procs: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM each process (the last started first), SIGKILL one still running after C{timeout} s; reap all."""
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def postfix_instance(base: str):  # type: ignore[no-untyped-def]
    from tests.remote.postfix import PostfixInstance, available
    from tests.smtpd.tlsutil import cert_pem

    reason = available()
    if reason is not None or not os.path.exists(SMTP_SOURCE):
        print(f"postfix: not run ({reason or 'no smtp-source'})")
        return None
    pem = cert_pem("sink.example.test")
    key, cert = pem.split(b"-----BEGIN CERTIFICATE-----")
    inst = PostfixInstance(os.path.join(base, "postfix"), free_port(), b"-----BEGIN CERTIFICATE-----" + cert, key)
    with open(os.path.join(inst.base, "main.cf"), "a") as f:
        f.write("defer_transports = virtual, smtp, relay, local\nsmtpd_client_connection_count_limit = 0\n"
                "default_process_limit = 200\n")
    return inst


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--settle-us", type=float, default=0,
                        help="before each run, wait (up to 3 min) until a file creation costs at most this many us")
    parser.add_argument("--queuesync", choices=("syncfs", "fsync"), default="syncfs",
                        help="pymta's control/queuesync (default syncfs: one syncfs per batch instead of an fsync per file and directory)")
    parser.add_argument("--file-sink", action="store_true",
                        help="also measure pymta-smtpd alone, fsyncing each message to a file instead of the queue")
    args = parser.parse_args()
    if not os.path.exists(SMTP_SOURCE):
        raise SystemExit("smtp-source is missing (apt-get install postfix)")
    nobody = pwd.getpwnam("nobody")
    base = spread_tree("pymta-smtpd-bench-")
    results: dict[str, list[float]] = {"pymta": [], "postfix": [], "pymta-filesink": []}
    try:
        for rnd in range(args.rounds):
            def settle(where: str) -> float:
                if not args.settle_us:
                    return create_cost_us(where)
                cost, waited = wait_for_cheap_creates(where, args.settle_us)
                if waited >= 1:
                    print(f"  (waited {waited:.0f} s for cheap file creation)", flush=True)
                return cost

            def run_pymta() -> None:
                where = os.path.join(base, f"pymta-{rnd}")
                os.makedirs(where)
                pymta = Pymta(where, nobody.pw_uid, nobody.pw_gid, args.queuesync)
                create_us = settle(where)
                pymta.start()
                try:
                    elapsed = smtp_source(pymta.port, args.count, args.sessions, args.size, "bob@bench.example")
                    wait_for(lambda: pymta.queued() >= args.count, 60, "the queue to hold every message")
                finally:
                    pymta.stop()
                results["pymta"].append(args.count / elapsed)
                print(f"round {rnd + 1}: pymta-smtpd {args.count} messages in {elapsed:.2f} s = "
                      f"{args.count / elapsed:.0f} msg/s (queued: {pymta.queued()}; file create {create_us:.0f} us)",
                      flush=True)
                if args.file_sink:
                    alone = Pymta(os.path.join(base, f"f{rnd}"), nobody.pw_uid, nobody.pw_gid)
                    alone.start_file_sink()
                    try:
                        elapsed = smtp_source(alone.port, args.count, args.sessions, args.size, "bob@bench.example")
                    finally:
                        alone.stop()
                    results["pymta-filesink"].append(args.count / elapsed)
                    print(f"round {rnd + 1}: pymta-smtpd with an fsync file sink (no queue): "
                          f"{args.count / elapsed:.0f} msg/s", flush=True)

            def run_postfix() -> None:
                where = os.path.join(base, f"postfix-{rnd}")
                os.makedirs(where)
                inst = postfix_instance(where)
                if inst is None:
                    return
                create_us = settle(where)
                inst.start()
                try:
                    wait_for(lambda: port_open(inst.port), 30, "postfix")
                    elapsed = smtp_source(inst.port, args.count, args.sessions, args.size, "bob@example.test")
                finally:
                    inst.stop()
                results["postfix"].append(args.count / elapsed)
                print(f"round {rnd + 1}: postfix     {args.count} messages in {elapsed:.2f} s = "
                      f"{args.count / elapsed:.0f} msg/s (file create {create_us:.0f} us)", flush=True)

            for run in rotated([run_pymta, run_postfix], rnd):
                run()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    best = {k: max(v) for k, v in results.items() if v}
    print(f"smtp-source -s {args.sessions} -m {args.count} -l {args.size} (pymta's queuesync {args.queuesync}):")
    for name, rate in best.items():
        print(f"  {name:15s} {rate:8.0f} msg/s (best of {len(results[name])})")
    if "postfix" in best:
        print(f"  ratio pymta/postfix = {best['pymta'] / best['postfix']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
