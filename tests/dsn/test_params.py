"""Tests for pymta.dsn.params: RFC 3461's parameters, xtext, and what is passed on."""

from hypothesis import given, strategies as st
from twisted.trial import unittest

from pymta.dsn.params import (
    MAX_ENVID,
    MAX_ORCPT,
    DsnSyntaxError,
    MessageDsn,
    RecipientDsn,
    is_xtext,
    mail_dsn,
    mail_parameters,
    rcpt_dsn,
    rcpt_parameters,
    xtext_decode,
    xtext_encode,
)


class XtextTests(unittest.SynchronousTestCase):
    def test_encode(self) -> None:
        self.assertEqual(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d")
        self.assertEqual(xtext_encode("bjørn"), "bj+C3+B8rn")

    def test_decode(self) -> None:
        self.assertEqual(xtext_decode("a+2Bb+3Dc"), "a+b=c")
        self.assertEqual(xtext_decode("bj+C3+B8rn"), "bjørn")

    def test_decode_keeps_one_line(self) -> None:
        self.assertEqual(xtext_decode("a+0D+0Ab"), "a??b")

    def test_is_xtext(self) -> None:
        self.assertTrue(is_xtext("rfc822+3Bx"))
        for bad in ("a b", "a+2b", "a+", "a=b", "a+G0", "ä"):
            self.assertFalse(is_xtext(bad), bad)

    @given(st.text(max_size=50))
    def test_round_trip(self, text: str) -> None:
        encoded = xtext_encode(text)
        self.assertTrue(is_xtext(encoded))
        if all(32 <= ord(c) != 127 for c in text):
            self.assertEqual(xtext_decode(encoded), text)


class MailTests(unittest.SynchronousTestCase):
    def test_ret_and_envid(self) -> None:
        self.assertEqual(mail_dsn(["SIZE=10", "ret=hdrs", "ENVID=QQ+2B1"]), ("HDRS", "QQ+2B1"))
        self.assertEqual(mail_dsn(["BODY=8BITMIME"]), (None, None))

    def test_bad(self) -> None:
        for params in (["RET=ALL"], ["RET"], ["ENVID="], ["ENVID=a b"], ["ENVID=" + "x" * (MAX_ENVID + 1)],
                       ["RET=FULL", "RET=HDRS"], ["ENVID=a=b"]):
            with self.assertRaises(DsnSyntaxError) as caught:
                mail_dsn(params)
            self.assertTrue(caught.exception.reply.startswith("501 malformed "), params)
            self.assertTrue(caught.exception.reply.endswith("(#5.5.4)"))

    def test_longest_envid(self) -> None:
        self.assertEqual(mail_dsn(["ENVID=" + "x" * MAX_ENVID])[1], "x" * MAX_ENVID)


class RcptTests(unittest.SynchronousTestCase):
    def test_notify_list(self) -> None:
        request = rcpt_dsn(["NOTIFY=failure,Success"], "b@y")
        self.assertEqual(request.notify, ("SUCCESS", "FAILURE"))
        self.assertTrue(request.wants("SUCCESS"))
        self.assertFalse(request.wants("DELAY"))

    def test_never(self) -> None:
        request = rcpt_dsn(["NOTIFY=NEVER"], "b@y")
        self.assertEqual(request.notify, ("NEVER",))
        self.assertFalse(request.wants("FAILURE"))

    def test_default_reports_failures_only(self) -> None:
        request = rcpt_dsn([], "b@y")
        self.assertTrue(request.plain)
        self.assertTrue(request.wants("FAILURE"))
        self.assertFalse(request.wants("SUCCESS"))

    def test_bad_notify(self) -> None:
        for value in ("NEVER,SUCCESS", "", "SUCCESS,SUCCESS", "LATER", "SUCCESS,"):
            self.assertRaises(DsnSyntaxError, rcpt_dsn, [f"NOTIFY={value}"], "b@y")

    def test_orcpt(self) -> None:
        request = rcpt_dsn(["ORCPT=RFC822;Old+2Bbox@example.org"], "b@y")
        self.assertEqual(request.orcpt, "rfc822;Old+2Bbox@example.org")
        self.assertEqual(request.original_recipient(), "rfc822;Old+box@example.org")

    def test_orcpt_naming_the_recipient_is_dropped(self) -> None:
        self.assertIsNone(rcpt_dsn(["ORCPT=rfc822;B@Y"], "b@y").orcpt)

    def test_bad_orcpt(self) -> None:
        for value in ("nosemicolon", ";a@b", "rfc822;", "rfc822;a b", "rfc822;" + "x" * MAX_ORCPT, "r/c;a@b"):
            self.assertRaises(DsnSyntaxError, rcpt_dsn, [f"ORCPT={value}"], "b@y")


class PassingOnTests(unittest.SynchronousTestCase):
    def test_mail(self) -> None:
        self.assertEqual(mail_parameters(MessageDsn("HDRS", "id+2B1")), " RET=HDRS ENVID=id+2B1")
        self.assertEqual(mail_parameters(None), "")

    def test_rcpt(self) -> None:
        request = RecipientDsn(("SUCCESS", "FAILURE"), "rfc822;a@b")
        self.assertEqual(rcpt_parameters(request), " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b")
        self.assertEqual(rcpt_parameters(RecipientDsn()), "")

    def test_meaningful(self) -> None:
        self.assertFalse(MessageDsn(recipients=(RecipientDsn(), RecipientDsn())).meaningful)
        self.assertTrue(MessageDsn(recipients=(RecipientDsn(), RecipientDsn(("NEVER",)))).meaningful)
        self.assertTrue(MessageDsn(envid="x").meaningful)
