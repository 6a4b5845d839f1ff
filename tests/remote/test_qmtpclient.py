"""QMTPClientProtocol over StringTransport and a Clock: what it sends, how it reads the reply."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS
from pymta.queue.framing import netstring
from pymta.remote.qmtpclient import MAX_REPLY, QMTPClientProtocol, QMTPOutcome


class Harness:
    def __init__(self, testcase: unittest.TestCase, message: bytes = b"Subject: x\n\nhello\n",
                 recipients: tuple[str, ...] = ("bob@example.test", "ann@example.test")) -> None:
        path = testcase.mktemp()
        with open(path, "wb") as f:
            f.write(message)
        self.file = open(path, "rb")
        testcase.addCleanup(self.file.close)
        self.clock = Clock()
        self.proto = QMTPClientProtocol("192.0.2.1", "alice@example.org", list(recipients), self.file,
                                        timeout=60, callLater=self.clock.callLater)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.outcomes: list = []
        self.proto.finished.addCallback(self.outcomes.append)
        for _ in range(1000):  # let the file sender run (StringTransport does not pull on its own)
            if self.transport.producer is None:
                break
            self.transport.producer.resumeProducing()

    def lost(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))

    @property
    def outcome(self) -> list[QMTPOutcome]:
        """One outcome per recipient, in order."""
        assert len(self.outcomes) == 1, self.outcomes
        return self.outcomes[0]


class ClientTests(unittest.TestCase):
    def test_what_is_sent(self) -> None:
        h = Harness(self)
        self.assertEqual(
            h.transport.value(),
            netstring(b"\nSubject: x\n\nhello\n") + netstring(b"alice@example.org")
            + netstring(netstring(b"bob@example.test") + netstring(b"ann@example.test")),
        )

    def test_k_z_d(self) -> None:
        for reply, status, text in (
            (b"Kok 1700000000 qp 42", SUCCESS,
             "192.0.2.1 accepted message.\nRemote host said: ok 1700000000 qp 42\n"),
            (b"Zdisk full (#4.3.0)", DEFERRAL,
             "192.0.2.1 failed after I sent the message.\nRemote host said: disk full (#4.3.0)\n"),
            (b"Dno such user (#5.1.1)", FAILURE,
             "192.0.2.1 failed after I sent the message.\nRemote host said: no such user (#5.1.1)\n"),
            (b"?what", DEFERRAL, "192.0.2.1 failed after I sent the message.\nRemote host said: ?what\n"),
        ):
            h = Harness(self)
            for byte in netstring(reply) * 2:  # one reply per recipient, in pieces
                h.proto.dataReceived(bytes([byte]))
            self.assertTrue(h.transport.disconnecting)
            h.lost()
            self.assertEqual([(o.status, o.text) for o in h.outcome], [(status, text)] * 2)

    def test_each_reply_is_its_recipients(self) -> None:
        h = Harness(self)
        # a qmail-qmtpd answer: bob accepted, ann refused by rcpthosts
        h.proto.dataReceived(netstring(b"Kok 1700000000 qp 42")
                             + netstring(b"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"))
        h.lost()
        self.assertEqual([o.status for o in h.outcome], [SUCCESS, FAILURE])
        self.assertEqual(h.outcome[1].text, "192.0.2.1 failed after I sent the message.\n"
                         "Remote host said: sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\n")

    def test_the_connection_waits_for_every_reply(self) -> None:
        h = Harness(self)
        h.proto.dataReceived(netstring(b"Kok 1700000000 qp 42"))
        self.assertFalse(h.transport.disconnecting)
        self.assertEqual(h.outcomes, [])
        h.proto.dataReceived(netstring(b"Kok 1700000000 qp 42"))
        self.assertTrue(h.transport.disconnecting)

    def test_connection_dies_after_the_message_is_possible_duplicate(self) -> None:
        h = Harness(self)
        h.lost()
        died = "Connected to 192.0.2.1 but connection died. Possible duplicate! (#4.4.2)\n"
        self.assertEqual([(o.status, o.text) for o in h.outcome], [(DEFERRAL, died)] * 2)

    def test_fewer_replies_than_recipients_defer_the_rest(self) -> None:
        h = Harness(self, recipients=("bob@example.test", "ann@example.test", "cy@example.test"))
        h.proto.dataReceived(netstring(b"Dno such user (#5.1.1)"))
        h.lost()
        self.assertEqual([o.status for o in h.outcome], [FAILURE, DEFERRAL, DEFERRAL])
        self.assertEqual(h.outcome[2].text, "Connected to 192.0.2.1 but connection died. Possible duplicate! (#4.4.2)\n")

    def test_bad_or_long_reply_drops_the_connection(self) -> None:
        for reply in (b"x5:Kok,", b"%d:" % (MAX_REPLY + 1)):
            h = Harness(self)
            h.proto.dataReceived(reply)
            self.assertTrue(h.transport.disconnecting or h.transport.disconnected, reply)
            h.lost()
            self.assertEqual([o.status for o in h.outcome], [DEFERRAL] * 2)
            self.assertIn("connection died (bad reply:", h.outcome[1].text)

    def test_a_bad_reply_after_a_good_one_keeps_the_good_one(self) -> None:
        h = Harness(self)
        h.proto.dataReceived(netstring(b"Kok 1700000000 qp 42") + b"x5:Kok,")
        h.lost()
        self.assertEqual([o.status for o in h.outcome], [SUCCESS, DEFERRAL])

    def test_timeout(self) -> None:
        h = Harness(self)
        h.clock.advance(61)
        h.lost()
        self.assertEqual([o.status for o in h.outcome], [DEFERRAL] * 2)
        self.assertIn("connection died. Possible duplicate!", h.outcome[0].text)
