"""pymta.milter.headeredits: add, insert, change (the n-th of a name) and delete."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.milter.api import AddHeader, ChangeHeader, InsertHeader, Quarantine
from pymta.milter.headeredits import edit_headers

FIELDS = [("Received", "a"), ("Subject", "hi"), ("received", "b")]


class EditTests(unittest.TestCase):
    def test_add_and_insert(self) -> None:
        self.assertEqual(edit_headers(FIELDS, AddHeader("X-A", "1"))[-1], ("X-A", "1"))
        self.assertEqual(edit_headers(FIELDS, InsertHeader(0, "X-A", "1"))[0], ("X-A", "1"))
        self.assertEqual(edit_headers(FIELDS, InsertHeader(99, "X-A", "1"))[-1], ("X-A", "1"))

    def test_change_the_nth(self) -> None:
        self.assertEqual(edit_headers(FIELDS, ChangeHeader(2, "RECEIVED", "c")),
                         [("Received", "a"), ("Subject", "hi"), ("received", "c")])
        self.assertEqual(edit_headers(FIELDS, ChangeHeader(1, "Received", "")),
                         [("Subject", "hi"), ("received", "b")])
        self.assertEqual(edit_headers(FIELDS, ChangeHeader(3, "Received", "")), FIELDS)
        self.assertEqual(edit_headers(FIELDS, ChangeHeader(1, "X-New", "v"))[-1], ("X-New", "v"))

    def test_others_leave_the_header(self) -> None:
        self.assertEqual(edit_headers(FIELDS, Quarantine("x")), FIELDS)
