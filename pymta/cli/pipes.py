# -*- test-case-name: tests.cli.test_pipes -*-
"""
Printing commands in pipes: C{pymta qread | head -1} must end quietly.

When the reader of standard output goes away, writing raises
C{BrokenPipeError} (Python ignores C{SIGPIPE}).  L{run_printing} runs a
command's C{main} and, on that error, does what Python's documentation
advises (the C{signal} module's note on SIGPIPE): point standard output at
C{/dev/null}, so that the flush at interpreter exit cannot fail again, and
leave without a traceback.  The exit status is the one a shell reports for
a C tool killed by C{SIGPIPE} (128 + 13 = 141), so C{set -o pipefail}
treats C{pymta mailq | head -1} exactly like C{yes | head -1}.  C{SIGPIPE}'s
disposition is left alone, as the same note asks.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

__all__ = ["run_printing", "EXIT_BROKEN_PIPE"]

#: what a shell shows for a process killed by SIGPIPE
EXIT_BROKEN_PIPE = 128 + int(signal.SIGPIPE)


def run_printing(command: Callable[[], int | None]) -> int:
    """C{command()}'s exit status, its output flushed; L{EXIT_BROKEN_PIPE} when the reader went away."""
    try:
        status = int(command() or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return status
