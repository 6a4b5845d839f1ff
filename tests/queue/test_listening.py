"""Tests for pymta.queue.listening: binding Unix sockets and the service that keeps one open."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.queue.listening import UnixSocketService, listen_unix


class _Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hi\n")
        self.transport.loseConnection()


class _Reader(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any) -> None:
        self.done.callback(self.data)


class ListenUnixTests(TestCase):
    def base(self) -> str:
        """A short directory (socket paths are limited to 108 bytes)."""
        base = tempfile.mkdtemp(prefix="pymta-listen-")
        self.addCleanup(shutil.rmtree, base, True)
        return base

    @defer.inlineCallbacks
    def test_creates_directory_mode_and_serves(self):  # type: ignore[no-untyped-def]
        path = os.path.join(self.base(), "run", "x.sock")
        port = yield listen_unix(reactor, path, 0o600, Factory.forProtocol(_Greeter))
        self.addCleanup(port.stopListening)
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertTrue(os.path.lexists(path + ".lock"))
        reader = _Reader()
        yield connectProtocol(UNIXClientEndpoint(reactor, path), reader)
        self.assertEqual((yield reader.done), b"hi\n")

    @defer.inlineCallbacks
    def test_live_socket_is_not_taken_over(self):  # type: ignore[no-untyped-def]
        path = os.path.join(self.base(), "x.sock")
        port = yield listen_unix(reactor, path, 0o666, Factory.forProtocol(_Greeter))
        self.addCleanup(port.stopListening)
        yield self.assertFailure(listen_unix(reactor, path, 0o666, Factory.forProtocol(_Greeter)), Exception)


class _FakePort:
    def __init__(self) -> None:
        self.stopped = 0

    def stopListening(self) -> None:
        self.stopped += 1


class _ControlledService(UnixSocketService):
    def __init__(self) -> None:
        super().__init__(reactor=None, path="/run/test.sock")
        self.pending: defer.Deferred[Any] = defer.Deferred()
        self.calls = 0

    def listen(self) -> defer.Deferred[Any]:
        self.calls += 1
        return self.pending


class UnixSocketServiceTests(SynchronousTestCase):
    def test_start_keeps_port_and_stop_closes_it(self) -> None:
        service = _ControlledService()
        service.startService()
        self.assertEqual(service.calls, 1)
        port = _FakePort()
        service.pending.callback(port)
        self.assertIs(service.port, port)
        d = service.stopService()
        self.assertIsNotNone(d)
        self.successResultOf(d)
        self.assertEqual(port.stopped, 1)
        self.assertIsNone(service.port)

    def test_port_bound_after_stop_is_closed_at_once(self) -> None:
        service = _ControlledService()
        service.startService()
        self.assertIsNone(service.stopService())
        port = _FakePort()
        service.pending.callback(port)
        self.assertEqual(port.stopped, 1)

    def test_bind_failure_is_logged_not_raised(self) -> None:
        service = _ControlledService()
        service.startService()
        service.pending.errback(OSError(98, "Address already in use"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIsNone(service.port)
        self.assertIsNone(service.stopService())
