"""control/lmtproutes: unix sockets and TCP servers, port 24 by default, concurrency=N, errors naming the line."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.control import ControlError, load_controls
from pymta.remote.lmtproutes import DEFAULT_CONCURRENCY, LMTP_PORT, LMTPRoute, LMTPRoutes, lmtp_routes, parse_lmtproute
from pymta.remote.smtproutes import RouteError


class ParseTests(unittest.TestCase):
    def test_unix_socket(self) -> None:
        route = parse_lmtproute("unix:/run/dovecot/lmtp")
        self.assertEqual(route, LMTPRoute(path="/run/dovecot/lmtp", concurrency=DEFAULT_CONCURRENCY))
        self.assertEqual(route.server, "/run/dovecot/lmtp")
        self.assertEqual(parse_lmtproute("unix:/x/lmtp concurrency=3"), LMTPRoute(path="/x/lmtp", concurrency=3))
        self.assertEqual(parse_lmtproute("unix:/x/lmtp recipients=50 concurrency=3"),
                         LMTPRoute(path="/x/lmtp", concurrency=3, recipients=50))

    def test_tcp_servers(self) -> None:
        self.assertEqual(parse_lmtproute("mail.example"), LMTPRoute(host="mail.example", port=LMTP_PORT))
        self.assertEqual(parse_lmtproute("127.0.0.1:2424"), LMTPRoute(host="127.0.0.1", port=2424))
        self.assertEqual(parse_lmtproute("[2001:db8::1]"), LMTPRoute(host="[2001:db8::1]", port=24))
        route = parse_lmtproute("[2001:db8::1]:25 concurrency=1000")
        self.assertEqual(route, LMTPRoute(host="[2001:db8::1]", port=25, concurrency=1000))
        self.assertEqual(route.server, "[2001:db8::1]:25")

    def test_refused(self) -> None:
        for value, reason in (
            ("", "no server"),
            (":2424", "no server"),
            ("unix:run/lmtp", "absolute path"),
            ("unix:", "absolute path"),
            ("mail.example concurrency=0", "bad concurrency"),
            ("mail.example concurrency=1001", "bad concurrency"),
            ("mail.example concurrency=x", "bad concurrency"),
            ("mail.example smtps", "unknown option"),
            ("mail.example concurrency=2 concurrency=3", "given twice"),
            ("mail.example recipients=101", "bad recipients"),
            ("mail.example  concurrency=2", "blank"),
            (" mail.example", "blank"),
            ("mail.example:99999", "bad port"),
            ("2001:db8::1", "brackets"),
        ):
            with self.assertRaises(RouteError) as caught:
                parse_lmtproute(value)
            self.assertIn(reason, str(caught.exception), value)

    def test_lookup(self) -> None:
        table = LMTPRoutes(["mail.example:unix:/run/lmtp", ".hosted.example:127.0.0.1:2424 concurrency=2",
                            "MAIL.example:unix:/second/ignored"])
        self.assertEqual(table.route_for("Mail.Example"), LMTPRoute(path="/run/lmtp"))
        self.assertEqual(table.route_for("a.hosted.example"), LMTPRoute(host="127.0.0.1", port=2424, concurrency=2))
        self.assertIsNone(table.route_for("hosted.example"))
        self.assertIsNone(table.route_for("elsewhere.example"))
        self.assertIsNone(LMTPRoutes(None).route_for("mail.example"))

    def test_every_domain_is_refused(self) -> None:
        with self.assertRaises(ControlError) as caught:
            LMTPRoutes([":unix:/run/lmtp"])
        self.assertIn("every domain", str(caught.exception))


class FileTests(unittest.TestCase):
    def test_bad_line_names_file_and_line(self) -> None:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        with open(os.path.join(root, "control", "me"), "w") as f:
            f.write("me.example\n")
        with open(os.path.join(root, "control", "lmtproutes"), "w") as f:
            f.write("# comment\nmail.example:unix:/run/lmtp\nbad.example\n")
        with self.assertRaises(ControlError) as caught:
            lmtp_routes(load_controls(root))
        self.assertIn("lmtproutes:3", str(caught.exception))
        self.assertIn("no colon", str(caught.exception))

    def test_absent_file_is_an_empty_table(self) -> None:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        self.assertEqual(lmtp_routes(load_controls(root)).routes, {})
