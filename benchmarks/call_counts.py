"""
Python function calls per message in pymta-send (or C{twistd pymta}), counted by cProfile.

Timings on a shared machine are noise; call counts are not.  Runs a fresh
pymta root twice under C{twistd --profiler=cprofile}, once with C{--small}
and once with C{--count} messages from C{smtp-source} to a local Maildir,
and prints the difference divided by the difference of the counts: the
calls one more message costs, without the start and the stop.  With
C{--top} it also prints the functions whose call count per message is
highest.  C{--project DIR} profiles another checkout (with its own
C{.venv}), e.g. an older commit in a C{git worktree}.

Usage: python benchmarks/call_counts.py [--mode pymta-split|pymta] [--count 1300] [--small 300]
       [--sessions 20] [--size 5120] [--top 40] [--project DIR] [--save FILE]
Needs root and /usr/sbin/smtp-source.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import end_to_end_bench  # noqa: E402
from end_to_end_bench import PymtaServer, count_new  # noqa: E402
from fsnoise import spread_tree  # noqa: E402
from smtpd_bench import smtp_source  # noqa: E402


def use_project(project: str) -> None:
    """Run C{project}'s code with its own virtual environment."""
    bin_dir = os.path.join(project, ".venv", "bin")
    end_to_end_bench.PROJECT = project
    end_to_end_bench.TWISTD = os.path.join(bin_dir, "twistd")
    end_to_end_bench.PYMTA = [os.path.join(bin_dir, "python"), "-m", "pymta.cli.main"]


def profiled_run(mode: str, count: int, sessions: int, size: int, keep: str | None = None) -> pstats.Stats:
    """cProfile's statistics of pymta-send (split) or twistd pymta over C{count} messages, start to stop."""
    base = spread_tree("pymta-calls-")
    profiles = os.path.join(base, "profile")
    os.mkdir(profiles)
    os.chmod(profiles, 0o1777)  # the daemon writes it after dropping root
    profile = os.path.join(profiles, "stats")
    profiled = "pymta-send" if mode == "pymta-split" else "pymta"
    plain_twistd = end_to_end_bench.twistd

    def twistd(args: list[str], log: str):  # type: ignore[no-untyped-def]
        if args[0] == profiled:
            args = ["--profiler=cprofile", f"--profile={profile}", "--savestats", *args]
        return plain_twistd(args, log)

    end_to_end_bench.twistd = twistd
    server = PymtaServer(base, split=mode == "pymta-split")
    try:
        server.start()
        smtp_source(server.port, count, sessions, size, server.rcpt)
        deadline = time.monotonic() + 600
        while count_new(server.maildir) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        if count_new(server.maildir) < count:
            raise SystemExit(f"only {count_new(server.maildir)} of {count} delivered")
    finally:
        server.stop()
        end_to_end_bench.twistd = plain_twistd
    stats = pstats.Stats(profile)
    if keep:
        shutil.copy(profile, keep)
    shutil.rmtree(base, ignore_errors=True)
    return stats


def per_function(stats: pstats.Stats) -> dict[str, int]:
    out: dict[str, int] = {}
    for (filename, line, name), (_cc, ncalls, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename
        for marker in ("/pymta/", "/twisted/", "/lib/python"):
            if marker in filename:
                where = filename[filename.index(marker) + 1:]
                break
        out[f"{where}:{line}({name})"] = ncalls
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="pymta-split", choices=["pymta-split", "pymta"])
    parser.add_argument("--count", type=int, default=1300)
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--project", default=os.path.dirname(HERE))
    parser.add_argument("--save", metavar="FILE", help="write the calls per further message of every function as JSON (and the larger run's profile as FILE.prof)")
    args = parser.parse_args()
    use_project(os.path.abspath(args.project))
    small = per_function(profiled_run(args.mode, args.small, args.sessions, args.size))
    large = per_function(profiled_run(args.mode, args.count, args.sessions, args.size,
                                     args.save + ".prof" if args.save else None))
    extra = args.count - args.small
    diff = {name: (large.get(name, 0) - small.get(name, 0)) / extra for name in set(small) | set(large)}
    print(f"{args.mode} ({args.project}): {sum(large.values()) / args.count:.0f} calls per message over"
          f" {args.count} (start and stop included), {sum(diff.values()):.1f} per further message")
    if args.save:
        with open(args.save, "w") as f:
            json.dump(diff, f, indent=0, sort_keys=True)
    for name, n in sorted(diff.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {n:8.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
