"""Tests for pymta.remote.mtastspolicy: the TXT record, the policy file, MX patterns."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.remote.mtastspolicy import ENFORCE, MAX_AGE, NONE, TESTING, Policy, PolicyError, mx_matches, parse_policy, record_id

GOOD = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"


class RecordTests(SynchronousTestCase):
    def test_valid_records(self) -> None:
        self.assertEqual(record_id(["v=STSv1; id=20160831085700Z;"]), "20160831085700Z")
        self.assertEqual(record_id(["v=STSv1;id=abc"]), "abc")
        self.assertEqual(record_id(["v=STSv1; id=abc; ext.field=x-y"]), "abc")
        # records of other kinds are left aside
        self.assertEqual(record_id(["v=spf1 -all", "v=STSv1; id=1"]), "1")

    def test_no_policy(self) -> None:
        cases = [
            [],
            ["v=spf1 -all"],
            ["v=STSv1; id=1", "v=STSv1; id=2"],  # two records: none counts
            ["v=STSv1;"],  # no id
            ["v=STSv1; id="],
            ["v=STSv1; id=" + "a" * 33],  # longer than 32
            ["v=STSv1; id=a-b"],  # not alphanumeric
            ["id=1; v=STSv1"],  # v not first
            ["v=STSv10; id=1"],
            ["v=STSv1; id=1; broken"],  # a field without =
        ]
        for records in cases:
            self.assertIsNone(record_id(records), records)


class PolicyTests(SynchronousTestCase):
    def test_parse(self) -> None:
        policy = parse_policy(GOOD)
        self.assertEqual(policy, Policy(ENFORCE, 604800, ("mail.example.com", "*.example.net")))
        lf = parse_policy(b"version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age:86400\nunknown: x\n")
        self.assertEqual(lf, Policy(TESTING, 86400, ("mx.example.com",)))
        self.assertEqual(parse_policy(b"version: STSv1\nmode: none\nmax_age: 1\n"), Policy(NONE, 1, ()))
        # max_age is capped at a year; the first of a repeated field counts
        capped = parse_policy(b"version: STSv1\nmode: enforce\nmode: none\nmx: a.test\nmax_age: 9999999999\n")
        self.assertEqual(capped, Policy(ENFORCE, MAX_AGE, ("a.test",)))

    def test_refused(self) -> None:
        cases = {
            b"mode: enforce\nmx: a.test\nmax_age: 1\n": "version is None",
            b"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n": "version is 'STSv2'",
            b"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n": "mode is 'strict'",
            b"version: STSv1\nmode: enforce\nmx: a.test\n": "max_age is ''",
            b"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -5\n": "max_age is '-5'",
            b"version: STSv1\nmode: enforce\nmax_age: 5\n": "names no mx",
            b"version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 5\n": "mx 'a.*.test'",
            b"version: STSv1\nmode: enforce\nmx: bad host\nmax_age: 5\n": "mx 'bad host'",
            b"version: STSv1\nthis is not a field\n": "line 2 is not 'key: value'",
            b"version: STSv1\nmode: enforce\xff\n": "not UTF-8",
        }
        for body, reason in cases.items():
            error = self.assertRaises(PolicyError, parse_policy, body)
            self.assertIn(reason, str(error), body)


class MXMatchTests(SynchronousTestCase):
    def test_patterns(self) -> None:
        self.assertTrue(mx_matches("mail.example.com", "MAIL.example.com."))
        self.assertTrue(mx_matches("*.example.net", "mx1.example.net"))
        self.assertFalse(mx_matches("*.example.net", "example.net"))  # the star is one label
        self.assertFalse(mx_matches("*.example.net", "a.b.example.net"))
        self.assertFalse(mx_matches("mail.example.com", "mail.example.com.evil.test"))
        self.assertFalse(mx_matches("", "mail.example.com"))
        policy = parse_policy(GOOD)
        self.assertTrue(policy.allows("mx7.example.net"))
        self.assertFalse(policy.allows("mx.bad.test"))
