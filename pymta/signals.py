# -*- test-case-name: tests.test_signals -*-
"""
Unix signal handlers as a Service: each handler runs in the reactor thread,
and the previous handlers come back when the service stops.

twistd installs nothing for SIGHUP or SIGALRM; pymta's services use this for
"reload the control files" (HUP, C{systemctl reload}) and "run the queue
now" (ALRM).  Outside the main thread (tests running services in a thread)
nothing is installed.

From C{privilegedStartService} until C{startService} the signals are
ignored: twistd binds the listeners in between, so a client (or a
C{pymta ctl flush}) may already be at work, and SIGALRM or SIGHUP left at
their default action would end the process.  Dropping a reload or a
queue run there loses nothing: the control files are read and the queue
is scanned at start anyway.

L{reload_on_hangup} is the SIGHUP handling of the separate smtpd and pop3d
daemons: re-read the control files, then let the daemon refresh what it
derives from them.
"""

from __future__ import annotations

import signal
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.logger import Logger

from pymta.control import ControlError, ControlReader

__all__ = ["SignalService", "reload_on_hangup"]


class SignalService(Service):
    """Installs C{handlers} (signal number -> callable without arguments) while running."""

    def __init__(self, handlers: Mapping[int, Callable[[], Any]], reactor: Any) -> None:
        self.handlers = dict(handlers)
        self.reactor = reactor
        self._previous: dict[int, Any] = {}

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._install({signum: signal.SIG_IGN for signum in self.handlers})

    def startService(self) -> None:
        super().startService()
        self._install({signum: self._handler(action) for signum, action in self.handlers.items()})

    def _install(self, handlers: Mapping[int, Any]) -> None:
        for signum, handler in handlers.items():
            try:
                previous = signal.signal(signum, handler)
            except ValueError:  # not the main thread
                return
            self._previous.setdefault(signum, previous)

    def _handler(self, action: Callable[[], Any]) -> Callable[[int, Any], None]:
        def handle(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(action)

        return handle

    def stopService(self) -> None:
        super().stopService()
        for signum, previous in self._previous.items():
            try:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            except ValueError:
                pass
        self._previous.clear()


def reload_on_hangup(
    reader: ControlReader, reload_service: Callable[[], Any], name: str, log: Logger, reactor: Any
) -> SignalService:
    """
    A L{SignalService} whose SIGHUP re-reads the control files through
    C{reader}, then calls C{reload_service()} and logs C{NAME: reloaded} on
    C{log}.  A broken file (or an error of the reader's C{precheck}) keeps
    the whole old configuration, control files and what the service
    derives from them alike, and is logged as C{NAME: reload refused,
    old configuration kept: FILE:LINE: ...}.
    """

    def reload() -> None:
        try:
            reader.reload()
        except ControlError as e:
            log.error("{name}: reload refused, old configuration kept: {error}", name=name, error=str(e))
            return
        reload_service()
        log.info("{name}: reloaded", name=name)

    return SignalService({signal.SIGHUP: reload}, reactor)
