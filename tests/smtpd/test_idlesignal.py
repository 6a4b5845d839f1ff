"""
SMTPServerProtocol.when_idle (pymta.smtpd.idlesignal): fires once no
command waits for its Deferred and the buffered input is worked through.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.idlesignal import IdleSignal
from tests.smtpd.helpers import MemorySink, Session, make_root


class IdleSignalTests(SynchronousTestCase):
    def test_waiters_fire_once(self) -> None:
        signal = IdleSignal()
        self.assertIsNone(self.successResultOf(signal.wait(True)))
        waiters = [signal.wait(False), signal.wait(False)]
        for d in waiters:
            self.assertNoResult(d)
        signal.fire()
        signal.fire()  # nobody left: nothing fires twice
        for d in waiters:
            self.assertIsNone(self.successResultOf(d))


class WhenIdleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self.mktemp())
        self.checks: list[tuple[str, defer.Deferred[bool]]] = []

    def check(self, controls: object, address: str) -> "defer.Deferred[bool]":
        if address.startswith("sync"):
            return defer.succeed(True)
        d: defer.Deferred[bool] = defer.Deferred()
        self.checks.append((address, d))
        return d

    def session(self, **kw: object) -> Session:
        s = Session(self.root, recipient_check=self.check, **kw)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        s.take()
        return s

    def test_idle_at_once_when_nothing_waits(self) -> None:
        s = self.session()
        s.cmd("MAIL FROM:<a@x>")
        self.assertIsNone(self.successResultOf(s.proto.when_idle()))

    def test_waits_for_every_buffered_command(self) -> None:
        s = self.session()
        s.cmd("MAIL FROM:<a@x>")
        s.send(b"RCPT TO:<one@mx.example.org>\r\nRCPT TO:<sync@mx.example.org>\r\n"
               b"RCPT TO:<two@mx.example.org>\r\nNOOP\r\n")
        idle = s.proto.when_idle()
        self.assertNoResult(idle)
        self.checks.pop(0)[1].callback(True)
        # the answered check let the next lines run: one answered at once, the next waits again
        self.assertEqual(s.take(), ["250 ok", "250 ok"])
        self.assertNoResult(idle)
        self.checks.pop(0)[1].callback(True)
        self.assertIsNone(self.successResultOf(idle))
        self.assertEqual(s.take(), ["250 ok", "250 ok"])  # every buffered line answered before idle

    def test_waits_for_the_queue_commit(self) -> None:
        sink = MemorySink()
        sink.hold = True
        s = self.session(sink=sink)
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<sync@mx.example.org>")
        s.cmd("DATA")
        s.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        idle = s.proto.when_idle()
        self.assertNoResult(idle)
        sink.release()
        self.assertIsNone(self.successResultOf(idle))
        self.assertEqual(s.take(), ["250 ok 1800000000 qp 4001"])

    def test_commit_in_flight_after_the_connection_is_lost(self) -> None:
        sink = MemorySink()
        sink.hold = True
        s = self.session(sink=sink)
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<sync@mx.example.org>")
        s.cmd("DATA")
        s.send(b"body\r\n.\r\n")
        s.proto.connectionLost(Failure(ConnectionDone()))
        idle = s.proto.when_idle()
        self.assertNoResult(idle)  # the message is still being committed
        sink.release()
        self.successResultOf(idle)
        self.assertEqual(len(sink.queued), 1)

    def test_a_failed_command_ends_the_wait(self) -> None:
        s = self.session()
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<one@mx.example.org>")
        idle = s.proto.when_idle()
        self.checks.pop()[1].errback(RuntimeError("lookup broke"))
        self.successResultOf(idle)
        self.assertEqual(s.take(), ["451 temporary failure checking the recipient (#4.3.0)"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
