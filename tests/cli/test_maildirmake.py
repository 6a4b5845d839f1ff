"""Tests for pymta.cli.maildirmake."""

from __future__ import annotations

import io
import os
import stat
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import maildirmake as mm


class MaildirmakeFunctionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = self.mktemp()
        os.mkdir(self.base)

    def test_creates_three_subdirectories_mode_0700(self) -> None:
        path = os.path.join(self.base, "Maildir")
        made = mm.maildirmake(path)
        self.assertEqual(made, [path] + [os.path.join(path, s) for s in ("tmp", "new", "cur")])
        for d in made:
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)

    def test_mode_ignores_umask(self) -> None:
        old = os.umask(0o777)
        try:
            path = os.path.join(self.base, "M")
            mm.maildirmake(path)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(path, "new")).st_mode), 0o700)

    def test_existing_refused_unless_exist_ok(self) -> None:
        path = os.path.join(self.base, "M")
        os.mkdir(path)
        self.assertRaises(FileExistsError, mm.maildirmake, path)
        made = mm.maildirmake(path, exist_ok=True)
        self.assertEqual(made, [os.path.join(path, s) for s in ("tmp", "new", "cur")])
        self.assertEqual(mm.maildirmake(path, exist_ok=True), [])

    def test_exist_ok_keeps_existing_mode(self) -> None:
        path = os.path.join(self.base, "M")
        os.mkdir(path, 0o750)
        os.chmod(path, 0o750)
        mm.maildirmake(path, exist_ok=True)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o750)

    def test_file_in_the_way_is_an_error_even_with_exist_ok(self) -> None:
        path = os.path.join(self.base, "M")
        open(path, "w").close()
        self.assertRaises(FileExistsError, mm.maildirmake, path, exist_ok=True)

    def test_ownership(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("chown needs root")
        path = os.path.join(self.base, "M")
        mm.maildirmake(path, 1234, 5678)
        for d in (path, os.path.join(path, "cur")):
            st = os.stat(d)
            self.assertEqual((st.st_uid, st.st_gid), (1234, 5678))


class MaildirmakeCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = self.mktemp()
        os.mkdir(self.base)
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)

    def test_usage(self) -> None:
        self.assertEqual(mm.main([]), 100)
        self.assertEqual(self.err.getvalue(), "pymta maildirmake: usage: maildirmake name\n")
        self.assertEqual(mm.main(["a", "b"]), 100)

    def test_help_and_options_make_nothing(self) -> None:
        before = set(os.listdir("."))
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertEqual(mm.main(["--help"]), 0)
        self.assertIn("usage", out.getvalue())
        self.assertEqual(mm.main(["-x"]), 100)
        self.assertEqual(set(os.listdir(".")), before)

    def test_success(self) -> None:
        path = os.path.join(self.base, "Maildir")
        self.assertEqual(mm.main([path]), 0)
        self.assertEqual(sorted(os.listdir(path)), ["cur", "new", "tmp"])
        self.assertEqual(self.err.getvalue(), "")

    def test_existing_directory_is_fatal_111(self) -> None:
        path = os.path.join(self.base, "Maildir")
        os.mkdir(path)
        self.assertEqual(mm.main([path]), 111)
        self.assertEqual(self.err.getvalue(), f"pymta maildirmake: fatal: unable to mkdir {path}: File exists\n")
        self.assertEqual(os.listdir(path), [])

    def test_missing_parent(self) -> None:
        path = os.path.join(self.base, "no", "Maildir")
        self.assertEqual(mm.main([path]), 111)
        self.assertIn("No such file or directory", self.err.getvalue())
