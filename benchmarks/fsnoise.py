"""
How expensive creating a file is right now, on the file system of a path.

On ext4 without a journal the inode allocator skips every inode deleted in
the last minute or five, reading each one's inode table entry, so after a
large removal (an earlier benchmark's temporary directory, a busy queue)
each file creation costs several times its usual price until those inodes
age.  The allocator puts a new directory in its parent's block group, so a
benchmark's fresh temporary tree used to land right where the previous
run's tree had just been removed; L{spread_tree} makes a parent whose
subdirectories ext4 spreads to other (mostly untouched) groups instead
(C{chattr +T}, Orlov's allocator), which takes most of that noise away.
The benchmarks also print the creation cost next to every measurement so
a slow round can be told from a slow server, and rotate the order of the
servers from round to round so none always runs first.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

__all__ = ["create_cost_us", "rotated", "spread_tree", "wait_for_cheap_creates"]


def spread_tree(prefix: str) -> str:
    """
    A new temporary directory (mode 755) marked as the top of a directory
    hierarchy (ext4's C{TOPDIR} flag): each subdirectory made in it, one
    per measured run, starts in a block group of its own choosing rather
    than in its parent's.  On other file systems it is a plain temporary
    directory.
    """
    base = tempfile.mkdtemp(prefix=prefix)
    os.chmod(base, 0o755)
    subprocess.run(["chattr", "+T", base], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return base


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
    Write back everything the earlier runs left dirty (so its writeback does
    not land in the next measurement), then probe every 10 s until creating
    a file costs at most C{threshold_us} (the inodes of earlier removals
    have aged) or C{max_seconds} passed; returns (the last cost measured,
    the seconds waited).
    """
    started = time.monotonic()
    os.sync()
    cost = create_cost_us(directory)
    while cost > threshold_us and time.monotonic() - started < max_seconds:
        time.sleep(10)
        cost = create_cost_us(directory)
    return cost, time.monotonic() - started
