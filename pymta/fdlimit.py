# -*- test-case-name: tests.test_fdlimit -*-
"""
The open-files limit of a daemon: the soft C{RLIMIT_NOFILE} raised to the
hard limit at start.

Many systems still start services with a soft limit of 1024 and a hard
limit far above it; the soft limit is what C{accept} runs into (C{EMFILE}).
Raising it needs no privilege, so every daemon does it before it binds
its ports and starts its helper processes (which inherit it).  The hard
limit is the operator's (systemd's C{LimitNOFILE=}, C{ulimit -Hn}).
"""

from __future__ import annotations

import resource

__all__ = ["raise_open_files_limit"]


def raise_open_files_limit() -> tuple[int, int]:
    """
    Raise the soft limit of open files to the hard limit; returns the soft
    limit before and after (unchanged when the hard limit is unlimited or
    the system refuses).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard
