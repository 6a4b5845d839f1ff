# -*- test-case-name: tests.queue.test_service -*-
"""
The control socket of pymta-send, C{ROOT/run/ctl.sock} (mode 0600): one
request line per connection, as sent by C{pymta ctl}
(L{pymta.queue.ctlrequest}: a command, then its arguments separated by tabs).

Commands: L{HANDLERS} - C{stat}, C{doqueue}, C{reload}, C{pause}, C{cont},
C{queue}, C{flush} (Postfix's name for C{doqueue}), C{stop}
(pymta-send stops as on SIGTERM once the reply is out: see L{CtlProtocol}),
and the queue actions C{delete}, C{hold}, C{release}, C{retry},
C{bounce} (L{pymta.queue.queuecontrol}).  The reply's first line is C{ok}
or C{error: <reason>}; more lines may follow; the server then closes the
connection.  A command is added with its name in
L{pymta.queue.ctlrequest.COMMANDS} and its handler here.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from pymta.queue.ctlrequest import COMMANDS, MAX_REQUEST, QUEUE_ACTIONS, CtlRequest, parse_selection
from pymta.queue.listening import UnixSocketService, listen_unix
from pymta.queue.reasons import shown
from pymta.queue.scheduler import Scheduler

__all__ = ["CTL_SOCKET", "ctl_socket_path", "CtlProtocol", "CtlFactory", "CtlServerService", "COMMANDS",
           "HANDLERS", "answer"]

log = Logger(namespace="pymta.send")

CTL_SOCKET = os.path.join("run", "ctl.sock")


def ctl_socket_path(root: str) -> str:
    return os.path.join(root, CTL_SOCKET)


def _stamp(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " GMT"


def _when(t: int, now: float) -> str:
    delta = int(t - now)
    return f"{_stamp(t)} ({'in ' + str(delta) + ' s' if delta > 0 else 'due'})"


def _stat(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    counts = scheduler.counts()
    return ["ok", scheduler.status_text()] + [f"{key}: {value}" for key, value in counts.items()]


def _doqueue(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    scheduler.run_all_now()
    return ["ok", "every queued message is being retried now"]


def _reload(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    if scheduler.reload():
        return ["ok", "control files reread"]
    return [f"error: {scheduler.last_reload_error}; old values kept"]


def _pause(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    scheduler.pause()
    return ["ok", "deliveries paused"]


def _cont(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    scheduler.cont()
    return ["ok", "deliveries continue"]


def _queue(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    now = scheduler.clock.seconds()
    lines = ["ok"]
    for job in scheduler.jobs():
        if job.held:
            state = "held"
        elif job.running:
            state = f"running ({job.in_flight} in flight)"
        else:
            state = "next try " + _when(job.due, now)
        lines.append(f"msg {job.message_id} {job.channel} {state}")
        if job.reason is not None:
            lines.append(f"  last error {_stamp(job.reason.at)} ({shown(job.reason.text)})")
    return lines


def _stop(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
    return ["ok", "pymta-send is stopping"]


def _queue_action(command: str) -> "Handler":
    """The handler of a queue action (L{pymta.queue.queuecontrol.QueueControl.act})."""

    def handle(scheduler: Scheduler, args: tuple[str, ...]) -> list[str]:
        try:
            selection = parse_selection(command, args)
        except ValueError as e:
            return [f"error: {e}"]
        return ["ok"] + scheduler.queue_control.act(command, selection)

    return handle


Handler = Callable[[Scheduler, tuple[str, ...]], list[str]]

#: the handler of each command (with no arguments unless a queue action)
HANDLERS: dict[str, Handler] = {
    "stat": _stat,
    "doqueue": _doqueue,
    "flush": _doqueue,
    "stop": _stop,
    "reload": _reload,
    "pause": _pause,
    "cont": _cont,
    "queue": _queue,
    **{name: _queue_action(name) for name in QUEUE_ACTIONS},
}


def answer(scheduler: Scheduler, request: str | CtlRequest) -> list[str]:
    """The reply lines for one request (a bare command name, or a parsed request)."""
    if isinstance(request, str):
        request = CtlRequest(request.strip())
    handler = HANDLERS.get(request.command)
    if handler is None:
        return [f"error: unknown command {request.command!r} (known: {', '.join(COMMANDS)})"]
    if request.args and request.command not in QUEUE_ACTIONS:
        return [f"error: {request.command} takes no arguments"]
    return handler(scheduler, request.args)


class CtlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST
    stopping = False  # a stop was answered: stop once the reply is out

    def lineReceived(self, line: bytes) -> None:
        command = line[:40].decode("ascii", "replace").split("\t")[0].strip()
        try:
            reply = answer(self.factory.scheduler, CtlRequest.parse(line))
        except ValueError as e:
            reply = [f"error: {e}"]
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
