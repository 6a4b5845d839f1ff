# -*- test-case-name: tests.queue.test_listening -*-
"""
The queue manager's local sockets (C{ROOT/run/inject.sock},
C{ROOT/run/ctl.sock}): how they are bound, and the service that keeps one
open while pymta-send runs.

L{listen_unix} creates the socket's directory and binds with a lock file
(C{wantPID}), so a new server replaces the socket a dead one left behind
but never a live one's.  L{UnixSocketService} listens from C{startService}
to C{stopService}; a failure to bind is logged and the daemon goes on
without that socket.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger

__all__ = ["listen_unix", "UnixSocketService"]

log = Logger(namespace="pymta.send")


def listen_unix(reactor: Any, path: str, mode: int, factory: IProtocolFactory) -> "defer.Deferred[Any]":
    """Listen on the Unix socket C{path} (permissions C{mode}); fires with the listening port."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return UNIXServerEndpoint(reactor, path, mode=mode, wantPID=True).listen(factory)


class UnixSocketService(Service):
    """
    Listens (through L{listen}, which subclasses define) while the service
    runs; C{port} is the listening port once bound.  A port bound after
    C{stopService} is closed at once.  C{listen_failure} is the log text
    for a failed bind (C{{path}} is the socket path).
    """

    listen_failure = "cannot listen on {path}"

    def __init__(self, reactor: Any, path: str) -> None:
        self.reactor = reactor
        self.path = path
        self.port: Any = None

    def listen(self) -> "defer.Deferred[Any]":
        """Start listening; fires with the port (see L{listen_unix})."""
        raise NotImplementedError(f"{type(self).__name__} must define listen()")

    def startService(self) -> None:
        super().startService()
        d = self.listen()

        def listening(port: Any) -> None:
            self.port = port
            if not self.running:
                port.stopListening()

        def failed(f: Any) -> None:
            log.failure(self.listen_failure, f, path=self.path)

        d.addCallbacks(listening, failed)

    def stopService(self) -> "defer.Deferred[None] | None":
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return defer.maybeDeferred(port.stopListening)
        return None
