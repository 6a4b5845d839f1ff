"""smtpd's content-filter stages over StringTransport with a scripted MilterSession (tests.smtpd.milterfake)."""

from __future__ import annotations

import struct

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.milter.api import (
    Action, AddHeader, AddRecipient, ChangeSender, DeleteRecipient, Quarantine, ReplaceBody, Verdict,
)
from pymta.milter.chain import MilterChain
from tests.milter.wired import Wired, spec
from tests.smtpd.helpers import Session, make_root
from tests.smtpd.milterfake import FakeMilter, end

REJECT = Verdict(Action.REJECT)
TEMPFAIL = Verdict(Action.TEMPFAIL)
DISCARD = Verdict(Action.DISCARD, filter_name="spamfilter")
MESSAGE = b"Subject: hi\r\n\r\nline one\r\nline two\r\n.\r\n"


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), smtpgreeting="mx.example.org", locals="example.org",
                              rcpthosts="example.org")

    def session(self, milter: FakeMilter | None, **kw: object) -> Session:
        s = Session(self.root, milters=lambda: milter, **kw)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        return s

    def transaction(self, s: Session, *recipients: str) -> None:
        self.assertEqual(s.cmd("MAIL FROM:<a@sender.example>"), ["250 ok"])
        for recipient in recipients or ("b@example.org",):
            s.cmd(f"RCPT TO:<{recipient}>")


class Connect(Base):
    def test_no_filter_configured_now(self) -> None:
        """A factory giving no session (control/milters empty): the plain dialogue."""
        s = self.session(None)
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.assertIsNone(s.proto._milter)

    def test_asked_before_the_greeting_with_its_macros(self) -> None:
        d: defer.Deferred = defer.Deferred()
        milter = FakeMilter(connect=d)
        s = self.session(milter)
        self.assertEqual(s.take(), [])
        self.assertEqual(s.send(b"NOOP\r\n"), [])  # held until the filters have spoken
        d.callback(Verdict(Action.CONTINUE))
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP", "250 ok"])
        info = milter.calls[0][1]
        self.assertEqual((info.hostname, info.family, info.address, info.port), ("[192.0.2.7]", "4", "192.0.2.7", 40000))
        macros = milter.macros("connect")
        self.assertEqual(macros["j"], "mx.example.org")
        self.assertEqual(macros["{daemon_name}"], "mx.example.org")  # the authserv-id filters write
        self.assertEqual(macros["{client_addr}"], "192.0.2.7")
        self.assertEqual(macros["{client_port}"], "40000")
        self.assertEqual(macros["{client_ptr}"], "unknown")
        self.assertEqual(macros["_"], "[192.0.2.7] [192.0.2.7]")
        self.assertEqual(macros["{if_addr}"], "198.51.100.1")
        self.assertTrue(macros["v"].startswith("pymta "))

    def test_reject_gives_554_and_refuses_every_command(self) -> None:
        s = self.session(FakeMilter(connect=Verdict(Action.REJECT, "550 5.7.1 go away")))
        self.assertEqual(s.take(), ["554 5.7.1 go away"])
        self.assertEqual(s.cmd("HELO x"), ["250 rblsmtpd.local"])
        self.assertEqual(s.cmd("MAIL FROM:<a@b>"), ["250 rblsmtpd.local"])
        self.assertEqual(s.cmd("RCPT TO:<b@example.org>"), ["554 5.7.1 go away"])
        self.assertEqual(s.cmd("DATA"), ["554 5.7.1 go away"])
        self.assertEqual(s.cmd("QUIT"), ["221 rblsmtpd.local"])

    def test_reject_default_text(self) -> None:
        s = self.session(FakeMilter(connect=REJECT))
        self.assertEqual(s.take(), ["554 5.7.1 Command rejected"])

    def test_tempfail_gives_421_and_closes(self) -> None:
        milter = FakeMilter(connect=TEMPFAIL)
        s = self.session(milter)
        self.assertEqual(s.take(), ["421 4.7.1 Service unavailable - try again later"])
        self.assertTrue(s.transport.disconnecting)
        s.proto.connectionLost(None)
        self.assertEqual(milter.closed, 1)

    def test_close_at_session_end(self) -> None:
        milter = FakeMilter()
        s = self.session(milter)
        s.take()
        self.assertEqual(s.cmd("QUIT"), ["221 mx.example.org"])
        s.proto.connectionLost(None)
        self.assertEqual((milter.closed, milter.aborts), (1, 0))


class Commands(Base):
    def test_helo_refused_then_accepted(self) -> None:
        milter = FakeMilter(helo=REJECT)
        s = self.session(milter)
        s.take()
        self.assertEqual(s.cmd("HELO bad.example"), ["550 5.7.1 Command rejected"])
        self.assertIsNone(s.proto.helo)
        milter.answers.clear()
        self.assertEqual(s.cmd("EHLO good.example")[0], "250-mx.example.org")
        self.assertEqual(milter.calls[-1][:2], ("helo", "good.example"))
        self.assertNotIn("{tls_version}", milter.macros("helo"))

    def test_helo_refused_mid_transaction_forgets_it(self) -> None:
        milter = FakeMilter()
        s = self.session(milter)
        s.take()
        self.transaction(s)
        milter.answers["helo"] = REJECT
        self.assertEqual(s.cmd("HELO again.example"), ["550 5.7.1 Command rejected"])
        self.assertEqual(milter.aborts, 1)
        self.assertEqual(s.cmd("DATA"), ["503 MAIL first (#5.5.1)"])

    def test_mail_refused_forgets_the_sender(self) -> None:
        s = self.session(FakeMilter(mail=Verdict(Action.REJECT, "553 5.1.8 bad sender")))
        s.take()
        self.assertEqual(s.cmd("MAIL FROM:<a@sender.example> SIZE=10"), ["553 5.1.8 bad sender"])
        self.assertEqual(s.cmd("RCPT TO:<b@example.org>"), ["503 MAIL first (#5.5.1)"])

    def test_mail_and_rcpt_macros(self) -> None:
        milter = FakeMilter()
        s = self.session(milter)
        s.take()
        s.cmd("HELO client.example")
        self.assertEqual(s.cmd("MAIL FROM:<a@sender.example> SIZE=10"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<b@example.org>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<c@Remote.example>"), ["553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"])
        self.assertEqual(milter.stages(), ["connect", "helo", "mail", "rcpt"])  # asked after smtpd's own checks
        self.assertEqual(milter.calls[2][1], ("a@sender.example", ("SIZE=10",)))
        mail = milter.macros("mail")
        self.assertEqual((mail["{mail_addr}"], mail["{mail_host}"], mail["{mail_mailer}"]),
                         ("a@sender.example", "sender.example", "smtp"))
        self.assertNotIn("{auth_authen}", mail)
        rcpt = milter.macros("rcpt")
        self.assertEqual((rcpt["{rcpt_addr}"], rcpt["{rcpt_host}"], rcpt["{rcpt_mailer}"]),
                         ("b@example.org", "example.org", "local"))
        self.assertEqual(rcpt["i"], mail["i"])
        self.assertEqual(rcpt["j"], "mx.example.org")  # every stage carries the connect macros
        s.cmd("RSET")
        s.cmd("MAIL FROM:<>")
        self.assertNotEqual(milter.macros("mail")["i"], mail["i"])
        self.assertEqual(milter.macros("mail")["{mail_mailer}"], "error")

    def test_rcpt_refusal_refuses_that_recipient_only(self) -> None:
        milter = FakeMilter()
        s = self.session(milter)
        s.take()
        self.assertEqual(s.cmd("MAIL FROM:<a@sender.example>"), ["250 ok"])
        milter.answers["rcpt"] = Verdict(Action.TEMPFAIL, "450 4.2.0 greylisted")
        self.assertEqual(s.cmd("RCPT TO:<b@example.org>"), ["450 4.2.0 greylisted"])
        milter.answers.clear()
        self.assertEqual(s.cmd("RCPT TO:<c@example.org>"), ["250 ok"])
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        s.send(MESSAGE)
        self.assertEqual(s.sink.queued[0].recipients, ["c@example.org"])

    def test_a_filters_421_ends_the_session(self) -> None:
        """As smtpd's own 421s: at HELO, MAIL, RCPT and DATA the reply is the last and the connection closes."""
        bye = Verdict(Action.TEMPFAIL, "421 4.7.0 bye")
        for stage, commands in (("helo", ["HELO c.example"]), ("mail", ["MAIL FROM:<a@sender.example>"]),
                                ("rcpt", ["MAIL FROM:<a@sender.example>", "RCPT TO:<b@example.org>"]),
                                ("data", ["MAIL FROM:<a@sender.example>", "RCPT TO:<b@example.org>", "DATA"])):
            s = self.session(FakeMilter(**{stage: bye}))
            s.take()
            for command in commands[:-1]:
                s.cmd(command)
            self.assertEqual(s.cmd(commands[-1]), ["421 4.7.0 bye"], stage)
            self.assertTrue(s.transport.disconnecting, stage)
            self.assertEqual(s.cmd("NOOP"), [], stage)

    def test_unknown_command_shown_to_the_filters_first(self) -> None:
        """An unknown command goes to the filters (SMFIC_UNKNOWN) before smtpd's 502; their refusal is the reply."""
        milter = FakeMilter(unknown=Verdict(Action.REJECT, "500 5.5.1 no XFOO here"))
        s = self.session(milter)
        s.take()
        s.cmd("EHLO client.example")
        self.assertEqual(s.cmd("XFOO bar baz"), ["500 5.5.1 no XFOO here"])
        self.assertEqual([call[1] for call in milter.calls if call[0] == "unknown"], ["XFOO bar baz"])
        milter.answers["unknown"] = Verdict(Action.TEMPFAIL)
        self.assertEqual(s.cmd("XBAR"), ["451 4.7.1 Service unavailable - try again later"])
        milter.answers.clear()
        self.assertEqual(s.cmd("XBAR"), ["502 unimplemented (#5.5.1)"])
        self.assertEqual(s.cmd("MAIL FROM:<a@sender.example>"), ["250 ok"])  # the session goes on

    def test_unknown_command_without_filters_and_known_ones(self) -> None:
        """No filters: smtpd's 502 at once; a command smtpd knows is never shown as unknown."""
        s = self.session(None)
        s.take()
        self.assertEqual(s.cmd("XFOO"), ["502 unimplemented (#5.5.1)"])
        milter = FakeMilter()
        s = self.session(milter)
        s.take()
        s.cmd("NOOP")
        s.cmd("VRFY x")
        self.assertNotIn("unknown", milter.stages())

    def test_unknown_command_421_ends_the_session(self) -> None:
        s = self.session(FakeMilter(unknown=Verdict(Action.TEMPFAIL, "421 4.7.0 bye")))
        s.take()
        self.assertEqual(s.cmd("XFOO"), ["421 4.7.0 bye"])
        self.assertTrue(s.transport.disconnecting)

    def test_data_refused_before_354(self) -> None:
        milter = FakeMilter(data=Verdict(Action.REJECT, "554 5.7.1 no data for you"))
        s = self.session(milter)
        s.take()
        self.transaction(s)
        self.assertEqual(s.cmd("DATA"), ["554 5.7.1 no data for you"])
        self.assertEqual(s.sink.opened, [])
        milter.answers.clear()
        self.transaction(s)
        self.assertEqual(milter.aborts, 1)  # the refused transaction forgotten at the next MAIL

    def test_rset_aborts_an_open_transaction_only(self) -> None:
        milter = FakeMilter()
        s = self.session(milter)
        s.take()
        s.cmd("RSET")
        self.assertEqual(milter.aborts, 0)
        self.transaction(s)
        s.cmd("RSET")
        self.assertEqual(milter.aborts, 1)
        s.cmd("RSET")
        self.assertEqual(milter.aborts, 1)


class EndOfMessage(Base):
    def deliver(self, milter: FakeMilter, *recipients: str) -> tuple[Session, list[str]]:
        s = self.session(milter)
        s.take()
        s.cmd("EHLO client.example")
        self.transaction(s, *recipients)
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        return s, s.send(MESSAGE)

    def test_accepted_message_seen_by_the_filter(self) -> None:
        milter = FakeMilter()
        s, replies = self.deliver(milter)
        self.assertEqual(replies, ["250 ok 1800000000 qp 4001"])
        self.assertEqual(milter.stages(), ["connect", "helo", "mail", "rcpt", "data", "eom"])
        self.assertEqual(milter.header[0][0], "Received")
        self.assertEqual(milter.header[1], ("Subject", " hi"))
        self.assertEqual(milter.body, b"line one\r\nline two\r\n")
        self.assertIn("i", milter.macros("eom"))
        data = s.sink.queued[0].data
        self.assertEqual(data[data.index(b"Subject"):], b"Subject: hi\n\nline one\nline two\n")
        self.transaction(s)
        self.assertEqual(milter.aborts, 0)  # the end of message ended the transaction

    def test_reject_with_the_filters_reply(self) -> None:
        s, replies = self.deliver(FakeMilter(eom=end(verdict=Verdict(Action.REJECT, "550 5.7.1 Gtube pattern"))))
        self.assertEqual(replies, ["550 5.7.1 Gtube pattern"])
        self.assertEqual(s.sink.opened, [])

    def test_tempfail_default_reply(self) -> None:
        s, replies = self.deliver(FakeMilter(eom=end(verdict=TEMPFAIL)))
        self.assertEqual(replies, ["451 4.7.1 Service unavailable - try again later"])
        self.assertEqual(s.sink.queued, [])

    def test_a_filters_421_ends_the_session(self) -> None:
        """As at every other stage: the 421 at the end of DATA is the last reply, the connection closes, nothing is queued."""
        s, replies = self.deliver(FakeMilter(eom=end(verdict=Verdict(Action.TEMPFAIL, "421 4.7.0 bye"))))
        self.assertEqual(replies, ["421 4.7.0 bye"])
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(s.cmd("MAIL FROM:<a@sender.example>"), [])
        self.assertEqual(s.sink.queued, [])

    def test_a_filters_421_after_pipelined_commands(self) -> None:
        """Commands pipelined after the dot get no answer once the 421 has closed the session."""
        milter = FakeMilter(eom=end(verdict=Verdict(Action.TEMPFAIL, "421 4.7.0 bye")))
        s = self.session(milter)
        s.take()
        s.cmd("EHLO client.example")
        self.transaction(s)
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        self.assertEqual(s.send(MESSAGE + b"MAIL FROM:<x@sender.example>\r\nNOOP\r\n"), ["421 4.7.0 bye"])
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(milter.stages().count("mail"), 1)

    def test_multiline_reply(self) -> None:
        reply = "550-5.7.1 first line\r\n550 5.7.1 second line"
        s, replies = self.deliver(FakeMilter(eom=end(verdict=Verdict(Action.REJECT, reply))))
        self.assertEqual(replies, ["550-5.7.1 first line", "550 5.7.1 second line"])

    def test_discard_at_end(self) -> None:
        s, replies = self.deliver(FakeMilter(eom=end(verdict=DISCARD)))
        self.assertEqual(replies, ["250 ok"])
        self.assertEqual(s.sink.opened, [])

    def test_discard_at_rcpt_discards_the_message_without_asking_more(self) -> None:
        milter = FakeMilter(rcpt=DISCARD)
        s, replies = self.deliver(milter)
        self.assertEqual(replies, ["250 ok"])
        self.assertEqual(s.sink.opened, [])
        self.assertNotIn("eom", milter.stages())
        self.assertEqual(milter.aborts, 1)
        milter.answers.clear()
        self.transaction(s)
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        self.assertEqual(s.send(MESSAGE), ["250 ok 1800000000 qp 4001"])  # the next message is not discarded

    def test_discard_at_connect_holds_for_the_session(self) -> None:
        milter = FakeMilter(connect=DISCARD)
        s, replies = self.deliver(milter)
        self.assertEqual(replies, ["250 ok"])
        self.transaction(s)
        s.cmd("DATA")
        self.assertEqual(s.send(MESSAGE), ["250 ok"])
        self.assertEqual(s.sink.opened, [])

    def test_modifications_reach_the_queue(self) -> None:
        milter = FakeMilter(eom=end(AddHeader("X-Spam", "no"), ChangeSender("<new@sender.example>"),
                                    AddRecipient("<c@example.org>"), DeleteRecipient("b@example.org"),
                                    ReplaceBody(b"new\r\nbody\r\n")))
        s, replies = self.deliver(milter)
        self.assertEqual(replies, ["250 ok 1800000000 qp 4001"])
        queued = s.sink.queued[0]
        self.assertEqual((queued.sender, queued.recipients), ("new@sender.example", ["c@example.org"]))
        self.assertTrue(queued.data.startswith(b"Received: "))
        self.assertEqual(queued.data[queued.data.index(b"Subject"):], b"Subject: hi\nX-Spam: no\n\nnew\nbody\n")
        self.assertFalse(queued.quarantined)

    def test_no_recipient_left_is_discarded(self) -> None:
        s, replies = self.deliver(FakeMilter(eom=end(DeleteRecipient("<B@example.org>"))))
        self.assertEqual(replies, ["250 ok"])
        self.assertEqual(s.sink.opened, [])

    def test_quarantine_queues_held(self) -> None:
        s, replies = self.deliver(FakeMilter(eom=end(Quarantine("looks like a virus"))))
        self.assertEqual(replies, ["250 ok 1800000000 qp 4001"])
        self.assertTrue(s.sink.queued[0].quarantined)
        data = s.sink.queued[0].data
        self.assertEqual(data[data.index(b"Subject"):], b"Subject: hi\n\nline one\nline two\n")

    def deliver_within(self, databytes: int, milter: FakeMilter) -> tuple[Session, list[str]]:
        """C{deliver} with no EHLO and a databytes limit of C{databytes}."""
        s = self.session(milter)
        s.take()
        s.proto.databytes = databytes
        self.transaction(s)
        s.cmd("DATA")
        return s, s.send(MESSAGE)

    def test_a_body_grown_past_databytes_is_refused_552(self) -> None:
        s, replies = self.deliver_within(300, FakeMilter(eom=end(ReplaceBody(b"y" * 500 + b"\r\n"))))
        self.assertEqual(replies, ["552 sorry, that message size exceeds my databytes limit (#5.3.4)"])
        self.assertEqual(s.sink.queued, [])

    def test_a_rewritten_message_within_databytes_is_queued(self) -> None:
        s, replies = self.deliver_within(300, FakeMilter(eom=end(ReplaceBody(b"y" * 10 + b"\r\n"))))
        self.assertEqual(replies[0][:6], "250 ok")
        self.assertTrue(s.sink.queued[0].data.endswith(b"\n\nyyyyyyyyyy\n"))

    def test_message_too_big_is_forgotten_at_the_next_transaction(self) -> None:
        milter = FakeMilter()
        s, replies = self.deliver_within(5, milter)
        self.assertEqual(replies[0][:3], "552")
        self.assertEqual(milter.aborts, 0)
        self.transaction(s)
        self.assertEqual(milter.aborts, 1)


class ClientLeavesAtEndOfMessage(SynchronousTestCase):
    """The client hangs up after the final dot while a real filter session is still scanning."""

    ONLY_END = 0x37F  # the filter skips every stage before the end of message

    def deliver(self, default: str, hang_up: bool, answer: bytes | None) -> Session:
        root = make_root(self.mktemp(), smtpgreeting="mx.example.org", locals="example.org", rcpthosts="example.org")
        wired = Wired(spec(f"f unix:/run/f.sock default={default}"))
        chain = MilterChain([wired.session])
        s = Session(root, milters=lambda: chain)
        wired.answer(b"O", struct.pack(">III", 6, 0x1FF, self.ONLY_END))
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.transaction_to_data(s)
        wired.transport.clear()
        s.send(b"Subject: virus\r\n\r\nX5O!P%@AP\r\n.\r\n")
        self.assertIn(b"E", wired.commands())  # the verdict is asked; no reply to the dot yet
        if hang_up:
            s.proto.connectionLost(Failure(ConnectionDone()))
        if answer is not None:
            wired.answer(answer[:1], answer[1:])
        wired.connection.connectionLost(Failure(ConnectionDone()))
        return s

    def transaction_to_data(self, s: Session) -> None:
        s.cmd("HELO x")
        s.cmd("MAIL FROM:<a@sender.example>")
        s.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])

    def test_a_reject_that_came_in_time_is_not_queued(self) -> None:
        s = self.deliver("accept", hang_up=False, answer=b"y550 5.7.1 infected\0")
        self.assertEqual(s.sink.queued, [])

    def test_hang_up_with_default_accept_queues_nothing(self) -> None:
        s = self.deliver("accept", hang_up=True, answer=b"y550 5.7.1 infected\0")
        self.assertEqual(s.sink.queued, [])

    def test_hang_up_before_an_accept_queues_nothing(self) -> None:
        s = self.deliver("accept", hang_up=True, answer=b"a")
        self.assertEqual(s.sink.queued, [])

    def test_accept_then_hang_up_is_queued(self) -> None:
        s = self.deliver("accept", hang_up=False, answer=b"a")
        self.assertEqual(len(s.sink.queued), 1)
        s.proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(s.sink.queued), 1)


class ClientLeavesDuringHandshake(SynchronousTestCase):
    def test_filter_closed_quietly(self) -> None:
        root = make_root(self.mktemp(), smtpgreeting="mx.example.org")
        wired = Wired(spec("f unix:/run/f.sock"))
        s = Session(root, milters=lambda: MilterChain([wired.session]))
        self.assertEqual(wired.commands(), b"O")  # the options offered; no answer yet
        s.proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(wired.commands(), b"Q")
        self.assertTrue(wired.transport.disconnecting)
        self.assertEqual(s.take(), [])  # no greeting; and no unhandled error (trial fails the test on one)
