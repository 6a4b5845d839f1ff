"""Tests for pymta pw2u."""

from __future__ import annotations

import io
import os
import sys

from twisted.trial import unittest

from pymta.cli import pw2u
from pymta.local.assign import parse_assign


class Pw2uTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.users = os.path.join(self.root, "users")
        os.makedirs(self.users)
        self.homes = os.path.join(self.root, "home")
        uid = self.uid = 4242 if os.getuid() == 0 else os.getuid()
        for name in ("joe", "ann", "Upper"):
            os.makedirs(os.path.join(self.homes, name))
            if os.getuid() == 0:
                os.chown(os.path.join(self.homes, name), uid, 100)
        self.passwd = (
            "root:x:0:0:root:/root:/bin/sh\n"
            f"joe:x:{uid}:100::{self.homes}/joe:/bin/sh\n"
            f"ann:x:{uid}:101::{self.homes}/ann:/bin/sh\n"
            f"ghost:x:{uid}:102::{self.homes}/ghost:/bin/sh\n"
            f"other:x:{uid + 1}:103::{self.homes}/ann:/bin/sh\n"
            f"Upper:x:{uid}:104::{self.homes}/Upper:/bin/sh\n"
        )
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def users_file(self, name: str, text: str) -> None:
        with open(os.path.join(self.users, name), "w") as f:
            f.write(text)

    def run_pw2u(self, *args: str) -> tuple[int, list[str]]:
        out = io.StringIO()
        code = pw2u.main(["--root", self.root, *args], stdin=io.StringIO(self.passwd), stdout=out)
        return code, out.getvalue().splitlines()

    def test_default_rules(self) -> None:
        code, lines = self.run_pw2u()
        uid = self.uid
        self.assertEqual(code, 0)
        self.assertEqual(
            lines,
            [
                f"=joe:joe:{uid}:100:{self.homes}/joe:::",
                f"+joe-:joe:{uid}:100:{self.homes}/joe:-::",
                f"=ann:ann:{uid}:101:{self.homes}/ann:::",
                f"+ann-:ann:{uid}:101:{self.homes}/ann:-::",
                ".",
            ],
        )
        parse_assign([line + "\n" for line in lines])  # the output is valid assign

    def test_options(self) -> None:
        code, lines = self.run_pw2u("-H", "-u", "-C")
        self.assertEqual([line.split(":")[0] for line in lines], ["=joe", "=ann", "=ghost", "=other", "=Upper", "."])
        code, _ = self.run_pw2u("-h")
        self.assertEqual(code, 111)
        self.assertIn("ghost", self.stderr.getvalue())

    def test_user_files(self) -> None:
        self.users_file("exclude", "ann\n")
        self.users_file("mailnames", "joe:jo:joseph\n")
        self.users_file("subusers", "sales:joe:sales:\n")
        self.users_file("append", "+:alias:1:1:/a:-::\n")
        code, lines = self.run_pw2u()
        keys = [line.split(":")[0] for line in lines]
        self.assertEqual(keys, ["=jo", "+jo-", "=joseph", "+joseph-", "=sales", "+sales-", "+", "."])
        self.assertIn(":-:sales-:", lines[5])
        self.users_file("include", "ann\n")
        self.assertEqual(self.run_pw2u()[0], 111)  # subuser's user joe is not included

    def test_bad_passwd(self) -> None:
        self.passwd = "joe:x:abc:1::/h:/bin/sh\n"
        self.assertEqual(self.run_pw2u()[0], 100)
