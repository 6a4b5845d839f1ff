"""Tests for pymta.local.maildir."""

from __future__ import annotations

import os
import re

from twisted.trial import unittest

from pymta.local.errors import DeliveryFailure
from pymta.local.maildir import deliver_maildir, unique_name
from tests.local.helpers import make_maildir


class MaildirTests(unittest.TestCase):
    def setUp(self) -> None:
        self.maildir = make_maildir(os.path.abspath(self.mktemp()))

    def test_delivers_into_new_and_cleans_tmp(self) -> None:
        path = deliver_maildir(self.maildir, b"Return-Path: <a@b>\n", [b"Subject: x\n", b"\nbody\n"])
        self.assertEqual(os.path.dirname(path), os.path.join(self.maildir, "new"))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"Return-Path: <a@b>\nSubject: x\n\nbody\n")
        self.assertEqual(os.listdir(os.path.join(self.maildir, "tmp")), [])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

    def test_unique_names(self) -> None:
        name = unique_name(now=1795556971.25, pid=42, host="mx")
        self.assertRegex(name, r"^1795556971\.M250000P42Q\d+\.mx$")
        self.assertNotEqual(unique_name(now=1.0, pid=1, host="h"), unique_name(now=1.0, pid=1, host="h"))
        paths = {deliver_maildir(self.maildir, b"", [b"x\n"]) for _ in range(50)}
        self.assertEqual(len(paths), 50)

    def test_hostname_encoding(self) -> None:
        from pymta.local import maildir

        self.patch(maildir.socket, "gethostname", lambda: "a/b:c")
        self.assertEqual(maildir.maildir_hostname(), "a\\057b\\072c")

    def test_missing_maildir(self) -> None:
        e = self.assertRaises(DeliveryFailure, deliver_maildir, self.maildir + "-nope", b"", [b"x"])
        self.assertEqual((e.status, e.text), ("Z", "Unable to chdir to maildir. (#4.2.1)"))

    def test_read_error_removes_tmp(self) -> None:
        def broken():
            yield b"part\n"
            raise OSError(5, "Input/output error")

        e = self.assertRaises(DeliveryFailure, deliver_maildir, self.maildir, b"", broken())
        self.assertEqual(e.text, "Unable to read message: Input/output error. (#4.3.0)")
        self.assertEqual(os.listdir(os.path.join(self.maildir, "tmp")), [])
        self.assertEqual(os.listdir(os.path.join(self.maildir, "new")), [])

    def test_missing_new_removes_tmp(self) -> None:
        os.rmdir(os.path.join(self.maildir, "new"))
        e = self.assertRaises(DeliveryFailure, deliver_maildir, self.maildir, b"", [b"x\n"])
        self.assertTrue(re.match(r"Temporary error on maildir delivery: linking to new/\S+: No such file", e.text), e.text)
        self.assertEqual(os.listdir(os.path.join(self.maildir, "tmp")), [])

    def test_name_collision_retries(self) -> None:
        from pymta.local import maildir

        names = iter(["taken", "taken", "free"])
        self.patch(maildir, "unique_name", lambda: next(names))
        with open(os.path.join(self.maildir, "tmp", "taken"), "wb"):
            pass
        slept = []
        path = deliver_maildir(self.maildir, b"", [b"x\n"], sleep=slept.append)
        self.assertEqual((os.path.basename(path), slept), ("free", [2, 2]))
