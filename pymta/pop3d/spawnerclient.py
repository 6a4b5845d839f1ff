# -*- test-case-name: tests.pop3d.test_spawner -*-
"""
pop3d's side of the root mailbox spawner (L{pymta.pop3d.spawner}).

L{MailboxSpawner.start} (called from C{privilegedStartService}, as root)
spawns the spawner with one end of a UNIX socketpair as its fd 3 and
adopts the other end.  L{MailboxSpawner.open} asks for a mailbox child for a
login (L{pymta.pop3d.spawnrequest.LoginRequest}: the user name and what the
client proved; the spawner checks it itself against its own users/passwd or
checkpassword program and picks uid, gid and Maildir - never pop3d); the
reply carries the child's socket (SCM_RIGHTS), which is
adopted into the reactor and driven by the same L{ChildMailbox} that serves
directly spawned children.  After twistd drops pop3d to its own uid, this is
how system users are still served as themselves.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Callable

from twisted.internet import defer
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IFileDescriptorReceiver
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.pop3d.childclient import _PYTHONPATH, ChildFailed, ChildMailbox, MailboxDenied
from pymta.pop3d.spawnrequest import LoginRequest, encode_request

__all__ = ["MailboxSpawner"]

log = Logger(namespace="pymta.pop3d")


class _SocketAsProcessTransport:
    """What L{ChildMailbox} calls on a process transport, done on a socket transport."""

    pid = None

    def __init__(self, transport: object) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)  # type: ignore[attr-defined]

    def closeStdin(self) -> None:
        self._transport.loseWriteConnection()  # type: ignore[attr-defined]

    def closeChildFD(self, fd: int) -> None:
        """Nothing to do: the socket carries both directions and closes with the child."""

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()  # type: ignore[attr-defined]

    def signalProcess(self, signal: str) -> None:
        self._transport.abortConnection()  # type: ignore[attr-defined]


class _ChildSocketProtocol(Protocol):
    def __init__(self, mailbox: ChildMailbox) -> None:
        self.mailbox = mailbox

    def connectionMade(self) -> None:
        self.mailbox.makeConnection(_SocketAsProcessTransport(self.transport))

    def dataReceived(self, data: bytes) -> None:
        self.mailbox.childDataReceived(1, data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.mailbox.processEnded(Failure(ProcessDone(0)))


@implementer(IFileDescriptorReceiver)
class _ControlProtocol(Protocol):
    def __init__(self, spawner: "MailboxSpawner") -> None:
        self.spawner = spawner

    def fileDescriptorReceived(self, descriptor: int) -> None:
        self.spawner._fds.append(descriptor)

    def dataReceived(self, data: bytes) -> None:
        self.spawner._control_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.spawner._control_lost()


class _SpawnerProcess(ProcessProtocol):
    def __init__(self, spawner: "MailboxSpawner") -> None:
        self.spawner = spawner

    def childDataReceived(self, fd: int, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                log.warn("pop3 mailbox spawner: {line}", line=line)

    def processEnded(self, reason: Failure) -> None:
        self.spawner._process_ended(reason)


class MailboxSpawner:
    """A running root spawner and the requests waiting for its answers."""

    def __init__(self, reactor: object, source_args: list[str], python: str = sys.executable) -> None:
        """C{source_args}: the spawner's account source, C{["--passwd", FILE]} or C{["--checkpassword", PROGRAM, ...]}."""
        self.reactor = reactor
        self.source_args = list(source_args)
        self.python = python
        self.running = False
        self._control: _ControlProtocol | None = None
        self._fds: list[int] = []
        self._buffer = b""
        self._pending: dict[bytes, defer.Deferred] = {}
        self._next_id = 0
        self._ended: defer.Deferred = defer.Deferred()

    def start(self) -> None:
        """Spawn the spawner (call as root, before dropping privileges)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.reactor.spawnProcess(  # type: ignore[attr-defined]
                _SpawnerProcess(self),
                self.python,
                [self.python, "-m", "pymta.pop3d.spawner", *self.source_args],
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": _PYTHONPATH, "PYTHONDONTWRITEBYTECODE": "1"},
                path="/",
                childFDs={0: "w", 1: "r", 2: "r", 3: theirs.fileno()},
            )
        finally:
            theirs.close()
        control = _ControlProtocol(self)
        self.reactor.adoptStreamConnection(  # type: ignore[attr-defined]
            ours.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: control)
        )
        ours.close()
        self._control = control
        self.running = True

    def stop(self) -> defer.Deferred:
        """Close the control socket; fires when the spawner has exited."""
        if not self.running:
            return defer.succeed(None)
        if self._control is not None and self._control.transport is not None:
            self._control.transport.loseConnection()
        d: defer.Deferred = defer.Deferred()
        self._ended.addBoth(lambda result: d.callback(None))
        return d

    def open(
        self, login: LoginRequest, on_spawn: Callable[[ChildMailbox], None] | None = None
    ) -> defer.Deferred:
        """
        A mailbox child for the account of C{login}, its Maildir loaded ->
        Deferred[L{ChildMailbox}]; fails with L{pymta.pop3d.childclient.MailboxDenied}
        when the spawner's own check refuses the login or its account.
        """
        if not self.running or self._control is None:
            return defer.fail(ChildFailed("mailbox spawner not running"))
        try:
            request = encode_request(self._next_id + 1, login)
        except ValueError as e:
            return defer.fail(MailboxDenied(str(e)))
        self._next_id += 1
        ident = b"%d" % self._next_id
        d: defer.Deferred = defer.Deferred()
        self._pending[ident] = d
        transport = self._control.transport
        assert transport is not None  # connected when start() adopted the socket
        transport.write(request)

        def adopted(mailbox: ChildMailbox) -> defer.Deferred:
            if on_spawn is not None:
                on_spawn(mailbox)
            return mailbox.load_or_close()

        return d.addCallback(adopted)

    def _control_data(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            words = line.split(b" ", 2)
            d = self._pending.pop(words[1], None) if len(words) >= 2 else None
            if d is None:
                log.error("pop3 mailbox spawner: unexpected reply {line!r}", line=line)
                continue
            if words[0] == b"OK" and self._fds:
                d.callback(self._adopt(self._fds.pop(0)))
            else:
                reason = words[2].decode("utf-8", "replace") if len(words) > 2 else "no descriptor"
                d.errback(ChildFailed(f"mailbox spawner: {reason}"))

    def _adopt(self, descriptor: int) -> ChildMailbox:
        mailbox = ChildMailbox()
        try:
            self.reactor.adoptStreamConnection(  # type: ignore[attr-defined]
                descriptor, socket.AF_UNIX, Factory.forProtocol(lambda: _ChildSocketProtocol(mailbox))
            )
        finally:
            os.close(descriptor)
        return mailbox

    def _control_lost(self) -> None:
        self.running = False
        for d in self._pending.values():
            d.errback(ChildFailed("mailbox spawner gone"))
        self._pending.clear()
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _process_ended(self, reason: Failure) -> None:
        if self.running:
            log.error("pop3 mailbox spawner ended: {reason}", reason=str(reason.value))
            if self._control is not None and self._control.transport is not None:
                self._control.transport.loseConnection()
        self.running = False
        self._ended.callback(None)
