"""Tests for the pymta command's dispatcher."""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DispatchTests(SynchronousTestCase):
    def run_pymta(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], cwd=SRC,
                              capture_output=True, timeout=60)

    def test_unknown_subcommand(self) -> None:
        done = self.run_pymta("frobnicate")
        self.assertEqual(done.returncode, 100)
        self.assertIn(b"unknown subcommand", done.stderr)

    def test_every_subcommand_has_help(self) -> None:
        """--help prints a usage line and exits 0, and makes nothing (maildirmake once made '--help')."""
        from pymta.cli.main import COMMANDS

        scratch = self.mktemp()
        os.makedirs(scratch)
        for name in COMMANDS:
            done = subprocess.run([sys.executable, "-m", "pymta.cli.main", name, "--help"],
                                  cwd=scratch, capture_output=True, timeout=60,
                                  env={**os.environ, "PYTHONPATH": SRC})
            self.assertEqual(done.returncode, 0, (name, done.stderr))
            self.assertIn(b"usage", done.stdout.lower(), name)
        self.assertEqual(os.listdir(scratch), [])

    def test_version(self) -> None:
        """--version and -V print the installed distribution's version from its metadata."""
        from importlib.metadata import version

        expected = f"pymta {version('pymta')}\n".encode()
        for flag in ("--version", "-V"):
            done = self.run_pymta(flag)
            self.assertEqual((done.returncode, done.stdout, done.stderr), (0, expected, b""), flag)
        self.assertRegex(version("pymta"), r"^\d+\.\d+")

    def test_reader_going_away_is_quiet(self) -> None:
        """pymta showctl | head: no BrokenPipeError traceback."""
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        for i in range(3000):  # far more output than a pipe holds
            open(os.path.join(root, "control", f"unknown{i:04d}"), "w").close()
        proc = subprocess.Popen([sys.executable, "-m", "pymta.cli.main", "showctl", "--root", root],
                                cwd=SRC, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.read(10)
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.wait(60)
        self.assertNotIn(b"Traceback", stderr)
