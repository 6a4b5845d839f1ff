"""Tests for pymta.remote.smtproutes, and smtproutes as the control files read it (file and line named)."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.control import ControlError, load_controls
from pymta.remote.smtproutes import Route, RouteError, key_problem, parse_route


class ParseRouteTests(unittest.SynchronousTestCase):
    def test_qmail_forms(self) -> None:
        self.assertEqual(parse_route(""), Route(None, 25))
        self.assertEqual(parse_route("firewall.af.mil"), Route("firewall.af.mil", 25))
        self.assertEqual(parse_route("firewall.af.mil:26"), Route("firewall.af.mil", 26))
        self.assertEqual(parse_route("192.0.2.1"), Route("192.0.2.1", 25))
        self.assertEqual(parse_route("[192.0.2.1]"), Route("[192.0.2.1]", 25))
        self.assertEqual(parse_route("[192.0.2.1]:2525"), Route("[192.0.2.1]", 2525))
        self.assertEqual(parse_route("relay.example.:65535"), Route("relay.example.", 65535))

    def test_pymta_forms(self) -> None:
        self.assertEqual(parse_route(":2525"), Route(None, 2525))
        self.assertEqual(parse_route("[2001:db8::1]"), Route("[2001:db8::1]", 25))
        self.assertEqual(parse_route("[IPv6:2001:db8::1]:587"), Route("[IPv6:2001:db8::1]", 587))

    def test_refused(self) -> None:
        cases = {
            "relay.example:notaport": "bad port 'notaport'",
            "relay.example:99999": "bad port '99999'",
            "relay.example:0": "bad port '0'",
            "relay.example:+25": "bad port '+25'",
            "relay.example:": "empty port",
            ":": "empty port",
            "[256.1.1.1]": "not an IP address: '[256.1.1.1]'",
            "[127.0.0.1:25]": "not an IP address: '[127.0.0.1:25]'",
            "[192.0.2.1": "unterminated [",
            "[192.0.2.1]25": "unexpected text",
            "[192.0.2.1]:25:26": "extra field",
            "relay.example:25:extra": "extra field",
            "2001:db8::1": "IPv6 relays need brackets",
            "256.1.1.1": "not an IPv4 address",
            "relay example": "field 2 after the relay is no option",
            "relay\texample": "blank inside",
            " relay.example": "blank around",
            "relay_example.com/24": "'/'",
            "*.example": "'*'",
        }
        for value, reason in cases.items():
            with self.assertRaises(RouteError, msg=value) as cm:
                parse_route(value)
            self.assertIn(reason, str(cm.exception), value)

    def test_a_password_in_the_line_is_not_repeated(self) -> None:
        """qmail's AUTH patches put login and password after the port: the error never shows them."""
        for value in ("relay.example:587:alice:s3cret", "[192.0.2.1]:587:alice:s3cret"):
            with self.assertRaises(RouteError) as cm:
                parse_route(value)
            self.assertIn("control/smarthostauth", str(cm.exception), value)
            self.assertNotIn("s3cret", str(cm.exception), value)

    def test_options(self) -> None:
        self.assertEqual(parse_route("smtp.example.net:587 auth=alice@example.org"),
                         Route("smtp.example.net", 587, login="alice@example.org"))
        self.assertEqual(parse_route("smtp.example.net smtps"), Route("smtp.example.net", 465, smtps=True))
        self.assertEqual(parse_route("smtp.example.net:2465 smtps"), Route("smtp.example.net", 2465, smtps=True))
        self.assertEqual(parse_route("[192.0.2.1] ca=/etc/ca.pem smtps auth=a"),
                         Route("[192.0.2.1]", 465, True, "a", "/etc/ca.pem"))
        self.assertTrue(Route("r", login="a").verified)
        self.assertTrue(Route("r", ca_file="/ca.pem").verified)
        self.assertFalse(Route("r", smtps=True).verified)

    def test_refused_options_never_repeat_their_text(self) -> None:
        cases = {
            "relay.example:587 alice S3cretPw": "field 2 after the relay is no option: expected smtps, auth=LOGIN "
                                                "or ca=/path/to/ca.pem (a password belongs in control/smarthostauth)",
            "relay.example auth=alice S3cretPw": "field 3 after the relay is no option",
            "relay.example password=S3cretPw": "field 2 after the relay is no option",
            "relay.example smtps=S3cretPw": "field 2 after the relay is no option",
            "relay.example auth=": "auth= needs a login name",
            "relay.example auth=a smtps auth=b": "option auth given twice",
            "relay.example ca=etc/S3cretPw": "ca= needs the absolute path",
            "relay.example  smtps": "field 2 after the relay is no option",
            ":2525 smtps": "options need a relay",
            " smtps": "blank around",
        }
        for value, reason in cases.items():
            with self.assertRaises(RouteError, msg=value) as cm:
                parse_route(value)
            self.assertIn(reason, str(cm.exception), value)
            self.assertNotIn("S3cretPw", str(cm.exception), value)

    def test_keys(self) -> None:
        for key in ("", "example.com", ".example.com", "[192.0.2.1]"):
            self.assertIsNone(key_problem(key), key)
        self.assertIn("blank inside", key_problem("example .com") or "")
        self.assertIn("'*'", key_problem("*.example.com") or "")


class SmtproutesFileTests(unittest.SynchronousTestCase):
    """Every line the issue found passing showctl and start-up is refused with the file and line."""

    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, "control"))
        self.path = os.path.join(self.root, "control", "smtproutes")

    def refused(self, line: str) -> ControlError:
        with open(self.path, "w") as f:
            f.write(f"# routes\ngood.example:relay.example:26\n\n{line}\n")
        error = self.assertRaises(ControlError, load_controls, self.root)
        self.assertEqual((error.path, error.lineno), (self.path, 4))
        self.assertTrue(str(error).startswith(f"{self.path}:4: "), str(error))
        return error

    def test_bad_lines(self) -> None:
        for line in ("x.example:relay.example:notaport", "x.example:relay.example:99999", "x.example:relay.example:0",
                     "x.example:[256.1.1.1]", "x.example:[127.0.0.1:25]", "x.example:relay.example:25:26",
                     "x.example:bad host", "x.example :relay.example", " x.example:relay.example",
                     "*.example:relay.example", "x.example"):
            self.refused(line)

    def test_repeated_key(self) -> None:
        error = self.refused("Good.Example:other.example")
        self.assertIn("repeats line 2", str(error))

    def test_good_file(self) -> None:
        with open(self.path, "w") as f:
            f.write("a.example:relay.example:26\n.b.example:\n:[192.0.2.1]:2525\nc.example::587\nv6.example:[2001:db8::1]\n")
        routes = load_controls(self.root).smtproutes
        self.assertEqual(routes["a.example"], "relay.example:26")
        self.assertEqual(routes[""], "[192.0.2.1]:2525")
        self.assertEqual(len(routes), 5)
