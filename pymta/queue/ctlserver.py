# -*- test-case-name: tests.queue.test_service -*-
"""
The control socket of pymta-send, C{ROOT/run/ctl.sock} (mode 0600): one
command line per connection, as sent by C{pymta ctl}.

Commands: C{stat}, C{doqueue}, C{reload}, C{pause}, C{cont}, C{queue};
C{flush} (Postfix's name for C{doqueue}); C{stop} (pymta-send stops as on
SIGTERM, once the reply is sent: see L{CtlProtocol}).
The reply's first line is C{ok} or C{error: <reason>}; more lines may
follow; the server then closes the connection.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from pymta.queue.listening import UnixSocketService, listen_unix
from pymta.queue.scheduler import Scheduler

__all__ = ["CTL_SOCKET", "ctl_socket_path", "CtlProtocol", "CtlFactory", "CtlServerService", "COMMANDS"]

log = Logger(namespace="pymta.send")

CTL_SOCKET = os.path.join("run", "ctl.sock")
COMMANDS = ("stat", "doqueue", "reload", "pause", "cont", "queue", "flush", "stop")


def ctl_socket_path(root: str) -> str:
    return os.path.join(root, CTL_SOCKET)


def _when(t: int, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
    delta = int(t - now)
    return f"{stamp} GMT ({'in ' + str(delta) + ' s' if delta > 0 else 'due'})"


def answer(scheduler: Scheduler, command: str) -> list[str]:
    """The reply lines for one command."""
    if command == "stat":
        counts = scheduler.counts()
        lines = ["ok", scheduler.status_text()]
        lines += [f"{key}: {value}" for key, value in counts.items()]
        return lines
    if command in ("doqueue", "flush"):
        scheduler.run_all_now()
        return ["ok", "every queued message is being retried now"]
    if command == "reload":
        if scheduler.reload():
            return ["ok", "control files reread"]
        return [f"error: {scheduler.last_reload_error}; old values kept"]
    if command == "pause":
        scheduler.pause()
        return ["ok", "deliveries paused"]
    if command == "cont":
        scheduler.cont()
        return ["ok", "deliveries continue"]
    if command == "queue":
        now = scheduler.clock.seconds()
        lines = ["ok"]
        for job in scheduler.jobs():
            state = f"running ({job.in_flight} in flight)" if job.running else "next try " + _when(job.due, now)
            lines.append(f"msg {job.message_id} {job.channel} {state}")
        return lines
    if command == "stop":
        return ["ok", "pymta-send is stopping"]
    return [f"error: unknown command {command!r} (known: {', '.join(COMMANDS)})"]


class CtlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 200
    stopping = False  # a stop was answered: stop once the reply is out

    def lineReceived(self, line: bytes) -> None:
        command = line.decode("ascii", "replace").strip()
        try:
            reply = answer(self.factory.scheduler, command)
        except Exception as e:  # the control socket never takes the daemon down
            log.failure("ctl command {command} failed", command=command)
            reply = [f"error: {e}"]
        transport = self.transport
        assert transport is not None  # lines arrive only on a connection
        transport.write("".join(l + "\n" for l in reply).encode("utf-8", "replace"))
        self.stopping = command == "stop" and reply[:1] == ["ok"]
        transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        # stop only once the reply has gone out: shutting down closes connections without flushing them
        if self.stopping:
            self.factory.stop()

    def lineLengthExceeded(self, line: bytes) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(b"error: command too long\n")
        transport.loseConnection()


class CtlFactory(Factory):
    protocol = CtlProtocol
    noisy = False

    def __init__(self, scheduler: Scheduler, stop: Callable[[], object]) -> None:
        self.scheduler = scheduler
        #: what C{stop} does: the reactor's stop, as twistd's SIGTERM handler does
        self.stop = stop


class CtlServerService(UnixSocketService):
    """Listens on the control socket (mode 0600) while the service runs."""

    def __init__(
        self, path: str, scheduler: Scheduler, root: str, reactor: Any, stop: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(reactor, path)
        self.scheduler = scheduler
        self.root = root
        self.stop = stop if stop is not None else reactor.stop

    def listen(self) -> "defer.Deferred[Any]":
        return listen_unix(self.reactor, self.path, 0o600, CtlFactory(self.scheduler, self.stop))
