"""Tests for pymta.hostnames: what a control file's host names, domains and literals may be."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.hostnames import blank_problem, domain_problem, host_name_problem, ip_address_problem, literal_address


class BlankTests(SynchronousTestCase):
    def test_blanks(self) -> None:
        self.assertIsNone(blank_problem("example.com"))
        self.assertIn("start", blank_problem(" example.com") or "")
        self.assertIn("inside", blank_problem("example .com") or "")
        self.assertIn("inside", blank_problem("a\tb") or "")


class HostNameTests(SynchronousTestCase):
    def test_good_names(self) -> None:
        for name in ("localhost", "mail.example.org", "MX-1.Example.COM", "_dmarc.example", "xn--bcher-kva.example",
                     "bücher.example", "192.0.2.1", "a" * 63 + ".example"):
            self.assertIsNone(host_name_problem(name), name)

    def test_bad_names(self) -> None:
        cases = {
            "": "empty",
            "mail example.org": "blank inside",
            " mail.example.org": "blank at the start",
            "mail..example.org": "empty label",
            "mail.example.org.": "empty label",
            ".example.org": "empty label",
            "*.example.org": "'*'",
            "user@example.org": "'@'",
            "example.org/24": "'/'",
            "256.1.1.1": "not an IPv4 address",
            "1.2.3": "not an IPv4 address",
            "a" * 64 + ".example": "longer than 63",
            ".".join(["abcdefghi"] * 26): "longer than 253",
        }
        for name, reason in cases.items():
            self.assertIn(reason, host_name_problem(name) or "", name)

    def test_final_dot(self) -> None:
        self.assertIsNone(host_name_problem("relay.example.", final_dot=True))
        self.assertIn("empty label", host_name_problem("relay..example.", final_dot=True) or "")
        self.assertIn("empty", host_name_problem(".", final_dot=True) or "")


class LiteralTests(SynchronousTestCase):
    def test_literals(self) -> None:
        self.assertEqual(literal_address("[192.0.2.1]"), "192.0.2.1")
        self.assertEqual(literal_address("[IPv6:2001:DB8::1]"), "2001:db8::1")
        self.assertEqual(literal_address("[::1]"), "::1")
        for text in ("192.0.2.1", "[256.1.1.1]", "[127.0.0.1:25]", "[192.0.2.1", "[]", "[IPv6:192.0.2.1x]"):
            self.assertIsNone(literal_address(text), text)

    def test_ip_address_problem(self) -> None:
        self.assertIsNone(ip_address_problem("192.0.2.1"))
        self.assertIsNone(ip_address_problem("2001:db8::1"))
        self.assertIn("not an IP address", ip_address_problem("mail.example") or "")


class DomainTests(SynchronousTestCase):
    def test_domain_entries(self) -> None:
        for entry in ("example.com", ".example.com", "[192.0.2.1]", "[IPv6:2001:db8::1]", "localhost"):
            self.assertIsNone(domain_problem(entry), entry)

    def test_suffix_where_only_whole_domains_match(self) -> None:
        self.assertIn("never matches", domain_problem(".example.com", suffix=False) or "")
        self.assertIsNone(domain_problem("example.com", suffix=False))

    def test_bad_entries(self) -> None:
        self.assertIn("not an address literal", domain_problem("[256.1.1.1]") or "")
        self.assertIn("'*'", domain_problem("*.example.com") or "")
        self.assertIn("suffix", domain_problem("..example.com") or "")
        self.assertIn("'['", domain_problem("[192.0.2.1]", literal=False) or "")
