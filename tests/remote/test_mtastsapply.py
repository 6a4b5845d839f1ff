"""Tests for pymta.remote.mtastsapply: what enforce and testing policies do to the targets and TLS."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.interfaces import DEFERRAL, SUCCESS, DeliveryResult
from pymta.remote.mtastsapply import apply_policy
from pymta.remote.mtastspolicy import ENFORCE, NONE, TESTING, Policy
from pymta.remote.routes import Target
from pymta.remote.tlspolicy import OPPORTUNISTIC, VERIFY, TLSPolicy

GOOD = Target("192.0.2.1", 25, "mx.example.test", 10)
GOOD6 = Target("2001:db8::1", 25, "mx.example.test", 10)
BAD = Target("192.0.2.9", 25, "mx.bad.test", 20)
OPEN = TLSPolicy(OPPORTUNISTIC)


def policy(mode: str) -> Policy:
    return Policy(mode, 86400, ("mx.example.test", "*.backup.test"))


class ApplyTests(SynchronousTestCase):
    def test_no_policy_or_none(self) -> None:
        for sts in (None, policy(NONE)):
            decision = apply_policy("example.test", sts, [GOOD, BAD], OPEN, None)
            self.assertEqual((decision.targets, decision.policy, decision.refusal), ([GOOD, BAD], OPEN, None))
            self.assertFalse(decision.enforced)

    def test_enforce_keeps_listed_mx_with_verified_tls(self) -> None:
        decision = apply_policy("example.test", policy(ENFORCE), [GOOD, GOOD6, BAD], OPEN, "/etc/ca.pem")
        self.assertEqual(decision.targets, [GOOD, GOOD6])
        self.assertEqual(decision.policy, TLSPolicy(VERIFY, "/etc/ca.pem"))
        self.assertIsNone(decision.refusal)
        self.assertEqual(decision.notes, ["MTA-STS policy of example.test (enforce): mx.bad.test is not in the policy; "
                                          "not tried"])

    def test_enforce_without_listed_mx_defers(self) -> None:
        other = Target("192.0.2.10", 25, "mx2.bad.test", 30)
        decision = apply_policy("example.test", policy(ENFORCE), [BAD, other], OPEN, None)
        self.assertEqual(decision.targets, [])
        self.assertEqual(decision.refusal,
                         "MTA-STS policy of example.test: mx.bad.test, mx2.bad.test are not in the policy. (#4.7.5)\n")

    def test_testing_delivers_anyway(self) -> None:
        decision = apply_policy("example.test", policy(TESTING), [GOOD, BAD], OPEN, None)
        self.assertEqual((decision.targets, decision.policy, decision.refusal), ([GOOD, BAD], OPEN, None))
        self.assertEqual(decision.notes, ["MTA-STS policy of example.test (testing): mx.bad.test is not in the policy; "
                                          "delivering anyway"])
        self.assertEqual(apply_policy("example.test", policy(TESTING), [GOOD], OPEN, None).notes, [])

    def test_explain_names_the_policy_in_tls_deferrals(self) -> None:
        decision = apply_policy("example.test", policy(ENFORCE), [GOOD], OPEN, None)
        tls = DeliveryResult(DEFERRAL, "TLS session with 192.0.2.1 failed: certificate verify failed. (#4.7.5)\n")
        other = DeliveryResult(DEFERRAL, "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")
        done = DeliveryResult(SUCCESS, "192.0.2.1 accepted message.\n")
        explained = decision.explain([tls, other, done])
        self.assertEqual(explained[0].text, "MTA-STS policy of example.test requires TLS with a valid certificate: "
                                            + tls.text)
        self.assertEqual(explained[1:], [other, done])
        testing = apply_policy("example.test", policy(TESTING), [GOOD], OPEN, None)
        self.assertEqual(testing.explain([tls]), [tls])
