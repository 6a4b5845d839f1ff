"""QMTPDelivery over a real socket: each recipient's result is the server's reply for it."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS, DeliveryJob
from pymta.queue.framing import NetstringParser, netstring
from pymta.remote.qmtpdelivery import QMTPDelivery
from pymta.remote.routes import Target
from pymta.remote.smtproutes import Route
from pymta.remote.tcpto import DeadHostMemory
from tests.smtpd.helpers import make_root


class Answering(Protocol):
    """A QMTP server that reads one message and answers with the factory's replies, then hangs up."""

    def connectionMade(self) -> None:
        self.parser = NetstringParser(10**6)
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed(data)
        while (value := self.parser.next()) is not None:
            self.parts.append(value)
        if len(self.parts) == 3:
            self.factory.received.append(self.parts)  # type: ignore[attr-defined]
            self.transport.write(b"".join(netstring(r) for r in self.factory.replies))  # type: ignore[attr-defined]
            self.transport.loseConnection()


class Planner:
    def __init__(self, port: int) -> None:
        self.port = port

    def plan_route(self, domain: str, route: Route | None) -> "defer.Deferred[list[Target]]":
        return defer.succeed([Target("127.0.0.1", self.port, "relay.example")])


class DeliveryTests(unittest.TestCase):
    def serve(self, replies: list[bytes]) -> tuple[int, list[list[bytes]]]:
        factory = Factory.forProtocol(Answering)
        factory.replies = replies  # type: ignore[attr-defined]
        factory.received = []  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return port.getHost().port, factory.received  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def deliver(self, replies: list[bytes], recipients: list[str]) -> Any:
        port, received = self.serve(replies)
        root = make_root(self.mktemp())
        message = self.mktemp()
        with open(message, "wb") as f:
            f.write(b"Subject: x\n\nhi\n")
        delivery = QMTPDelivery(Planner(port), DeadHostMemory(self.mktemp()), reactor)
        job = DeliveryJob(1, message, "alice@example.org", tuple(recipients), (1, 2, 3)[: len(recipients)])
        results = yield delivery.deliver(job, ControlReader(root).current, "far.example", recipients,
                                         Route("relay.example", 209))
        return results, received

    @defer.inlineCallbacks
    def test_each_recipient_gets_its_reply(self) -> Any:
        results, received = yield self.deliver(
            [b"Kok 1700000000 qp 42", b"Dsorry, no mailbox here by that name. (#5.1.1)"],
            ["bob@far.example", "ann@far.example"])
        self.assertEqual([r.status for r in results], [SUCCESS, FAILURE])
        self.assertEqual(results[0].text, "127.0.0.1 accepted message.\nRemote host said: ok 1700000000 qp 42\n")
        self.assertIn("no mailbox here by that name", results[1].text)
        self.assertEqual(received[0][2], netstring(b"bob@far.example") + netstring(b"ann@far.example"))

    @defer.inlineCallbacks
    def test_a_connection_ending_early_defers_the_unanswered(self) -> Any:
        results, _ = yield self.deliver([b"Kok 1700000000 qp 42"], ["bob@far.example", "ann@far.example"])
        self.assertEqual([r.status for r in results], [SUCCESS, DEFERRAL])
        self.assertEqual(results[1].text, "Connected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n")
