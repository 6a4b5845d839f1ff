"""Tests for pymta.smtpd.mailparams and the DSN parameters through a whole SMTP session."""

from twisted.trial.unittest import SynchronousTestCase

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.smtpd.mailparams import TransactionParameters
from tests.smtpd.helpers import MemorySink, Session, make_root


class TransactionParametersTests(SynchronousTestCase):
    def test_size(self) -> None:
        self.assertEqual(TransactionParameters.at_mail(["SIZE=x"], 0), "501 malformed SIZE parameter (#5.5.4)")
        self.assertTrue(TransactionParameters.at_mail(["SIZE=2000"], 1000).startswith("552 "))  # type: ignore[union-attr]
        self.assertIsInstance(TransactionParameters.at_mail(["SIZE=999"], 1000), TransactionParameters)

    def test_refused_recipient_request_is_replaced(self) -> None:
        params = TransactionParameters.at_mail(["RET=HDRS"], 0)
        assert isinstance(params, TransactionParameters)
        self.assertIsNone(params.at_rcpt(["NOTIFY=NEVER"], "a@x", 0))  # then refused by policy
        self.assertIsNone(params.at_rcpt(["NOTIFY=SUCCESS"], "b@x", 0))
        self.assertIsNone(params.at_rcpt([], "c@x", 1))
        self.assertEqual(params.message_dsn(2), MessageDsn("HDRS", None, (RecipientDsn(("SUCCESS",)), RecipientDsn())))

    def test_nothing_asked(self) -> None:
        params = TransactionParameters.at_mail(["BODY=8BITMIME"], 0)
        assert isinstance(params, TransactionParameters)
        params.at_rcpt(["ORCPT=rfc822;a@x"], "a@x", 0)
        self.assertIsNone(params.message_dsn(1))


class SessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sink = MemorySink()
        self.s = Session(make_root(self.mktemp()), sink=self.sink)
        self.addCleanup(self.s.close)
        self.s.take()

    def test_ehlo_offers_dsn(self) -> None:
        self.assertIn("250-DSN", self.s.cmd("EHLO c"))

    def test_requests_reach_the_sink(self) -> None:
        self.s.cmd("EHLO c")
        self.assertEqual(self.s.cmd("MAIL FROM:<a@x> RET=FULL ENVID=T1"), ["250 ok"])
        self.assertEqual(self.s.cmd("RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@y"), ["250 ok"])
        self.assertEqual(self.s.cmd("RCPT TO:<c@y> NOTIFY=NEVER"), ["250 ok"])
        self.assertEqual(self.s.cmd("RCPT TO:<d@y>"), ["250 ok"])
        self.assertEqual(self.s.cmd("DATA"), ["354 go ahead"])
        self.assertEqual(len(self.s.cmd("hi\r\n.")), 1)
        dsn = self.sink.queued[0].dsn
        self.assertEqual(dsn, MessageDsn("FULL", "T1", (RecipientDsn(("SUCCESS", "FAILURE"), "rfc822;orig@y"),
                                                        RecipientDsn(("NEVER",)), RecipientDsn())))

    def test_plain_message_has_no_dsn(self) -> None:
        self.s.cmd("MAIL FROM:<a@x>")
        self.s.cmd("RCPT TO:<b@y>")
        self.s.cmd("DATA")
        self.s.cmd("hi\r\n.")
        self.assertIsNone(self.sink.queued[0].dsn)

    def test_bad_parameters(self) -> None:
        self.assertEqual(self.s.cmd("MAIL FROM:<a@x> RET=ALL"), ["501 malformed RET parameter (#5.5.4)"])
        self.assertEqual(self.s.cmd("RCPT TO:<b@y>"), ["503 MAIL first (#5.5.1)"])
        self.assertEqual(self.s.cmd("MAIL FROM:<a@x> ENVID=a+zz"), ["501 malformed ENVID parameter (#5.5.4)"])
        self.assertEqual(self.s.cmd("MAIL FROM:<a@x>"), ["250 ok"])
        self.assertEqual(self.s.cmd("RCPT TO:<b@y> NOTIFY=NEVER,SUCCESS"), ["501 malformed NOTIFY parameter (#5.5.4)"])
        self.assertEqual(self.s.cmd("RCPT TO:<b@y> ORCPT=a@b"), ["501 malformed ORCPT parameter (#5.5.4)"])
        self.assertEqual(self.s.cmd("RCPT TO:<b@y> ORCPT=rfc822;" + "x" * 600), ["501 malformed ORCPT parameter (#5.5.4)"])
