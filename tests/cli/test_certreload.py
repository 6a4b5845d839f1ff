"""Tests for pymta.cli.certreload: finding and reloading the daemons of a root."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from twisted.trial import unittest

from pymta.cli.certreload import reload_all, reload_ctl, signal_pid_file, unit_root

# a child that writes "hup" to the file named by argv[1] on SIGHUP, then exits
_HUP_CHILD = """
import signal, sys, time
def hup(*_):
    open(sys.argv[1], "w").write("hup")
    sys.exit(0)
signal.signal(signal.SIGHUP, hup)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(60)
"""


class UnitRootTests(unittest.TestCase):
    def test_finds_pymta_root_among_assignments(self) -> None:
        self.assertEqual(unit_root("LANG=C PYMTA_ROOT=/var/pymta FOO=bar\n"), "/var/pymta")
        self.assertIsNone(unit_root("LANG=C\n"))
        self.assertIsNone(unit_root(""))


class PidFileTests(unittest.TestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)

    def test_sighup_reaches_the_process(self) -> None:
        marker = os.path.join(self.base, "marker")
        child = subprocess.Popen([sys.executable, "-c", _HUP_CHILD, marker])
        self.addCleanup(lambda: child.poll() is None and child.kill())
        deadline = time.monotonic() + 30
        while not os.path.exists(marker + ".ready") and time.monotonic() < deadline:
            time.sleep(0.02)
        pidfile = os.path.join(self.base, "smtpd.pid")
        with open(pidfile, "w") as f:
            f.write(f"{child.pid}\n")
        outcome = signal_pid_file(pidfile)
        self.assertTrue(outcome.ok)
        self.assertEqual(outcome.text, f"SIGHUP sent to pid {child.pid}")
        self.assertEqual(child.wait(30), 0)
        with open(marker) as f:
            self.assertEqual(f.read(), "hup")

    def test_missing_and_garbled_pid_files(self) -> None:
        missing = signal_pid_file(os.path.join(self.base, "absent.pid"))
        self.assertFalse(missing.ok)
        self.assertIn("No such file or directory", missing.text)
        for content in ("garbage\n", "1\n", ""):
            path = os.path.join(self.base, "bad.pid")
            with open(path, "w") as f:
                f.write(content)
            self.assertFalse(signal_pid_file(path).ok, content)


class CtlTests(unittest.TestCase):
    def test_nothing_running_is_none(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "run"))
        self.assertIsNone(reload_ctl(root))
        self.assertEqual(reload_all(root, []), [])  # and no systemd unit of this root (none in tests)

    def test_stale_pid_file_is_a_failed_reload(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "run"))
        with open(os.path.join(root, "run", "pymta-send.pid"), "w") as f:
            f.write("999999999\n")
        outcome = reload_ctl(root)
        assert outcome is not None
        self.assertFalse(outcome.ok)
        self.assertIn("not running", outcome.text)

