"""Tests for pymta.local.dotqmail: lookup names and line parsing."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.local.dotqmail import Instruction, lookup_names, parse_instructions, safe_ext
from pymta.local.errors import DeliveryFailure


class LookupNameTests(unittest.SynchronousTestCase):
    def test_safe_ext(self) -> None:
        self.assertEqual(safe_ext("John.Doe-X"), "john:doe-x")
        self.assertEqual(safe_ext("ÄB"), "Äb")  # only ASCII letters change: lengths stay equal

    def test_qmail_order(self) -> None:
        self.assertEqual(
            lookup_names("-", "A-b-C"),
            [
                (".qmail-a-b-c", None),
                (".qmail-a-b-default", "C"),
                (".qmail-a-default", "b-C"),
                (".qmail-default", "A-b-C"),
            ],
        )

    def test_bare_user(self) -> None:
        self.assertEqual(lookup_names("", ""), [(".qmail", None), (".qmaildefault", "")])

    def test_trailing_dash(self) -> None:
        self.assertEqual(
            lookup_names("-", "a-"),
            [(".qmail-a-", None), (".qmail-a-default", ""), (".qmail-default", "a-")],
        )


class ParseTests(unittest.SynchronousTestCase):
    def test_line_types(self) -> None:
        data = b"# c\n|prog arg  \n./Maildir/\n/var/mail/joe\t\n&a@b\nc@d\n+list\n+other\n\n"
        self.assertEqual(
            parse_instructions(data),
            [
                Instruction("program", "prog arg", 2),
                Instruction("maildir", "./Maildir/", 3),
                Instruction("mbox", "/var/mail/joe", 4),
                Instruction("forward", "a@b", 5),
                Instruction("forward", "c@d", 6),
                Instruction("forwardonly", "", 7),
            ],
        )

    def test_errors(self) -> None:
        for data, text in (
            (b"  \n./x\n", "first line of .qmail file is blank"),
            (b"./x\0\n", "NUL byte"),
            (b"./x\n" + b"y" * 8193 + b"\n", "line 2 of .qmail is longer than 8192 bytes"),
        ):
            e = self.assertRaises(DeliveryFailure, parse_instructions, data)
            self.assertEqual(e.status, "Z")
            self.assertIn(text, e.text)

    def test_no_trailing_newline(self) -> None:
        self.assertEqual(parse_instructions(b"&x@y"), [Instruction("forward", "x@y", 1)])
