"""DKIM signing in an SMTP session: trusted sessions' mail is signed before it is queued, others' is not."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.dkim.signing import DKIMSigning
from pymta.smtpd.dkimsignstep import DKIMSignStep
from pymta.smtpd.endofdata import EndOfDataStage, SessionFacts
from tests.dkim.helpers import signing_keys, verify_all
from tests.smtpd.helpers import Session, relay_session, send_to_bob

CLIENT = "192.0.2.7"
MESSAGE = b"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: hello\n\nHello Bob.\n..dot\n"


class SigningInASession(SynchronousTestCase):
    def session(self, rules: str, keys: dict | None = None) -> Session:
        return relay_session(self, EndOfDataStage([DKIMSignStep(DKIMSigning(signing_keys() if keys is None else keys))]), rules)

    def send(self, s: Session) -> list[str]:
        return send_to_bob(s, MESSAGE)

    def test_a_relay_client_is_signed(self) -> None:
        s = self.session(f'{CLIENT}:allow,RELAYCLIENT=""')
        self.assertEqual(self.send(s)[-1][:3], "250")
        data = s.sink.queued[0].data
        self.assertTrue(data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256"))
        self.assertEqual(data.count(b"DKIM-Signature: "), 2)
        self.assertLess(data.index(b"DKIM-Signature: "), data.index(b"Received: from "))
        self.assertTrue(data.endswith(b"Hello Bob.\n.dot\n"))
        self.assertEqual(verify_all(data), [True, True])

    def test_an_untrusted_client_is_not_signed(self) -> None:
        s = self.session("")
        self.assertEqual(self.send(s)[-1][:3], "250")
        self.assertNotIn(b"DKIM-Signature", s.sink.queued[0].data)

    def test_no_key_for_the_from_domain(self) -> None:
        s = self.session(f'{CLIENT}:allow,RELAYCLIENT=""', keys=signing_keys("example.net"))
        self.assertEqual(self.send(s)[-1][:3], "250")
        self.assertNotIn(b"DKIM-Signature", s.sink.queued[0].data)


class StepTests(SynchronousTestCase):
    def test_which_transactions_get_the_step(self) -> None:
        step = DKIMSignStep(DKIMSigning(signing_keys()))
        self.assertIsNone(step.for_transaction(SessionFacts("192.0.2.7", "h", "a@example.com")))
        self.assertIsNotNone(step.for_transaction(SessionFacts("192.0.2.7", "h", "a@example.com", auth_user="alice")))
        self.assertIsNotNone(step.for_transaction(SessionFacts("192.0.2.7", "h", "a@example.com", relay_client=True)))
        off = DKIMSignStep(DKIMSigning({}))
        self.assertIsNone(off.for_transaction(SessionFacts("192.0.2.7", "h", "a@example.com", auth_user="alice")))
