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
