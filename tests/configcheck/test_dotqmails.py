""".qmail files and homes local delivery refuses as writable, listed by pymta check."""

from __future__ import annotations

import os
import pwd
import tempfile
import shutil

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck import CHECKERS, DAEMON_CHECKERS
from pymta.configcheck import dotqmails
from pymta.configcheck.dotqmails import check_dotqmail_files
from pymta.configcheck.problem import WARNING
from tests.configcheck.helpers import check, init_root, located, write
from tests.configcheck.test_accounts import ids


def account(name: str, uid: int, home: str) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "x", uid, uid, "", home, "/bin/sh"))


class DotqmailFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(dotqmails, "system_accounts", lambda: [])
        self.root = init_root(self, "alice")
        self.alice = os.path.join(self.root, "home", "alice")

    def test_clean_root(self) -> None:
        write(self.alice, ".qmail-ok", "./Maildir/\n", 0o644)
        self.assertEqual(check(self.root, check_dotqmail_files), [])

    def test_group_and_world_writable_files(self) -> None:
        write(self.alice, ".qmail-list", "./Maildir/\n", 0o664)
        write(self.root, "alias/.qmail-root", "alice\n", 0o646)
        write(self.alice, ".qmail-ok", "./Maildir/\n", 0o600)
        write(self.alice, "qmail-not-a-dotqmail", "x\n", 0o666)
        os.mkdir(os.path.join(self.alice, ".qmail-dir"), 0o777)
        problems = check(self.root, check_dotqmail_files)
        self.assertEqual(sorted(located(self.root, problems)),
                         [("alias/.qmail-root", 0, WARNING), ("home/alice/.qmail-list", 0, WARNING)])
        texts = {os.path.basename(p.path): p.text for p in problems}
        self.assertTrue(texts[".qmail-list"].startswith("writable by its group (qmail accepted that, pymta does not)"))
        self.assertTrue(texts[".qmail-root"].startswith("writable by everyone:"))
        self.assertIn(f"fix: chmod go-w {os.path.join(self.alice, '.qmail-list')}", texts[".qmail-list"])

    def test_symbolic_link_to_a_writable_file(self) -> None:
        target = write(self.alice, "lists/real", "./Maildir/\n", 0o664)
        os.symlink(target, os.path.join(self.alice, ".qmail-link"))
        self.assertEqual(located(self.root, check(self.root, check_dotqmail_files)), [("home/alice/.qmail-link", 0, WARNING)])

    def test_system_accounts(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-homes-")
        self.addCleanup(shutil.rmtree, base, True)
        uid = ids()[0]
        shared = os.path.join(base, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o775)
        write(shared, ".qmail", "./Mailbox\n", 0o664)
        foreign = os.path.join(base, "foreign")
        os.mkdir(foreign)
        write(foreign, ".qmail", "x\n", 0o666)
        if os.getuid() == 0:
            os.chown(shared, uid, uid)
            os.chown(foreign, 4343, 4343)
        accounts = [account("shared", uid, shared), account("root", 0, shared), account("alice", uid, self.alice),
                    account("gone", uid, os.path.join(base, "gone"))]
        if os.getuid() == 0:
            accounts.append(account("foreign", 4242 if uid != 4242 else 4244, foreign))
        self.patch(dotqmails, "system_accounts", lambda: accounts)
        problems = check(self.root, check_dotqmail_files)
        self.assertEqual(sorted((p.path, p.severity) for p in problems),
                         [(shared, WARNING), (os.path.join(shared, ".qmail"), WARNING)])
        home_problem = next(p for p in problems if p.path == shared)
        self.assertEqual(home_problem.text,
                         "home of the system account shared: local delivery defers: "
                         "Uh-oh: home directory is writable. (#4.7.0)")

    def test_unreadable_homes_counted_once(self) -> None:
        def unreadable(home: str) -> list[tuple[str, int]]:
            raise PermissionError(13, "Permission denied", home)

        self.patch(dotqmails, "writable_dotqmail_files", unreadable)
        problems = check(self.root, check_dotqmail_files)
        self.assertEqual(len(problems), 1)
        self.assertIn("and 1 other home(s) to look for writable .qmail files (run pymta check as root)", problems[0].text)

    def test_pymta_check_runs_it_and_the_daemons_do_not(self) -> None:
        self.assertIn(check_dotqmail_files, CHECKERS)
        self.assertNotIn(check_dotqmail_files, DAEMON_CHECKERS)
