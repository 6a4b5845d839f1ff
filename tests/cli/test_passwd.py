"""Tests for C{pymta passwd}."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import passwd
from pymta.passwdfile import read_passwd, verify_password


class PasswdCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.path = os.path.join(self.root, "users", "passwd")

    def run_cmd(self, argv: list[str], text: str) -> int:
        return passwd.main(argv, stdin=io.StringIO(text))

    def test_new_user_defaults(self) -> None:
        self.assertEqual(self.run_cmd(["--root", self.root, "--scheme", "plain", "alice"], "secret\r\n"), 0)
        entry = read_passwd(self.path)["alice"]
        self.assertEqual(entry.password, "{PLAIN}secret")
        self.assertEqual((entry.uid, entry.gid), (os.getuid(), os.getgid()))
        self.assertEqual(entry.home, os.path.join(os.path.abspath(self.root), "home", "alice"))

    def test_new_user_as_root_gets_the_queue_owner(self) -> None:
        """As root, a new account belongs to the mail uid (POP3 never serves root's mailboxes)."""
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        os.makedirs(os.path.join(self.root, "queue"))
        os.chown(os.path.join(self.root, "queue"), 4242, 4243)
        self.assertEqual(self.run_cmd(["--root", self.root, "--scheme", "plain", "dora"], "pw\n"), 0)
        entry = read_passwd(self.path)["dora"]
        self.assertEqual((entry.uid, entry.gid), (4242, 4243))

    def test_existing_user_keeps_uid_and_home(self) -> None:
        self.run_cmd(["--root", self.root, "--uid", "4242", "--gid", "42", "--home", "/srv/b", "--scheme", "PLAIN", "bob"], "x\n")
        self.assertEqual(self.run_cmd(["--root", self.root, "--scheme", "BLF-CRYPT", "bob"], "new\n"), 0)
        entry = read_passwd(self.path)["bob"]
        self.assertEqual((entry.uid, entry.gid, entry.home), (4242, 42, "/srv/b"))
        self.assertTrue(verify_password(entry.password, "new"))

    def test_refusals(self) -> None:
        self.assertEqual(self.run_cmd(["--root", self.root, "carol"], ""), 100)
        self.assertEqual(self.run_cmd(["--root", self.root, "bad:name"], "pw\n"), 100)
        self.assertEqual(self.run_cmd(["--root", self.root, "--scheme", "MD5", "carol"], "pw\n"), 100)
        self.assertFalse(os.path.exists(self.path))

    def test_through_pymta_command(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", "passwd", "--root", self.root, "dave"],
            input=b"hunter2\n", capture_output=True, timeout=60,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(verify_password(read_passwd(self.path)["dave"].password, "hunter2"))
