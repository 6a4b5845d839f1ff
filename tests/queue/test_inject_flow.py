"""
The inject socket's client (pymta.queue.injectclient): back-pressure towards its feeder
and connections kept for the next message.
"""

import os
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.framing import encode_envelope, encode_reply, inject_socket_path
from pymta.queue.injectclient import (
    _CLIENT_CHUNK,
    _PRECONNECT_LIMIT,
    InjectClientSink,
    _InjectClientConnection,
    _InjectClientWriter,
)
from pymta.queue.injectserver import InjectServerFactory, listen_inject
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue
from tests.waiting import eventually


class FlowRecorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pause(self) -> None:
        self.events.append("pause")

    def resume(self) -> None:
        self.events.append("resume")


class InjectClientBackPressureTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.sink = InjectClientSink(Clock(), "unused.sock", keep_connections=1)
        self.writer = _InjectClientWriter(self.sink.reactor, 60.0, encode_envelope("from network", "a@x", ["b@y"]))
        self.flow = FlowRecorder()
        self.writer.watch_backlog(self.flow.pause, self.flow.resume)
        self.connection = _InjectClientConnection(self.sink)
        self.connection.writer = self.writer

    def connect(self) -> StringTransport:
        transport = StringTransport()
        self.connection.makeConnection(transport)
        return transport

    def test_registered_as_streaming_producer(self) -> None:
        transport = self.connect()
        self.assertIs(transport.producer, self.connection)
        self.assertTrue(transport.streaming)

    def test_transport_pause_and_resume_reach_the_feeder(self) -> None:
        self.connect()
        self.connection.pauseProducing()
        self.connection.pauseProducing()
        self.assertEqual(self.flow.events, ["pause"])
        self.connection.resumeProducing()
        self.assertEqual(self.flow.events, ["pause", "resume"])

    def test_pause_before_the_connection_is_made(self) -> None:
        block = b"x" * _CLIENT_CHUNK
        for _ in range(_PRECONNECT_LIMIT // _CLIENT_CHUNK - 1):
            self.writer.write(block)
        self.assertEqual(self.flow.events, [])
        self.writer.write(block)
        self.writer.write(block)
        self.assertEqual(self.flow.events, ["pause"])
        transport = self.connect()
        self.assertEqual(self.flow.events, ["pause", "resume"])
        self.assertGreater(len(transport.value()), _PRECONNECT_LIMIT)

    def test_watching_a_backlogged_writer_pauses_at_once(self) -> None:
        self.connect()
        self.connection.pauseProducing()
        late = FlowRecorder()
        self.writer.watch_backlog(late.pause, late.resume)
        self.assertEqual(late.events, ["pause"])

    def test_settled_message_resumes_the_feeder_and_connection_kept(self) -> None:
        transport = self.connect()
        self.writer.write(b"Subject: x\r\n\r\nbody\r\n")
        d = self.writer.finish()
        self.connection.pauseProducing()
        self.connection.dataReceived(encode_reply(QueueReceipt(7, 42)))
        self.assertEqual(self.flow.events, ["pause", "resume"])
        self.assertEqual(self.successResultOf(d), QueueReceipt(7, 42))
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.sink.idle, [self.connection])
        self.assertIsNone(self.connection.writer)

    def test_reply_before_the_end_closes_the_connection(self) -> None:
        transport = self.connect()
        self.writer.write(b"Subject: x\r\n")
        self.connection.dataReceived(encode_reply(QueueRefused("no (#5.5.2)", permanent=True)))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.sink.idle, [])
        self.assertEqual(self.failureResultOf(self.writer.finish(), QueueRefused).value.text, "no (#5.5.2)")

    def test_aborted_message_resumes_the_feeder_and_drops_the_connection(self) -> None:
        transport = self.connect()
        self.connection.pauseProducing()
        self.writer.abort()
        self.assertEqual(self.flow.events, ["pause", "resume"])
        self.assertTrue(transport.disconnected)

    def test_lost_connection_resumes_the_feeder(self) -> None:
        self.connect()
        self.connection.pauseProducing()
        d = self.writer.finish()
        self.connection.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(self.flow.events, ["pause", "resume"])
        self.failureResultOf(d)

    def test_timeout_drops_the_connection(self) -> None:
        transport = self.connect()
        d = self.writer.finish()
        self.sink.reactor.advance(61)
        self.assertEqual(self.failureResultOf(d, QueueRefused).value.text, "qq timeout (#4.3.0)")
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.sink.idle, [])

    def test_idle_connection_expires(self) -> None:
        self.test_settled_message_resumes_the_feeder_and_connection_kept()
        self.sink.reactor.advance(self.sink.idle_timeout + 1)
        self.assertEqual(self.sink.idle, [])
        self.assertTrue(self.connection.transport.disconnecting)


class CountingServerFactory(InjectServerFactory):
    def __init__(self, sink) -> None:  # type: ignore[no-untyped-def]
        super().__init__(sink)
        self.protocols: list = []

    def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
        p = super().buildProtocol(addr)
        self.protocols.append(p)
        return p


class KeptConnectionTests(unittest.TestCase):
    """Real UNIX sockets: several messages on one connection, and a new one when the server went away."""

    def setUp(self):  # type: ignore[no-untyped-def]
        self.root = tempfile.mkdtemp(prefix="pymta-kc-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        self.committed: list[int] = []
        self.queue_sink = QueueSink(Queue(QueueDisk.plain(self.layout)), reactor, on_commit=lambda message_id, *_: self.committed.append(message_id))
        self.sink = InjectClientSink(reactor, inject_socket_path(self.root), keep_connections=2)
        self.addCleanup(self.sink.close)
        return self.listen()

    def listen(self):  # type: ignore[no-untyped-def]
        self.server = CountingServerFactory(self.queue_sink)
        d = listen_inject(reactor, self.root, self.server)

        def listening(port):  # type: ignore[no-untyped-def]
            self.port = port
            self.addCleanup(self.stop_server)

        return d.addCallback(listening)

    def stop_server(self):  # type: ignore[no-untyped-def]
        d = defer.maybeDeferred(self.port.stopListening)
        for p in self.server.protocols:
            if p.transport is not None and p._connected:
                p.transport.loseConnection()
        return d

    def send(self, body: bytes = b"Subject: t\n\nbody\n"):  # type: ignore[no-untyped-def]
        w = self.sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(body)
        return w.finish()

    @defer.inlineCallbacks
    def test_messages_share_one_connection(self):  # type: ignore[no-untyped-def]
        receipts = []
        for _ in range(3):
            receipts.append((yield self.send()))
        self.assertEqual(len(self.server.protocols), 1)
        self.assertEqual(self.committed, [r.message_id for r in receipts])
        self.assertEqual(len(set(self.committed)), 3)
        self.assertEqual(len(self.sink.idle), 1)

    @defer.inlineCallbacks
    def test_at_most_keep_connections_kept(self):  # type: ignore[no-untyped-def]
        yield defer.gatherResults([self.send() for _ in range(4)])
        self.assertEqual(len(self.server.protocols), 4)
        self.assertEqual(len(self.committed), 4)
        self.assertEqual(len(self.sink.idle), 2)
        connected = lambda: sum(1 for p in self.server.protocols if p._connected)  # noqa: E731
        yield eventually(lambda: connected() <= 2, what="the connections over the limit to close")
        self.assertEqual(connected(), 2)

    @defer.inlineCallbacks
    def test_new_connection_after_the_server_restarts(self):  # type: ignore[no-untyped-def]
        first = yield self.send()
        kept = list(self.sink.idle)
        self.assertEqual(len(kept), 1)
        yield self.stop_server()
        yield eventually(lambda: self.sink.idle == [], what="the kept connection to be dropped")
        # the queue is down: a temporary failure, nothing kept
        e = yield self.assertFailure(self.send(), QueueRefused)
        self.assertFalse(e.permanent)
        yield self.listen()
        second = yield self.send()
        self.assertEqual(self.committed, [first.message_id, second.message_id])
        self.assertEqual(len(self.server.protocols), 1)
        self.assertIsNot(self.sink.idle[0], kept[0])

    @defer.inlineCallbacks
    def test_abort_between_messages_leaves_no_trace(self):  # type: ignore[no-untyped-def]
        yield self.send()
        w = self.sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(b"partial")
        w.abort()
        self.assertEqual(self.sink.idle, [])
        third = yield self.send()
        self.assertEqual(len(self.committed), 2)
        self.assertEqual(self.committed[-1], third.message_id)
        self.assertEqual(len(self.server.protocols), 2)
