# -*- test-case-name: tests.test_pidfilecheck -*-
"""
twistd's pid file looked at before twistd does, as root.

twistd's C{checkPID} runs as root before pymta's own pid-file code
(L{pymta.pidfile}, at the privilege drop): it opens the C{--pidfile} name
following links, blocking, and reads it.  The pid file's directory may
belong to the mail account, which could put a FIFO there (root's start
waits for ever) or a link to some other file (the start is refused, or
root reads a file of the link's choosing).  So each pymta plugin's options
(C{postOptions}, which twistd runs before C{checkPID}) call
L{refuse_unsafe_pid_file}: as root, the configured pid file is opened
without following a link and without waiting (C{O_NONBLOCK}); nothing
there, or a regular file with one name (a stale pid file, which twistd
then removes), is fine; anything else stops the start with one line.
"""

from __future__ import annotations

import os
from typing import Any

from pymta.ownfile import UnsafeFile, open_no_follow, require_sole_regular

__all__ = ["pid_file_problem", "refuse_unsafe_pid_file"]


def pid_file_problem(path: str) -> str | None:
    """Why twistd should not open C{path} as root, in one line; None when nothing or a plain regular file is there."""
    try:
        fd = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except UnsafeFile as e:
        return str(e)
    except OSError as e:
        return f"{path}: {e.strerror}"
    try:
        require_sole_regular(fd, path)
    except UnsafeFile as e:
        return str(e)
    finally:
        os.close(fd)
    return None


def refuse_unsafe_pid_file(options: Any, program: str) -> None:
    """
    From a plugin's C{postOptions}: as root, exit with one line when the
    pid file of twistd's options (C{options.parent}, absent when the plugin's
    options are parsed on their own) is not safe to open.
    """
    parent = getattr(options, "parent", None)
    if parent is None or os.geteuid() != 0:
        return
    try:
        path = parent["pidfile"]
    except KeyError:
        return
    problem = pid_file_problem(path) if path else None
    if problem is not None:
        raise SystemExit(f"{program}: not starting: pid file: {problem}")
