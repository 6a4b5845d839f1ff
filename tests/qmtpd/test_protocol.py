"""QMTPServerProtocol over StringTransport: replies, the queue's commit, access rules, bounds, garbage."""

from __future__ import annotations

import random

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlReader
from pymta.interfaces import QueueRefused
from pymta.qmtpd import protocol as qmtp_protocol
from pymta.qmtpd.service import QMTPFactory
from pymta.queue.framing import NetstringParser, netstring
from pymta.smtpd.access import AccessRules
from pymta.smtpd.context import SMTPDContext
from tests.smtpd.helpers import MemorySink, make_root


def qmtp_message(body: bytes, sender: bytes, recipients: list[bytes], first: bytes = b"\n") -> bytes:
    """One message as a QMTP client sends it."""
    return netstring(first + body) + netstring(sender) + netstring(b"".join(netstring(r) for r in recipients))


class Session:
    """Drives one QMTPServerProtocol over a StringTransport."""

    def __init__(self, root: str, rules: str = "", peer: str = "192.0.2.7", sink: MemorySink | None = None) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.sink = sink or MemorySink()
        self.context = SMTPDContext(reader=ControlReader(root), sink=self.sink, clock=self.clock,
                                    rules=AccessRules.parse(rules))
        self.proto = QMTPFactory(self.context).buildProtocol(None)
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "198.51.100.1", 209),
                                         peerAddress=IPv4Address("TCP", peer, 40000))
        self.proto.makeConnection(self.transport)

    def replies(self) -> list[bytes]:
        """Reply netstrings' payloads sent since the last call."""
        parser = NetstringParser(100000)
        parser.feed(self.transport.value())
        self.transport.clear()
        out = []
        while (value := parser.next()) is not None:
            out.append(value)
        assert not parser.pending()
        return out

    def send(self, data: bytes) -> list[bytes]:
        self.proto.dataReceived(data)
        return self.replies()

    def close(self) -> None:
        if not self.transport.disconnected:
            self.proto.connectionLost(Failure(ConnectionDone()))


class Base(SynchronousTestCase):
    controls: dict[str, str] = {"rcpthosts": "example.org"}

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), **self.controls)

    def session(self, **kw: object) -> Session:
        s = Session(self.root, **kw)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        return s


class Messages(Base):
    def test_one_message_is_queued_with_a_received_line_and_k_after_the_commit(self) -> None:
        s = self.session()
        s.sink.hold = True
        self.assertEqual(s.send(qmtp_message(b"Subject: hi\n\nbody\n", b"a@elsewhere.example", [b"joe@example.org"])), [])
        self.assertEqual(s.sink.queued, [])
        s.sink.release()
        self.assertEqual(s.replies(), [b"Kok 1800000000 qp 4001"])
        [w] = s.sink.queued
        self.assertEqual((w.sender, w.recipients), ("a@elsewhere.example", ["joe@example.org"]))
        self.assertEqual(
            w.data,
            b"Received: from unknown (192.0.2.7)\n  by mx.example.org with QMTP; 15 Jan 2027 08:00:00 -0000\n"
            b"Subject: hi\n\nbody\n",
        )

    def test_several_messages_on_one_connection_sent_at_once(self) -> None:
        s = self.session()
        data = b"".join(qmtp_message(b"m%d\n" % i, b"", [b"u%d@example.org" % i]) for i in range(3))
        self.assertEqual(s.send(data), [b"Kok 1800000000 qp 4001", b"Kok 1800000000 qp 4002", b"Kok 1800000000 qp 4003"])
        self.assertEqual([w.recipients for w in s.sink.queued], [["u0@example.org"], ["u1@example.org"], ["u2@example.org"]])
        self.assertEqual([w.data.split(b"\n")[2] for w in s.sink.queued], [b"m0", b"m1", b"m2"])

    def test_byte_by_byte(self) -> None:
        s = self.session()
        for byte in qmtp_message(b"x\n" * 100, b"a@b.example", [b"joe@example.org", b"ann@example.org"]):
            s.proto.dataReceived(bytes([byte]))
        self.assertEqual(s.replies(), [b"Kok 1800000000 qp 4001"])
        self.assertTrue(s.sink.queued[0].data.endswith(b"x\n" * 100))

    def test_crlf_message_is_stored_with_lf(self) -> None:
        s = self.session()
        body = b"Subject: x\r\n\r\nline\rwith cr\r\nend\r\n"
        for cut in (1, 5, 13, len(body)):
            data = qmtp_message(body, b"", [b"joe@example.org"], first=b"\r")
            s.send(data[:cut + 3])
            s.send(data[cut + 3:])
        for w in s.sink.queued:
            self.assertTrue(w.data.endswith(b"Subject: x\n\nline\rwith cr\nend\n"), w.data)

    def test_queue_refusal_is_z_or_d(self) -> None:
        s = self.session()
        s.sink.refuse = QueueRefused("qq write error or disk full (#4.3.0)")
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"])),
                         [b"Zqq write error or disk full (#4.3.0)"])
        s.sink.refuse = QueueRefused("sorry (#5.3.0)", permanent=True)
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"])), [b"Dsorry (#5.3.0)"])

    def test_lost_connection_while_committing_leaves_the_commit_alone(self) -> None:
        s = self.session()
        s.sink.hold = True
        s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"]))
        s.close()
        s.sink.release()
        self.assertEqual(len(s.sink.queued), 1)
        self.assertEqual(s.sink.aborted, [])

    def test_lost_connection_mid_message_aborts_it(self) -> None:
        s = self.session()
        s.send(b"100:\nSubject: half")
        s.close()
        self.assertEqual(s.sink.queued, [])


class Relaying(Base):
    def test_recipient_outside_rcpthosts_refuses_the_message(self) -> None:
        s = self.session()
        self.assertEqual(
            s.send(qmtp_message(b"x\n", b"", [b"joe@example.org", b"x@elsewhere.example"])),
            [b"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"],
        )
        self.assertEqual(s.sink.queued, [])
        # the connection goes on
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"])), [b"Kok 1800000000 qp 4001"])

    def test_relayclient_relays_and_is_appended(self) -> None:
        s = self.session(rules="192.0.2.7:allow,RELAYCLIENT=\"\"\n")
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"x@elsewhere.example"])), [b"Kok 1800000000 qp 4001"])
        self.assertEqual(s.sink.queued[0].recipients, ["x@elsewhere.example"])

    def test_deny_closes_without_a_word(self) -> None:
        s = self.session(rules="192.0.2.:deny\n")
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"])), [])
        self.assertEqual(s.sink.opened, [])

    def test_databytes_from_the_rule(self) -> None:
        s = self.session(rules="192.0.2.7:allow,DATABYTES=\"10\"\n")
        self.assertEqual(s.send(qmtp_message(b"0123456789A\n", b"", [b"joe@example.org"])),
                         [b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"])
        self.assertEqual(s.send(qmtp_message(b"short\n", b"", [b"joe@example.org"])), [b"Kok 1800000000 qp 4001"])

    def test_address_rules(self) -> None:
        s = self.session()
        self.assertEqual(s.send(qmtp_message(b"x\n", b"a\nb@c", [b"joe@example.org"]))[0][:1], b"D")
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", []))[0][:1], b"D")
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"j" * 901 + b"@example.org"]))[0][:1], b"D")
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"a%b@example.org"]))[0][:1], b"D")
        self.assertEqual(s.sink.queued, [])


class BadInput(Base):
    def assertClosedWithoutReply(self, data: bytes) -> None:
        s = self.session()
        self.assertEqual(s.send(data), [], data)
        self.assertTrue(s.transport.disconnecting, data)
        self.assertEqual(s.sink.queued, [], data)

    def test_not_qmtp(self) -> None:
        for data in (b"EHLO x\r\n", b"0:,", b"5:Xabcd,", b"01:\n,", b"3:\nab;", b"12345678901:",
                     b"2:\nx,9999:" , b"2:\nx,0:,x", b"2:\nx,0:,3:abc,"):
            self.assertClosedWithoutReply(data)

    def test_sender_netstring_over_the_bound(self) -> None:
        self.assertClosedWithoutReply(b"2:\nx,%d:" % (qmtp_protocol.MAX_SENDER + 1))

    def test_timeout_closes(self) -> None:
        s = self.session()
        s.send(b"100:\nSubject")
        s.clock.advance(1199)
        self.assertFalse(s.transport.disconnecting)
        s.clock.advance(2)
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(len(s.sink.aborted), 0)  # the spool held it; nothing reached the queue

    def test_garbage_and_truncation_never_crash(self) -> None:
        good = qmtp_message(b"Subject: x\n\nbody\n", b"a@b.example", [b"joe@example.org"])
        rng = random.Random(17)
        for _ in range(300):
            data = bytearray(good * 2)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = data[: rng.randint(0, len(data))]
            s = self.session()
            s.send(bytes(data))  # no exception; replies are netstrings
            for reply in s.replies():
                self.assertIn(reply[:1], (b"K", b"Z", b"D"))
