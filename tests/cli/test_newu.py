"""Tests for pymta newu."""

from __future__ import annotations

import io
import os
import sys

from twisted.trial import unittest

from pymta.cli import newu
from pymta.local.assign import read_index


class NewuTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "users"))
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.patch(sys, "stdout", io.StringIO())

    def write(self, text: str) -> None:
        with open(os.path.join(self.root, "users", "assign"), "w") as f:
            f.write(text)

    def test_builds_index(self) -> None:
        self.write("=joe:joe:1:2:/h:::\n+joe-:joe:1:2:/h:-::\n.\n")
        self.assertEqual(newu.main(["--root", self.root]), 0)
        table, _, _ = read_index(os.path.join(self.root, "users", "assign.idx"))
        self.assertEqual(table.lookup("joe-x").ext, "x")

    def test_format_error(self) -> None:
        self.write("=joe:joe:x:2:/h:::\n.\n")
        self.assertEqual(newu.main(["--root", self.root]), 100)
        self.assertIn("assign:1: uid and gid must be decimal numbers", self.stderr.getvalue())
        self.assertFalse(os.path.exists(os.path.join(self.root, "users", "assign.idx")))

    def test_missing_assign(self) -> None:
        self.assertEqual(newu.main(["--root", self.root]), 111)
        self.assertIn("No such file", self.stderr.getvalue())
