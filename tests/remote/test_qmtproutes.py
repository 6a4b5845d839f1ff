"""control/qmtproutes: its syntax, the default port 209, suffix lookup, errors naming the line."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.control import ControlError, load_controls
from pymta.remote.qmtproutes import QMTP_PORT, QMTPRoutes, parse_qmtproute, qmtp_routes
from pymta.remote.smtproutes import Route, RouteError


class ParseTests(unittest.TestCase):
    def test_values(self) -> None:
        self.assertEqual(parse_qmtproute("relay.example"), Route("relay.example", QMTP_PORT))
        self.assertEqual(parse_qmtproute("relay.example:2209"), Route("relay.example", 2209))
        self.assertEqual(parse_qmtproute("[192.0.2.1]"), Route("[192.0.2.1]", 209))
        self.assertEqual(parse_qmtproute("127.0.0.1:20209"), Route("127.0.0.1", 20209))
        self.assertEqual(parse_qmtproute(""), Route(None, 209))
        self.assertEqual(parse_qmtproute(":2209"), Route(None, 2209))

    def test_refused(self) -> None:
        for value in ("relay.example smtps", "relay.example:0", "relay.example:1:2", "[300.1.1.1]"):
            self.assertRaises(RouteError, parse_qmtproute, value)

    def test_lookup(self) -> None:
        table = QMTPRoutes(["far.example:relay.example", ".sub.example:other.example:20", "exact.example:"])
        self.assertEqual(table.route_for("FAR.example"), Route("relay.example", 209))
        self.assertEqual(table.route_for("a.sub.example"), Route("other.example", 20))
        self.assertEqual(table.route_for("exact.example"), Route(None, 209))
        self.assertIsNone(table.route_for("sub.example"))
        self.assertIsNone(QMTPRoutes(None).route_for("far.example"))


class FileTests(unittest.TestCase):
    def test_bad_line_names_file_and_line(self) -> None:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        with open(os.path.join(root, "control", "me"), "w") as f:
            f.write("me.example\n")
        with open(os.path.join(root, "control", "qmtproutes"), "w") as f:
            f.write("# comment\nfar.example:relay.example\nbad.example:relay:99999\n")
        with self.assertRaises(ControlError) as caught:
            qmtp_routes(load_controls(root))
        self.assertIn("qmtproutes:3", str(caught.exception))
        self.assertIn("bad port", str(caught.exception))


class TLSConflictTests(unittest.TestCase):
    """QMTP has no TLS: a qmtproutes line for a domain tlsdestinations requires TLS for is an error."""

    def check(self, qmtproutes: str, tlsdestinations: str) -> str | None:
        """The error qmtp_routes gives for these files (None when it takes them)."""
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        for name, text in (("me", "me.example\n"), ("qmtproutes", qmtproutes), ("tlsdestinations", tlsdestinations)):
            with open(os.path.join(root, "control", name), "w") as f:
                f.write(text)
        try:
            qmtp_routes(load_controls(root))
        except ControlError as e:
            return str(e)
        return None

    def test_conflicts_name_the_qmtproutes_line(self) -> None:
        for qmtproutes, tls, line, domain in (
            ("a.example:r.example\nfar.example:r.example\n", "far.example:\n", 2, "far.example"),
            (".example.org:r.example\n", "a.example.org:\n", 1, "a.example.org"),
            ("a.example.org:r.example\n", ".example.org:\n", 1, "a.example.org"),
            (":r.example\n", "b.example:\n", 1, "b.example"),
            ("b.example:r.example\n", "*:\n", 1, "b.example"),
            (".b.c.example:r.example\n", ".c.example:\n-x.b.c.example\n", 1, "*.b.c.example"),
        ):
            error = self.check(qmtproutes, tls)
            self.assertIsNotNone(error, (qmtproutes, tls))
            self.assertIn(f"qmtproutes:{line}:", error)
            self.assertIn(f"control/tlsdestinations requires TLS for {domain}", error)

    def test_no_conflict(self) -> None:
        for qmtproutes, tls in (
            ("far.example:r.example\n", "near.example:\n"),
            ("far.example:r.example\n", "*:\n-far.example\n"),
            (".example.org:r.example\n", "example.org:\n"),
            ("far.example:r.example\n", ""),
            ("", "*:\n"),
        ):
            self.assertIsNone(self.check(qmtproutes, tls), (qmtproutes, tls))

    def test_a_bad_tlsdestinations_is_left_to_its_own_parser(self) -> None:
        self.assertIsNone(self.check("far.example:r.example\n", "far.example\n"))
