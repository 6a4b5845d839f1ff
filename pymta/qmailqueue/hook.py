# -*- test-case-name: tests.qmailqueue.test_hook -*-
"""
The daemons' choice of sink for one message: the queue's, or the
C{QMAILQUEUE} program's (L{pymta.qmailqueue.program.program_for}: the
client's rule, else the daemon's environment at start).  The program
wins over every sink the daemon has, a null client's QMQP sink among
them: as in qmail, where C{QMAILQUEUE} replaces whatever
C{bin/qmail-queue} is (mini-qmail's is qmail-qmqpc); the program's own
C{pymta queue} then goes to the QMQP servers.

L{DaemonSink} is the same choice for a daemon's own messages, which no
client's rule concerns: pymta-send's bounces and the local channel's
forwards go through the program of its environment, as qmail-send queues
its bounces and qmail-local its forwards through qmail-queue, which
honours C{QMAILQUEUE}.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from pymta.dsn.params import MessageDsn
from pymta.interfaces import MessageSink, MessageWriter
from pymta.qmailqueue.program import program_for
from pymta.qmailqueue.spawned import QmailQueueSink, Spawn, spawn_on

__all__ = ["QmailQueueHook", "DaemonSink"]


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


class DaemonSink:
    """
    A L{MessageSink} for the daemon's own messages: C{default}, or the
    program the daemon's environment names, chosen for each message (its
    bound is read then).  The program cannot keep C{origin}, C{uid} or
    C{pid} (qmail-queue's interface carries none): its own C{pymta queue}
    records its own.
    """

    def __init__(self, hook: QmailQueueHook, default: MessageSink) -> None:
        self.hook = hook
        self.default = default

    def open_message(self, sender: str, recipients: Sequence[str], *, origin: str, uid: int | None = None,
                     pid: int | None = None, dsn: MessageDsn | None = None, held: bool = False) -> MessageWriter:
        extra: dict[str, Any] = {"held": True} if held else {}  # keywords a sink without them never sees
        if dsn is not None:
            extra["dsn"] = dsn
        sink = self.hook.sink_for(self.default, {})
        return sink.open_message(sender, recipients, origin=origin, uid=uid, pid=pid, **extra)
