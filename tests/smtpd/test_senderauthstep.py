"""The sender checks in an SMTP session: the end-of-data stage, the header, the refusals, trusted clients."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.senderauth.settings import SenderAuthSettings
from pymta.senderauth.verifier import GRACE, SenderVerifier
from pymta.smtpd.endofdata import EndOfDataStage
from pymta.smtpd.senderauthstep import SenderAuthStep
from tests.senderauth.fakedns import FakeLookups, Key, txt
from tests.smtpd.helpers import Session, make_root

CLIENT = "192.0.2.7"
ZONE = {
    ("signed.test", "TXT"): [txt(f"v=spf1 ip4:{CLIENT} -all")],
    ("forged.test", "TXT"): [txt("v=spf1 ip4:198.51.100.1 -all")],
    ("helo.test", "TXT"): [txt(f"v=spf1 ip4:{CLIENT} -all")],
    ("sel._domainkey.signed.test", "TXT"): [txt(Key.get().record)],
    ("_dmarc.signed.test", "TXT"): [txt("v=DMARC1; p=reject")],
    ("_dmarc.forged.test", "TXT"): [txt("v=DMARC1; p=reject")],
}
MESSAGE = (b"Authentication-Results: mx.example.org; dkim=pass header.d=forged.test\n"
           b"Authentication-Results: upstream.example; spf=pass smtp.mailfrom=signed.test\n"
           b"From: Alice <alice@signed.test>\nTo: bob@example.org\nSubject: hello\n\nHello Bob.\n")


def sync(function: Any, *args: Any) -> defer.Deferred:
    return defer.maybeDeferred(function, *args)


class SenderChecksInASession(SynchronousTestCase):
    def session(self, settings: SenderAuthSettings = SenderAuthSettings(check=True), rules: str = "",
                run: Any = sync) -> Session:
        self.lookups = FakeLookups(ZONE)
        s = Session(make_root(self.mktemp(), rcpthosts="example.org"), rules=rules)
        verifier = SenderVerifier(None, "mx.example.org", settings.timeout, reactor=s.clock, run=run,
                                  lookups=lambda deadline: self.lookups)
        s.context.end_of_data = EndOfDataStage([SenderAuthStep(settings, verifier, "mx.example.org")])
        self.addCleanup(s.close)
        s.take()
        s.cmd("EHLO helo.test")
        return s

    def send(self, s: Session, sender: str, message: bytes) -> list[str]:
        replies = s.cmd(f"MAIL FROM:<{sender}>") + s.cmd("RCPT TO:<bob@example.org>") + s.cmd("DATA")
        return replies + s.send(message.replace(b"\n", b"\r\n") + b".\r\n")

    def test_verdicts_in_the_header(self) -> None:
        s = self.session()
        replies = self.send(s, "alice@signed.test", Key.get().sign(MESSAGE, "signed.test"))
        self.assertEqual(replies, ["250 ok", "250 ok", "354 go ahead", "250 ok 1800000000 qp 4001"])
        data = s.sink.queued[0].data
        self.assertTrue(data.startswith(
            b"Authentication-Results: mx.example.org;\n\tspf=pass reason=\"sender SPF authorized\" smtp.helo=helo.test;\n"
            b"\tspf=pass reason=\"sender SPF authorized\" smtp.mailfrom=signed.test;\n"
            b"\tdkim=pass header.d=signed.test header.s=sel;\n"
            b"\tdmarc=pass (p=reject) header.from=signed.test\nReceived: from unknown (HELO helo.test)"), data)
        self.assertNotIn(b"header.d=forged.test", data)  # ours, forged: removed
        self.assertIn(b"Authentication-Results: upstream.example; spf=pass", data)  # someone else's: kept
        self.assertTrue(data.endswith(b"Subject: hello\n\nHello Bob.\n"))

    def test_failures_are_reported_and_accepted_by_default(self) -> None:
        s = self.session()
        message = Key.get().sign(MESSAGE.replace(b"signed.test", b"forged.test"), "signed.test")
        self.assertEqual(self.send(s, "alice@forged.test", message + b"more\n")[-1], "250 ok 1800000000 qp 4001")
        data = s.sink.queued[0].data
        for verdict in (b"spf=fail reason=\"SPF fail - not authorized\" smtp.mailfrom=forged.test", b"dkim=fail reason=\"body hash did not verify\"",
                        b"dmarc=fail (p=reject) header.from=forged.test"):
            self.assertIn(verdict, data)

    def test_reject_spf_fail_at_mail_from(self) -> None:
        s = self.session(SenderAuthSettings(check=True, reject_spf_fail=True))
        [reply] = s.cmd("MAIL FROM:<alice@forged.test>")
        self.assertTrue(reply.startswith("550 ") and reply.endswith("(#5.7.23)"), reply)
        self.assertEqual(s.cmd("RCPT TO:<bob@example.org>"), ["503 MAIL first (#5.5.1)"])
        self.assertEqual(s.cmd("MAIL FROM:<alice@signed.test>"), ["250 ok"])

    def test_reject_dmarc_at_the_end_of_data(self) -> None:
        s = self.session(SenderAuthSettings(check=True, reject_dmarc=True))
        replies = self.send(s, "bounce@elsewhere.test", MESSAGE.replace(b"signed.test", b"forged.test"))
        self.assertTrue(replies[-1].startswith("550 DMARC policy of forged.test") and replies[-1].endswith("(#5.7.1)"))
        self.assertEqual((s.sink.opened, s.sink.queued), ([], []))

    def test_trusted_clients_are_not_checked(self) -> None:
        s = self.session(rules=f'{CLIENT}:allow,RELAYCLIENT=""')
        self.assertEqual(self.send(s, "alice@forged.test", MESSAGE)[-1], "250 ok 1800000000 qp 4001")
        data = s.sink.queued[0].data
        self.assertTrue(data.startswith(b"Received: "))
        self.assertNotIn(b"mx.example.org;", data)
        self.assertIn(b"upstream.example;", data)
        self.assertEqual(self.lookups.asked, [])

    def test_dns_that_does_not_answer_is_a_temperror_and_mail_is_taken(self) -> None:
        s = self.session(run=lambda function, *args: defer.Deferred())
        self.assertEqual(s.cmd("MAIL FROM:<alice@signed.test>"), [])
        s.clock.advance(20 + GRACE)
        self.assertEqual(s.take(), ["250 ok"])
        s.cmd("RCPT TO:<bob@example.org>")
        s.cmd("DATA")
        self.assertEqual(s.send(MESSAGE.replace(b"\n", b"\r\n") + b".\r\n"), [])
        s.clock.advance(20 + GRACE)
        self.assertEqual(s.take(), [f"250 ok {int(s.clock.seconds())} qp 4001"])
        data = s.sink.queued[0].data
        for verdict in (b"spf=temperror", b"dkim=temperror", b"dmarc=temperror"):
            self.assertIn(verdict, data)


class WithoutChecks(SynchronousTestCase):
    def test_the_queue_writer_is_opened_at_data_as_before(self) -> None:
        s = Session(make_root(self.mktemp(), rcpthosts="example.org"))
        self.addCleanup(s.close)
        s.cmd("MAIL FROM:<a@x.test>")
        s.cmd("RCPT TO:<bob@example.org>")
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        self.assertEqual(len(s.sink.opened), 1)  # no spool: the real writer streams the message
        self.assertEqual(s.send(b"Authentication-Results: mx.example.org; none\r\n\r\nx\r\n.\r\n"),
                         ["250 ok 1800000000 qp 4001"])
        self.assertIn(b"Authentication-Results: mx.example.org; none\n", s.sink.queued[0].data)
