"""
How expensive creating a file is right now, on the file system of a path.

On ext4 without a journal the inode allocator skips every inode deleted in
the last minute or five, reading each one's inode table entry, so after a
large removal (an earlier benchmark's temporary directory, a busy queue)
each file creation costs several times its usual price until those inodes
age.  The benchmarks print this figure next to every measurement so a slow
round can be told from a slow server, and rotate the order of the servers
from round to round so none always runs first after such a removal.
"""

from __future__ import annotations

import os
import time

__all__ = ["create_cost_us", "rotated", "wait_for_cheap_creates"]


def create_cost_us(directory: str, files: int = 200) -> float:
    """Microseconds per file creation in a new subdirectory of C{directory} (the files are left there)."""
    probe = os.path.join(directory, f"fs-probe-{time.monotonic_ns()}")
    os.makedirs(probe)
    started = time.perf_counter()
    for i in range(files):
        os.close(os.open(os.path.join(probe, str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.perf_counter() - started) / files * 1e6


def rotated(names: list[str], round_number: int) -> list[str]:
    """C{names} starting at a different one each round."""
    if not names:
        return names
    k = round_number % len(names)
    return names[k:] + names[:k]


def wait_for_cheap_creates(directory: str, threshold_us: float, max_seconds: float = 180.0) -> tuple[float, float]:
    """
    Probe every 10 s until creating a file costs at most C{threshold_us}
    (the inodes of earlier removals have aged) or C{max_seconds} passed;
    returns (the last cost measured, the seconds waited).
    """
    started = time.monotonic()
    cost = create_cost_us(directory)
    while cost > threshold_us and time.monotonic() - started < max_seconds:
        time.sleep(10)
        cost = create_cost_us(directory)
    return cost, time.monotonic() - started
