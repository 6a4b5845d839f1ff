"""
Benchmark-only: the cyclic garbage collector's work in a pymta daemon (benchmarks/gc_stats.py).

benchmarks/gc_stats.py puts this directory on C{PYTHONPATH} of the daemons it
starts; Python imports this module at start-up in every process of the tree.
Nothing here is part of pymta: without C{PYMTA_GC_STATS} it does nothing.

With C{PYMTA_GC_STATS=DIR}: a C{gc.callbacks} entry times every collection in
CPU time of the collecting thread (C{time.thread_time_ns}) and counts them per
generation; on SIGUSR2 the process appends one JSON line (its CPU time, the
totals, the longest collection of each generation since the last line, peak
RSS, tracked and frozen objects) to C{DIR/PID.jsonl}, and once more at exit
(for a process nobody signals, e.g. benchmarks/remote.py's child).  With
C{PYMTA_GC_TUNING=off} too, L{pymta.gctuning.tune_daemon} is replaced by a
no-op, so the same checkout runs with and without the tuning; with
C{PYMTA_GC_GENERATION0=N} the process's generation-0 threshold is N (to try one).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import resource
import signal
import sys
import time

_DIR = os.environ.get("PYMTA_GC_STATS")


def _install(where: str) -> None:
    ns = [0, 0, 0]
    count = [0, 0, 0]
    collected = [0, 0, 0]
    longest = [0, 0, 0]
    started = [0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.thread_time_ns()
        else:
            generation = info["generation"]
            took = time.thread_time_ns() - started[0]
            ns[generation] += took
            longest[generation] = max(longest[generation], took)
            count[generation] += 1
            collected[generation] += info["collected"]

    def dump(signum: int, frame: object) -> None:
        times = os.times()
        line = {
            "pid": os.getpid(), "argv": sys.argv, "cpu": times.user + times.system,
            "gc_ns": ns, "longest_ns": longest, "collections": count, "collected": collected,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
            "threshold": gc.get_threshold(),
        }
        with open(os.path.join(where, f"{os.getpid()}.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\n")
        longest[:] = [0, 0, 0]  # the next line's longest pauses are those since this one

    gc.callbacks.append(callback)
    signal.signal(signal.SIGUSR2, dump)
    atexit.register(dump, 0, None)


if _DIR:
    _install(_DIR)
    if os.environ.get("PYMTA_GC_TUNING") == "off":
        try:
            import pymta.gctuning
        except ImportError:
            pass
        else:
            pymta.gctuning.tune_daemon = lambda: None  # type: ignore[assignment]  # a benchmark's off switch
    if os.environ.get("PYMTA_GC_GENERATION0"):
        gc.set_threshold(int(os.environ["PYMTA_GC_GENERATION0"]), *gc.get_threshold()[1:])
