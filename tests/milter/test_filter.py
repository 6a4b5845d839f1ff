"""pymta.milter.filter: one filter's stages, answers, timeouts and default actions, driven through a StringTransport."""

from __future__ import annotations

import struct

from twisted.internet import defer
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

from pymta.milter import negotiation as n
from pymta.milter.api import Action, AddHeader, AddRecipient, ChangeHeader, ChangeSender, ConnectInfo, \
    DeleteRecipient, InsertHeader, Quarantine, ReplaceBody
from pymta.milter.chain import MilterChain
from pymta.milter.connection import MAX_ANSWER
from pymta.milter.filter import Outcome
from pymta.milter.wire import CHUNK_SIZE, MAX_PACKET
from tests.milter.wired import Message, Wired, spec

INFO = ConnectInfo("mx.example", "4", "192.0.2.1", 4242)


def result(d: "defer.Deferred[Outcome]") -> Outcome:
    assert d.called, "no answer yet"
    box: list[Outcome] = []
    d.addCallback(box.append)
    return box[0]


class Logged:
    def __init__(self, case: unittest.TestCase) -> None:
        self.events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("log_level") == LogLevel.warn and e.get("name") == "f"]


class StageTests(unittest.TestCase):
    def test_connect_with_its_macros(self) -> None:
        w = Wired()
        w.open()
        d = w.session.connect(INFO, {"j": "mx.pymta.example", "{client_addr}": "192.0.2.1", "i": "not now"})
        (macro, mdata), (command, cdata) = w.sent()
        self.assertEqual((macro, command), (b"D", b"C"))
        self.assertEqual(mdata, b"Cj\0mx.pymta.example\0{client_addr}\x00192.0.2.1\0")
        self.assertEqual(cdata, b"mx.example\x004\x10\x92192.0.2.1\0")
        self.assertFalse(d.called)
        w.answer(b"c")
        self.assertEqual(result(d), Outcome(Action.CONTINUE))

    def test_symlist_macros_win(self) -> None:
        w = Wired()
        w.open(extra=struct.pack(">I", 2) + b"{auth_authen}\0")
        w.session.mail("a@example.org", ["SIZE=10"], {"i": "Q1", "auth_authen": "alice"})
        (_, mdata), (_, cdata) = w.sent()
        self.assertEqual(mdata, b"M{auth_authen}\0alice\0")
        self.assertEqual(cdata, b"<a@example.org>\0SIZE=10\0")

    def test_every_verdict(self) -> None:
        for command, data, expected in ((b"a", b"", Outcome(Action.ACCEPT)), (b"r", b"", Outcome(Action.REJECT)),
                                        (b"t", b"", Outcome(Action.TEMPFAIL)), (b"d", b"", Outcome(Action.DISCARD)),
                                        (b"y", b"554 5.7.1 no thanks\0", Outcome(Action.REJECT, "554 5.7.1 no thanks")),
                                        (b"y", b"452 4.3.1 full\0", Outcome(Action.TEMPFAIL, "452 4.3.1 full")),
                                        (b"y", b"550-5.7.1 one\r\n550 5.7.1 two\0",
                                         Outcome(Action.REJECT, "550-5.7.1 one\r\n550 5.7.1 two"))):
            w = Wired()
            w.open()
            d = w.session.rcpt("b@example.org", [], {})
            w.answer(command, data)
            self.assertEqual(result(d), expected)

    def test_accept_at_mail_skips_the_message_accept_at_helo_the_session(self) -> None:
        w = Wired()
        w.open()
        d = w.session.mail("a@example.org", [], {})
        w.sent()
        w.answer(b"a")
        self.assertEqual(result(d).action, Action.ACCEPT)
        self.assertEqual(result(w.session.rcpt("b@example.org", [], {})), Outcome(Action.CONTINUE))
        self.assertEqual(w.commands(), b"")
        w.session.abort()
        self.assertEqual(w.commands(), b"A")
        w.session.mail("c@example.org", [], {})
        self.assertEqual(w.commands(), b"M")
        w.answer(b"c")
        d = w.session.helo("client.example", {})
        w.answer(b"a")
        w.sent()
        w.session.abort()
        w.session.mail("a@example.org", [], {})
        self.assertEqual(w.commands(), b"")

    def test_unknown_command_sent_whole_and_its_refusal(self) -> None:
        """SMFIC_UNKNOWN carries the whole command line; a reject or tempfail (with the filter's reply) refuses it."""
        for command, data, expected in ((b"r", b"", Outcome(Action.REJECT)), (b"t", b"", Outcome(Action.TEMPFAIL)),
                                        (b"y", b"554 5.5.1 not that\0", Outcome(Action.REJECT, "554 5.5.1 not that"))):
            w = Wired()
            w.open()
            d = w.session.unknown("XFOO bar baz", {})
            self.assertEqual(w.sent(), [(b"U", b"XFOO bar baz\0")])
            self.assertFalse(d.called)
            w.answer(command, data)
            self.assertEqual(result(d), expected)

    def test_unknown_command_other_answers_leave_smtpds_reply(self) -> None:
        """Accept, discard and continue at an unknown command all mean: smtpd's own reply; the message goes on."""
        for command in (b"a", b"d", b"c"):
            w = Wired()
            w.open()
            d = w.session.unknown("XFOO", {})
            w.sent()
            w.answer(command)
            self.assertEqual(result(d), Outcome(Action.CONTINUE), command)
            w.session.mail("a@example.org", [], {})
            self.assertEqual(w.commands(), b"M", command)

    def test_unknown_command_not_sent_to_a_filter_that_opted_out(self) -> None:
        for steps, version in ((n.SMFIP_NOUNKNOWN, 6), (0, 3)):
            w = Wired()
            w.open(steps=steps, version=version)
            self.assertEqual(result(w.session.unknown("XFOO", {})), Outcome(Action.CONTINUE))
            self.assertEqual(w.commands(), b"")
        w = Wired()
        w.open(steps=n.SMFIP_NR_UNKN)
        self.assertEqual(result(w.session.unknown("XFOO", {})), Outcome(Action.CONTINUE))
        self.assertEqual(w.commands(), b"U")

    def test_stages_left_out_and_unanswered(self) -> None:
        w = Wired()
        w.open(steps=n.SMFIP_NOHELO | n.SMFIP_NR_MAIL)
        self.assertEqual(result(w.session.helo("client.example", {})), Outcome(Action.CONTINUE))
        self.assertEqual(w.commands(), b"")
        self.assertEqual(result(w.session.mail("a@example.org", [], {})), Outcome(Action.CONTINUE))
        self.assertEqual(w.commands(), b"M")

    def test_modification_before_end_of_message_is_a_protocol_error(self) -> None:
        w = Wired()
        w.open()
        d = w.session.mail("a@example.org", [], {})
        w.answer(b"h", b"X-A\0b\0")
        w.answer(b"c")
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertIn("protocol error", w.session.broken or "")


class FailureTests(unittest.TestCase):
    def test_timeout_gives_the_default_once_logged(self) -> None:
        logged = Logged(self)
        w = Wired(spec("f unix:/s command=10"))
        w.open()
        d = w.session.helo("client.example", {})
        w.clock.advance(9)
        w.answer(b"p")  # progress: the 10 seconds start again
        w.clock.advance(9)
        self.assertFalse(d.called)
        w.clock.advance(1)
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertTrue(w.transport.disconnecting)
        w.sent()
        self.assertEqual(result(w.session.mail("a@example.org", [], {})), Outcome(Action.TEMPFAIL))
        self.assertEqual(w.commands(), b"")
        self.assertEqual(len(logged.warnings()), 1)
        self.assertIn("no answer in 10s", str(logged.warnings()[0]["reason"]))

    def test_progress_restarts_the_timeout_up_to_ten_times_it(self) -> None:
        logged = Logged(self)
        w = Wired(spec("f unix:/s command=10"))
        w.open()
        d = w.session.helo("client.example", {})
        for _ in range(11):
            w.clock.advance(9)
            w.answer(b"p")
        self.assertFalse(d.called)  # 99 seconds
        w.clock.advance(1)
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertIn("no final answer in 100s", str(logged.warnings()[0]["reason"]))

    def test_default_reject_and_accept(self) -> None:
        w = Wired(spec("f unix:/s default=reject"))
        w.open()
        d = w.session.helo("x", {})
        w.answer(b"Z")
        self.assertEqual(result(d), Outcome(Action.REJECT))
        w = Wired(spec("f unix:/s default=accept"))
        w.open()
        d = w.session.helo("x", {})
        w.answer(b"y", b"250 fine\0")
        self.assertEqual(result(d), Outcome(Action.CONTINUE))
        self.assertFalse(w.session.active("mail"))

    def test_oversized_answer(self) -> None:
        w = Wired()
        w.open()
        d = w.session.data({})
        w.connection.dataReceived(struct.pack(">I", MAX_PACKET + 1) + b"b")
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertIn("limit", w.session.broken or "")

    def test_cannot_connect(self) -> None:
        w = Wired()
        w.session.connector = lambda _: defer.fail(ConnectionRefusedError("refused"))
        opened = w.session.open()
        self.assertTrue(opened.called)
        self.assertEqual(result(w.session.connect(INFO, {})), Outcome(Action.TEMPFAIL))
        self.assertIn("cannot connect", w.session.broken or "")

    def test_connect_timeout(self) -> None:
        w = Wired(spec("f unix:/s connect=5"))
        w.session.connector = lambda _: defer.Deferred()
        opened = w.session.open()
        w.clock.advance(5)
        self.assertTrue(opened.called)
        self.assertEqual(w.session.broken, "connect timed out after 5s")

    def test_negotiation_timeout_and_bad_version(self) -> None:
        w = Wired()
        opened = w.session.open()
        w.clock.advance(30)
        self.assertTrue(opened.called)
        self.assertIn("no answer", w.session.broken or "")
        w = Wired()
        w.session.open()
        w.answer(b"O", struct.pack(">III", 9, 0, 0))
        self.assertIn("version 9", w.session.broken or "")

    def test_connection_lost(self) -> None:
        w = Wired()
        w.open()
        d = w.session.rcpt("b@example.org", [], {})
        w.connection.connectionLost()
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))

    def test_unexpected_error_is_still_a_verdict(self) -> None:
        w = Wired()
        w.open()
        w.connection.ask = lambda packet, timeout: defer.fail(RuntimeError("a bug"))  # type: ignore[method-assign]  # a bug stands in
        self.assertEqual(result(w.session.mail("a@example.org", [], {})), Outcome(Action.TEMPFAIL))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("unexpected error", w.session.broken or "")

    def test_shutdown_answer(self) -> None:
        w = Wired()
        w.open()
        d = w.session.mail("a@example.org", [], {})
        w.answer(b"4")
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertIsNotNone(w.session.broken)


class SessionEndTests(unittest.TestCase):
    """The SMTP client leaving while a filter is asked is not a filter failure: nothing is logged."""

    def quiet(self) -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def assertNothingLogged(self, events: list[dict[str, object]]) -> None:
        self.assertEqual([e.get("log_format") for e in events if e.get("log_level") in (
            LogLevel.warn, LogLevel.error, LogLevel.critical)], [])

    def test_a_cancelled_stage_closes_quietly(self) -> None:
        events = self.quiet()
        w = Wired()
        w.open()
        d = w.session.connect(INFO, {})
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertTrue(w.transport.disconnecting)
        w.connection.connectionLost()  # the close completes: no answer is owed any more
        self.assertNothingLogged(events)
        self.assertFalse(w.session.usable())

    def test_the_client_hanging_up_during_the_connect_stage_of_a_chain(self) -> None:
        events = self.quiet()
        w = Wired()
        d = MilterChain([w.session]).connect(INFO, {})
        w.answer(b"O", struct.pack(">III", 6, 0x1FF, 0))
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertNothingLogged(events)

    def test_the_session_closed_mid_stage(self) -> None:
        events = self.quiet()
        w = Wired()
        w.open()
        d = w.session.rcpt("b@example.org", [], {})
        w.session.close()
        self.assertTrue(w.transport.disconnecting)
        w.connection.connectionLost()
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertNothingLogged(events)

    def test_the_session_closed_between_stages(self) -> None:
        events = self.quiet()
        w = Wired()
        w.open()
        w.sent()
        w.session.close()
        self.assertEqual(w.commands(), b"Q")
        w.connection.connectionLost()
        self.assertNothingLogged(events)


class UnsendableTextTests(unittest.TestCase):
    """Text from the client pymta cannot put on the wire as it is: the filter is not broken by it."""

    def test_nul_in_macros_and_stage_strings_is_sent_as_a_blank(self) -> None:
        w = Wired(spec("f unix:/s default=accept"))
        w.open()
        d = w.session.connect(ConnectInfo("ptr\0.example", "4", "192.0.2.1", 25), {"{client_name}": "ptr\0.example"})
        self.assertEqual(w.sent()[1][1][:12], b"ptr .example")
        w.answer(b"c")
        d = w.session.helo("he\0lo", {})
        self.assertEqual(w.sent(), [(b"H", b"he lo\0")])
        w.answer(b"c")
        d = w.session.mail("a\0b@example.org", ["AUTH=x\0"], {"{auth_authen}": "alice\0x", "i": "Q1"})
        (_, mdata), (_, cdata) = w.sent()
        self.assertIn(b"{auth_authen}\0alice x\0", mdata)
        self.assertEqual(cdata, b"<a b@example.org>\0AUTH=x \0")
        w.answer(b"c")
        self.assertEqual(result(d), Outcome(Action.CONTINUE))
        self.assertIsNone(w.session.broken)
        w.session.rcpt("victim@example.org", [], {})
        self.assertEqual(w.commands(), b"R")

    def test_text_the_protocol_cannot_carry_is_that_stage_default(self) -> None:
        logged = Logged(self)
        w = Wired()
        w.open()
        self.assertEqual(result(w.session.rcpt("\ud800@example.org", [], {})), Outcome(Action.TEMPFAIL))
        self.assertEqual(w.commands(), b"")
        self.assertIsNone(w.session.broken)
        self.assertEqual(len(logged.warnings()), 1)
        d = w.session.rcpt("b@example.org", [], {})
        self.assertEqual(w.commands(), b"R")
        w.answer(b"c")
        self.assertEqual(result(d), Outcome(Action.CONTINUE))

    def test_default_accept_leaves_the_filter_out_of_that_message_only(self) -> None:
        w = Wired(spec("f unix:/s default=accept"))
        w.open()
        self.assertEqual(result(w.session.mail("\ud800@example.org", [], {})), Outcome(Action.CONTINUE))
        self.assertFalse(w.session.active("rcpt"))
        self.assertIsNone(w.session.broken)
        w.session.forget_message()
        w.session.mail("a@example.org", [], {})
        self.assertEqual(w.commands(), b"M")

    def test_at_the_end_of_the_message_the_filter_is_told_to_abort(self) -> None:
        w = Wired()
        w.open()
        msg = Message([("Subject", "hi")], b"body\r\n")
        d = w.session.end_of_message(msg.header_fields(), msg.body_chunks, {}, {"i": "\ud800"})
        w.sent()
        w.answer(b"c")  # the header
        w.answer(b"c")  # end of header
        w.answer(b"c")  # the body
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertEqual(w.commands(), b"NBA")  # end of header, the body, ABORT: no end of message
        self.assertIsNone(w.session.broken)


class EndOfMessageTests(unittest.TestCase):
    message = Message([("Subject", " hi"), ("From", " a@example.org\r\n\t(folded)")], b"x" * (CHUNK_SIZE + 5))

    def eom(self, w: Wired) -> "defer.Deferred[Outcome]":
        return w.session.end_of_message(self.message.header_fields(), self.message.body_chunks,
                                        {"i": "Q1"}, {"i": "Q1"})

    def test_headers_body_and_every_modification(self) -> None:
        logged = Logged(self)
        w = Wired()
        w.open(actions=0x1FF & ~n.SMFIF_QUARANTINE)
        d = self.eom(w)
        for expected in (b"L", b"L", b"N", b"B", b"B"):
            packets = w.sent()
            self.assertEqual(packets[-1][0], expected)
            if expected == b"L" and packets[-1][1].startswith(b"Subject"):
                self.assertEqual(packets[-1][1], b"Subject\0hi\0")  # without HDR_LEADSPC: no leading blank
            if expected == b"L" and packets[-1][1].startswith(b"From"):
                self.assertEqual(packets[-1][1], b"From\0a@example.org\n\t(folded)\0")
            if expected == b"B":
                self.assertIn(len(packets[-1][1]), (CHUNK_SIZE, 5))
            w.answer(b"c")
        self.assertEqual([c for c, _ in w.sent()], [b"D", b"E"])
        index = struct.pack(">I", 1)
        for command, data in ((b"h", b"X-Spam\0no\r\n\tand more\0"), (b"i", index + b"X-First\0yes\0"),
                              (b"m", index + b"Subject\0\0"), (b"e", b"<new@example.org>\0"),
                              (b"+", b"<c@example.org>\0"), (b"2", b"<d@example.org>\0NOTIFY=NEVER\0"),
                              (b"-", b"<b@example.org>\0"), (b"b", b"new body\r\n"), (b"q", b"why\0"),
                              (b"p", b"")):
            w.answer(command, data)
        self.assertFalse(d.called)
        w.answer(b"a")
        self.assertEqual(result(d), Outcome(Action.CONTINUE, None, (
            AddHeader("X-Spam", "no\n\tand more"), InsertHeader(1, "X-First", "yes"), ChangeHeader(1, "Subject", ""),
            ChangeSender("new@example.org"), AddRecipient("c@example.org"),
            AddRecipient("d@example.org", "NOTIFY=NEVER"), DeleteRecipient("b@example.org"),
            ReplaceBody(b"new body\r\n"))))
        self.assertTrue(any("not negotiated" in str(e.get("log_format")) for e in logged.events))
        self.assertIsNone(w.session.broken)

    def test_quarantine(self) -> None:
        w = Wired()
        w.open(steps=n.SMFIP_NOHDRS | n.SMFIP_NOEOH | n.SMFIP_NOBODY)
        d = self.eom(w)
        w.answer(b"q", b"suspicious\0")
        w.answer(b"c")
        self.assertEqual(result(d), Outcome(Action.CONTINUE, None, (Quarantine("suspicious"),)))

    def test_nul_in_a_header_is_sent_as_a_blank(self) -> None:
        w = Wired()
        w.open(steps=n.SMFIP_NOEOH | n.SMFIP_NOBODY)
        d = w.session.end_of_message([("X-Odd", "a\0b")], self.message.body_chunks, {}, {})
        self.assertEqual(w.sent(), [(b"L", b"X-Odd\0a b\0")])
        w.answer(b"c")
        w.sent()
        w.answer(b"c")
        self.assertEqual(result(d), Outcome(Action.CONTINUE))

    def test_leading_space_and_skip(self) -> None:
        w = Wired()
        w.open(steps=n.SMFIP_HDR_LEADSPC | n.SMFIP_SKIP | n.SMFIP_NOEOH)
        d = self.eom(w)
        self.assertEqual(w.sent(), [(b"L", b"Subject\0 hi\0")])
        w.answer(b"c")
        w.sent()
        w.answer(b"c")
        self.assertEqual(w.commands(), b"B")
        w.answer(b"s")
        self.assertEqual(w.commands(), b"DE")
        w.answer(b"h", b"X-A\0 spaced\0")
        w.answer(b"c")
        self.assertEqual(result(d).modifications, (AddHeader("X-A", "spaced"),))

    def test_no_reply_steps_and_reject_in_body(self) -> None:
        w = Wired()
        w.open(steps=n.SMFIP_NR_HDR | n.SMFIP_NR_EOH)
        d = self.eom(w)
        self.assertEqual(w.commands(), b"LLDNB")
        w.answer(b"y", b"550 5.7.1 virus\0")
        self.assertEqual(result(d), Outcome(Action.REJECT, "550 5.7.1 virus"))
        self.assertEqual(w.commands(), b"")
        self.assertTrue(w.session.active("mail"))

    def test_reject_drops_modifications_and_content_timeout(self) -> None:
        w = Wired(spec("f unix:/s content=60 command=5"))
        w.open(steps=n.SMFIP_NOHDRS | n.SMFIP_NOEOH | n.SMFIP_NOBODY)
        d = self.eom(w)
        self.assertEqual(w.commands(), b"DE")
        w.clock.advance(59)
        w.answer(b"h", b"X-A\0b\0")
        w.answer(b"r")
        self.assertEqual(result(d), Outcome(Action.REJECT))
        d = self.eom(w)
        w.clock.advance(60)
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))

    def test_answer_bound(self) -> None:
        w = Wired()
        w.open(steps=n.SMFIP_NOHDRS | n.SMFIP_NOEOH | n.SMFIP_NOBODY)
        d = self.eom(w)
        chunk = b"b" * (MAX_PACKET - 1)
        for _ in range(MAX_ANSWER // len(chunk) + 1):
            if d.called:
                break
            w.answer(b"b", chunk)
        self.assertEqual(result(d), Outcome(Action.TEMPFAIL))
        self.assertIn("larger than", w.session.broken or "")
