"""POP3: a period per command line (not per byte), server work held; connection limits counted at accept."""

from __future__ import annotations

import os
import socket
import time

from twisted.internet import defer, reactor, threads
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.pop3d.auth import LoginFailed
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.service import build_pop3_service
from pymta.passwdfile import set_password
from tests.pop3d.helpers import TLSStringTransport, drain, put_message, sample_maildir
from tests.pop3d.test_protocol import ProtocolTestBase


class Deadlines(ProtocolTestBase):
    def drip(self, data: bytes, limit: int) -> float:
        """C{data} one byte a second until the connection closes; the seconds it took."""
        start = self.clock.seconds()
        for i in range(limit):
            if self.transport.disconnecting:
                break
            self.proto.dataReceived(data[i % len(data) : i % len(data) + 1])
            self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting, "still open after the drip")
        return self.clock.seconds() - start

    def test_one_byte_a_second_closed_after_the_timeout(self) -> None:
        self.settings.login_within = 10_000  # the line deadline, not the login deadline, is tested
        self.proto, self.transport = self.connect("192.0.2.9")
        self.transport.clear()
        self.assertEqual(self.drip(b"USER " + b"a" * 2000, 3000), 600)
        # 600 bytes: answered once for being over 512, then closed without a word, as qmail
        self.assertEqual(self.transport.value(), b"-ERR line too long\r\n")

    def test_drip_after_login(self) -> None:
        self.login()
        self.transport.clear()
        self.assertEqual(self.drip(b"RETR 1" + b" " * 1000, 3000), 600)

    def test_each_line_gets_a_period(self) -> None:
        self.login()
        for _ in range(5):
            self.clock.advance(599)
            self.assertEqual(self.lines(b"NOOP\r\n"), [b"+OK "])
        self.lines(b"NO")
        self.clock.advance(599)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_password_check_does_not_count(self) -> None:
        pending: defer.Deferred = defer.Deferred()
        self.auth.result = pending
        self.lines(b"USER alice\r\nPASS secret\r\n")
        self.clock.advance(3000)  # the checker (an argon2 hash, a checkpassword program) takes its time
        self.assertFalse(self.transport.disconnecting)
        pending.callback(self.auth.account)
        self.assertEqual(self.transport.value(), b"+OK \r\n+OK \r\n")
        self.clock.advance(599)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)  # the period for the next command starts with the answer
        self.assertTrue(self.transport.disconnecting)

    def test_mailbox_opening_does_not_count(self) -> None:
        pending: defer.Deferred = defer.Deferred()
        self.settings.open_mailbox = lambda account: pending
        self.lines(b"USER alice\r\nPASS secret\r\n")
        self.clock.advance(3000)  # a mailbox child starting on a slow disk
        self.assertFalse(self.transport.disconnecting)

    def test_retr_to_a_reading_client_is_not_cut(self) -> None:
        put_message(self.maildir, "2000.Z.host", b"Subject: big\n\n" + (b"x" * 75 + b"\n") * 20_000)
        self.transport.clear()
        self.lines(b"USER alice\r\nPASS secret\r\n")
        self.transport.clear()
        self.proto.dataReceived(b"RETR 4\r\n")
        chunks = 0  # StringTransport does not pull the first chunk at registration as a TCP transport does
        while self.proto._busy and chunks < 1000:  # the client reads one chunk every 500 s
            self.clock.advance(500)
            self.assertFalse(self.transport.disconnecting)
            self.proto.transport.producer.resumeProducing()
            chunks += 1
        self.assertGreater(chunks, 1)
        self.assertTrue(self.transport.value().endswith(b"\r\n.\r\n"))
        self.clock.advance(600)  # then the next command is due within the period
        self.assertTrue(self.transport.disconnecting)

    def test_retr_to_a_client_that_stops_reading(self) -> None:
        put_message(self.maildir, "2000.Z.host", b"Subject: big\n\n" + b"x" * 500_000 + b"\n")
        self.lines(b"USER alice\r\nPASS secret\r\n")
        self.proto.dataReceived(b"RETR 4\r\n")
        self.proto.transport.producer.resumeProducing()  # the first chunk, pulled at registration
        self.assertTrue(self.proto._busy)  # the client never reads: no chunk after the first
        self.clock.advance(600)
        self.assertTrue(self.transport.disconnecting)


class LoginWithin(ProtocolTestBase):
    """NOOP or CAPA before each line deadline does not keep a session that never logs in."""

    def test_noop_every_two_seconds_closed_after_login_within(self) -> None:
        answers = []
        while not self.transport.disconnecting and self.clock.seconds() < 1000:
            answers += self.lines(b"NOOP\r\n")
            self.clock.advance(2)
        self.assertEqual(self.clock.seconds(), 120)
        self.assertEqual(answers, [b"+OK "] * 60)
        self.assertEqual(self.transport.value(), b"+OK \r\n-ERR too slow to log in, closing\r\n")  # the last NOOP's, then

    def test_logged_in_session_lives_on(self) -> None:
        self.clock.advance(100)
        self.login()
        for _ in range(100):
            self.assertEqual(self.lines(b"NOOP\r\n"), [b"+OK "])
            self.clock.advance(2)
        self.assertFalse(self.transport.disconnecting)

    def test_a_check_running_at_the_deadline_is_finished(self) -> None:
        pending: defer.Deferred = defer.Deferred()
        self.auth.result = pending
        self.clock.advance(100)
        self.lines(b"USER alice\r\nPASS secret\r\n")
        self.clock.advance(100)  # a slow check, past the 120 s
        self.assertFalse(self.transport.disconnecting)
        pending.callback(self.auth.account)
        self.assertEqual(self.transport.value(), b"+OK \r\n+OK \r\n")
        self.assertFalse(self.transport.disconnecting)

    def test_a_failed_check_past_the_deadline_closes(self) -> None:
        pending: defer.Deferred = defer.Deferred()
        self.auth.result = pending
        self.clock.advance(100)
        self.lines(b"USER alice\r\nPASS wrong\r\n")
        self.clock.advance(100)
        pending.errback(LoginFailed("authorization failed"))
        self.clock.advance(10)  # the failure delay
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(self.transport.value().endswith(b"-ERR too slow to log in, closing\r\n"), self.transport.value())


class ConnectionLimits(ProtocolTestBase):
    def setUp(self) -> None:
        super().setUp()
        self.settings.max_connections = 5
        self.settings.max_connections_per_address = 2

    def connect_from(self, address: IPv4Address | IPv6Address) -> tuple:
        proto = self.factory.buildProtocol(None)
        transport = TLSStringTransport(peerAddress=address)
        proto.makeConnection(transport)
        return proto, transport

    def test_per_address_and_total(self) -> None:
        # setUp's session holds one slot of 192.0.2.1
        second = self.connect_from(IPv4Address("TCP", "192.0.2.1", 5001))
        third = self.connect_from(IPv4Address("TCP", "192.0.2.1", 5002))
        self.assertTrue(second[1].value().startswith(b"+OK <"))
        self.assertEqual(third[1].value(), b"-ERR [SYS/TEMP] too many connections from your address, try again later\r\n")
        self.assertTrue(third[1].disconnecting)
        third[0].connectionLost(None)  # a refused connection gives back nothing it did not take
        others = [self.connect_from(IPv4Address("TCP", f"192.0.2.{i}", 5000)) for i in (2, 3, 4, 5)]
        self.assertEqual([t.value()[:4] for _, t in others], [b"+OK ", b"+OK ", b"+OK ", b"-ERR"])
        self.assertEqual(others[3][1].value(), b"-ERR [SYS/TEMP] too many connections, try again later\r\n")
        self.assertEqual(self.settings.connections.total, 5)
        second[0].connectionLost(None)
        again = self.connect_from(IPv4Address("TCP", "192.0.2.1", 5003))
        self.assertTrue(again[1].value().startswith(b"+OK <"))

    def test_ipv6_counts_per_64(self) -> None:
        first = self.connect_from(IPv6Address("TCP", "2001:db8:7:7::1", 5000))
        second = self.connect_from(IPv6Address("TCP", "2001:db8:7:7:ffff::2", 5000))
        third = self.connect_from(IPv6Address("TCP", "2001:db8:7:7::3", 5000))
        elsewhere = self.connect_from(IPv6Address("TCP", "2001:db8:7:8::1", 5000))
        self.assertEqual(
            [t.value()[:4] for _, t in (first, second, third, elsewhere)], [b"+OK ", b"+OK ", b"-ERR", b"+OK "]
        )

    def test_slot_given_back_once(self) -> None:
        self.proto.connectionLost(None)
        self.proto.connectionLost(None)
        self.assertEqual(self.settings.connections.total, 0)
        drain(self.transport)


class RealSocketDrip(TestCase):
    """pymta-pop3d's service on 127.0.0.1 with a 1 s timeout: a real drip of 4 bytes/s ends on time."""

    timeout = 60

    def setUp(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "control"))
        home = os.path.join(root, "home", "alice")
        sample_maildir(os.path.join(home, "Maildir"))
        uid = os.getuid() or 4242
        set_password(os.path.join(root, "users", "passwd"), "alice", "secret", uid, uid, home, scheme="PLAIN")
        self.svc = build_pop3_service(
            root, ControlReader(root), ["tcp:0:interface=127.0.0.1"], reactor=reactor, allow_plaintext=True,
            timeout=1.0, open_mailbox=MailboxOpener(reactor, euid=lambda: os.getuid() or 4242),
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        child = next(c for c in self.svc if hasattr(c, "_waitingForPort"))
        self.port = child._waitingForPort.result.getHost().port

    def drip(self, before: bytes, pattern: bytes) -> tuple[float, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"+OK <")
            s.sendall(before)
            answers = b"".join(f.readline() for _ in range(before.count(b"\n")))
            start = time.monotonic()
            s.settimeout(0.25)
            i = 0
            while time.monotonic() - start < 15:
                try:
                    s.sendall(pattern[i % len(pattern) : i % len(pattern) + 1])
                    i += 1
                    answers += s.recv(1024) or b"<closed>"
                    break
                except socket.timeout:
                    continue
                except OSError:
                    answers += b"<closed>"
                    break
            return time.monotonic() - start, answers

    @defer.inlineCallbacks
    def test_drip_before_login(self):  # type: ignore[no-untyped-def]
        took, answers = yield threads.deferToThread(self.drip, b"", b"USER alice")
        self.assertEqual(answers, b"<closed>")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.5)

    @defer.inlineCallbacks
    def test_drip_after_login(self):  # type: ignore[no-untyped-def]
        took, answers = yield threads.deferToThread(self.drip, b"USER alice\r\nPASS secret\r\n", b"STAT")
        self.assertEqual(answers, b"+OK \r\n+OK \r\n<closed>")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.5)
