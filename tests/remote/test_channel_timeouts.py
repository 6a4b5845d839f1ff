"""RemoteChannel with a MemoryReactorClock: connect timeouts feed the dead-host memory."""

from __future__ import annotations

from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, DeliveryResult
from pymta.remote.channel import TEXT_NO_CONNECTION, RemoteChannel
from tests.remote.fakes import FakeResolver
from tests.remote.helpers import job, make_root, reader


class ConnectTimeoutTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), {"timeoutconnect": "7"})
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_000_000)
        resolver = FakeResolver(mx={"d.test": [(10, "a.d.test"), (20, "b.d.test")]},
                                hosts={"a.d.test": ["192.0.2.1"], "b.d.test": ["2001:db8::2"]})
        self.channel = RemoteChannel(self.root, reader(self.root), resolver=resolver, reactor=self.reactor,
                                     is_own_address=lambda a: False, shuffle=lambda l: None)

    def fail_connects(self, reason: Exception) -> None:
        while len(self.reactor.tcpClients) > self.handled:
            host, port, factory, timeout, _ = self.reactor.tcpClients[self.handled]
            self.handled += 1
            self.attempts.append((host, port, timeout))
            factory.clientConnectionFailed(self.reactor.connectors[-1], Failure(reason))

    def deliver(self, reason: Exception) -> list[DeliveryResult]:
        self.handled = len(self.reactor.tcpClients)
        self.attempts: list[tuple] = []
        d = self.channel.deliver(job(self.root, ["x@d.test"]))
        self.fail_connects(reason)
        return self.successResultOf(d)

    def test_timeouts_are_remembered_and_skip_later(self) -> None:
        self.assertEqual(self.deliver(error.TimeoutError()), [DeliveryResult(DEFERRAL, TEXT_NO_CONNECTION)])
        self.assertEqual(self.attempts, [("192.0.2.1", 25, 7), ("2001:db8::2", 25, 7)])
        self.assertEqual({(e.address, e.count) for e in self.channel.dead_hosts.entries()},
                         {("192.0.2.1", 1), ("2001:db8::2", 1)})
        self.reactor.advance(200)
        self.deliver(error.TimeoutError())
        self.assertEqual(len(self.attempts), 2)
        self.reactor.advance(200)
        self.assertEqual(self.deliver(error.TimeoutError()), [DeliveryResult(DEFERRAL, TEXT_NO_CONNECTION)])
        self.assertEqual(self.attempts, [])  # both dead: not even tried

    def test_refusals_are_not_remembered(self) -> None:
        self.deliver(error.ConnectionRefusedError())
        self.assertEqual(len(self.attempts), 2)
        self.assertEqual(self.channel.dead_hosts.entries(), [])
