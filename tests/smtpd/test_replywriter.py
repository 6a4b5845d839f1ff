"""smtpd's reply writer: straight to a plain TCP socket while it takes each reply whole, else through the transport."""

from __future__ import annotations

import socket
import time

from twisted.internet import defer, reactor, threads
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.control import ControlReader
from pymta.smtpd.replywriter import DirectReplies, TransportReplies, reply_writer
from pymta.smtpd.service import build_smtpd_service
from tests.smtpd.helpers import MemorySink, make_root


class FakeSocket:
    """Takes at most C{room} bytes in all, then raises EAGAIN (C{BlockingIOError})."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.sent = b""

    def send(self, data: bytes) -> int:
        if self.room == 0:
            raise BlockingIOError
        n = min(self.room, len(data))
        self.room -= n
        self.sent += data[:n]
        return n


class Connected(StringTransport):
    connected = 1


class Direct(SynchronousTestCase):
    def test_whole_replies_go_to_the_socket(self) -> None:
        sock, transport = FakeSocket(100), Connected()
        replies = DirectReplies(transport, sock)  # type: ignore[arg-type]
        replies.write(b"220 a\r\n")
        replies.write(b"250 b\r\n")
        self.assertEqual(sock.sent, b"220 a\r\n250 b\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(replies.direct)

    def test_a_partial_send_puts_the_rest_and_every_later_reply_behind_it(self) -> None:
        sock, transport = FakeSocket(10), Connected()
        replies = DirectReplies(transport, sock)  # type: ignore[arg-type]
        replies.write(b"220 a\r\n")
        replies.write(b"250 bbbb\r\n")
        sock.room = 1000  # the socket has room again, but Twisted's buffer holds bytes: order first
        replies.write(b"354 c\r\n")
        self.assertEqual(sock.sent, b"220 a\r\n250")
        self.assertEqual(transport.value(), b" bbbb\r\n354 c\r\n")
        self.assertFalse(replies.direct)

    def test_a_full_socket_sends_nothing_itself(self) -> None:
        sock, transport = FakeSocket(0), Connected()
        replies = DirectReplies(transport, sock)  # type: ignore[arg-type]
        replies.write(b"250 ok\r\n")
        self.assertEqual((sock.sent, transport.value()), (b"", b"250 ok\r\n"))

    def test_a_lost_connection_writes_through_the_transport(self) -> None:
        sock, transport = FakeSocket(100), Connected()
        transport.connected = 0
        DirectReplies(transport, sock).write(b"250 ok\r\n")  # type: ignore[arg-type]
        self.assertEqual(sock.sent, b"")

    def test_other_transports_take_the_plain_path(self) -> None:
        transport = StringTransport()
        replies = reply_writer(transport, tls=False)
        self.assertIsInstance(replies, TransportReplies)
        replies.write(b"220 x\r\n")
        self.assertEqual(transport.value(), b"220 x\r\n")


class RealSocket(TestCase):
    """pymta-smtpd on 127.0.0.1: a plain TCP session's replies go straight to the socket, in order."""

    timeout = 60

    def setUp(self) -> None:
        self.root = make_root(self.mktemp())
        self.sink = MemorySink()
        self.svc = build_smtpd_service(
            self.root, ControlReader(self.root), self.sink, ["tcp:0:interface=127.0.0.1"], [],
            reactor=reactor, portal_checkers=[],
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        child = next(c for c in self.svc if hasattr(c, "_waitingForPort"))
        self.listening = child._waitingForPort.result
        self.port = self.listening.getHost().port

    def dialogue(self) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rb")
            lines = [f.readline()]
            for command in (b"HELO c", b"MAIL FROM:<a@x>", b"RCPT TO:<b@mx.example.org>", b"DATA"):
                s.sendall(command + b"\r\n")
                lines.append(f.readline())
            s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            lines.append(f.readline())
            lines.append(f.readline())
            lines.append(f.read())  # nothing after 221: the server closes
            return lines

    @defer.inlineCallbacks
    def test_dialogue(self):  # type: ignore[no-untyped-def]
        writers: list[object] = []
        nodelay: list[int] = []
        factory = self.listening.factory
        build = factory.buildProtocol

        def spy(addr):  # type: ignore[no-untyped-def]
            protocol = build(addr)
            made = protocol.connectionMade

            def connection_made() -> None:
                made()
                writers.append(protocol._replies)
                nodelay.append(protocol.transport.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

            protocol.connectionMade = connection_made
            return protocol

        factory.buildProtocol = spy
        lines = yield threads.deferToThread(self.dialogue)
        self.assertEqual([line[:4] for line in lines], [b"220 ", b"250 ", b"250 ", b"250 ", b"354 ", b"250 ", b"221 ", b""])
        self.assertEqual(len(writers), 1)
        self.assertIsInstance(writers[0], DirectReplies)
        self.assertTrue(writers[0].direct)  # type: ignore[attr-defined]
        self.assertEqual(nodelay, [1])  # Nagle off: see test_pipelined_group_is_not_held_back
        self.assertEqual(len(self.sink.queued), 1)

    def pipelined(self, transactions: int) -> tuple[list[bytes], float]:
        """C{transactions} messages, each MAIL, RCPT and DATA in one packet (as Postfix's client sends them)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rb")
            lines = [f.readline()]
            s.sendall(b"EHLO c\r\n")
            while not (line := f.readline()).startswith(b"250 "):
                pass
            started = time.monotonic()
            for _ in range(transactions):
                s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@mx.example.org>\r\nDATA\r\n")
                lines += [f.readline() for _ in range(3)]
                s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
                lines.append(f.readline())
            elapsed = time.monotonic() - started
            s.sendall(b"QUIT\r\n")
            lines.append(f.readline())
            return lines, elapsed

    @defer.inlineCallbacks
    def test_pipelined_group_is_not_held_back(self):  # type: ignore[no-untyped-def]
        """
        The replies to a pipelined MAIL/RCPT/DATA are three sends: with Nagle's
        algorithm on, the second waits for the client's delayed ACK (about 40 ms
        each transaction); the direct path's sockets have TCP_NODELAY.
        """
        lines, elapsed = yield threads.deferToThread(self.pipelined, 10)
        self.assertEqual([line[:4] for line in lines[1:5]], [b"250 ", b"250 ", b"354 ", b"250 "])
        self.assertEqual(lines[-1][:4], b"221 ")
        self.assertEqual(len(self.sink.queued), 10)
        self.assertLess(elapsed, 0.35)  # ten stalls would take 0.4 s at least
