"""
The cyclic garbage collector's share of pymta's CPU per message (issue 19).

Starts C{twistd pymta} (C{--mode pymta}) or pymta-smtpd + pymta-send
(C{--mode pymta-split}) from a fresh root with benchmarks/gc_hook on
C{PYTHONPATH} (a benchmark-only C{sitecustomize}: nothing in pymta measures
anything), drives C{smtp-source} into it and waits for every message in the
Maildir.  Each daemon reports, on SIGUSR2 before and after the load, its CPU
time and the CPU time its collections took (C{gc.callbacks}, timed with
C{time.thread_time_ns}); the difference over the messages is the cost per
message without start-up and stop.  Rounds alternate C{pymta.gctuning} on
and off (C{PYMTA_GC_TUNING=off}), so a loaded machine's drift hits both
alike; every round's figures are printed, then the medians.

Usage (as root): .venv/bin/python benchmarks/gc_stats.py [--mode pymta|pymta-split] [--count 1000]
       [--sessions 20] [--size 5120] [--pairs 3] [--only on|off] [--control NAME=VALUE]
Needs /usr/sbin/smtp-source (benchmarks/remote_install_postfix.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from end_to_end_bench import PeakMemory, PymtaServer, count_new, tree_cpu_times  # noqa: E402
from fsnoise import spread_tree  # noqa: E402
from smtpd_bench import smtp_source  # noqa: E402

HOOK = os.path.join(HERE, "gc_hook")


def snapshot(pids: list[int], where: str, expected: int) -> dict[int, dict]:
    """Ask every daemon for its figures (SIGUSR2) and wait for the C{expected}-th line of each."""
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 30
    out: dict[int, dict] = {}
    while time.monotonic() < deadline:
        for pid in pids:
            try:
                with open(os.path.join(where, f"{pid}.jsonl")) as f:
                    lines = f.read().splitlines()
            except FileNotFoundError:
                continue
            if len(lines) >= expected:
                out[pid] = json.loads(lines[expected - 1])
        if len(out) == len(pids):
            return out
        time.sleep(0.05)
    raise SystemExit(f"no figures from {set(pids) - set(out)}")


def daemon_name(argv: list[str]) -> str:
    for word in argv:
        if word.startswith("pymta"):
            return word
    return " ".join(argv)


def one_round(mode: str, tuning: bool, count: int, sessions: int, size: int, controls: dict[str, str]) -> dict:
    base = spread_tree("pymta-gc-")
    stats = os.path.join(base, "gcstats")
    os.mkdir(stats)
    os.chmod(stats, 0o1777)  # the daemons write it after dropping root
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYMTA_GC_STATS", "PYMTA_GC_TUNING")}
    os.environ.update(PYTHONPATH=HOOK, PYMTA_GC_STATS=stats, PYMTA_GC_TUNING="on" if tuning else "off")
    server = PymtaServer(base, split=mode == "pymta-split")
    for name, value in controls.items():
        with open(os.path.join(server.root, "control", name), "w") as f:
            f.write(value + "\n")
    try:
        server.start()
        daemons = server.pids()
        time.sleep(1.0)
        before = snapshot(daemons, stats, 1)
        tree_before = sum(u + s for _, u, s in tree_cpu_times(daemons))
        with PeakMemory(server.pids) as memory:
            smtp_source(server.port, count, sessions, size, server.rcpt)
            deadline = time.monotonic() + 600
            while count_new(server.maildir) < count and time.monotonic() < deadline:
                time.sleep(0.05)
        if count_new(server.maildir) < count:
            raise SystemExit(f"only {count_new(server.maildir)} of {count} delivered")
        tree_after = sum(u + s for _, u, s in tree_cpu_times(daemons))
        after = snapshot(daemons, stats, 2)
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    result: dict = {"tuning": tuning, "tree_cpu_ms": 1000 * (tree_after - tree_before) / count,
                    "peak_rss_mb": memory.peak_rss_kb / 1024, "daemons": {}}
    for pid in daemons:
        a, b = before[pid], after[pid]
        result["daemons"][daemon_name(b["argv"])] = {
            "cpu_ms": 1000 * (b["cpu"] - a["cpu"]) / count,
            "gc_ms": sum(y - x for x, y in zip(a["gc_ns"], b["gc_ns"])) / 1e6 / count,
            "per_gen": [(y - x) / count for x, y in zip(a["collections"], b["collections"])],
            "gen_ms": [(y - x) / 1e6 / count for x, y in zip(a["gc_ns"], b["gc_ns"])],
            "longest_ms": [n / 1e6 for n in b["longest_ns"]],
            "maxrss_mb": b["maxrss_kb"] / 1024, "tracked": b["tracked"], "frozen": b["frozen"],
            "threshold": b["threshold"],
        }
    shutil.rmtree(base, ignore_errors=True)
    return result


def show(r: dict) -> None:
    print(f"  tuning {'on ' if r['tuning'] else 'off'}: tree CPU {r['tree_cpu_ms']:.3f} ms/msg,"
          f" peak RSS {r['peak_rss_mb']:.1f} MB")
    for name, d in r["daemons"].items():
        share = d["gc_ms"] / d["cpu_ms"] if d["cpu_ms"] else 0.0
        gens = " ".join(f"{n:.3f}" for n in d["per_gen"])
        gen_ms = " ".join(f"{n:.4f}" for n in d["gen_ms"])
        print(f"    {name:12s} CPU {d['cpu_ms']:.3f} ms/msg, GC {d['gc_ms']:.4f} ms/msg ({share:.1%});"
              f" collections/msg gen0-2 {gens}; GC ms/msg gen0-2 {gen_ms};"
              f" longest gen0-2 {' '.join(f'{n:.2f}' for n in d['longest_ms'])} ms;"
              f" maxrss {d['maxrss_mb']:.1f} MB, tracked {d['tracked']}, frozen {d['frozen']}, threshold {d['threshold']}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="pymta", choices=["pymta", "pymta-split"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--only", choices=["on", "off"], help="only rounds with pymta.gctuning on (or off)")
    parser.add_argument("--control", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    controls = dict(item.split("=", 1) for item in args.control)
    settings = [True, False] if args.only is None else [args.only == "on"]
    results: list[dict] = []
    for i in range(args.pairs):
        for tuning in settings if i % 2 == 0 else settings[::-1]:
            r = one_round(args.mode, tuning, args.count, args.sessions, args.size, controls)
            show(r)
            results.append(r)
    print(f"{args.mode}, {args.count} x {args.size} B, {args.sessions} sessions, medians of {args.pairs}:")
    for tuning in settings:
        rs = [r for r in results if r["tuning"] == tuning]
        line = f"  tuning {'on ' if tuning else 'off'}: tree CPU {statistics.median(r['tree_cpu_ms'] for r in rs):.3f} ms/msg"
        for name in rs[0]["daemons"]:
            gc_ms = statistics.median(r["daemons"][name]["gc_ms"] for r in rs)
            cpu = statistics.median(r["daemons"][name]["cpu_ms"] for r in rs)
            line += f"; {name} CPU {cpu:.3f}, GC {gc_ms:.4f} ms/msg"
        line += f"; peak RSS {statistics.median(r['peak_rss_mb'] for r in rs):.1f} MB"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
