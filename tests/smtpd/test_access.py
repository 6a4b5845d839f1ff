"""tcprules text format: parsing, specificity order, ranges, IPv6, errors."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlError
from pymta.smtpd.access import AccessRules, TcpRulesError

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
:allow,X="default"
"""


class Parsing(SynchronousTestCase):
    def setUp(self) -> None:
        self.rules = AccessRules.parse(RULES)

    def test_exact_beats_prefix(self) -> None:
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

    def test_no_rules_allow(self) -> None:
        self.assertTrue(AccessRules.parse("").lookup("1.2.3.4").allow)
        self.assertTrue(AccessRules.load("/nonexistent/tcp.smtp").lookup("1.2.3.4").allow)

    def test_ignored_lines(self) -> None:
        rules = AccessRules.parse("\n# x:deny\n   \n1.2.3.4:deny   \n")
        self.assertEqual(len(rules), 1)
        self.assertFalse(rules.lookup("1.2.3.4").allow)

    def test_errors(self) -> None:
        for line in ("1.2.3.4:maybe", "1.2.3.4:allow,X", '1.2.3.4:allow,X="open', "1.2.3.4:allow;X=/y/", "1.2.3.4:allow,X=",
                     "1.2.3.4:deny # comment"):
            with self.assertRaises(TcpRulesError) as cm:
                AccessRules.parse("# first\n" + line + "\n", "/r/etc/tcp.smtp")
            self.assertEqual(cm.exception.lineno, 2)
            self.assertEqual(cm.exception.line, line)
            self.assertEqual(str(cm.exception), f"/r/etc/tcp.smtp:2: unable to parse this line: {line}")

    def refused(self, line: str, why: str) -> TcpRulesError:
        """C{line}, third in a file, is refused naming file, line and C{why}."""
        with self.assertRaises(TcpRulesError, msg=line) as cm:
            AccessRules.parse('127.:allow,RELAYCLIENT=""\n# x\n' + line + "\n:allow\n", "/r/etc/tcp.smtp")
        error = cm.exception
        self.assertIsInstance(error, ControlError)
        self.assertEqual((error.path, error.lineno, error.line), ("/r/etc/tcp.smtp", 3, line))
        self.assertTrue(str(error).startswith("/r/etc/tcp.smtp:3: "), str(error))
        self.assertIn(why, str(error), line)
        return error

    def test_blank_in_address_refused(self) -> None:
        # the case: the deny would never apply
        self.refused("127.0.0.1 :deny", "blank in the address '127.0.0.1 '")
        self.refused(" 10.0.0.1:deny", "blank in the address ' 10.0.0.1'")
        self.refused("=mail .example:deny", "blank in the address")

    def test_line_without_colon_refused(self) -> None:
        # tcprules skips such a line; it is always a mistake
        self.refused("10.0.0.1 deny", "no colon")

    def test_addresses_that_never_match_refused(self) -> None:
        cases = {
            "192.168.1.0/24:deny": "no /bits networks",
            "192.168.1:deny": "a prefix ends with '.' (192.168.1.)",
            "mail.example.com:deny": "a host name rule starts with '=' (=mail.example.com)",
            "256.1.1.1:deny": "not an IP address",
            "010.1.:deny": "not an IPv4 prefix",
            "1.2.3.4.5.:deny": "not an IPv4 prefix",
            "192.168.*:deny": "not an IP address",
            "1.2.3.9-4:deny": "not a range",
            "1.2.300.1-4:deny": "not an IPv4 prefix",
            "1.2.1-4:deny": "not a range",
            "2001:db8:xyz::deny": "not an IPv6 prefix",
            "=*.example.com:deny": "'*'",
            "=.example..com:deny": "empty label",
            "@10.0.0.1:deny": "empty ident",
            "joe@10.0.0.:deny": "not an IP address",
        }
        for line, why in cases.items():
            self.refused(line, why)

    def test_repeated_address_refused(self) -> None:
        # tcprules lets the first line win: the later one would silently never apply
        self.refused("127.:deny", "line 1 already has a rule for '127.'")
        error = self.assertRaises(TcpRulesError, AccessRules.parse, "10.1.2.1-10:deny\n10.1.2.5:allow\n")
        self.assertIn("line 1 already has a rule for '10.1.2.5'", str(error))
        error = self.assertRaises(TcpRulesError, AccessRules.parse, ":allow\n:deny\n")
        self.assertIn("line 1 already has a rule for the default", str(error))
        error = self.assertRaises(TcpRulesError, AccessRules.parse, "::1:allow\n0:0:0:0:0:0:0:1:deny\n")
        self.assertIn("line 1 already has a rule for '::1'", str(error))

    def test_range_after_an_exact_address_applies_to_the_others(self) -> None:
        """tcprules: the first line wins for 10.0.0.5, the range still applies to the other 254 addresses."""
        rules = AccessRules.parse("10.0.0.5:deny\n10.0.0.1-255:allow\n")
        self.assertFalse(rules.lookup("10.0.0.5").allow)
        self.assertEqual(rules.lookup("10.0.0.5").lineno, 1)
        self.assertTrue(rules.lookup("10.0.0.1").allow)
        self.assertEqual(rules.lookup("10.0.0.255").lineno, 2)
        self.assertEqual(rules.overlaps, [(2, "earlier lines already have a rule for '10.0.0.5' (line 1); "
                                              "this line applies to its other 254 addresses")])
        self.assertEqual(AccessRules.parse("10.0.0.1-3:deny\n10.0.0.4:allow\n").overlaps, [])

    def test_range_every_address_of_which_is_taken_refused(self) -> None:
        error = self.assertRaises(TcpRulesError, AccessRules.parse, "10.0.0.1-2:deny\n10.0.0.3:deny\n10.0.0.2-3:allow\n")
        self.assertEqual(error.lineno, 3)
        self.assertIn("every address of this line already has a rule (lines 1, 2; the first line would win, "
                      "this one never apply)", str(error))

    def test_variables_checked(self) -> None:
        self.refused('10.0.0.1:allow, RELAYCLIENT=""', "bad variable name ' RELAYCLIENT'")
        self.refused('10.0.0.1:allow,DATABYTES="10M"', "DATABYTES must be a decimal number, not '10M'")
        rule = AccessRules.parse('10.0.0.1:allow,DATABYTES=" 1000",OTHER="any thing"\n').lookup("10.0.0.1")
        self.assertEqual(rule.environment, {"DATABYTES": " 1000", "OTHER": "any thing"})

    def test_addresses_written_as_clients_are_looked_up(self) -> None:
        rules = AccessRules.parse("2001:DB8::0001:deny\n2001:0DB8:00aa::allow\n::ffff:192.0.2.1:deny\nJoe@=Host.Example:deny\n")
        self.assertFalse(rules.lookup("2001:db8::1").allow)
        self.assertEqual(rules.lookup("2001:db8:aa::7").key, "2001:db8:aa:")
        self.assertFalse(rules.lookup("192.0.2.1").allow)
        self.assertFalse(rules.lookup("192.0.2.9", host="host.example", info="Joe").allow)

    def test_any_quote_character(self) -> None:
        rule = AccessRules.parse("1.:allow,A=/x y/,B=|q|,C=\"\"\n").lookup("1.0.0.1")
        self.assertEqual(rule.env, (("A", "x y"), ("B", "q"), ("C", "")))
