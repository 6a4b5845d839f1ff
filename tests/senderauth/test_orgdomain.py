"""The organisational domain (RFC 7489 section 3.2) by the public suffix list of the publicsuffixlist package."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.senderauth.orgdomain import org_domain


class OrgDomainTests(SynchronousTestCase):
    def test_suffix_plus_one_label(self) -> None:
        for name, org in (("mail.example.test", "example.test"), ("a.b.example.co.uk", "example.co.uk"),
                          ("Example.COM.", "example.com"), ("co.uk", "co.uk"),
                          ("mx.shop.taxi.aero", "shop.taxi.aero")):  # taxi.aero: not in publicsuffix2's 2019 list
            self.assertEqual(org_domain(name), org, name)
