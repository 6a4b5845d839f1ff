"""pymta.milter.chain: filters asked in order, the first refusal decides, ACCEPT and DISCARD, edits seen by later filters."""

from __future__ import annotations

from typing import TypeVar

from twisted.internet import defer, task
from twisted.trial import unittest

from pymta.milter import negotiation as n
from pymta.milter.api import CONTINUE, Action, AddHeader, EndOfMessage, ReplaceBody, Verdict
from pymta.milter.chain import MilterChain
from tests.milter.test_filter import INFO
from tests.milter.wired import Message, Wired, spec

T = TypeVar("T")
ONLY_EOM = n.SMFIP_NOBODY | n.SMFIP_NOEOH


def value(d: "defer.Deferred[T]") -> T:
    assert d.called, "no answer yet"
    box: list[T] = []
    d.addCallback(box.append)
    return box[0]


class ChainTests(unittest.TestCase):
    def setUp(self) -> None:
        clock = task.Clock()
        self.one = Wired(spec("one unix:/1"), clock)
        self.two = Wired(spec("two unix:/2"), clock)
        self.chain = MilterChain([self.one.session, self.two.session])

    def negotiate(self, steps: int = 0) -> "defer.Deferred[Verdict]":
        d = self.chain.connect(INFO, {})
        for w in (self.one, self.two):
            self.assertEqual(w.commands(), b"O")
            w.answer(b"O", (6).to_bytes(4, "big") + (0x1FF).to_bytes(4, "big") + steps.to_bytes(4, "big"))
        return d

    def test_both_asked_in_order(self) -> None:
        d = self.negotiate()
        self.assertEqual((self.one.commands(), self.two.commands()), (b"C", b""))
        self.one.answer(b"c")
        self.assertEqual(self.two.commands(), b"C")
        self.two.answer(b"c")
        self.assertEqual(value(d), CONTINUE)

    def test_first_refusal_decides(self) -> None:
        self.assertEqual(self.negotiate().called, False)
        self.one.answer(b"c")
        self.two.sent()
        self.two.answer(b"c")
        d = self.chain.mail("a@example.org", [], {})
        self.one.sent()
        self.one.answer(b"y", b"451 4.7.1 greylisted\0")
        self.assertEqual(value(d), Verdict(Action.TEMPFAIL, "451 4.7.1 greylisted", "one"))
        self.assertEqual(self.two.commands(), b"")

    def test_unknown_command_not_sent_to_filters_that_opted_out(self) -> None:
        self.negotiate(n.SMFIP_NOUNKNOWN)
        self.one.sent()
        self.one.answer(b"c")
        self.two.sent()
        self.two.answer(b"c")
        d = self.chain.unknown("XFOO", {})
        self.assertEqual(value(d), CONTINUE)
        self.assertEqual((self.one.commands(), self.two.commands()), (b"", b""))

    def test_unknown_command_asked_in_order(self) -> None:
        """Each filter that takes unknown commands is asked in turn; the first refusal decides."""
        self.negotiate()
        self.one.sent()
        self.one.answer(b"c")
        self.two.sent()
        self.two.answer(b"c")
        d = self.chain.unknown("XFOO", {})
        self.assertEqual((self.one.commands(), self.two.commands()), (b"U", b""))
        self.one.answer(b"c")
        self.assertEqual(self.two.commands(), b"U")
        self.two.answer(b"y", b"500 5.5.1 no XFOO here\0")
        self.assertEqual(value(d), Verdict(Action.REJECT, "500 5.5.1 no XFOO here", "two"))

    def test_rcpt_refusal_refuses_that_recipient_only(self) -> None:
        self.negotiate(n.SMFIP_NOCONNECT)
        d = self.chain.rcpt("x@example.org", [], {})
        self.one.sent()
        self.one.answer(b"c")
        self.two.sent()
        self.two.answer(b"r")
        self.assertEqual(value(d), Verdict(Action.REJECT, None, "two"))
        d = self.chain.rcpt("y@example.org", [], {})
        self.one.sent()
        self.one.answer(b"c")
        self.assertEqual(self.two.commands(), b"R")
        self.two.answer(b"c")
        self.assertEqual(value(d), CONTINUE)

    def test_accept_skips_the_filter_for_the_message(self) -> None:
        self.negotiate(n.SMFIP_NOCONNECT | ONLY_EOM | n.SMFIP_NOHDRS)
        d = self.chain.mail("a@example.org", [], {})
        self.one.sent()
        self.one.answer(b"a")
        self.two.sent()
        self.two.answer(b"c")
        self.assertEqual(value(d), CONTINUE)
        self.chain.rcpt("b@example.org", [], {})
        self.assertEqual(self.one.commands(), b"")
        self.assertEqual(self.two.commands(), b"R")
        self.two.answer(b"c")
        d = self.chain.end_of_message(Message([], b""), {}, {})
        self.assertEqual(self.one.commands(), b"")
        self.assertEqual(self.two.commands(), b"E")
        self.two.answer(b"c")
        self.assertEqual(value(d), EndOfMessage(CONTINUE))
        self.chain.mail("a@example.org", [], {})
        self.assertEqual(self.one.commands(), b"M")

    def test_discard_ends_the_message(self) -> None:
        self.negotiate(n.SMFIP_NOCONNECT)
        d = self.chain.rcpt("b@example.org", [], {})
        self.one.sent()
        self.one.answer(b"d")
        self.assertEqual(value(d), Verdict(Action.DISCARD, None, "one"))
        self.assertEqual(value(self.chain.data({})), Verdict(Action.DISCARD))
        self.assertEqual(value(self.chain.end_of_message(Message([], b""), {}, {})), EndOfMessage(Verdict(Action.DISCARD)))
        self.assertEqual((self.one.commands(), self.two.commands()), (b"", b""))
        self.chain.mail("a@example.org", [], {})
        self.assertEqual(self.one.commands(), b"M")

    def test_later_filters_see_earlier_edits(self) -> None:
        self.negotiate(n.SMFIP_NOCONNECT | n.SMFIP_NOEOH)
        d = self.chain.end_of_message(Message([("Subject", "hi")], b"old\r\n"), {}, {})
        for _ in range(2):
            self.one.sent()
            self.one.answer(b"c")
        self.assertEqual(self.one.commands(), b"E")
        self.one.answer(b"h", b"X-One\0yes\0")
        self.one.answer(b"b", b"one's body\r\n")
        self.one.answer(b"c")
        headers = [data for command, data in self.two.sent()]
        self.assertEqual(headers, [b"Subject\0hi\0"])
        self.two.answer(b"c")
        self.assertEqual(self.two.sent(), [(b"L", b"X-One\0yes\0")])
        self.two.answer(b"c")
        self.assertEqual(self.two.sent(), [(b"B", b"one's body\r\n")])
        self.two.answer(b"c")
        self.two.sent()
        self.two.answer(b"b", b"two's ")
        self.two.answer(b"b", b"body\r\n")
        self.two.answer(b"a")
        self.assertEqual(value(d), EndOfMessage(CONTINUE, (AddHeader("X-One", "yes"), ReplaceBody(b"two's "),
                                                           ReplaceBody(b"body\r\n"))))

    def test_abort_and_close(self) -> None:
        self.negotiate(n.SMFIP_NOCONNECT)
        self.chain.abort()
        self.assertEqual((self.one.commands(), self.two.commands()), (b"A", b"A"))
        self.chain.close()
        self.assertEqual((self.one.commands(), self.two.commands()), (b"Q", b"Q"))
        self.assertTrue(self.one.transport.disconnecting)

    def test_a_broken_filter_decides_with_its_default(self) -> None:
        self.two.session.connector = lambda _: defer.fail(ConnectionRefusedError())
        d = self.chain.connect(INFO, {})
        self.one.sent()
        self.one.answer(b"O", (6).to_bytes(4, "big") + bytes(8))
        self.one.sent()
        self.one.answer(b"c")
        self.assertEqual(value(d), Verdict(Action.TEMPFAIL, None, "two"))
