"""
QMQPSink, pymta-smtpd's queue sink on a null client: finish() fires only
after a server's K.  The sink's own path runs on the reactor against QMQP
servers on 127.0.0.1 (L{ReactorSinkTests}); a sink given C{in_thread} runs
the blocking client through it (L{SinkTests}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.interfaces import QueueReceipt
from pymta.qmqpservers import QMQPServer
from pymta.qmqpsink import QMQPSink
from pymta.queue.errors import QueueFailure
from pymta.queue.framing import NetstringParser, netstring, split_netstrings
from tests.test_qmqpclient import FakeServer, closed_port
from tests.waiting import eventually


def now(f, *args):  # type: ignore[no-untyped-def]
    """in_thread for tests: run at once."""
    return defer.maybeDeferred(f, *args)


class SinkTests(SynchronousTestCase):
    """A sink given C{in_thread}: the blocking client, run at once here."""

    def sink(self, *servers: QMQPServer) -> QMQPSink:
        return QMQPSink(None, lambda: servers, in_thread=now)

    def test_k_after_the_message_reached_the_server(self) -> None:
        far = FakeServer(self, b"Kok 1800000000 qp 12")
        writer = self.sink(closed_port(), far.server).open_message("a@app.example", ["b@x.example"], origin="from network")
        writer.write(b"Received: x\n")
        writer.write(b"Subject: s\n\nbody\n")
        receipt = self.successResultOf(writer.finish())
        self.assertEqual(receipt, QueueReceipt(0, 12))
        far.thread.join(10)
        self.assertEqual(split_netstrings(far.packets[0]),
                         [b"Received: x\nSubject: s\n\nbody\n", b"a@app.example", b"b@x.example"])

    def test_refusals_fail_finish(self) -> None:
        far = FakeServer(self, b"Dno (#5.1.1)")
        writer = self.sink(far.server).open_message("", ["b@x.example"], origin="from network")
        writer.write(b"m\n")
        failure = self.failureResultOf(writer.finish(), QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("no (#5.1.1)", True))
        writer = self.sink(closed_port()).open_message("", ["b@x.example"], origin="from network")
        failure = self.failureResultOf(writer.finish(), QueueFailure)
        self.assertFalse(failure.value.permanent)
        failure = self.failureResultOf(self.sink().open_message("", ["b@x.example"], origin="x").finish(), QueueFailure)
        self.assertFalse(failure.value.permanent)

    def test_abort_sends_nothing(self) -> None:
        far = FakeServer(self, b"Kok 1 qp 1")
        writer = self.sink(far.server).open_message("", ["b@x.example"], origin="from network")
        writer.write(b"m\n")
        writer.abort()
        far.stop()
        self.assertEqual(far.packets, [])


class ReactorServer(Protocol):
    """A QMQP server on the test's reactor: records each packet, answers the factory's C{reply} (None: stays silent)."""

    factory: "ReactorServers"

    def connectionMade(self) -> None:
        self.parser = NetstringParser(10**8)
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed(data)
        packet = self.parser.next()
        if packet is not None:
            self.factory.packets.append(packet)
            if self.factory.reply is not None:
                self.transport.write(netstring(self.factory.reply))

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.lost.append(self)


class ReactorServers(Factory):
    protocol = ReactorServer

    def __init__(self, test: TestCase, reply: bytes | None) -> None:
        self.reply = reply
        self.packets: list[bytes] = []
        self.connections: list[ReactorServer] = []
        self.lost: list[ReactorServer] = []
        self.port = reactor.listenTCP(0, self, interface="127.0.0.1")
        test.addCleanup(self.port.stopListening)

    @property
    def server(self) -> QMQPServer:
        return QMQPServer("127.0.0.1", self.port.getHost().port)


class ReactorSinkTests(TestCase):
    """The daemons' sink: no thread of the reactor's pool is ever used."""

    def setUp(self) -> None:
        def no_thread(*args: object) -> None:
            raise AssertionError("the reactor's thread pool was used")

        self.patch(reactor, "getThreadPool", no_thread)
        self.patch(reactor, "callInThread", no_thread)

    def message(self, sink: QMQPSink, body: bytes) -> "defer.Deferred[QueueReceipt]":
        writer = sink.open_message("a@app.example", ["b@x.example"], origin="from network")
        writer.write(body)
        return writer.finish()

    async def test_k_after_the_message_reached_the_server(self) -> None:
        far = ReactorServers(self, b"Kok 1800000000 qp 12")
        body = b"Subject: big\n\n" + b"x" * 3_000_000 + b"\n"  # beyond the spool's memory part
        receipt = await self.message(QMQPSink(reactor, lambda: [closed_port(), far.server]), body)
        self.assertEqual(receipt, QueueReceipt(0, 12))
        self.assertEqual(split_netstrings(far.packets[0]), [body, b"a@app.example", b"b@x.example"])

    async def test_refusals_fail_finish(self) -> None:
        far = ReactorServers(self, b"Dno (#5.1.1)")
        with self.assertRaises(QueueFailure) as refused:
            await self.message(QMQPSink(reactor, lambda: [far.server]), b"m\n")
        self.assertEqual((refused.exception.text, refused.exception.permanent), ("no (#5.1.1)", True))
        with self.assertRaises(QueueFailure) as down:
            await self.message(QMQPSink(reactor, lambda: [closed_port(), closed_port()]), b"m\n")
        self.assertEqual((down.exception.text, down.exception.permanent),
                         ("connection to mail server rejected (#4.4.1)", False))

    async def test_a_stalled_server_holds_only_its_own_message(self) -> None:
        stalled, healthy = ReactorServers(self, None), ReactorServers(self, b"Kok 1 qp 2")
        servers = [stalled.server]
        sink = QMQPSink(reactor, lambda: servers)
        writer = sink.open_message("", ["b@x.example"], origin="from network")
        writer.write(b"first\n")
        first = writer.finish()
        await eventually(lambda: stalled.packets)  # sent whole; the server never answers
        servers[:] = [healthy.server]  # a reload: the next message goes to the healthy server
        self.assertEqual(await self.message(sink, b"second\n"), QueueReceipt(0, 2))
        self.assertNoResult(first)
        writer.abort()  # after finish: the connection is closed, nothing was promised
        with self.assertRaises(QueueFailure):
            await first
        await eventually(lambda: stalled.lost)
        self.assertEqual(len(stalled.connections), 1)
