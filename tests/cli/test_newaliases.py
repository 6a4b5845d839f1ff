"""Tests for pymta newaliases: ROOT/etc/aliases compiled into ROOT/etc/aliases.idx."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.main import COMMANDS
from pymta.cli.newaliases import main
from pymta.forwarding.database import Target, read_database
from pymta.forwarding.entries import ADDRESS, Entry


class NewaliasesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        os.makedirs(os.path.join(self.root, "control"))
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "control", "me"), "w") as f:
            f.write("mail.example.org\n")
        self.aliases = os.path.join(self.root, "etc", "aliases")

    def run_main(self, text: str, *argv: str) -> tuple[int, str, str]:
        with open(self.aliases, "w") as f:
            f.write(text)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["--root", self.root, *argv])
        return code, out.getvalue(), err.getvalue()

    def test_compiles(self) -> None:
        code, out, err = self.run_main("root: alice\nlist: :include:/nonexistent/list\n")
        self.assertEqual((code, err), (0, "pymta newaliases: warning: /nonexistent/list (line 2) cannot be read now\n"))
        self.assertEqual(out, f"pymta newaliases: 2 aliases compiled into {self.aliases}.idx\n")
        db = read_database(self.aliases + ".idx")
        self.assertEqual(db.lookup("root@anywhere.example"), ("root@", Target((Entry(ADDRESS, "alice@mail.example.org"),), None)))

    def test_an_error_keeps_the_old_database(self) -> None:
        self.assertEqual(self.run_main("root: alice\n")[0], 0)
        code, out, err = self.run_main("root: alice\nlog: /var/log/mail\n")
        self.assertEqual((code, out), (100, ""))
        self.assertIn(f"pymta newaliases: fatal: {self.aliases}:2: file deliveries are not supported", err)
        self.assertEqual(len(read_database(self.aliases + ".idx")), 1)
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.aliases))), ["aliases", "aliases.idx"])

    def test_missing_file(self) -> None:
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["--root", self.root, os.path.join(self.root, "nothere")])
        self.assertEqual(code, 111)
        self.assertIn("nothere: No such file or directory", err.getvalue())

    def test_is_a_subcommand(self) -> None:
        self.assertEqual(COMMANDS["newaliases"][0], "pymta.cli.newaliases")
