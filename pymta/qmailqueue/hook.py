# -*- test-case-name: tests.qmailqueue.test_hook -*-
"""
The daemons' choice of sink for one message: the queue's, or the
C{QMAILQUEUE} program's (L{pymta.qmailqueue.program.program_for}: the
client's rule, else the daemon's environment at start).  The program
wins over every sink the daemon has, a null client's QMQP sink among
them: as in qmail, where C{QMAILQUEUE} replaces whatever
C{bin/qmail-queue} is (mini-qmail's is qmail-qmqpc); the program's own
C{pymta queue} then goes to the QMQP servers.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from pymta.interfaces import MessageSink
from pymta.qmailqueue.program import program_for
from pymta.qmailqueue.spawned import QmailQueueSink, Spawn, spawn_on

__all__ = ["QmailQueueHook"]


class QmailQueueHook:
    """
    C{timeout()} gives the current bound in seconds
    (C{control/timeoutqmailqueue}); C{environ} is the daemon's environment
    (default: this process's, as it is now); C{spawn} starts programs
    (default: L{spawn_on} C{clock}, the reactor).
    """

    def __init__(self, root: str, clock: Any, timeout: Callable[[], float],
                 environ: Mapping[str, str] | None = None, spawn: Spawn | None = None) -> None:
        self.root = root
        self.clock = clock
        self.timeout = timeout
        self.environ = dict(os.environ if environ is None else environ)
        self.spawn = spawn or spawn_on(clock)

    def sink_for(self, default: MessageSink, session_env: Mapping[str, str]) -> MessageSink:
        """C{default}, or a sink to the program C{QMAILQUEUE} names for a session with C{session_env}."""
        program = program_for(self.root, self.environ, session_env, self.timeout())
        if program is None:
            return default
        return QmailQueueSink(program, self.spawn, self.clock)
