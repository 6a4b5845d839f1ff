"""The local channel's request writer: straight to a spawned process's stdin pipe while it takes each request whole, else through the transport."""

from __future__ import annotations

import os
import sys

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.local.requestwriter import DirectRequests, TransportRequests, request_writer
from tests.waiting import eventually

#: copies stdin to stdout once the file named by argv[1] exists (a child that does not read until told)
COPY_WHEN_TOLD = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.01)\n"
    "while True:\n"
    "    data = os.read(0, 65536)\n"
    "    if not data:\n"
    "        break\n"
    "    os.write(1, data)\n"
)


class Collector(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[tuple[int, bytes]] = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))


class ChoiceTests(SynchronousTestCase):
    def test_other_transport_takes_the_plain_path(self) -> None:
        transport = FakeTransport()
        writer = request_writer(transport)
        self.assertIsInstance(writer, TransportRequests)
        writer.write(b"2:{},")
        self.assertEqual(transport.written, [(0, b"2:{},")])


class SpawnedTests(TestCase):
    timeout = 30

    def spawn(self) -> tuple[Collector, object, str]:
        go = os.path.join(os.path.abspath(self.mktemp()))
        protocol = Collector()
        transport = reactor.spawnProcess(protocol, sys.executable, [sys.executable, "-c", COPY_WHEN_TOLD, go],
                                         env=os.environ.copy(), childFDs={0: "w", 1: "r", 2: 2})

        def stop() -> defer.Deferred[None]:
            if not protocol.ended.called:
                open(go, "w").close()
                if 0 in transport.pipes:
                    transport.closeStdin()
            return protocol.ended

        self.addCleanup(stop)
        return protocol, transport, go

    @defer.inlineCallbacks
    def test_whole_requests_go_straight_to_the_pipe_in_order(self):
        protocol, transport, go = self.spawn()
        writer = request_writer(transport)
        self.assertIsInstance(writer, DirectRequests)
        records = [b"%d:%s," % (len(b"{}"), b"{}") for _ in range(3)] + [b"12:" + b"x" * 12 + b","]
        for record in records:
            writer.write(record)
        self.assertTrue(writer.direct)
        self.assertEqual(transport.pipes[0].dataBuffer, b"")  # nothing left for the reactor to write
        self.assertEqual(transport.pipes[0]._tempDataBuffer, [])
        open(go, "w").close()
        yield eventually(lambda: protocol.out == b"".join(records), what="the child to echo every request")

    @defer.inlineCallbacks
    def test_a_full_pipe_hands_the_rest_and_later_requests_to_the_transport(self):
        protocol, transport, go = self.spawn()
        writer = request_writer(transport)
        big = bytes(range(256)) * 1024  # 256 KB: more than a pipe holds while the child does not read
        writer.write(big)
        self.assertFalse(writer.direct)
        writer.write(b"after")
        open(go, "w").close()
        yield eventually(lambda: len(protocol.out) >= len(big) + 5, what="the child to echo everything")
        self.assertEqual(protocol.out, big + b"after")

    @defer.inlineCallbacks
    def test_a_closing_pipe_is_never_written_directly(self):
        protocol, transport, go = self.spawn()
        writer = request_writer(transport)
        writer.write(b"first")
        transport.closeStdin()
        writer.write(b"late")  # the transport's: Twisted writes what it was given before it closes the pipe
        self.assertFalse(writer.direct)
        self.assertEqual(transport.pipes[0].dataBuffer + b"".join(transport.pipes[0]._tempDataBuffer), b"late")
        open(go, "w").close()
        yield protocol.ended
        self.assertEqual(protocol.out, b"firstlate")

    @defer.inlineCallbacks
    def test_a_dropped_pipe_is_never_written_directly(self):
        protocol, transport, go = self.spawn()
        writer = request_writer(transport)
        open(go, "w").close()
        transport.closeStdin()
        yield protocol.ended
        self.assertNotIn(0, transport.pipes)  # Twisted closed the descriptor: its number may be reused
        # what the plain path does (the channel's caller turns it into a deferral), never a write to the number
        self.assertRaises(KeyError, TransportRequests(transport).write, b"late")
        self.assertRaises(KeyError, writer.write, b"late")
        self.assertFalse(writer.direct)
        self.assertEqual(protocol.out, b"")
