"""SPF, DKIM and DMARC verdicts against a fake DNS (every result each method has)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.senderauth.dkimcheck import check_dkim
from pymta.senderauth.dmarccheck import check_dmarc, from_domains
from pymta.senderauth.spfcheck import check_spf
from pymta.senderauth.verdict import Verdict
from tests.senderauth.fakedns import FakeLookups, Key, txt

IP = "192.0.2.10"


def spf_zone() -> FakeLookups:
    records = {
        ("pass.test", "TXT"): [txt(f"v=spf1 ip4:{IP} -all")],
        ("fail.test", "TXT"): [txt("v=spf1 ip4:198.51.100.1 -all")],
        ("softfail.test", "TXT"): [txt("v=spf1 ~all")],
        ("neutral.test", "TXT"): [txt("v=spf1 ?all")],
        ("none.test", "A"): ["198.51.100.2"],
        ("syntax.test", "TXT"): [txt("v=spf1 frobnicate -all")],
        ("many.test", "TXT"): [txt("v=spf1 " + " ".join(f"a:h{i}.many.test" for i in range(11)) + " -all")],
        ("mx.pass.test", "TXT"): [txt(f"v=spf1 a -all")],
        ("mx.pass.test", "A"): [IP],
    }
    for i in range(11):
        records[(f"h{i}.many.test", "A")] = ["198.51.100.3"]
    return FakeLookups(records, silent=("slow.test",))


class SPFTests(SynchronousTestCase):
    def result(self, sender: str, helo: str | None = "mx.pass.test") -> Verdict:
        found = check_spf(spf_zone(), IP, sender, helo, "mx.example.net").mailfrom
        assert found is not None
        return found

    def test_each_result(self) -> None:
        for domain, expected in (("pass.test", "pass"), ("fail.test", "fail"), ("softfail.test", "softfail"),
                                 ("neutral.test", "neutral"), ("none.test", "none"), ("syntax.test", "permerror"),
                                 ("slow.test", "temperror")):
            verdict = self.result(f"someone@{domain}")
            self.assertEqual((verdict.method, verdict.result), ("spf", expected), domain)
            self.assertEqual(verdict.properties, (("smtp.mailfrom", domain),))

    def test_more_than_ten_lookups_is_a_permerror(self) -> None:
        verdict = self.result("a@many.test")
        self.assertEqual(verdict.result, "permerror")
        self.assertIn("lookup", verdict.reason.lower())

    def test_helo_identity(self) -> None:
        found = check_spf(spf_zone(), IP, "a@fail.test", "mx.pass.test", "mx.example.net")
        self.assertEqual((found.helo.result, found.helo.properties), ("pass", (("smtp.helo", "mx.pass.test"),)))
        self.assertEqual(found.domain, "fail.test")
        literal = check_spf(spf_zone(), IP, "a@pass.test", "[192.0.2.10]", "mx.example.net")
        self.assertEqual(literal.helo.result, "none")

    def test_null_sender_uses_the_helo_name(self) -> None:
        found = check_spf(spf_zone(), IP, "", "mx.pass.test", "mx.example.net")
        self.assertIsNone(found.mailfrom)
        self.assertEqual((found.for_dmarc.result, found.domain), ("pass", "mx.pass.test"))
        self.assertEqual(found.all(), (found.helo,))


MESSAGE = b"From: Alice <alice@signed.test>\nTo: bob@example.net\nSubject: hello\n\nHello Bob.\n"


def dkim_zone() -> FakeLookups:
    return FakeLookups({
        ("sel._domainkey.signed.test", "TXT"): [txt(Key.get().record)],
        ("bad._domainkey.signed.test", "TXT"): [txt("v=DKIM1; k=rsa; p=bm90IGEga2V5")],
        ("_dmarc.signed.test", "TXT"): [txt("v=DMARC1; p=reject")],
        ("_dmarc.quarantined.test", "TXT"): [txt("v=DMARC1; p=quarantine; aspf=s")],
        ("_dmarc.broken.test", "TXT"): [txt("v=DMARC1; p=bogus")],
        ("_dmarc.two.test", "TXT"): [txt("v=DMARC1; p=reject"), txt("v=DMARC1; p=none")],
        ("_dmarc.org.test", "TXT"): [txt("v=DMARC1; p=none; sp=reject")],
    }, silent=("slow.test",))


class DKIMTests(SynchronousTestCase):
    def test_pass(self) -> None:
        [verdict] = check_dkim(dkim_zone(), Key.get().sign(MESSAGE, "signed.test"))
        self.assertEqual(verdict, Verdict("dkim", "pass", "", (("header.d", "signed.test"), ("header.s", "sel"))))

    def test_modified_body_fails(self) -> None:
        signed = Key.get().sign(MESSAGE, "signed.test").replace(b"Hello Bob.", b"Hello Bob!")
        [verdict] = check_dkim(dkim_zone(), signed)
        self.assertEqual((verdict.result, verdict.reason), ("fail", "body hash did not verify"))

    def test_modified_signed_header_fails(self) -> None:
        signed = Key.get().sign(MESSAGE, "signed.test").replace(b"Subject: hello", b"Subject: HELLO")
        self.assertEqual(check_dkim(dkim_zone(), signed)[0].result, "fail")

    def test_unsigned_is_none(self) -> None:
        self.assertEqual([v.result for v in check_dkim(dkim_zone(), MESSAGE)], ["none"])

    def test_no_key_or_a_bad_key_is_a_permerror(self) -> None:
        for selector, why in (("nokey", "no key published"), ("bad", "bad key")):
            [verdict] = check_dkim(dkim_zone(), Key.get().sign(MESSAGE, "signed.test", selector))
            self.assertEqual(verdict.result, "permerror", selector)
            self.assertIn(why, verdict.reason)

    def test_malformed_signature_is_a_permerror(self) -> None:
        [verdict] = check_dkim(dkim_zone(), b"DKIM-Signature: v=1; a=rsa-sha256; d=signed.test\n" + MESSAGE)
        self.assertEqual(verdict.result, "permerror")

    def test_key_lookup_timeout_is_a_temperror(self) -> None:
        [verdict] = check_dkim(dkim_zone(), Key.get().sign(MESSAGE, "slow.test"))
        self.assertEqual((verdict.result, verdict.value("header.d")), ("temperror", "slow.test"))

    def test_each_signature_has_a_verdict(self) -> None:
        twice = Key.get().sign(Key.get().sign(MESSAGE, "signed.test"), "signed.test", "nokey")
        self.assertEqual([v.result for v in check_dkim(dkim_zone(), twice)], ["permerror", "pass"])


def spf(result: str) -> Verdict:
    return Verdict("spf", result)


class DMARCTests(SynchronousTestCase):
    def dmarc(self, from_domain: str, spf_result: str = "none", spf_domain: str = "", dkim_d: str | None = None) -> tuple[str, str, str]:
        message = MESSAGE.replace(b"signed.test", from_domain.encode())
        dkims = [Verdict("dkim", "pass", "", (("header.d", dkim_d),))] if dkim_d else []
        found = check_dmarc(dkim_zone(), message, spf(spf_result), spf_domain, dkims)
        return found.verdict.result, found.policy, found.verdict.value("header.from") or ""

    def test_pass_by_aligned_spf_or_dkim(self) -> None:
        self.assertEqual(self.dmarc("signed.test", "pass", "signed.test"), ("pass", "reject", "signed.test"))
        self.assertEqual(self.dmarc("signed.test", "pass", "bounces.signed.test"), ("pass", "reject", "signed.test"))
        self.assertEqual(self.dmarc("signed.test", dkim_d="mail.signed.test"), ("pass", "reject", "signed.test"))

    def test_fail(self) -> None:
        self.assertEqual(self.dmarc("signed.test", "fail", "signed.test"), ("fail", "reject", "signed.test"))
        self.assertEqual(self.dmarc("signed.test", "pass", "elsewhere.test", "other.test"), ("fail", "reject", "signed.test"))

    def test_strict_alignment(self) -> None:
        self.assertEqual(self.dmarc("quarantined.test", "pass", "bounce.quarantined.test")[:2], ("fail", "quarantine"))

    def test_subdomain_policy_of_the_organisational_domain(self) -> None:
        self.assertEqual(self.dmarc("news.org.test", "fail", "news.org.test"), ("fail", "reject", "news.org.test"))

    def test_none(self) -> None:
        self.assertEqual(self.dmarc("unpublished.test", "pass", "unpublished.test")[0], "none")
        self.assertEqual(self.dmarc("two.test", "fail", "two.test")[0], "none")  # two records count as none
        self.assertEqual(check_dmarc(dkim_zone(), b"Subject: x\n\nbody\n", spf("pass"), "a.test", []).verdict.result, "none")

    def test_permerror(self) -> None:
        self.assertEqual(self.dmarc("broken.test", "pass", "broken.test")[0], "permerror")
        self.assertEqual(check_dmarc(dkim_zone(), b"From: nobody\n\nx\n", spf("pass"), "a.test", []).verdict.result,
                         "permerror")

    def test_temperror(self) -> None:
        self.assertEqual(self.dmarc("slow.test", "pass", "slow.test")[0], "temperror")

    def test_from_domains(self) -> None:
        self.assertEqual(from_domains(b"From: A <a@My-Domain.test>,\n b@x.test\nSubject: s\n\nFrom: c@y.test\n"),
                         ["my-domain.test", "x.test"])
