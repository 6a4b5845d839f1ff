"""Tests for pymta.local.assign: parsing, precedence, the index and its staleness check."""

from __future__ import annotations

import os
import stat

from twisted.trial import unittest

from pymta.local.assign import AssignCache, AssignError, parse_assign, read_index, write_index

ASSIGN = """\
=joe:joe:4242:4243:/home/joe:::
+joe-:joe:4242:4243:/home/joe:-::
=Joe-Special:joe:4242:4243:/home/joe:-:special:
+list-:lists:500:500:/home/lists:-:L-:
+list-big-:bigl:501:501:/home/big:-::
+:alias:7790:2108:/var/pymta/alias:-::
=joe:other:1:1:/home/other:::
# a comment
.
=ignored:after:1:1:/x:::
"""


class ParseTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.table = parse_assign(ASSIGN.splitlines(keepends=True))

    def lookup(self, local: str):
        match = self.table.lookup(local)
        assert match is not None
        return match.entry.user, match.entry.dash, match.ext

    def test_exact_beats_wildcard_and_first_wins(self) -> None:
        self.assertEqual(self.lookup("JOE"), ("joe", "", ""))
        self.assertEqual(self.table.lookup("joe").entry.uid, 4242)
        self.assertEqual(self.lookup("joe-special"), ("joe", "-", "special"))

    def test_wildcard_keeps_case_of_rest(self) -> None:
        self.assertEqual(self.lookup("joe-Foo.Bar"), ("joe", "-", "Foo.Bar"))
        self.assertEqual(self.lookup("list-Talk"), ("lists", "-", "L-Talk"))

    def test_longest_wildcard_wins(self) -> None:
        self.assertEqual(self.lookup("list-big-x"), ("bigl", "-", "x"))

    def test_catch_all(self) -> None:
        self.assertEqual(self.lookup("someone"), ("alias", "-", "someone"))
        self.assertIsNone(self.table.lookup("ignored") and None)
        self.assertEqual(self.lookup("ignored"), ("alias", "-", "ignored"))

    def test_errors_name_the_line(self) -> None:
        for text, reason in (
            ("=a:b:c:d:/h:::\n.\n", "users/assign:1: uid and gid must be decimal numbers"),
            ("=a:b:1:1:/h::\n.\n", "users/assign:1: expected 7 fields"),
            ("x\n.\n", "users/assign:1: line must start with"),
            ("=a:b:1:1:h:::\n.\n", "users/assign:1: home directory must be an absolute path"),
            ("=a:b:1:1:/h:::\n", "users/assign: no final '.' line"),
        ):
            e = self.assertRaises(AssignError, parse_assign, text.splitlines(keepends=True))
            self.assertIn(reason, str(e))


class IndexTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "users"))
        self.assign = os.path.join(self.root, "users", "assign")
        self.index = os.path.join(self.root, "users", "assign.idx")
        self.warnings: list[str] = []
        self.cache = AssignCache(self.root, warn=self.warnings.append)

    def write(self, text: str) -> None:
        with open(self.assign, "w") as f:
            f.write(text)

    def test_no_assign(self) -> None:
        self.assertIsNone(self.cache.table())

    def test_index_roundtrip(self) -> None:
        self.write(ASSIGN)
        write_index(self.assign, self.index)
        table, size, _ = read_index(self.index)
        self.assertEqual(size, len(ASSIGN))
        self.assertEqual(table.lookup("list-x").ext, "L-x")
        self.assertEqual(self.cache.table().lookup("joe").entry.home, "/home/joe")
        self.assertEqual(self.warnings, [])
        directory = os.path.dirname(os.path.abspath(self.index))
        self.assertEqual([n for n in os.listdir(directory) if ".tmp" in n], [])
        self.assertEqual(stat.S_IMODE(os.stat(self.index).st_mode), 0o644)

    def test_stale_index_reads_assign(self) -> None:
        self.write("=joe:joe:1:1:/old:::\n.\n")
        write_index(self.assign, self.index)
        self.assertEqual(self.cache.table().lookup("joe").entry.home, "/old")
        self.write("=joe:joe:1:1:/newer:::\n.\n")
        os.utime(self.assign, ns=(0, os.stat(self.index).st_mtime_ns + 10**9))
        self.assertEqual(self.cache.table().lookup("joe").entry.home, "/newer")
        self.assertEqual(len(self.warnings), 1)
        self.assertIn("run pymta newu", self.warnings[0])

    def test_missing_index_reads_assign(self) -> None:
        self.write("=joe:joe:1:1:/h:::\n.\n")
        self.assertEqual(self.cache.table().lookup("joe").entry.home, "/h")
        self.assertIn("missing", self.warnings[0])

    def test_corrupt_index(self) -> None:
        self.write("=joe:joe:1:1:/h:::\n.\n")
        with open(self.index, "w") as f:
            f.write("{not json")
        self.assertRaises(AssignError, self.cache.table)
