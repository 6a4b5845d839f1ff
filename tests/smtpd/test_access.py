"""tcprules text format: parsing, specificity order, ranges, IPv6, errors."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.access import AccessRules, TcpRulesError, normalise_ip

RULES = """\
# qmail's typical file
127.:allow,RELAYCLIENT=""
192.168.1.:allow,RELAYCLIENT=""
10.9.9.9:deny
10.9.9.:allow,RBLSMTPD="-go away",DATABYTES=/1000/
10.1.2.40-42:deny
=mail.example.com:allow,RELAYCLIENT=".x"
=.example.com:allow,X="suffix"
=.sub.example.com:allow,X="longer"
=:allow,X="named"
joe@10.5.5.5:allow,X="ident"
::1:allow,RELAYCLIENT=""
2001:db8::deny
10.9.9.9:allow
:allow,X="default"
"""


class Parsing(SynchronousTestCase):
    def setUp(self) -> None:
        self.rules = AccessRules.parse(RULES)

    def test_exact_beats_prefix_and_first_line_wins(self) -> None:
        self.assertFalse(self.rules.lookup("10.9.9.9").allow)
        self.assertEqual(self.rules.lookup("10.9.9.9").lineno, 4)
        rule = self.rules.lookup("10.9.9.8")
        self.assertTrue(rule.allow)
        self.assertEqual(rule.environment, {"RBLSMTPD": "-go away", "DATABYTES": "1000"})

    def test_prefixes_longest_first(self) -> None:
        self.assertEqual(self.rules.lookup("192.168.1.20").environment, {"RELAYCLIENT": ""})
        self.assertEqual(self.rules.lookup("192.168.2.20").environment, {"X": "default"})

    def test_range(self) -> None:
        for last in (40, 41, 42):
            self.assertFalse(self.rules.lookup(f"10.1.2.{last}").allow)
        self.assertTrue(self.rules.lookup("10.1.2.43").allow)
        capped = AccessRules.parse("1.2.3.250-300:deny\n")
        self.assertEqual(len(capped), 6)

    def test_host_rules(self) -> None:
        self.assertEqual(self.rules.lookup("203.0.113.1", host="MAIL.example.com").environment, {"RELAYCLIENT": ".x"})
        self.assertEqual(self.rules.lookup("203.0.113.1", host="a.sub.example.com").environment, {"X": "longer"})
        self.assertEqual(self.rules.lookup("203.0.113.1", host="b.example.com").environment, {"X": "suffix"})
        self.assertEqual(self.rules.lookup("203.0.113.1", host="other.org").environment, {"X": "named"})
        self.assertEqual(self.rules.lookup("203.0.113.1").environment, {"X": "default"})
        # an IP prefix is more specific than a host suffix
        self.assertEqual(self.rules.lookup("127.0.0.5", host="b.example.com").environment, {"RELAYCLIENT": ""})

    def test_ident(self) -> None:
        self.assertEqual(self.rules.lookup("10.5.5.5", info="joe").environment, {"X": "ident"})
        self.assertEqual(self.rules.lookup("10.5.5.5").environment, {"X": "default"})

    def test_ipv6(self) -> None:
        self.assertEqual(self.rules.lookup("::1").environment, {"RELAYCLIENT": ""})
        self.assertFalse(self.rules.lookup("2001:db8::25").allow)
        self.assertEqual(self.rules.lookup("::ffff:127.0.0.1").environment, {"RELAYCLIENT": ""})
        self.assertEqual(normalise_ip("::ffff:10.0.0.1"), "10.0.0.1")

    def test_no_rules_allow(self) -> None:
        self.assertTrue(AccessRules.parse("").lookup("1.2.3.4").allow)
        self.assertTrue(AccessRules.load("/nonexistent/tcp.smtp").lookup("1.2.3.4").allow)

    def test_ignored_lines(self) -> None:
        rules = AccessRules.parse("no colon here\n\n# x:deny\n1.2.3.4:deny   \n")
        self.assertEqual(len(rules), 1)
        self.assertFalse(rules.lookup("1.2.3.4").allow)

    def test_errors(self) -> None:
        for line in ("1.2.3.4:maybe", "1.2.3.4:allow,X", '1.2.3.4:allow,X="open', "1.2.3.4:allow;X=/y/", "1.2.3.4:allow,X="):
            with self.assertRaises(TcpRulesError) as cm:
                AccessRules.parse("# first\n" + line + "\n")
            self.assertEqual(cm.exception.lineno, 2)
            self.assertEqual(cm.exception.line, line)

    def test_any_quote_character(self) -> None:
        rule = AccessRules.parse("1.:allow,A=/x y/,B=|q|,C=\"\"\n").lookup("1.0.0.1")
        self.assertEqual(rule.env, (("A", "x y"), ("B", "q"), ("C", "")))
