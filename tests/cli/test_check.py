"""pymta check: lines, order, exit codes, --help, and the real command."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import check
from pymta.cli.main import COMMANDS
from tests.configcheck.helpers import init_root, write

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


class CheckCommandTests(SynchronousTestCase):
    def test_clean_root(self) -> None:
        self.assertEqual(run("--root", init_root(self, "alice:pw")), (0, "", ""))

    def test_warnings_only(self) -> None:
        root = init_root(self)
        os.unlink(os.path.join(root, "control", "rcpthosts"))
        code, out, err = run("--root", root)
        self.assertEqual(code, check.EXIT_WARNINGS)
        self.assertTrue(out.startswith(f"{root}/control/rcpthosts: warning: absent: OPEN RELAY"), out)
        self.assertEqual(err, "pymta check: 1 warning, no errors\n")

    def test_errors_first_in_file_and_line_order(self) -> None:
        root = init_root(self)
        os.unlink(os.path.join(root, "control", "rcptcheck"))  # so its misspelling is an error, not a warning
        write(root, "etc/tcp.smtp", "x:perhaps\n:allow\n")
        write(root, "control/smtproutes", "b.example:relay:99999\na.example:relay:notaport\n")
        write(root, "control/rcptchek", "")
        write(root, "control/README", "")
        code, out, err = run("--root", root)
        self.assertEqual(code, check.EXIT_ERRORS)
        self.assertEqual([line.split(": ", 2)[:2] for line in out.splitlines()], [
            [f"{root}/control/rcptchek", "error"],
            [f"{root}/control/smtproutes:1", "error"],
            [f"{root}/control/smtproutes:2", "error"],
            [f"{root}/etc/tcp.smtp:1", "error"],
            [f"{root}/control/README", "warning"],
        ])
        self.assertEqual(err, "pymta check: 4 errors, 1 warning: the daemons would refuse to start\n")

    def test_default_root_and_usage(self) -> None:
        root = init_root(self)
        self.patch(os, "environ", dict(os.environ, PYMTA_ROOT=root))
        self.assertEqual(run()[0], 0)
        self.assertEqual(run("--bogus")[0], check.EXIT_USAGE)

    def test_non_printable_names_are_shown_safely(self) -> None:
        root = init_root(self)
        write(root, "control/odd\x1bname", "")
        code, out, _ = run("--root", root)
        self.assertEqual(code, check.EXIT_WARNINGS)
        self.assertIn("control/odd?name: warning", out)


class CommandLineTests(SynchronousTestCase):
    def test_listed_and_help(self) -> None:
        self.assertEqual(COMMANDS["check"][0], "pymta.cli.check")
        result = subprocess.run([sys.executable, "-m", "pymta.cli.main", "check", "--help"],
                                cwd=PROJECT, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0)
        self.assertIn("usage: pymta check [-h] [--root ROOT]", result.stdout)
        self.assertIn("2 errors (the daemons would refuse to start)", " ".join(result.stdout.split()))

    def test_real_command_on_a_broken_root(self) -> None:
        root = init_root(self)
        write(root, "control/rcpthosts", " mx.example.test\n")
        result = subprocess.run([sys.executable, "-m", "pymta.cli.main", "check", "--root", root],
                                cwd=PROJECT, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stdout, f"{root}/control/rcpthosts:1: error: blank at the start of "
                                        "' mx.example.test'\n")
