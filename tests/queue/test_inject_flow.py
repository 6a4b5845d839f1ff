"""Back-pressure of the inject client (pymta.queue.inject._InjectClientWriter): pause and resume its feeder."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import QueueReceipt
from pymta.queue.framing import encode_envelope, encode_reply
from pymta.queue.inject import _CLIENT_CHUNK, _PRECONNECT_LIMIT, _InjectClientWriter


class FlowRecorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pause(self) -> None:
        self.events.append("pause")

    def resume(self) -> None:
        self.events.append("resume")


class InjectClientBackPressureTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.writer = _InjectClientWriter(Clock(), 60.0, encode_envelope("from network", "a@x", ["b@y"]))
        self.flow = FlowRecorder()
        self.writer.watch_backlog(self.flow.pause, self.flow.resume)

    def connect(self) -> StringTransport:
        transport = StringTransport()
        self.writer.makeConnection(transport)
        return transport

    def test_registered_as_streaming_producer(self) -> None:
        transport = self.connect()
        self.assertIs(transport.producer, self.writer)
        self.assertTrue(transport.streaming)

    def test_transport_pause_and_resume_reach_the_feeder(self) -> None:
        self.connect()
        self.writer.pauseProducing()
        self.writer.pauseProducing()
        self.assertEqual(self.flow.events, ["pause"])
        self.writer.resumeProducing()
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
        self.writer.pauseProducing()
        late = FlowRecorder()
        self.writer.watch_backlog(late.pause, late.resume)
        self.assertEqual(late.events, ["pause"])

    def test_settled_message_resumes_the_feeder(self) -> None:
        transport = self.connect()
        self.writer.write(b"Subject: x\r\n\r\nbody\r\n")
        d = self.writer.finish()
        self.writer.pauseProducing()
        self.writer.dataReceived(encode_reply(QueueReceipt(7, 42)))
        self.assertEqual(self.flow.events, ["pause", "resume"])
        self.assertEqual(self.successResultOf(d), QueueReceipt(7, 42))
        self.assertTrue(transport.disconnecting)

    def test_aborted_message_resumes_the_feeder(self) -> None:
        self.connect()
        self.writer.pauseProducing()
        self.writer.abort()
        self.assertEqual(self.flow.events, ["pause", "resume"])

    def test_lost_connection_resumes_the_feeder(self) -> None:
        self.connect()
        self.writer.pauseProducing()
        d = self.writer.finish()
        self.writer.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(self.flow.events, ["pause", "resume"])
        self.failureResultOf(d)
