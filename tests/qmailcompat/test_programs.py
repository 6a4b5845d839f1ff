"""Tests for pymta.qmailcompat.programs: qmail's names run pymta's programs."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.trial import unittest

from pymta.qmailcompat import PROGRAMS
from pymta.qmailcompat import programs
from tests.test_end_to_end import SRC


class ProgramsTests(unittest.SynchronousTestCase):
    def test_every_name_runs_something(self) -> None:
        for name in PROGRAMS:
            self.assertIsNotNone(programs.runner(name), name)
        self.assertIsNone(programs.runner("qmail-lspawn"))

    def test_unknown_name_is_a_usage_error(self) -> None:
        err = io.StringIO()
        self.patch(programs.sys, "stderr", err)
        self.assertEqual(programs.main(["qmail-lspawn"]), 100)
        self.assertEqual(programs.main([]), 100)
        self.assertIn("usage: python -m pymta.qmailcompat {qmail-queue|qmail-inject|", err.getvalue())

    def run_module(self, args: list[str], message: bytes, env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-P", "-m", "pymta.qmailcompat", *args], input=message, capture_output=True,
                              env=env, cwd=SRC, timeout=60)

    def test_qmail_inject_and_sendmail_take_qmails_arguments(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "PYMTA_ROOT": os.path.join(self.mktemp(), "absent"), "QMAILHOST": "example.org"}
        done = self.run_module(["qmail-inject", "-n", "-fjoe@example.org", "bob@example.net"], b"Subject: x\n\nhi\n", env)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(b"\nSubject: x\n", b"\n" + done.stdout)
        # sendmail is pymta sendmail under its own name, with sendmail's exit codes (sysexits)
        done = self.run_module(["sendmail", "-bx"], b"", env)
        self.assertEqual(done.returncode, 64)
        self.assertIn(b"sendmail: unsupported mode -bx\n", done.stderr)

    def test_preline_is_the_helper(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "UFLINE": "From a@b Thu Jan  1 00:00:00 2026\n", "RPLINE": "Return-Path: <a@b>\n",
               "DTLINE": "Delivered-To: c@d\n"}
        done = self.run_module(["preline", "cat"], b"Subject: x\n\nhi\n", env)
        self.assertEqual((done.returncode, done.stdout),
                         (0, b"From a@b Thu Jan  1 00:00:00 2026\nReturn-Path: <a@b>\nDelivered-To: c@d\nSubject: x\n\nhi\n"))
