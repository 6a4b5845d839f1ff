"""smtpd's deadlines per line (timeoutsmtpd) and DATA rate (mindatarate); limits counted at accept."""

from __future__ import annotations

import os
import socket
import time

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.control import ControlReader
from pymta.smtpd.service import build_smtpd_service
from tests.smtpd.helpers import MemorySink, Session, make_root
from tests.smtpd.test_dnsbl import FakeResolver


class Base(SynchronousTestCase):
    controls: dict[str, str] = {}

    def session(self, **kw: object) -> Session:
        s = Session(make_root(self.mktemp(), **self.controls), **kw)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        return s

    def drip(self, s: Session, data: bytes, limit: int) -> float:
        """Send C{data} one byte a second until the session closes; the seconds it took."""
        start = s.clock.seconds()
        for i in range(limit):
            if s.transport.disconnecting:
                break
            s.proto.dataReceived(data[i % len(data) : i % len(data) + 1])
            s.clock.advance(1)
        self.assertTrue(s.transport.disconnecting, "still open after the drip")
        return s.clock.seconds() - start

    def in_data(self, s: Session) -> None:
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])


class CommandLines(Base):
    def test_one_byte_a_second_closed_after_timeoutsmtpd(self) -> None:
        s = self.session()
        self.assertEqual(self.drip(s, b"MAIL FROM:<" + b"a" * 3000, 5000), 1200)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])

    def test_period_counts_from_the_last_complete_line(self) -> None:
        s = self.session()
        s.clock.advance(1000)
        self.assertEqual(s.cmd("NOOP"), ["250 ok"])
        s.send(b"NO")
        s.clock.advance(1199)
        self.assertEqual(s.send(b"OP\r\n"), ["250 ok"])
        s.clock.advance(1199)
        self.assertFalse(s.transport.disconnecting)
        s.clock.advance(1)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])

    def test_queue_commit_does_not_count(self) -> None:
        s = self.session()
        s.sink.hold = True
        self.in_data(s)
        s.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        s.clock.advance(5000)  # the queue takes its time
        self.assertFalse(s.transport.disconnecting)
        s.sink.release()
        self.assertEqual(s.take(), ["250 ok 1800005000 qp 4001"])
        s.clock.advance(1199)
        self.assertFalse(s.transport.disconnecting)
        s.clock.advance(1)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])

    def test_shorter_timeoutsmtpd(self) -> None:
        self.controls = {"timeoutsmtpd": "30"}
        s = self.session()
        self.assertEqual(self.drip(s, b"EHLO " + b"h" * 100, 100), 30)


class DataPhase(Base):
    def test_drip_without_line_end_closed_after_timeoutsmtpd(self) -> None:
        s = self.session()
        self.in_data(s)
        self.assertEqual(self.drip(s, b"x" * 5000, 5000), 1200)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])
        self.assertFalse(s.sink.opened[0].finished)

    def test_drip_of_short_lines_closed_by_mindatarate(self) -> None:
        s = self.session()
        self.in_data(s)
        # a line every 3 s: each line is on time, the average (1 byte/s) is not
        self.assertEqual(self.drip(s, b"x\r\n", 5000), 1200)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])
        self.assertEqual(s.sink.queued, [])

    def test_mindatarate_zero_turns_the_rate_off(self) -> None:
        self.controls = {"mindatarate": "0"}
        s = self.session()
        self.in_data(s)
        for _ in range(1000):  # 3,000 s of one byte a second
            for byte in b"x\r\n":
                s.proto.dataReceived(bytes([byte]))
                s.clock.advance(1)
        self.assertFalse(s.transport.disconnecting)
        self.assertEqual(s.send(b".\r\n"), ["250 ok 1800003000 qp 4001"])

    def test_slow_but_steady_client_passes(self) -> None:
        self.controls = {"mindatarate": "1000"}
        s = self.session()
        self.in_data(s)
        for _ in range(3000):  # 1,001 bytes a second for 50 minutes
            s.proto.dataReceived(b"z" * 999 + b"\r\n")
            s.clock.advance(1)
        self.assertFalse(s.transport.disconnecting)
        self.assertEqual(s.send(b".\r\n"), ["250 ok 1800003000 qp 4001"])
        self.assertEqual(s.sink.queued[0].data.count(b"z" * 999 + b"\n"), 3000)

    def test_next_transaction_back_to_lines(self) -> None:
        s = self.session()
        self.in_data(s)
        self.assertEqual(s.send(b"body\r\n.\r\n"), ["250 ok 1800000000 qp 4001"])
        s.clock.advance(1199)
        s.send(b"NOOP")  # no rate check in command mode, only the line period
        s.clock.advance(1)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])


class LimitsCountedAtAccept(Base):
    controls = {"concurrencyincoming": "5", "concurrencyperip": "2"}

    def test_parallel_connects_during_reverse_lookups(self) -> None:
        """With =host rules every client waits for DNS first; the limits already count it."""
        root = make_root(self.mktemp(), **self.controls)
        resolver = FakeResolver(hang=True)
        first = Session(root, rules="=.good.example:allow\n:allow\n", resolver=resolver, reverse_lookup_seconds=5)
        self.addCleanup(first.close)
        sessions = [first] + [Session(root, context=first.context) for _ in range(3)]
        for s in sessions[1:]:
            self.addCleanup(s.close)
        self.assertEqual([s.take() for s in sessions[:2]], [[], []])  # still looking up
        refused = "421 too many connections from your address, try again later (#4.3.2)"
        self.assertEqual([s.take() for s in sessions[2:]], [[refused], [refused]])
        self.assertEqual(first.context.limiter.total, 2)
        ipv6 = [Session(root, context=first.context, peer=f"2001:db8:1:2::{i}") for i in range(1, 4)]
        for s in ipv6:
            self.addCleanup(s.close)
        self.assertEqual(ipv6[2].take(), [refused])  # one /64 counts as one address
        first.clock.advance(5)
        self.assertEqual(first.take(), ["220 mx.example.org ESMTP"])


class RealSockets(TestCase):
    """pymta-smtpd's service on 127.0.0.1 with timeoutsmtpd 1 s (the least there is): real drips end on time."""

    timeout = 60

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), timeoutsmtpd="1", mindatarate="100")
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write(":allow\n")
        self.svc = build_smtpd_service(
            self.root, ControlReader(self.root), MemorySink(), ["tcp:0:interface=127.0.0.1"], [],
            reactor=reactor, portal_checkers=[],
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        child = next(c for c in self.svc if hasattr(c, "_waitingForPort"))
        self.port = child._waitingForPort.result.getHost().port

    def drip(self, before: list[bytes], pattern: bytes, every: float) -> tuple[float, bytes]:
        """Send the C{before} lines, then C{pattern} byte by byte; seconds until the server closed, its last words."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"220 ")
            for line in before:
                s.sendall(line + b"\r\n")
                f.readline()
            start = time.monotonic()
            s.settimeout(every)
            i = 0
            while time.monotonic() - start < 15:
                try:
                    s.sendall(pattern[i % len(pattern) : i % len(pattern) + 1])
                except OSError:
                    break
                i += 1
                try:
                    last = s.recv(1024)
                except socket.timeout:
                    continue
                except OSError:
                    last = b""
                break
            return time.monotonic() - start, last

    @defer.inlineCallbacks
    def test_command_line_drip(self):  # type: ignore[no-untyped-def]
        took, last = yield threads.deferToThread(self.drip, [b"EHLO client"], b"MAIL FROM:<slow@example.org>", 0.25)
        self.assertEqual(last, b"451 timeout (#4.4.2)\r\n")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.5)

    @defer.inlineCallbacks
    def test_data_drip_of_short_lines(self):  # type: ignore[no-untyped-def]
        # timeoutsmtpd 1 with an empty line every 0.4 s: each line on time, 5 bytes/s on average
        before = [b"HELO c", b"MAIL FROM:<a@x>", b"RCPT TO:<b@mx.example.org>", b"DATA"]
        took, last = yield threads.deferToThread(self.drip, before, b"\r\n", 0.2)
        self.assertEqual(last, b"451 timeout (#4.4.2)\r\n")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.5)


class CommandsWithoutProgress(Base):
    """A line before each deadline keeps a session, but not for ever: junk commands are counted."""

    def test_noop_every_two_seconds_is_closed_after_the_limit(self) -> None:
        s = self.session()
        replies = []
        for _ in range(200):
            if s.transport.disconnecting:
                break
            replies += s.cmd("NOOP")
            s.clock.advance(2)
        self.assertEqual(replies[:100], ["250 ok"] * 100)
        self.assertEqual(replies[100:], ["421 too many commands that make no progress, closing (#4.7.0)"])
        self.assertTrue(s.transport.disconnecting)

    def test_mixed_junk_and_unknown_commands_count(self) -> None:
        s = self.session()
        s.cmd("EHLO first")  # progress; the repeats below are not
        for i in range(100):
            s.cmd(["RSET", "VRFY x", "HELP", "XYZZY", "EHLO again"][i % 5])
        self.assertFalse(s.transport.disconnecting)
        self.assertEqual(s.cmd("NOOP"), ["421 too many commands that make no progress, closing (#4.7.0)"])

    def test_a_client_delivering_mail_is_not_cut(self) -> None:
        s = self.session()
        s.cmd("EHLO client")
        for n in range(5):
            for _ in range(60):
                self.assertEqual(s.cmd("NOOP"), ["250 ok"])
            self.in_data(s)
            self.assertEqual(s.send(b"body\r\n.\r\n"), [f"250 ok 1800000000 qp {4001 + n}"])
        self.assertFalse(s.transport.disconnecting)
