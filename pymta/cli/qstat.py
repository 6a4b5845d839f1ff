# -*- test-case-name: tests.cli.test_qstat -*-
"""
C{pymta qstat [--root DIR]}: qmail-qstat's two lines::

    messages in queue: <files under queue/mess/>
    messages in queue but not yet preprocessed: <files in queue/todo/>

An unreadable queue prints C{pymta qstat: fatal: ...} and exits 111.
"""

from __future__ import annotations

import argparse
import os
import sys

from pymta.control import default_root

__all__ = ["main", "count_queue"]


def _count_files(top: str) -> int:
    count = 0

    def fail(err: OSError) -> None:
        raise err

    for _, _, files in os.walk(top, onerror=fail):
        count += len(files)
    return count


def count_queue(queuedir: str) -> tuple[int, int]:
    """C{(messages, not yet preprocessed)}; raises C{OSError} when the queue is unreadable."""
    return _count_files(os.path.join(queuedir, "mess")), _count_files(os.path.join(queuedir, "todo"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta qstat", description="count queued messages (qmail-qstat)")
    parser.add_argument("--root", default=None, help="pymta root directory (default $PYMTA_ROOT or /var/pymta)")
    args = parser.parse_args(argv)
    queuedir = os.path.join(args.root or default_root(), "queue")
    try:
        messages, todo = count_queue(queuedir)
    except OSError as e:
        sys.stderr.write(f"pymta qstat: fatal: unable to read {e.filename or queuedir}: {e.strerror}\n")
        return 111
    sys.stdout.write(f"messages in queue: {messages}\nmessages in queue but not yet preprocessed: {todo}\n")
    return 0
