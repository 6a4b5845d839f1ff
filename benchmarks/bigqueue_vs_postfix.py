"""
A big deferred queue, pymta beside Postfix (issue 19): N deferred messages
(default 20,000; C{-n 100000} for the issue's size), then a restart.

 - pymta: L{bigqueue.restart} (C{twistd pymta} from C{pymta init}, its queue
   filled directly with N deferred messages, each with one remote
   recipient due in an hour), and L{bigqueue}'s C{memory} child
   (tracemalloc bytes per deferred message once the scheduler has loaded
   them);
 - Postfix: a private instance whose relayhost is a closed port on
   127.0.0.9, filled by smtp-source with N 2 KB messages over 20 sessions;
   each is tried once, refused, and moved to the deferred queue with its
   next attempt minutes away (Postfix's minimal backoff).  Then stopped and
   started again.

For both: new sessions one after another, each sending one message, for
C{--window} seconds from the moment the server listens, on the empty queue
and after the restart on the N deferred (connect -> C{250} after DATA,
p50); the RSS of the queue manager (pymta's one process; Postfix's qmgr)
once it has settled, on the empty queue and loaded, and its growth per
deferred message.  Then the scheduler's cost curve for pymta (bigqueue's
C{load} and C{calls} children: CPU microseconds and Python calls per
message to load the queue and to retry every message) at C{--sizes}
(default 1,000 and 10,000; the issue's curve is 1,000,10,000,100,000).

Usage (as root): .venv/bin/python benchmarks/bigqueue_vs_postfix.py [-n 20000] [--sizes 1000,10000]
       [--window 5] [--only pymta,postfix,curve] [--seconds 600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bigqueue  # noqa: E402
from deferring_queue_in import POSTFIX_QUEUES, closed_port, postfix_queued, route_to_closed_port  # noqa: E402
from end_to_end_bench import PostfixServer, _memory_kb, _tree, port_open, proc_stat, wanted_servers  # noqa: E402
from results import print_result  # noqa: E402
from smtpd_bench import smtp_source, wait_for  # noqa: E402

PARTS = ("pymta", "postfix", "curve")


def qmgr_pid(server: PostfixServer) -> int:
    """The pid of the instance's qmgr (a child of its master)."""
    for pid in _tree(server.pids()):
        stat = proc_stat(pid)
        if stat is not None and stat[0] == "qmgr":
            return pid
    raise SystemExit("postfix: no qmgr process")


#: Postfix's master daemon, started directly on a full queue (see L{start_master})
MASTER = "/usr/lib/postfix/sbin/master"


def start_master(server: PostfixServer) -> None:
    """
    Start the instance's master as C{postfix start} does in the end
    (C{master -w}: back once it is ready), without C{postfix start}'s checks
    first: they look at every file under the config directory, and this
    harness keeps the queue there, so on 100,000 queue files they run for
    minutes (one warning program each) before Postfix starts at all.  A
    real installation keeps its queue out of C{/etc/postfix}.
    """
    subprocess.run([MASTER, "-c", server.inst.base, "-w"], check=True, timeout=120)
    wait_for(lambda: port_open(server.port), 60, "postfix")


def postfix_phase(server: PostfixServer, window: float, start: Callable[[], None] | None = None) -> dict:
    """Start (C{start}, default the instance's own), new sessions for C{window} s, qmgr's settled memory; left running."""
    (start or server.start)()
    times = bigqueue._sessions(server, window)
    pid = qmgr_pid(server)
    wait_for(lambda: bigqueue._settled_rss(pid), 600, "qmgr's memory to settle")
    rss, pss = _memory_kb(pid)
    return {"sessions": len(times), "p50_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3,
            "rss_mib": rss / 1024, "pss_mib": pss / 1024}


def postfix_restart(n: int, window: float, seconds: float) -> dict:
    """Postfix's figures on N deferred messages: the same two phases as L{bigqueue.restart}."""
    base = tempfile.mkdtemp(prefix="pymta-bigqueue-postfix-")
    os.chmod(base, 0o755)
    try:
        server = PostfixServer(base)
        server.inst.command_timeout = seconds  # `postfix start` walks the whole queue
        route_to_closed_port(server, closed_port())
        result: dict = {"messages": n, "empty": postfix_phase(server, window)}
        try:
            smtp_source(server.port, n, 20, 2000, "rcpt@defer.example", timeout=seconds)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"postfix: {n} messages not accepted within {seconds} s") from None
        busy = tuple(q for q in POSTFIX_QUEUES if q != "deferred")
        wait_for(lambda: postfix_queued(server, ("deferred",)) >= n and not postfix_queued(server, busy), seconds,
                 f"postfix to defer {n} messages")
        server.stop()
        os.sync()
        result["loading"] = postfix_phase(server, window, lambda: start_master(server))
        result["deferred"] = postfix_queued(server, ("deferred",))
        server.stop()
        result["p50_ratio"] = result["loading"]["p50_ms"] / result["empty"]["p50_ms"]
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


def per_message_bytes(result: dict, n: int) -> float:
    return (result["loading"]["rss_mib"] - result["empty"]["rss_mib"]) * (1 << 20) / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20000, help="deferred messages in each queue")
    parser.add_argument("--sizes", default="1000,10000", help="the scheduler's cost curve: queue sizes")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of new sessions measured per phase")
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--seconds", type=float, default=600, help="bound of Postfix's fill and of its deferral")
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("bigqueue_vs_postfix: needs root (pymta init's users, the Postfix instance)")
    if not 1 <= args.n <= bigqueue.MAX_N:
        raise SystemExit(f"bigqueue_vs_postfix: -n must be 1..{bigqueue.MAX_N}")
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    if any(not 1 <= n <= bigqueue.MAX_N for n in sizes):
        raise SystemExit(f"bigqueue_vs_postfix: sizes must be 1..{bigqueue.MAX_N}")
    wanted = wanted_servers("bigqueue_vs_postfix", args.only, PARTS)
    workdir = tempfile.gettempdir()
    print(f"{args.n} deferred messages, restart, {args.window} s of new sessions per phase; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    figures: dict[str, dict] = {}
    if "pymta" in wanted:
        figures["pymta"] = bigqueue.restart(args.n, workdir, args.window)
        figures["pymta"]["tracemalloc_bytes_per_msg"] = bigqueue._run_child("memory", args.n, workdir)["bytes_per_msg"]
    if "postfix" in wanted:
        figures["postfix"] = postfix_restart(args.n, args.window, args.seconds)
    for name, r in figures.items():
        print(f"{name:8s} empty: p50 {r['empty']['p50_ms']:.2f} ms (max {r['empty']['max_ms']:.1f}, "
              f"{r['empty']['sessions']} sessions), RSS {r['empty']['rss_mib']:.1f} MiB; "
              f"restarted on {args.n}: p50 {r['loading']['p50_ms']:.2f} ms (max {r['loading']['max_ms']:.1f}, "
              f"{r['loading']['sessions']} sessions), RSS {r['loading']['rss_mib']:.1f} MiB; "
              f"p50 ratio {r['p50_ratio']:.2f}; {per_message_bytes(r, args.n):.0f} bytes of RSS per deferred message"
              + (f"; qmgr PSS {r['empty']['pss_mib']:.1f} -> {r['loading']['pss_mib']:.1f} MiB, "
                 f"{r['deferred']} deferred" if name == "postfix" else
                 f"; tracemalloc {r['tracemalloc_bytes_per_msg']:.0f} bytes per deferred message"), flush=True)
    curve = []
    if "curve" in wanted:
        for n in sizes:
            row = {**bigqueue._run_child("load", n, workdir), **bigqueue._run_child("calls", n, workdir)}
            curve.append(row)
            print(f"scheduler at {n}: load {row['load_us_per_msg']:.0f} us / {row['load_calls_per_msg']:.0f} calls "
                  f"per message, retry all {row['retry_us_per_msg']:.0f} us / {row['retry_calls_per_msg']:.0f} calls "
                  f"per message", flush=True)

    load = f"queue{args.n}"
    pymta, postfix = figures.get("pymta"), figures.get("postfix")
    if pymta is not None:
        print_result(load, "restart_p50_ms", pymta["loading"]["p50_ms"], postfix and postfix["loading"]["p50_ms"],
                     higher_is_better=False)
        # the goal: a restart never stalls new sessions (within 2x of the empty queue's p50)
        print_result(load, "restart_p50_over_empty", pymta["p50_ratio"], postfix and postfix["p50_ratio"],
                     higher_is_better=False, goal="pymta<=2")
        print_result(load, "rss_bytes_per_deferred", per_message_bytes(pymta, args.n),
                     postfix and per_message_bytes(postfix, args.n), higher_is_better=False, goal="pymta<=300")
        print_result(load, "tracemalloc_bytes_per_deferred", pymta["tracemalloc_bytes_per_msg"], None,
                     higher_is_better=False, goal="pymta<=300")
    for row in curve:
        print_result(f"scheduler{row['messages']}", "retry_us_per_msg", row["retry_us_per_msg"], None,
                     higher_is_better=False)
        print_result(f"scheduler{row['messages']}", "retry_calls_per_msg", row["retry_calls_per_msg"], None,
                     higher_is_better=False)
    if len(curve) > 1:
        # flat from the smallest size to the largest: the cost per message of the largest over the smallest's
        for key, bound in (("retry_calls_per_msg", "1.1"), ("retry_us_per_msg", "1.25")):
            print_result(f"scheduler{curve[0]['messages']}-{curve[-1]['messages']}", key.replace("per_msg", "growth"),
                         curve[-1][key] / curve[0][key], None, higher_is_better=False, goal=f"pymta<={bound}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
