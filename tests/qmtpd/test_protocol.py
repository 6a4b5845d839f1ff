"""QMTPServerProtocol over StringTransport: replies, the queue's commit, access rules, bounds, garbage."""

from __future__ import annotations

import os
import random

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.initcontrols import MESSAGE_SIZE_LIMIT
from pymta.control import ControlReader
from pymta.dkim.signing import DKIMSigning
from pymta.interfaces import QueueRefused
from pymta.qmtpd import envelope
from pymta.qmtpd import protocol as qmtp_protocol
from pymta.qmtpd.service import QMTPFactory
from pymta.queue.framing import NetstringParser, netstring
from pymta.smtpd.access import AccessRules
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.dkimsignstep import DKIMSignStep
from pymta.smtpd.endofdata import EndOfDataStage, SessionFacts, StepVerdict
from tests.dkim.helpers import signing_keys, verify_all
from tests.smtpd.helpers import MemorySink, make_root


def qmtp_message(body: bytes, sender: bytes, recipients: list[bytes], first: bytes = b"\n") -> bytes:
    """One message as a QMTP client sends it."""
    return netstring(first + body) + netstring(sender) + netstring(b"".join(netstring(r) for r in recipients))


class Session:
    """Drives one QMTPServerProtocol over a StringTransport."""

    def __init__(self, root: str, rules: str = "", peer: str = "192.0.2.7", sink: MemorySink | None = None,
                 resolver: object = None) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.sink = sink or MemorySink()
        self.context = SMTPDContext(reader=ControlReader(root), sink=self.sink, clock=self.clock,
                                    rules=AccessRules.parse(rules), resolver=resolver)
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
        self.assertEqual(s.replies(), [b"Kok 1800000000 qp 4001"] * 2)  # one reply per recipient
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


RCPTHOSTS = b"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
DATABYTES = b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"


class RepliesPerRecipient(Base):
    """One reply netstring per recipient, in order, as qmail-qmtpd answers."""

    def test_each_recipient_is_judged_on_its_own(self) -> None:
        s = self.session()
        self.assertEqual(
            s.send(qmtp_message(b"x\n", b"", [b"joe@example.org", b"x@elsewhere.example", b"ann@example.org"])),
            [b"Kok 1800000000 qp 4001", RCPTHOSTS, b"Kok 1800000000 qp 4001"],
        )
        [w] = s.sink.queued  # queued once, for the accepted ones
        self.assertEqual(w.recipients, ["joe@example.org", "ann@example.org"])

    def test_no_recipient_accepted_means_no_queue_write(self) -> None:
        s = self.session()
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"x@elsewhere.example", b"a%b@example.org"])),
                         [RCPTHOSTS, RCPTHOSTS])
        self.assertEqual((s.sink.opened, s.sink.queued), ([], []))
        # the connection goes on
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"])), [b"Kok 1800000000 qp 4001"])

    def test_pipelined_messages_keep_their_replies_apart(self) -> None:
        s = self.session()
        data = qmtp_message(b"a\n", b"", [b"joe@example.org", b"x@elsewhere.example"]) + \
            qmtp_message(b"b\n", b"", [b"ann@example.org"])
        self.assertEqual(s.send(data), [b"Kok 1800000000 qp 4001", RCPTHOSTS, b"Kok 1800000000 qp 4002"])

    def test_every_reply_waits_for_the_commit(self) -> None:
        s = self.session()
        s.sink.hold = True
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"x@elsewhere.example", b"joe@example.org"])), [])
        s.sink.release()
        self.assertEqual(s.replies(), [RCPTHOSTS, b"Kok 1800000000 qp 4001"])

    def test_a_queue_failure_answers_every_accepted_recipient(self) -> None:
        s = self.session()
        s.sink.refuse = QueueRefused("qq write error or disk full (#4.3.0)")
        self.assertEqual(
            s.send(qmtp_message(b"x\n", b"", [b"joe@example.org", b"x@elsewhere.example", b"ann@example.org"])),
            [b"Zqq write error or disk full (#4.3.0)", RCPTHOSTS, b"Zqq write error or disk full (#4.3.0)"],
        )

    def test_databytes_answers_every_accepted_recipient(self) -> None:
        s = self.session(rules="192.0.2.7:allow,DATABYTES=\"10\"\n")
        self.assertEqual(
            s.send(qmtp_message(b"0123456789A\n", b"", [b"joe@example.org", b"x@elsewhere.example"])),
            [DATABYTES, RCPTHOSTS],
        )
        self.assertEqual(s.sink.queued, [])

    def test_sender_rules_answer_every_recipient(self) -> None:
        s = self.session()
        self.assertEqual(s.send(qmtp_message(b"x\n", b"a\nb@c", [b"joe@example.org", b"ann@example.org"])),
                         [b"Dunacceptable sender (#5.1.7)"] * 2)
        self.assertEqual(s.sink.opened, [])

    def test_badmailfrom_answers_every_recipient(self) -> None:
        with open(os.path.join(self.root, "control", "badmailfrom"), "w") as f:
            f.write("spam@bad.example\n")
        s = self.session()
        self.assertEqual(
            s.send(qmtp_message(b"x\n", b"spam@bad.example", [b"joe@example.org", b"x@elsewhere.example"])),
            [b"Dsorry, your envelope sender is in my badmailfrom list (#5.7.1)", RCPTHOSTS],
        )
        self.assertEqual(s.sink.opened, [])

    def test_no_recipients_no_reply(self) -> None:
        s = self.session()
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [])), [])
        self.assertEqual(s.sink.opened, [])
        self.assertFalse(s.transport.disconnecting)
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"joe@example.org"])), [b"Kok 1800000000 qp 4001"])

    def test_recipients_over_the_limit(self) -> None:
        s = self.session()
        recipients = [b"u%d@example.org" % i for i in range(envelope.MAX_RECIPIENTS + 2)]
        replies = s.send(qmtp_message(b"x\n", b"", recipients))
        self.assertEqual(replies, [b"Kok 1800000000 qp 4001"] * envelope.MAX_RECIPIENTS
                         + [b"Dsorry, too many recipients (#5.5.3)"] * 2)
        self.assertEqual(len(s.sink.queued[0].recipients), envelope.MAX_RECIPIENTS)


class Relaying(Base):
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
        self.assertEqual(s.send(qmtp_message(b"0123456789A\n", b"", [b"joe@example.org"])), [DATABYTES])
        self.assertEqual(s.send(qmtp_message(b"short\n", b"", [b"joe@example.org"])), [b"Kok 1800000000 qp 4001"])

    def test_address_rules(self) -> None:
        s = self.session()
        self.assertEqual(s.send(qmtp_message(b"x\n", b"a\nb@c", [b"joe@example.org"])),
                         [b"Dunacceptable sender (#5.1.7)"])
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"j" * 901 + b"@example.org", b"a\x00b@example.org"])),
                         [b"Dsorry, I can't handle that recipient (#5.1.3)"] * 2)
        self.assertEqual(s.send(qmtp_message(b"x\n", b"", [b"a%b@example.org"])), [RCPTHOSTS])
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


class SlowResolver:
    """A resolver whose PTR answers never come: the lookup ends at reverse_lookup_seconds."""

    def ptr(self, ip: str) -> defer.Deferred:
        return defer.Deferred()


class Bounds(Base):
    def test_input_before_admission_pauses_reading(self) -> None:
        s = Session(self.root, rules='=trusted.example:allow,RELAYCLIENT=""\n:allow\n', resolver=SlowResolver())
        self.addCleanup(s.close)
        message = qmtp_message(b"x" * 100_000 + b"\n", b"", [b"joe@example.org"])
        for _ in range(20):  # the client goes on sending while the lookup is pending
            s.proto.dataReceived(message)
        self.assertEqual(s.transport.producerState, "paused")
        self.assertEqual(s.replies(), [])
        s.clock.advance(5)  # the lookup gives up: admitted by the catch-all rule, reading resumes
        self.assertEqual(s.transport.producerState, "producing")
        self.assertEqual(len(s.replies()), 20)
        self.assertEqual(len(s.sink.queued), 20)

    def test_small_input_before_admission_does_not_pause(self) -> None:
        s = Session(self.root, rules='=trusted.example:allow\n:allow\n', resolver=SlowResolver())
        self.addCleanup(s.close)
        s.proto.dataReceived(qmtp_message(b"x\n", b"", [b"joe@example.org"]))
        self.assertEqual(s.transport.producerState, "producing")
        s.clock.advance(5)
        self.assertEqual(s.replies(), [b"Kok 1800000005 qp 4001"])

    def test_without_databytes_the_spool_is_bounded(self) -> None:
        self.patch(qmtp_protocol, "UNLIMITED_DATABYTES", 20)
        s = self.session()  # control/databytes is 0: no limit for SMTP
        self.assertEqual(s.send(qmtp_message(b"x" * 30 + b"\n", b"", [b"joe@example.org"])), [DATABYTES])
        self.assertEqual(s.sink.opened, [])
        self.assertEqual(s.send(qmtp_message(b"short\n", b"", [b"joe@example.org"])), [b"Kok 1800000000 qp 4001"])

    def test_the_bound_without_databytes_is_pymta_inits_databytes(self) -> None:
        self.assertEqual(qmtp_protocol.UNLIMITED_DATABYTES, MESSAGE_SIZE_LIMIT)


MESSAGE = b"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: hello\n\nHello Bob.\n"


class Signing(Base):
    """RELAYCLIENT clients' mail goes through the end-of-data stage, as over SMTP: DKIM signing."""

    def signing_session(self, rules: str) -> Session:
        s = self.session(rules=rules)
        s.context.end_of_data = EndOfDataStage([DKIMSignStep(DKIMSigning(signing_keys()))])
        return s

    def test_a_relay_client_is_signed(self) -> None:
        s = self.signing_session('192.0.2.7:allow,RELAYCLIENT=""\n')
        self.assertEqual(s.send(qmtp_message(MESSAGE, b"alice@example.com", [b"bob@example.org"])),
                         [b"Kok 1800000000 qp 4001"])
        data = s.sink.queued[0].data
        self.assertTrue(data.startswith(b"DKIM-Signature: v=1; "), data[:200])
        self.assertLess(data.index(b"DKIM-Signature: "), data.index(b"Received: from "))
        self.assertTrue(data.endswith(MESSAGE))
        self.assertEqual(verify_all(data), [True, True])

    def test_other_clients_are_not_signed(self) -> None:
        s = self.signing_session("")
        self.assertEqual(s.send(qmtp_message(MESSAGE, b"alice@example.com", [b"bob@example.org"])),
                         [b"Kok 1800000000 qp 4001"])
        self.assertNotIn(b"DKIM-Signature", s.sink.queued[0].data)

    def test_a_step_refusal_answers_every_accepted_recipient(self) -> None:
        s = self.signing_session('192.0.2.7:allow,RELAYCLIENT=""\n')
        s.context.end_of_data = EndOfDataStage([Refusing()])
        self.assertEqual(s.send(qmtp_message(MESSAGE, b"alice@example.com", [b"bob@example.org", b"x@y.example"])),
                         [b"Dno thanks (#5.7.1)"] * 2)
        self.assertEqual(s.sink.queued, [])


class Refusing:
    """An end-of-data step that refuses every message of a trusted session."""

    def for_transaction(self, facts: SessionFacts) -> "Refusing | None":
        return self if facts.relay_client else None

    def at_mail(self) -> defer.Deferred:
        return defer.succeed(None)

    def at_end_of_data(self, message: object) -> defer.Deferred:
        return defer.succeed(StepVerdict(refusal="554 no thanks (#5.7.1)"))


class MessageDeadline(Base):
    """
    Each message within a deadline, not per read (QMQP's rule, per
    message): timeoutsmtpd seconds whatever its size, after that at least
    mindatarate bytes a second on average, counted from when the server
    waits for it (admission, or the answer to the message before).
    """

    controls = {"rcpthosts": "example.org", "timeoutsmtpd": "10", "mindatarate": "100"}

    def trickle(self, s: Session, data: bytes, per_second: int) -> None:
        """Send C{data} at C{per_second} bytes a second while the connection stays open."""
        for i in range(0, len(data), per_second):
            if s.transport.disconnecting:
                return
            s.proto.dataReceived(data[i : i + per_second])
            s.clock.advance(1)

    def test_a_trickling_client_is_cut_off(self) -> None:
        lines: list[str] = []
        observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        s = self.session()
        message = qmtp_message(b"Subject: slow\n\n" + b"x" * 100, b"a@app.example", [b"joe@example.org"])
        s.send(message[:20])  # the message begun at once, then
        for byte in range(20, 60):  # one byte every 5 seconds: each read well within the idle timeout
            if s.transport.disconnecting:
                break
            s.send(message[byte : byte + 1])
            s.clock.advance(5)
        self.assertTrue(s.transport.disconnecting)
        self.assertLessEqual(s.clock.seconds(), 1_800_000_000 + 15)
        self.assertEqual((s.replies(), s.sink.opened), ([], []))
        self.assertIn("qmtpd: 192.0.2.7: timeout (message not complete within its deadline)", lines)

    def test_a_large_message_at_the_rate_may_take_longer(self) -> None:
        s = self.session()
        message = qmtp_message(b"Subject: big\n\n" + b"x" * 3000, b"a@app.example", [b"joe@example.org"])
        self.trickle(s, message, 200)  # about 16 seconds
        self.assertEqual(s.replies()[0][:1], b"K")
        self.assertEqual(len(s.sink.queued), 1)

    def test_below_the_rate_after_timeoutsmtpd_is_cut_off(self) -> None:
        s = self.session()
        message = qmtp_message(b"Subject: big\n\n" + b"x" * 3000, b"a@app.example", [b"joe@example.org"])
        self.trickle(s, message, 50)
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual((s.replies(), s.sink.queued), ([], []))

    def test_each_message_has_its_own_deadline(self) -> None:
        """Several messages in a row, each well within its deadline, together far over it: all queued."""
        s = self.session()
        message = qmtp_message(b"Subject: one of many\n\n" + b"x" * 300, b"a@app.example", [b"joe@example.org"])
        for _ in range(5):
            self.trickle(s, message, 100)  # about 4 seconds each
            self.assertEqual(s.replies()[0][:1], b"K")
        self.assertFalse(s.transport.disconnecting)
        self.assertEqual(len(s.sink.queued), 5)

    def test_the_commit_is_not_the_clients_time(self) -> None:
        s = self.session()
        s.sink.hold = True
        s.send(qmtp_message(b"Subject: x\n\nbody\n", b"a@app.example", [b"joe@example.org"]))
        s.clock.advance(60)
        self.assertFalse(s.transport.disconnecting)
        s.sink.release()
        self.assertEqual(s.replies()[0][:1], b"K")
        s.clock.advance(9)
        self.assertFalse(s.transport.disconnecting)  # the next message's time starts at the answer
        s.clock.advance(1)
        self.assertTrue(s.transport.disconnecting)

    def test_a_refused_message_starts_the_next_ones_time(self) -> None:
        s = self.session()
        s.clock.advance(8)
        self.assertEqual(s.send(qmtp_message(b"Subject: x\n\nbody\n", b"a@app.example", [b"joe@elsewhere.example"]))[0][:1], b"D")
        s.clock.advance(8)  # 16 seconds since admission, 8 since the answer
        self.assertFalse(s.transport.disconnecting)
