"""Tests for pymta.forwarding.database: the compiled aliases, written atomically and read back."""

from __future__ import annotations

import os
import stat
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.forwarding.aliasfile import Alias
from pymta.forwarding.database import DatabaseError, Target, read_database, write_database
from pymta.forwarding.entries import ADDRESS, PROGRAM, Entry


class DatabaseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "aliases.idx")

    def tearDown(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def test_round_trip_and_lookup_order(self) -> None:
        a = (Entry(ADDRESS, "a@x.example"),)
        write_database(self.path, [Alias("bob@h.example", a, None, 1), Alias("@h.example", (Entry(PROGRAM, "p"),), None, 2),
                                   Alias("bob@", a, "owner-bob@x.example", 3)], "/etc/aliases")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o644)
        self.assertEqual(os.listdir(self.dir), ["aliases.idx"])
        db = read_database(self.path)
        self.assertEqual(len(db), 3)
        self.assertEqual(db.lookup("Bob@H.example"), ("bob@h.example", Target(a, None)))
        self.assertEqual(db.lookup("carol@h.example"), ("@h.example", Target((Entry(PROGRAM, "p"),), None)))
        self.assertEqual(db.lookup("bob@other.example"), ("bob@", Target(a, "owner-bob@x.example")))
        self.assertIsNone(db.lookup("carol@other.example"))
        self.assertIsNone(db.exact("bob@other.example"))
        self.assertEqual(db.exact("BOB@h.example"), Target(a, None))

    def test_a_cdb_is_refused(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"\x00\x08\x00\x00" * 512 + b":root@\x00&bob@x\x00")
        with self.assertRaises(DatabaseError) as caught:
            read_database(self.path)
        self.assertIn("run pymta newaliases", str(caught.exception))

    def test_a_missing_file_is_an_os_error(self) -> None:
        self.assertRaises(OSError, read_database, self.path)
