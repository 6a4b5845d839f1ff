"""pymta.milter.answers: custom replies validated, 4xx/5xx, addresses unbracketed."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.milter.answers import parse_reply
from pymta.milter.api import Action
from pymta.milter.wire import ProtocolError


class ReplyTests(unittest.TestCase):
    def test_valid(self) -> None:
        self.assertEqual(parse_reply("550 5.7.1 spam"), (Action.REJECT, "550 5.7.1 spam"))
        self.assertEqual(parse_reply("421"), (Action.TEMPFAIL, "421 "))
        self.assertEqual(parse_reply("554-5.7.1 one\r\n554-5.7.1 two\r\n554 5.7.1 three"),
                         (Action.REJECT, "554-5.7.1 one\r\n554-5.7.1 two\r\n554 5.7.1 three"))

    def test_refused(self) -> None:
        for text in ("250 ok", "5xx no", "55", "550-one", "550 one\r\n551 two", "550-a\r\n550-b",
                     "550 a\r\n550 b", "550 a\tb", "550 a\x00", "550 " + "x" * 5000, "650 no"):
            self.assertRaises(ProtocolError, parse_reply, text)
