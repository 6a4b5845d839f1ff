"""users/assign and its index, users/passwd, and the homes they name."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck.accounts import check_assign, check_homes, check_passwd
from pymta.configcheck.problem import ERROR, WARNING
from pymta.local.assign import write_index
from tests.configcheck.helpers import MAIL_IDS, check, init_root, located, write


def ids() -> tuple[int, int]:
    return MAIL_IDS if os.getuid() == 0 else (os.getuid(), os.getgid())


class AssignTests(SynchronousTestCase):
    def test_pymta_init_users_are_clean(self) -> None:
        root = init_root(self, "alice:pw", "bob")
        self.assertEqual(check(root, check_assign) + check(root, check_passwd) + check(root, check_homes), [])

    def test_every_bad_line(self) -> None:
        root = init_root(self, "alice")
        home = os.path.join(root, "home", "alice")
        write(root, "users/assign", f"=alice:alice:1:1:{home}:::\n*bad\n=x:x:one:1:/h:::\n=y:y:1:1:relative:::\n.\n")
        problems = check(root, check_assign)
        self.assertEqual(located(root, problems), [("users/assign", n, ERROR) for n in (2, 3, 4)])
        self.assertEqual(problems[1].text, "uid and gid must be decimal numbers")

    def test_missing_final_dot(self) -> None:
        root = init_root(self)
        write(root, "users/assign", "=x:x:1:1:/h:::\n")
        problems = check(root, check_assign)
        self.assertEqual(located(root, problems), [("users/assign", 0, ERROR)])
        self.assertIn("no final '.' line", problems[0].text)

    def test_stale_and_missing_index_warn(self) -> None:
        root = init_root(self, "alice")
        assign = os.path.join(root, "users", "assign")
        with open(assign, "a") as f:
            f.write("\n")
        os.utime(assign, ns=(1, 1))
        problems = check(root, check_assign)
        self.assertEqual(located(root, problems), [("users/assign.idx", 0, WARNING)])
        self.assertIn("run pymta newu", problems[0].text)
        write_index(assign, os.path.join(root, "users", "assign.idx"))
        self.assertEqual(check(root, check_assign), [])
        os.unlink(os.path.join(root, "users", "assign.idx"))
        self.assertIn("is missing", check(root, check_assign)[0].text)

    def test_broken_index_is_an_error(self) -> None:
        root = init_root(self, "alice")
        write(root, "users/assign.idx", "{not json")
        self.assertEqual(located(root, check(root, check_assign)), [("users/assign.idx", 0, ERROR)])


class PasswdTests(SynchronousTestCase):
    def test_bad_lines_are_errors(self) -> None:
        root = init_root(self, "alice:pw")
        passwd = os.path.join(root, "users", "passwd")
        with open(passwd, "a") as f:
            f.write("justaname\nbob:{PLAIN}x:notanumber:1::/h::\n")
        problems = check(root, check_passwd)
        self.assertEqual(located(root, problems), [("users/passwd", 2, ERROR), ("users/passwd", 3, ERROR)])
        self.assertIn("the daemons skip this line", problems[0].text)

    def test_unknown_scheme_warns(self) -> None:
        root = init_root(self, "alice:pw")
        with open(os.path.join(root, "users", "passwd"), "a") as f:
            f.write("carol:{MD5-CRYPT}$1$abc:1:1::/h::\n")
        problems = check(root, check_passwd)
        self.assertEqual(located(root, problems), [("users/passwd", 2, WARNING)])
        self.assertIn("carol: unknown password scheme MD5-CRYPT", problems[0].text)

    def test_world_readable(self) -> None:
        root = init_root(self, "alice:pw")
        path = os.path.join(root, "users", "passwd")
        os.chmod(path, 0o644)
        problems = check(root, check_passwd)
        self.assertEqual(located(root, problems), [("users/passwd", 0, WARNING)])
        self.assertIn("password hashes", problems[0].text)
        with open(path, "a") as f:
            f.write("dave:{PLAIN}secret:1:1::/h::\n")
        self.assertIn("CLEAR-TEXT PASSWORDS", check(root, check_passwd)[0].text)

    def test_unreadable_by_the_mail_account_is_an_error(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        root = init_root(self, "alice:pw")
        os.chown(os.path.join(root, "users", "passwd"), 0, 0)  # 0640 root:root
        problems = check(root, check_passwd)
        self.assertEqual(located(root, problems), [("users/passwd", 0, ERROR)])
        self.assertIn("no POP3 or SMTP AUTH login would work", problems[0].text)


class HomeTests(SynchronousTestCase):
    def test_writable_missing_and_foreign_homes(self) -> None:
        root = init_root(self, "alice", "bob")
        uid, gid = ids()
        alice = os.path.join(root, "home", "alice")
        os.chmod(alice, 0o777)
        gone = os.path.join(root, "home", "gone")
        assign = os.path.join(root, "users", "assign")
        with open(assign) as f:
            lines = f.read().splitlines(keepends=True)
        lines.insert(0, f"=gone:gone:{uid}:{gid}:{gone}:::\n")
        with open(assign, "w") as f:
            f.writelines(lines)
        problems = check(root, check_homes)
        self.assertEqual(sorted(located(root, problems)), [("home/alice", 0, WARNING), ("home/gone", 0, WARNING)])
        texts = " ".join(p.text for p in problems)
        self.assertIn("Uh-oh: home directory is writable", texts)
        self.assertIn("Unable to switch to", texts)

    def test_home_owned_by_another_uid(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        root = init_root(self, "alice")
        os.chown(os.path.join(root, "home", "alice"), 4343, MAIL_IDS[1])
        problems = check(root, check_homes)
        self.assertEqual(located(root, problems), [("home/alice", 0, WARNING)])
        self.assertIn(f"owned by uid 4343, not {MAIL_IDS[0]}", problems[0].text)

    def test_passwd_home_without_maildir(self) -> None:
        root = init_root(self)
        home = os.path.join(root, "home", "virtual")
        os.makedirs(home)
        uid, gid = ids()
        write(root, "users/passwd", f"virtual:{{PLAIN}}pw:{uid}:{gid}::{home}::\n", 0o600)
        problems = check(root, check_homes)
        self.assertEqual(located(root, problems), [("home/virtual", 0, WARNING)])
        self.assertIn("no Maildir/", problems[0].text)
