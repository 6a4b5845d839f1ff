"""Tests for pymta.queue.ctlrequest: the request line of the control socket and the queue actions' selections."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.queue.ctlrequest import COMMANDS, MAX_REQUEST, CtlRequest, Selector, parse_age, parse_selection
from pymta.queue.ctlserver import HANDLERS


class RequestTests(unittest.SynchronousTestCase):
    def test_commands_without_arguments_are_the_old_bytes(self) -> None:
        for name in ("stat", "doqueue", "reload", "pause", "cont", "queue"):
            self.assertEqual(CtlRequest(name).encode(), name.encode() + b"\n")
            self.assertEqual(CtlRequest.parse(name.encode()), CtlRequest(name))
        self.assertEqual(CtlRequest.parse(b" stat \r"), CtlRequest("stat"))

    def test_round_trip(self) -> None:
        request = CtlRequest("bounce", ("1", "--reason", "gone for good, sorry", "--sender", "j\u00f6rg@x.example"))
        self.assertEqual(CtlRequest.parse(request.encode().rstrip(b"\n")), request)

    def test_bounds(self) -> None:
        for bad in (CtlRequest("explode"), CtlRequest("hold", ("a\tb",)), CtlRequest("hold", ("",)),
                    CtlRequest("hold", ("x" * 1001,)), CtlRequest("hold", ("1",) * 1001)):
            self.assertRaises(ValueError, bad.encode)
        self.assertRaises(ValueError, CtlRequest.parse, b"stat\x00")
        self.assertRaises(ValueError, CtlRequest.parse, b"hold\t" + b"1\t" * MAX_REQUEST)
        self.assertRaises(ValueError, CtlRequest.parse, b"hold\t\t1")

    def test_every_command_has_a_handler(self) -> None:
        self.assertEqual(set(COMMANDS), set(HANDLERS))


class SelectionTests(unittest.SynchronousTestCase):
    def test_ages(self) -> None:
        self.assertEqual([parse_age(a) for a in ("45s", "30m", "2h", "3d")], [45, 1800, 7200, 259200])
        for bad in ("", "2", "h", "2w", "-1h", "1.5h", "2 h"):
            self.assertRaises(ValueError, parse_age, bad)

    def test_parse(self) -> None:
        selection = parse_selection("bounce", ["12", "--domain", "x.example", "34", "--older-than", "1d",
                                               "--reason", "no", "--dry-run"])
        self.assertEqual(selection.selector, Selector((12, 34), domain="x.example", older_than=86400))
        self.assertEqual((selection.dry_run, selection.reason), (True, "no"))

    def test_malformed(self) -> None:
        cases = {
            (): "select messages",
            ("--dry-run",): "select messages",
            ("--domain",): "--domain needs a value",
            ("--frob", "x"): "unknown option '--frob'",
            ("abc",): "bad message id 'abc'",
            ("--older-than", "soon"): "bad age 'soon'",
            ("1", "--reason", "x"): "--reason is for bounce only",
            ("--domain", "a", "--domain", "b"): "--domain given twice",
        }
        for args, text in cases.items():
            with self.assertRaises(ValueError) as caught:
                parse_selection("hold", args)
            self.assertIn(text, str(caught.exception))

    def test_matches(self) -> None:
        selector = Selector(domain="X.example", sender="<>", older_than=60)
        self.assertTrue(selector.matches(1, "", ["a@y.example", "b@x.EXAMPLE"], 61))
        self.assertFalse(selector.matches(1, "", ["a@y.example"], 61))
        self.assertFalse(selector.matches(1, "", ["b@x.example"], 60))
        self.assertFalse(selector.matches(1, "s@x.example", ["b@x.example"], 61))
        self.assertTrue(Selector((1, 2)).matches(2, "s", [], 0))
        self.assertFalse(Selector((1, 2)).matches(3, "s", ["a@b"], 0))
        self.assertTrue(Selector(recipient="Bob@X.example").matches(1, "s", ["Bob@x.example"], 0))
        self.assertFalse(Selector(recipient="bob@x.example").matches(1, "s", ["Bob@x.example"], 0))
