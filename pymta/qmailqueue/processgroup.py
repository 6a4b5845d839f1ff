# -*- test-case-name: tests.qmailqueue.test_spawned -*-
"""
A C{QMAILQUEUE} program in a process group of its own, so that killing it
(over its time bound, or its message dropped) kills what it started too: a
scanner's helper left holding the program's descriptors would otherwise
run on unbounded.

The program is started through util-linux's C{setsid(1)}: its caller (the
reactor's fresh child) is no group leader, so it makes itself the leader of
a new session and group and executes the program in place, which keeps
the process id the daemon knows.  C{KILL} then goes to that group.  Where
C{setsid(1)} is missing the program is started directly and only it is
killed, as before.
"""

from __future__ import annotations

import os
import shutil
import signal
from typing import Any

__all__ = ["SETSID", "command", "OwnGroup"]

#: util-linux's setsid(1), or None
SETSID = shutil.which("setsid", path="/usr/bin:/bin")


def command(path: str) -> tuple[str, list[str]]:
    """The executable and arguments that run C{path} as the leader of its own group."""
    if SETSID is None:
        return path, [path]
    return SETSID, [SETSID, "--", path]


class OwnGroup:
    """A process transport whose C{KILL} reaches the program's whole group; the rest is the transport's."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def signalProcess(self, name: str) -> None:
        pid = self._transport.pid  # None once reaped: never a group that is no longer the program's
        if name == "KILL" and pid and SETSID is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:  # not yet its own group, or all gone
                pass
        self._transport.signalProcess(name)
