"""
Every load of issue 19 against Postfix in one invocation: runs each
benchmark script in turn (each runs pymta and a private Postfix in the same
run), passes its output through, collects its RESULT lines
(benchmarks/results.py) and prints them as one table of load, metric,
pymta, Postfix, ratio (above 1: pymta does better), goal and met.

Loads (C{--only} takes these names):

 - C{20sessions}: end_to_end_bench.py, 2,000 x 5 KB over 20 sessions,
   accepted/s and delivered/s (C{twistd pymta}, queuesync C{fsync});
 - C{1session}: latency.py, 500 x 5 KB over one session: delivered/s,
   end of DATA -> C{250} p50 and p99;
 - C{sessions}: sessions.py (200 and 1,000 sessions, memory per idle
   session) when it is there, else a line saying it is missing;
 - C{bigmsg}: bigmsg.py, 20 x 10 MB and 5 x 50 MB;
 - C{local}: local_fanout.py, one message to 1,000 local recipients;
 - C{remote}: remote_vs_postfix.py, 2,000 messages to smtp-sink and one
   message to 1,000 recipients over 100 domains;
 - C{deferring}: deferring_queue_in.py, 20,000 messages into a queue whose
   deliveries defer;
 - C{bigqueue}: bigqueue_vs_postfix.py, a restart on 100,000 deferred
   messages, the memory per deferred message, the scheduler's curve at
   1,000, 10,000 and 100,000.

C{--quick} makes every count small (a smoke run: its figures mean
nothing); C{--rounds} and C{--settle-us} go to every script that takes
them.  Exits 0 when every script ran (whether the goals are met or not is
in the table), 1 when one failed.

Usage (as root): sh benchmarks/ahead_of_postfix.sh [--quick] [--only LOAD,...] [--rounds 3] [--settle-us 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from results import Result, results_in, table  # noqa: E402

#: load -> (script, its arguments for the real run, for --quick); the scripts' defaults where they match the issue
LOADS: dict[str, tuple[str, list[str], list[str]]] = {
    "20sessions": ("end_to_end_bench.py", ["--only", "pymta,postfix", "--queuesync", "fsync"],
                   ["--only", "pymta,postfix", "--queuesync", "fsync", "--count", "200"]),
    "1session": ("latency.py", ["--only", "pymta,postfix"], ["--only", "pymta,postfix", "--count", "50"]),
    "sessions": ("sessions.py", [], ["--sessions", "50", "--messages", "500", "--idle", "20"]),
    "bigmsg": ("bigmsg.py", [], ["--loads", "2x1,1x5"]),
    "local": ("local_fanout.py", [], ["--recipients", "100"]),
    "remote": ("remote_vs_postfix.py", [], ["--count", "200", "--recipients", "100", "--domains", "10"]),
    "deferring": ("deferring_queue_in.py", [], ["--count", "500"]),
    "bigqueue": ("bigqueue_vs_postfix.py", ["-n", "100000", "--sizes", "1000,10000,100000"],
                 ["-n", "1000", "--sizes", "500,1000", "--window", "2"]),
}
#: options passed on to a script only when its --help names them
PASSED_ON = ("--rounds", "--settle-us")


def takes(script: str, option: str) -> bool:
    """Whether C{script}'s --help mentions C{option}."""
    out = subprocess.run([sys.executable, os.path.join(HERE, script), "--help"], capture_output=True, text=True,
                         timeout=60)
    return option in out.stdout


def command(load: str, quick: bool, passed: dict[str, str]) -> list[str] | None:
    """The command line that runs C{load}; None when its script is not there."""
    script, real, small = LOADS[load]
    if not os.path.exists(os.path.join(HERE, script)):
        return None
    argv = [sys.executable, os.path.join(HERE, script), *(small if quick else real)]
    for option, value in passed.items():
        if takes(script, option):
            argv += [option, value]
    return argv


def run(argv: list[str]) -> tuple[int, list[Result]]:
    """Runs one script with its output passed through; its exit status and RESULT lines."""
    lines = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write("  " + line)
            sys.stdout.flush()
            lines.append(line)
    return proc.returncode, results_in("".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run, not figures")
    parser.add_argument("--only", default=",".join(LOADS), help=f"comma-separated subset of {','.join(LOADS)}")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--settle-us", type=float, default=None)
    args = parser.parse_args()
    wanted = [load for load in args.only.split(",") if load]
    unknown = [load for load in wanted if load not in LOADS]
    if unknown:
        raise SystemExit(f"ahead_of_postfix: no load {', '.join(unknown)} (known: {', '.join(LOADS)})")
    if os.getuid() != 0:
        raise SystemExit("ahead_of_postfix: needs root (pymta's mail uids, the Postfix instances)")
    passed = {option: str(value) for option, value in (("--rounds", args.rounds), ("--settle-us", args.settle_us))
              if value is not None}
    collected: list[Result] = []
    failed, missing = [], []
    started = time.monotonic()
    for load in wanted:
        argv = command(load, args.quick, passed)
        if argv is None:
            print(f"== {load}: {LOADS[load][0]} is missing, not run", flush=True)
            missing.append(load)
            continue
        print(f"== {load}: {' '.join(os.path.relpath(a) if a.startswith('/') else a for a in argv[1:])}", flush=True)
        status, found = run(argv)
        collected += found
        if status != 0:
            print(f"== {load}: failed (exit status {status})", flush=True)
            failed.append(load)
    print(f"\nissue 19, every load against Postfix{' (--quick: a smoke run, not figures)' if args.quick else ''}; "
          f"{time.monotonic() - started:.0f} s; ratio above 1: pymta does better\n")
    print(table(collected))
    for what, loads in (("missing", missing), ("failed", failed)):
        if loads:
            print(f"{what}: {', '.join(loads)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
