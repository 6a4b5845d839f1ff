"""pymta.dnsrecords: which domains, which records, zone-file lines, and comparing with DNS answers."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.dnsrecords import (
    MailSite,
    Record,
    compare,
    domain_records,
    mail_domains,
    mta_sts_policy,
    records_for,
    reverse_records,
    zone_text,
)


def site(**changes: object) -> MailSite:
    values: dict[str, object] = dict(
        me="mx.example.org", helohost="", locals_=["mx.example.org", "example.org"],
        rcpthosts=["mx.example.org", "example.org"], virtualdomains={}, addresses=["192.0.2.25"],
    )
    values.update(changes)
    return MailSite.from_controls(**values)  # type: ignore[arg-type]


class MailDomainsTests(SynchronousTestCase):
    def test_exact_domains_of_every_file(self) -> None:
        made = site(locals_=["Example.ORG.", "mx.example.org"], rcpthosts=["example.net", ".sub.example.com"],
                    virtualdomains={"example.com": "alias", "joe@example.info": "joe"})
        self.assertEqual(made.domains, ("example.com", "example.net", "example.org"))

    def test_not_mail_domains(self) -> None:
        self.assertEqual(mail_domains("mx.example.org", [
            "localhost", "localhost.localdomain", "[192.0.2.1]", "192.0.2.1", "host", "@x.org", ".example.org",
        ]), ("mx.example.org",))

    def test_internationalised_names_in_ascii_form(self) -> None:
        made = site(me="mx.bücher.example", locals_=["Bücher.example"], rcpthosts=["bücher.example", "a..ü"])
        self.assertEqual((made.mx_host, made.domains), ("mx.xn--bcher-kva.example", ("xn--bcher-kva.example",)))

    def test_me_is_a_mail_domain_unless_under_another(self) -> None:
        self.assertEqual(mail_domains("example.org", ["example.org"]), ("example.org",))
        self.assertEqual(mail_domains("mx.example.org", ["example.org", "mx.example.org"]), ("example.org",))
        self.assertEqual(mail_domains("mail.example.net", ["example.org"]), ("example.org", "mail.example.net"))

    def test_helo_host_defaults_to_me(self) -> None:
        self.assertEqual(site().helo_host, "mx.example.org")
        self.assertEqual(site(helohost="out.example.org").helo_host, "out.example.org")


class RecordsTests(SynchronousTestCase):
    def test_domain_records(self) -> None:
        made = site()
        lines = [r.zone_line() for r in domain_records(made, "example.org")]
        self.assertEqual(lines[:3], [
            "example.org. 3600 IN MX 10 mx.example.org.",
            'example.org. 3600 IN TXT "v=spf1 mx -all"',
            '_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.org"',
        ])
        self.assertRegex(lines[3], r'^_mta-sts\.example\.org\. 3600 IN TXT "v=STSv1; id=[0-9a-f]{20}"$')
        self.assertEqual(lines[4], '_smtp._tls.example.org. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.org"')

    def test_host_records_and_ptr(self) -> None:
        made = site(addresses=["192.0.2.25", "2001:db8::25"], helohost="out.example.org")
        records = records_for(made)
        self.assertIn(Record("mx.example.org", "A", "192.0.2.25"), records)
        self.assertIn(Record("mx.example.org", "AAAA", "2001:db8::25"), records)
        self.assertIn(Record("out.example.org", "A", "192.0.2.25"), records)
        self.assertIn(Record("out.example.org", "TXT", "v=spf1 a -all"), records)
        self.assertEqual([(r.owner, r.value) for r in reverse_records(made)], [
            ("25.2.0.192.in-addr.arpa", "out.example.org."),
            ("5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "out.example.org."),
        ])
        self.assertTrue(all(r.asked_of_address_owner for r in reverse_records(made)))

    def test_no_helo_spf_on_a_mail_domain(self) -> None:
        records = records_for(site(me="example.org", locals_=["example.org"], rcpthosts=["example.org"]))
        spf = [r for r in records if r.owner == "example.org" and r.rtype == "TXT"]
        self.assertEqual([r.value for r in spf], ["v=spf1 mx -all"])

    def test_mta_sts_id_follows_the_policy(self) -> None:
        testing, enforce = site(), site(mta_sts_mode="enforce")
        self.assertEqual(mta_sts_policy(testing), "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\n")
        self.assertIn("mode: enforce\n", mta_sts_policy(enforce))
        ids = {r.value for s in (testing, enforce) for r in records_for(s) if r.owner.startswith("_mta-sts.")}
        self.assertEqual(len(ids), 2)
        self.assertEqual(records_for(site()), records_for(site()))

    def test_dmarc_policy(self) -> None:
        dmarc = [r.value for r in records_for(site(dmarc_policy="quarantine")) if r.owner.startswith("_dmarc.")]
        self.assertEqual(dmarc, ["v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"])

    def test_txt_quoting(self) -> None:
        self.assertEqual(Record("a.example", "TXT", 'x"y\\z').zone_line(), 'a.example. 3600 IN TXT "x\\"y\\\\z"')

    def test_zone_text(self) -> None:
        text = zone_text(site())
        self.assertIn("; DKIM: pymta dkim keygen DOMAIN SELECTOR", text)
        self.assertIn("\n; 25.2.0.192.in-addr.arpa. 3600 IN PTR mx.example.org.\n", text)
        self.assertIn("https://mta-sts.example.org/.well-known/mta-sts.txt", text)
        self.assertIn("\n; mode: testing\n", text)
        for line in text.splitlines():
            self.assertTrue(line == "" or line.startswith("; ") or " 3600 IN " in line, line)
        self.assertIn("give --ipv4 / --ipv6", zone_text(site(addresses=[])))


class CompareTests(SynchronousTestCase):
    mx = Record("example.org", "MX", "10 mx.example.org.")
    spf = Record("example.org", "TXT", "v=spf1 mx -all")
    dmarc = Record("_dmarc.example.org", "TXT", "v=DMARC1; p=none; rua=mailto:postmaster@example.org")

    def test_mx(self) -> None:
        self.assertEqual(compare(self.mx, ["20 backup.example.net.", "5 MX.example.org."]).status, "ok")
        self.assertEqual(compare(self.mx, []).status, "missing")
        verdict = compare(self.mx, ["10 other.example.net."])
        self.assertEqual(verdict.line(),
                         "different example.org MX 10 mx.example.org. (found: 10 other.example.net.)")

    def test_addresses_and_ptr(self) -> None:
        self.assertEqual(compare(Record("h.example", "AAAA", "2001:db8::1"), ["2001:db8:0::1"]).status, "ok")
        self.assertEqual(compare(Record("h.example", "A", "192.0.2.1"), ["192.0.2.2"]).status, "different")
        self.assertEqual(compare(Record("r.arpa", "PTR", "mx.example.org."), ["MX.example.org."]).status, "ok")

    def test_spf_term_by_term(self) -> None:
        self.assertEqual(compare(self.spf, ["google-site-verification=x", "v=spf1  MX -all"]).status, "ok")
        self.assertEqual(compare(self.spf, ["google-site-verification=x"]).status, "missing")
        verdict = compare(self.spf, ["v=spf1 a mx ~all"])
        self.assertEqual(verdict.line(), 'different example.org TXT "v=spf1 mx -all" (found: "v=spf1 a mx ~all")')
        self.assertEqual(compare(self.spf, ["v=spf1 mx -all", "v=spf1 a -all"]).status, "different")

    def test_tags_by_tag(self) -> None:
        self.assertEqual(compare(self.dmarc, ["v=DMARC1;rua=mailto:postmaster@example.org;p=none;fo=1"]).status, "ok")
        self.assertEqual(compare(self.dmarc, ["v=DMARC1; p=reject; rua=mailto:postmaster@example.org"]).status,
                         "different")
        self.assertEqual(compare(self.dmarc, ["v=spf1 mx -all"]).status, "missing")
