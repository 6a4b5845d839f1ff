"""QMQPServerProtocol over StringTransport: the one reply, the commit, tcp.qmqp, the envelope, bounds, garbage."""

from __future__ import annotations

import os
import random

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlReader
from pymta.interfaces import QueueRefused
from pymta.qmqpd import envelope
from pymta.qmqpd.access import QMQPRules
from pymta.qmqpd.protocol import MAX_ENVELOPE
from pymta.qmqpd.service import QMQPFactory
from pymta.qmtpd.envelope import MAX_RECIPIENTS
from pymta.queue.framing import NetstringParser, netstring
from pymta.smtpd.access import AccessRules
from pymta.smtpd.context import SMTPDContext
from tests.smtpd.helpers import MemorySink, make_root

RECEIVED = b"Received: from unknown (192.0.2.7)\n  by mx.example.org with QMQP; 15 Jan 2027 08:00:00 -0000\n"


def qmqp_packet(body: bytes, sender: bytes, recipients: list[bytes]) -> bytes:
    """One message as a QMQP client sends it."""
    return netstring(netstring(body) + netstring(sender) + b"".join(netstring(r) for r in recipients))


class Session:
    """Drives one QMQPServerProtocol over a StringTransport."""

    def __init__(self, root: str, peer: str = "192.0.2.7", sink: MemorySink | None = None,
                 rules: QMQPRules | None = None) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.sink = sink or MemorySink()
        # tcp.smtp allows everyone: only tcp.qmqp may decide
        self.context = SMTPDContext(reader=ControlReader(root), sink=self.sink, clock=self.clock,
                                    rules=AccessRules.parse(""))
        rules = rules or QMQPRules(os.path.join(root, "etc", "tcp.qmqp"))
        self.proto = QMQPFactory(self.context, rules).buildProtocol(None)
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "198.51.100.1", 628),
                                         peerAddress=IPv4Address("TCP", peer, 40000))
        self.proto.makeConnection(self.transport)

    def replies(self) -> list[bytes]:
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
    tcp_qmqp: str | None = "192.0.2.:allow\n"

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), **self.controls)
        os.makedirs(os.path.join(self.root, "etc"))
        if self.tcp_qmqp is not None:
            self.write_rules(self.tcp_qmqp)

    def write_rules(self, text: str) -> None:
        path = os.path.join(self.root, "etc", "tcp.qmqp")
        with open(path, "w") as f:
            f.write(text)
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new mtime even within one tick

    def session(self, **kw: object) -> Session:
        s = Session(self.root, **kw)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        return s

    def assertClosedWithoutReply(self, data: bytes, **kw: object) -> None:
        s = self.session(**kw)
        self.assertEqual(s.send(data), [], data)
        self.assertTrue(s.transport.disconnecting, data)
        self.assertEqual(s.sink.queued, [], data)


class Messages(Base):
    def test_one_message_is_queued_with_a_received_line_and_k_after_the_commit(self) -> None:
        s = self.session()
        s.sink.hold = True
        self.assertEqual(s.send(qmqp_packet(b"Subject: hi\n\nbody\n", b"a@app.example", [b"joe@elsewhere.example"])), [])
        self.assertEqual(s.sink.queued, [])
        self.assertFalse(s.transport.disconnecting)
        s.sink.release()
        self.assertEqual(s.replies(), [b"Kok 1800000000 qp 4001"])
        self.assertTrue(s.transport.disconnecting)  # one message per connection: the server closes
        [w] = s.sink.queued
        # no rcpthosts check: QMQP clients are trusted
        self.assertEqual((w.sender, w.recipients), ("a@app.example", ["joe@elsewhere.example"]))
        self.assertEqual(w.data, RECEIVED + b"Subject: hi\n\nbody\n")

    def test_message_is_taken_verbatim(self) -> None:
        s = self.session()
        body = b"Subject: x\r\n\r\nline\rwith cr\r\n\n"
        self.assertEqual(s.send(qmqp_packet(body, b"", [b"a@example.org", b"b@example.net"]))[0][:1], b"K")
        [w] = s.sink.queued
        self.assertEqual(w.data, RECEIVED + body)
        self.assertEqual((w.sender, w.recipients), ("", ["a@example.org", "b@example.net"]))

    def test_byte_by_byte(self) -> None:
        s = self.session()
        for byte in qmqp_packet(b"x\n" * 100, b"a@b.example", [b"joe@example.org", b"ann@example.org"]):
            s.proto.dataReceived(bytes([byte]))
        self.assertEqual(s.replies(), [b"Kok 1800000000 qp 4001"])  # one reply for the message
        self.assertTrue(s.sink.queued[0].data.endswith(b"x\n" * 100))

    def test_queue_refusal_is_z_or_d(self) -> None:
        for permanent, letter in ((False, b"Z"), (True, b"D")):
            s = self.session()
            s.sink.refuse = QueueRefused("qq trouble (#4.3.0)", permanent=permanent)
            self.assertEqual(s.send(qmqp_packet(b"m\n", b"", [b"joe@example.org"])), [letter + b"qq trouble (#4.3.0)"])
            self.assertTrue(s.transport.disconnecting)

    def test_lost_connection_while_committing_leaves_the_commit_alone(self) -> None:
        s = self.session()
        s.sink.hold = True
        s.send(qmqp_packet(b"m\n", b"", [b"joe@example.org"]))
        s.close()
        s.sink.release()
        self.assertEqual(len(s.sink.queued), 1)
        self.assertEqual(s.replies(), [])

    def test_lost_connection_mid_message_aborts_it(self) -> None:
        s = self.session()
        s.send(qmqp_packet(b"m" * 100, b"", [b"joe@example.org"])[:60])
        s.close()
        self.assertEqual(s.sink.queued, [])

    def test_input_after_the_message_is_ignored(self) -> None:
        s = self.session()
        packet = qmqp_packet(b"m\n", b"", [b"joe@example.org"])
        self.assertEqual(len(s.send(packet + packet)), 1)
        self.assertEqual(len(s.sink.queued), 1)


class Envelope(Base):
    def test_addresses_pymta_cannot_take_refuse_the_message(self) -> None:
        for sender, recipients in ((b"a\0b@x.example", [b"joe@example.org"]), (b"", [b"joe@example.org", b"x" * 1000]),
                                   (b"\xff@x.example", [b"joe@example.org"])):
            s = self.session()
            self.assertEqual(s.send(qmqp_packet(b"m\n", sender, recipients)),
                             [b"Dsorry, I can't accept addresses like that (#5.1.3)"])
            self.assertEqual(s.sink.queued, [])
            self.assertTrue(s.transport.disconnecting)

    def test_no_recipients_and_too_many(self) -> None:
        s = self.session()
        self.assertEqual(s.send(qmqp_packet(b"m\n", b"", [])), [envelope.TEXT_NO_RECIPIENTS.encode()])
        s = self.session()
        many = [b"u%d@example.org" % i for i in range(MAX_RECIPIENTS + 1)]
        self.assertEqual(s.send(qmqp_packet(b"m\n", b"", many)), [envelope.TEXT_TOO_MANY.encode()])
        self.assertEqual(s.sink.queued, [])

    def test_databytes(self) -> None:
        with open(os.path.join(self.root, "control", "databytes"), "w") as f:
            f.write("100\n")
        s = self.session()
        reply = s.send(qmqp_packet(b"x" * 200, b"", [b"joe@example.org"]))
        self.assertEqual(reply, [b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"])
        self.assertEqual(s.sink.queued, [])


class Access(Base):
    tcp_qmqp = None

    def test_no_file_lets_nobody_in(self) -> None:
        self.assertClosedWithoutReply(qmqp_packet(b"m\n", b"", [b"joe@example.org"]))

    def test_only_listed_clients(self) -> None:
        self.write_rules("192.0.2.7:allow\n")
        self.assertEqual(self.session().send(qmqp_packet(b"m\n", b"", [b"j@example.org"]))[0][:1], b"K")
        self.assertClosedWithoutReply(qmqp_packet(b"m\n", b"", [b"j@example.org"]), peer="192.0.2.8")

    def test_explicit_deny_and_default_allow(self) -> None:
        self.write_rules("192.0.2.8:deny\n:allow\n")
        self.assertClosedWithoutReply(b"", peer="192.0.2.8")
        self.assertEqual(self.session(peer="203.0.113.1").send(qmqp_packet(b"m\n", b"", [b"j@x.example"]))[0][:1], b"K")

    def test_a_change_applies_at_the_next_connection_and_a_broken_file_keeps_the_old_rules(self) -> None:
        rules = QMQPRules(os.path.join(self.root, "etc", "tcp.qmqp"))  # one listener's, across connections
        self.write_rules("192.0.2.7:allow\n")
        self.assertFalse(self.session(rules=rules).transport.disconnecting)
        self.write_rules("192.0.2.7:deny\n")
        self.assertTrue(self.session(rules=rules).transport.disconnecting)
        self.write_rules("192.0.2.7:allow\n# longer\n")
        self.assertFalse(self.session(rules=rules).transport.disconnecting)
        self.write_rules("192.0.2.0/24:deny\n")  # not tcprules' syntax: the allow stays
        self.assertFalse(self.session(rules=rules).transport.disconnecting)
        os.remove(os.path.join(self.root, "etc", "tcp.qmqp"))  # no file: nobody
        self.assertTrue(self.session(rules=rules).transport.disconnecting)

    def test_databytes_from_the_rule(self) -> None:
        self.write_rules('192.0.2.7:allow,DATABYTES="10"\n')
        reply = self.session().send(qmqp_packet(b"x" * 50, b"", [b"joe@example.org"]))
        self.assertEqual(reply, [b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"])


class NotQMQP(Base):
    def test_not_qmqp(self) -> None:
        for data in (b"EHLO x\r\n", b"0:,", b"01:1:x,", b"5:9:abc,", b"6:1:x,0:,X", b"5:1:x,0:;",
                     b"9:1:x,2:abc,", b"12345678901:", b"4:1:x,,"):
            self.assertClosedWithoutReply(data)

    def test_envelope_over_the_bound(self) -> None:
        self.assertClosedWithoutReply(b"%d:1:x," % (MAX_ENVELOPE + 5))

    def test_timeout_closes(self) -> None:
        s = self.session()
        s.send(b"100:90:Subject")
        s.clock.advance(1199)
        self.assertFalse(s.transport.disconnecting)
        s.clock.advance(2)
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(s.sink.queued, [])

    def test_garbage_and_truncation_never_crash(self) -> None:
        good = qmqp_packet(b"Subject: x\n\nbody\n", b"a@b.example", [b"joe@example.org"])
        rng = random.Random(18)
        for _ in range(300):
            data = bytearray(good * 2)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = data[: rng.randint(0, len(data))]
            s = self.session()
            replies = s.send(bytes(data))  # no exception; at most one reply, a netstring
            self.assertLessEqual(len(replies), 1)
            for reply in replies:
                self.assertIn(reply[:1], (b"K", b"Z", b"D"))


class PacketDeadline(Base):
    """
    The whole packet within a deadline, not per read: timeoutsmtpd seconds
    whatever its size, after that at least mindatarate bytes a second on
    average (smtpd's rule for DATA); mindatarate 0: timeoutsmtpd in all.
    """

    controls = {"rcpthosts": "example.org", "timeoutsmtpd": "10", "mindatarate": "100"}

    def trickle(self, s: Session, data: bytes, per_second: int) -> None:
        """Send C{data} at C{per_second} bytes a second while the connection stays open."""
        for i in range(0, len(data), per_second):
            if s.transport.disconnecting:
                return
            s.proto.dataReceived(data[i : i + per_second])
            s.clock.advance(1)

    def test_a_trickling_client_is_closed(self) -> None:
        s = self.session()
        packet = qmqp_packet(b"Subject: slow\n\n" + b"x" * 100, b"a@app.example", [b"joe@example.org"])
        for byte in range(30):  # one byte every 5 seconds: each read well within the idle timeout
            if s.transport.disconnecting:
                break
            s.send(packet[byte : byte + 1])
            s.clock.advance(5)
        self.assertTrue(s.transport.disconnecting)
        self.assertLessEqual(s.clock.seconds(), 1_800_000_000 + 15)
        self.assertEqual((s.replies(), s.sink.queued), ([], []))

    def test_a_large_message_at_the_rate_may_take_longer(self) -> None:
        s = self.session()
        packet = qmqp_packet(b"Subject: big\n\n" + b"x" * 3000, b"a@app.example", [b"joe@example.org"])
        self.trickle(s, packet, 200)  # about 16 seconds
        self.assertEqual(s.replies()[0][:1], b"K")
        self.assertEqual(len(s.sink.queued), 1)

    def test_below_the_rate_after_timeoutsmtpd_is_closed(self) -> None:
        s = self.session()
        packet = qmqp_packet(b"Subject: big\n\n" + b"x" * 3000, b"a@app.example", [b"joe@example.org"])
        self.trickle(s, packet, 50)
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual((s.replies(), s.sink.queued), ([], []))

    def test_without_a_rate_the_packet_has_timeoutsmtpd_in_all(self) -> None:
        self.controls = {**self.controls, "mindatarate": "0"}
        self.setUp()
        s = self.session()
        packet = qmqp_packet(b"Subject: big\n\n" + b"x" * 3000, b"a@app.example", [b"joe@example.org"])
        self.trickle(s, packet, 200)
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(s.sink.queued, [])

    def test_the_commit_is_not_the_clients_time(self) -> None:
        s = self.session()
        s.sink.hold = True
        s.send(qmqp_packet(b"Subject: x\n\nbody\n", b"a@app.example", [b"joe@example.org"]))
        s.clock.advance(60)
        self.assertFalse(s.transport.disconnecting)
        s.sink.release()
        self.assertEqual(s.replies()[0][:1], b"K")
