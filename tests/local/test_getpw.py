"""Tests for pymta.local.getpw: assign, then qmail-getpw's passwd rules, then the alias user."""

from __future__ import annotations

import os
import pwd

from twisted.trial import unittest

from pymta.local.assign import parse_assign
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import find_user, passwd_candidates


class GetpwTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.alias = os.path.join(self.root, "alias")
        os.makedirs(self.alias)
        self.homes = os.path.join(self.root, "homes")
        os.makedirs(self.homes)
        self.accounts: dict[str, pwd.struct_passwd] = {}
        uid = 4242 if os.getuid() == 0 else os.getuid()
        self.account("bench", uid)
        self.account("zero", 0)
        self.account("nohome", uid, make=False)
        self.account("notmine", uid + 1)
        self.account("a-b", uid)

    def account(self, name: str, uid: int, make: bool = True) -> None:
        home = os.path.join(self.homes, name)
        if make:
            os.makedirs(home)
            if os.getuid() == 0 and uid != 0:
                os.chown(home, 4242, 100)
        self.accounts[name] = pwd.struct_passwd((name, "x", uid, 100, "", home, "/bin/sh"))

    def getpwnam(self, name: str) -> pwd.struct_passwd:
        return self.accounts[name]

    def find(self, local: str, assign=None):
        u = find_user(self.root, local, assign, getpwnam=self.getpwnam)
        return u.user, u.dash, u.ext, u.source

    def test_candidates(self) -> None:
        self.assertEqual(
            passwd_candidates("Bench-Foo-bar"),
            [("bench-foo-bar", "", ""), ("bench-foo", "-", "bar"), ("bench", "-", "Foo-bar")],
        )

    def test_passwd_rules(self) -> None:
        self.assertEqual(self.find("Bench-Foo-bar"), ("bench", "-", "Foo-bar", "passwd"))
        self.assertEqual(self.find("bench"), ("bench", "", "", "passwd"))
        self.assertEqual(self.find("a-b-c"), ("a-b", "-", "c", "passwd"))

    def test_refusals_fall_to_alias(self) -> None:
        for local in ("zero", "nohome", "notmine", "x" * 40, "nobody-at-all"):
            self.assertEqual(self.find(local), ("alias", "-", local, "alias"))
        st = os.stat(self.alias)
        u = find_user(self.root, "root", None, getpwnam=self.getpwnam)
        self.assertEqual((u.uid, u.gid, u.home), (st.st_uid, st.st_gid, self.alias))

    def test_assign_first(self) -> None:
        table = parse_assign(["=bench:other:7:8:/h:::\n", ".\n"])
        self.assertEqual(self.find("bench", table), ("other", "", "", "assign"))
        self.assertEqual(self.find("bench-x", table), ("bench", "-", "x", "passwd"))

    def test_no_alias_user(self) -> None:
        os.rmdir(self.alias)
        e = self.assertRaises(DeliveryFailure, find_user, self.root, "nobody-at-all", None, getpwnam=self.getpwnam)
        self.assertEqual((e.status, e.text), ("Z", "Unable to find alias user! (#4.3.0)"))
