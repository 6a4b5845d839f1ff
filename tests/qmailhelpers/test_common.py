"""Tests for pymta.qmailhelpers.common: exit codes of programs as the helpers see them."""

from __future__ import annotations

import errno
import os
import stat

from twisted.trial import unittest

from pymta.qmailhelpers import BIN_DIR, NAMES
from pymta.qmailhelpers.common import Fatal, exec_failure_code, reason, required, run_helper, run_program


class RunProgramTests(unittest.SynchronousTestCase):
    def test_exit_codes(self) -> None:
        self.assertEqual(run_program(["true"]), 0)
        self.assertEqual(run_program(["sh", "-c", "exit 7"]), 7)
        self.assertEqual(run_program(["sh", "-c", "exit 111"]), 111)

    def test_missing_program_counts_as_100(self) -> None:
        self.assertEqual(run_program(["/nonexistent/program"]), 100)

    def test_not_executable_counts_as_100(self) -> None:
        self.assertEqual(run_program(["/etc/passwd"]), 100)

    def test_killed_program_is_fatal_111(self) -> None:
        e = self.assertRaises(Fatal, run_program, ["sh", "-c", "kill -TERM $$"])
        self.assertEqual((e.code, e.text), (111, "child crashed"))

    def test_exec_failure_code(self) -> None:
        self.assertEqual(exec_failure_code(OSError(errno.ENOMEM, "x")), 111)
        self.assertEqual(exec_failure_code(OSError(errno.ETXTBSY, "x")), 111)
        self.assertEqual(exec_failure_code(OSError(errno.ENOENT, "x")), 100)
        self.assertEqual(exec_failure_code(OSError(errno.EACCES, "x")), 100)

    def test_reason_is_lowercase(self) -> None:
        self.assertEqual(reason(OSError(errno.EPIPE, "Broken pipe")), "broken pipe")


class FatalTests(unittest.SynchronousTestCase):
    def test_required(self) -> None:
        self.assertEqual(required({"A": "x"}, "A"), "x")
        e = self.assertRaises(Fatal, required, {}, "SENDER")
        self.assertEqual((e.code, e.text), (100, "SENDER not set"))

    def test_run_helper_turns_fatal_into_its_code(self) -> None:
        def body() -> int:
            raise Fatal(111, "boom")

        self.assertEqual(run_helper("x", body), 111)
        self.assertEqual(run_helper("x", lambda: 99), 99)


class InstalledScriptsTests(unittest.SynchronousTestCase):
    def test_one_executable_script_per_helper(self) -> None:
        # and qmail-queue, the program QMAILQUEUE names (pymta.local.program.QMAILQUEUE_PROGRAM)
        scripts = sorted([*NAMES, "qmail-queue"])
        self.assertEqual(sorted(name for name in os.listdir(BIN_DIR) if not name.startswith(".")), scripts)
        for name in scripts:
            mode = os.stat(os.path.join(BIN_DIR, name)).st_mode
            # any uid may run it, no delivery uid may change it
            self.assertEqual(mode & 0o555, 0o555, name)
            self.assertEqual(mode & (stat.S_IWGRP | stat.S_IWOTH), 0, name)
        self.assertEqual(os.stat(BIN_DIR).st_mode & (stat.S_IWGRP | stat.S_IWOTH), 0)
