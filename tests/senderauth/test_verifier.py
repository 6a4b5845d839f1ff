"""
The verifier's message check against a DNS that is slow for some names:
the From domain's DMARC policy is read before any DKIM key, signatures
that can align are verified first and each key lookup has its own limit.
"""

from __future__ import annotations

import time
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.senderauth.dkimcheck import check_dkim
from pymta.senderauth.lookups import Lookups
from pymta.senderauth.spfcheck import SPFVerdicts
from pymta.senderauth.verdict import Verdict
from pymta.senderauth.verifier import MessageVerdicts, SenderVerifier
from tests.senderauth.fakedns import FakeLookups, Key, txt

ZONE = {
    ("_dmarc.bank.test", "TXT"): [txt("v=DMARC1; p=reject")],
    ("sel._domainkey.bank.test", "TXT"): [txt(Key.get().record)],
}
MESSAGE = b"From: Bank <security@bank.test>\nTo: bob@example.org\nSubject: reset\n\nclick\n"
SPF = SPFVerdicts(Verdict("spf", "none"), Verdict("spf", "none", "", (("smtp.mailfrom", "client.example"),)),
                  "client.example")


class SlowResolver:
    """Answers from ZONE at once; a question under silent.test costs its whole lifetime (a skewed clock)."""

    def __init__(self) -> None:
        self.skew = 0.0
        self.fake = FakeLookups(ZONE)
        self.asked: list[str] = []

    def now(self) -> float:
        return time.monotonic() + self.skew

    def resolve(self, qname: Any, rdtype: Any, search: bool = False, lifetime: float = 5.0) -> Any:
        name = qname.to_text().rstrip(".")
        self.asked.append(name)
        if name.endswith("silent.test"):
            self.skew += lifetime
            raise dns.exception.Timeout()
        records = self.fake.records(name, dns.rdatatype.to_text(rdtype))
        if not records:
            raise dns.resolver.NXDOMAIN()
        return records


class SlowKeysTests(SynchronousTestCase):
    def check(self, message: bytes) -> tuple[MessageVerdicts, SlowResolver]:
        resolver = SlowResolver()
        verifier = SenderVerifier(None, "mx.example.org", 20.0, reactor=None, run=defer.maybeDeferred,
                                  lookups=lambda deadline: Lookups(resolver, deadline, now=resolver.now))  # type: ignore[arg-type]
        found: list[MessageVerdicts] = []
        verifier.check_message(message, len(message), SPF).addCallback(found.append)
        return found[0], resolver

    def test_policy_is_read_before_slow_keys(self) -> None:
        message = MESSAGE
        for n in range(4):  # 4 keys x 5 s: the whole 20 s deadline
            message = Key.get().sign(message, "silent.test", selector=f"s{n}")
        found, resolver = self.check(message)
        self.assertEqual(resolver.asked[0], "_dmarc.bank.test")
        self.assertEqual([v.result for v in found.dkim], ["temperror"] * 4)
        self.assertEqual((found.dmarc.verdict.result, found.dmarc.policy), ("fail", "reject"))

    def test_aligned_signature_is_verified_first(self) -> None:
        message = Key.get().sign(MESSAGE, "bank.test")
        for n in range(8):  # 8 signatures of a slow domain on top, MAX_SIGNATURES in all
            message = Key.get().sign(message, "silent.test", selector=f"s{n}")
        found, _ = self.check(message)
        self.assertIn(("dkim", "pass"), [(v.method, v.result) for v in found.dkim])
        self.assertEqual(found.dmarc.verdict.result, "pass")

    def test_one_signer_for_all_signatures(self) -> None:
        import dkim

        made: list[object] = []
        original = dkim.DKIM.__init__

        def counting(self: Any, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            original(self, *args, **kwargs)

        message = Key.get().sign(Key.get().sign(MESSAGE, "bank.test"), "bank.test", selector="sel")
        self.patch(dkim.DKIM, "__init__", counting)
        self.assertEqual([v.result for v in check_dkim(FakeLookups(ZONE), message)], ["pass", "pass"])
        self.assertEqual(len(made), 1)
