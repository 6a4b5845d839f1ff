"""reject-dmarc in a session: what a slow DNS, a large message and pct= make of the answer at the end of DATA."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

import pymta.senderauth.verifier as verifier_module
import tests.smtpd.test_senderauthstep as base
from pymta.senderauth.dmarccheck import DomainPolicy, judge
from pymta.senderauth.settings import SenderAuthSettings
from pymta.senderauth.verdict import Verdict
from tests.senderauth.fakedns import FakeLookups, Key

REJECT_DMARC = SenderAuthSettings(check=True, reject_dmarc=True)
FORGED = base.MESSAGE.replace(b"signed.test", b"forged.test")


class RejectDMARC(SynchronousTestCase):
    session = base.SenderChecksInASession.session
    send = base.SenderChecksInASession.send

    def test_policy_lookup_that_does_not_answer_is_451(self) -> None:
        s = self.session(REJECT_DMARC)  # type: ignore[arg-type]
        self.lookups = FakeLookups(base.ZONE, silent=("_dmarc.forged.test",))
        replies = self.send(s, "bounce@elsewhere.test", FORGED)  # type: ignore[arg-type]
        self.assertTrue(replies[-1].startswith("451 DMARC of forged.test cannot be checked now"), replies)
        self.assertEqual(s.sink.queued, [])

    def test_aligned_key_that_does_not_answer_is_451(self) -> None:
        s = self.session(REJECT_DMARC)  # type: ignore[arg-type]
        self.lookups = FakeLookups(base.ZONE, silent=("sel._domainkey.signed.test",))
        message = Key.get().sign(base.MESSAGE, "signed.test")
        self.assertEqual(self.send(s, "bounce@elsewhere.test", message)[-1][:4], "451 ")  # type: ignore[arg-type]

    def test_temperror_is_taken_without_reject_dmarc(self) -> None:
        s = self.session()  # type: ignore[call-arg]
        self.lookups = FakeLookups(base.ZONE, silent=("_dmarc.forged.test",))
        self.assertEqual(self.send(s, "bounce@elsewhere.test", FORGED)[-1][:4], "250 ")  # type: ignore[arg-type]
        self.assertIn(b"dmarc=temperror", s.sink.queued[0].data)

    def test_large_signed_message_is_not_judged_and_not_refused(self) -> None:
        self.patch(verifier_module, "MAX_VERIFIED_BYTES", 1000)
        self.patch(__import__("pymta.smtpd.senderauthstep", fromlist=["x"]), "MAX_VERIFIED_BYTES", 1000)
        s = self.session(REJECT_DMARC)  # type: ignore[arg-type]
        message = Key.get().sign(base.MESSAGE + b"attachment line\n" * 100, "signed.test")
        self.assertEqual(self.send(s, "list-bounces@forwarder.test", message)[-1][:4], "250 ")  # type: ignore[arg-type]
        data = s.sink.queued[0].data
        self.assertIn(b"dkim=policy", data)
        self.assertIn(b"dmarc=none", data)


class Pct(SynchronousTestCase):
    def verdict(self, record: dict[str, str], sampled: bool) -> tuple[str, str, str]:
        found = judge([DomainPolicy("forged.test", record, record["p"])], Verdict("spf", "fail"), "forged.test", [],
                      sample=lambda pct: sampled)
        return found.verdict.result, found.policy, found.verdict.comment

    def test_reject_outside_the_sample_is_quarantine(self) -> None:
        self.assertEqual(self.verdict({"p": "reject", "pct": "10"}, sampled=False),
                         ("fail", "quarantine", "p=reject pct=10: not sampled"))
        self.assertEqual(self.verdict({"p": "reject", "pct": "10"}, sampled=True), ("fail", "reject", "p=reject"))
        self.assertEqual(self.verdict({"p": "reject"}, sampled=False), ("fail", "reject", "p=reject"))
        self.assertEqual(self.verdict({"p": "reject", "pct": "junk"}, sampled=False), ("fail", "reject", "p=reject"))
