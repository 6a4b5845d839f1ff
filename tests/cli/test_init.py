"""Tests for pymta.cli.init (pymta init)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import init
from pymta.cli.initcontrols import NEW_ROOT_CONTROLS
from pymta.control import load_controls
from pymta.queue.layout import QueueLayout

IS_ROOT = os.getuid() == 0
MAIL_IDS = "4321:4322"


def snapshot(root: str) -> dict[str, tuple]:
    """Everything observable about a tree: type, mode, owner, size, mtime, content."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            result[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, digest)
    return result


def run_init(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = init.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


class ParseTests(SynchronousTestCase):
    def test_parse_user(self) -> None:
        self.assertEqual(init.parse_user("alice"), ("alice", None))
        self.assertEqual(init.parse_user("alice:s3:cr:et"), ("alice", "s3:cr:et"))
        for bad in ("", ".alice", "-x", "a/b", "a b", "x" * 65):
            self.assertRaises(init.InitError, init.parse_user, bad)
        self.assertRaises(init.InitError, init.parse_user, "alice:")

    def test_parse_mail_uid(self) -> None:
        self.assertEqual(init.parse_mail_uid("10:20"), (10, 20))
        self.assertEqual(init.parse_mail_uid("root:root"), (0, 0))
        for bad in ("10", "10:", ":20", "no-such-user-xyz:1"):
            e = self.assertRaises(init.InitError, init.parse_mail_uid, bad)
            self.assertEqual(e.status, 100)

    def test_assign_lines(self) -> None:
        self.assertEqual(init.assign_line("Alice", 1, 2, "/r/home/Alice"), "=alice:Alice:1:2:/r/home/Alice:::")
        self.assertEqual(init.assign_wildcard_line("Alice", 1, 2, "/r/home/Alice"),
                         "+alice-:Alice:1:2:/r/home/Alice:-::")


class RootInitTests(SynchronousTestCase):
    """pymta init as root (this machine and CI run as root)."""

    def setUp(self) -> None:
        if not IS_ROOT:
            raise self.skipTest("needs root")
        self.root = os.path.abspath(self.mktemp())
        os.chmod(os.path.dirname(self.root), 0o755)  # trial's is private: the mail uid must reach the root

    def init(self, *extra: str) -> tuple[int, str, str]:
        return run_init([self.root, "--me", "mail.example.com", "--mail-uid", MAIL_IDS, *extra])

    def test_root_the_mail_uid_cannot_reach_is_refused(self) -> None:
        private = os.path.dirname(self.root)
        os.chmod(private, 0o700)
        status, out, err = self.init("--user", "alice")
        self.assertEqual(status, 100)
        self.assertEqual(
            err,
            f"pymta init: fatal: uid 4321 gid 4322 (the mail account) cannot reach {self.root}: {private} "
            f"(mode 0700, owner 0:0) does not let it through; choose a root it can reach (such as /var/pymta) "
            f"or open the way (chmod o+x {private})\n",
        )
        self.assertFalse(os.path.exists(self.root))  # refused before anything was made
        os.chmod(private, 0o711)
        self.assertEqual(self.init()[0], 0)

    def test_root_needs_mail_uid(self) -> None:
        status, out, err = run_init([self.root, "--me", "h.example"])
        self.assertEqual(status, 100)
        self.assertIn("pymta init: fatal: running as root: give --mail-uid UID:GID", err)
        self.assertFalse(os.path.exists(self.root))

    def test_uid_zero_refused(self) -> None:
        status, _, err = run_init([self.root, "--mail-uid", "0:0"])
        self.assertEqual(status, 100)
        self.assertIn("uid 0 refused", err)
        self.assertFalse(os.path.exists(self.root))

    def test_full_tree(self) -> None:
        status, out, err = self.init("--user", "alice:secret", "--user", "bob")
        self.assertEqual((status, err), (0, ""))
        controls = load_controls(self.root)
        self.assertEqual(controls.me, "mail.example.com")
        self.assertEqual(controls.locals, frozenset(["mail.example.com"]))
        self.assertEqual(controls.rcpthosts, frozenset(["mail.example.com"]))
        self.assertEqual(controls.defaultdelivery, "./Maildir/\n")
        for name in ("alice", "bob"):
            maildir = os.path.join(self.root, "home", name, "Maildir")
            for sub in ("", "tmp", "new", "cur"):
                st = os.stat(os.path.join(maildir, sub))
                self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (4321, 4322, 0o700))
            st = os.stat(os.path.join(self.root, "home", name))
            self.assertEqual((st.st_uid, st.st_gid), (4321, 4322))
        with open(os.path.join(self.root, "users", "assign")) as f:
            self.assertEqual(
                f.read(),
                f"=alice:alice:4321:4322:{self.root}/home/alice:::\n"
                f"+alice-:alice:4321:4322:{self.root}/home/alice:-::\n"
                f"=bob:bob:4321:4322:{self.root}/home/bob:::\n"
                f"+bob-:bob:4321:4322:{self.root}/home/bob:-::\n.\n",
            )
        for alias in init.ALIAS_NAMES:
            path = os.path.join(self.root, "alias", f".qmail-{alias}")
            with open(path) as f:
                self.assertEqual(f.read(), "&alice@mail.example.com\n")
            st = os.stat(path)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (4321, 0o644))
        self.assertEqual(os.stat(os.path.join(self.root, "alias")).st_uid, 4321)
        run = os.stat(os.path.join(self.root, "run"))
        self.assertEqual((run.st_uid, run.st_gid), (4321, 4322))
        queue = QueueLayout.for_root(self.root)
        self.assertEqual(queue.split, 23)
        for name in ("mess/0", "mess/22", "todo", "intd", "info/5", "pid", "lock"):
            self.assertEqual(os.stat(queue.dir(name)).st_uid, 4321)
        self.assertTrue(stat.S_ISFIFO(os.stat(queue.trigger_path()).st_mode))
        with open(os.path.join(self.root, "etc", "tcp.smtp")) as f:
            rules = f.read()
        self.assertIn('127.:allow,RELAYCLIENT=""\n', rules)
        self.assertTrue(rules.endswith(":allow\n"))
        self.assertIn("made control/me", out)
        self.assertIn("POP3", out)

    def test_new_root_gets_the_safe_settings(self) -> None:
        status, out, err = self.init("--user", "alice")
        self.assertEqual((status, err), (0, ""))
        controls = load_controls(self.root)
        self.assertEqual((controls.databytes, controls.timeoutsmtpd), (36700160, 300))
        for setting in NEW_ROOT_CONTROLS:
            path = os.path.join(self.root, "control", setting.name)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), setting.data)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
            self.assertIn(f"made control/{setting.name}\n", out)
        self.assertIn("Mail to unknown local users is refused at RCPT (control/rcptcheck", out)

    def test_existing_root_gets_no_new_settings(self) -> None:
        """A root made before (or by hand, with control/me) keeps its behaviour when init adds a user."""
        self.assertEqual(self.init("--user", "alice")[0], 0)
        for setting in NEW_ROOT_CONTROLS:  # as a root made before pymta init wrote them
            os.unlink(os.path.join(self.root, "control", setting.name))
        status, out, err = self.init("--user", "carol")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(sorted(os.listdir(os.path.join(self.root, "control"))),
                         ["defaultdelivery", "locals", "me", "rcpthosts", "servercert.pem"])
        self.assertNotIn("Mail to unknown local users", out)

    def test_inject_hint_only_for_a_name_with_a_dot(self) -> None:
        """pymta inject completes a host without a dot with defaultdomain: user@localhost.localhost."""
        self.assertIn(f"Local mail: echo 'Subject: hi' | pymta inject --root {self.root} alice\n",
                      self.init("--user", "alice")[1])
        other = self.root + "-dotless"
        status, out, _ = run_init([other, "--me", "localhost", "--mail-uid", MAIL_IDS, "--user", "alice"])
        self.assertEqual(status, 0)
        self.assertNotIn("pymta inject", out)

    def test_assign_index_built_and_extensions_resolve(self) -> None:
        from pymta.local.assign import INDEX_NAME, parse_assign

        status, out, err = self.init("--user", "alice")
        self.assertEqual((status, err), (0, ""))
        index = os.path.join(self.root, "users", INDEX_NAME)
        self.assertTrue(os.path.exists(index))
        self.assertIn("users/assign index (pymta newu)", out)
        with open(os.path.join(self.root, "users", "assign")) as f:
            table = parse_assign(f)
        exact = table.lookup("Alice")
        self.assertEqual((exact.entry.user, exact.entry.dash, exact.ext), ("alice", "", ""))
        extension = table.lookup("alice-Prog")
        self.assertEqual((extension.entry.user, extension.entry.dash, extension.ext), ("alice", "-", "Prog"))
        self.assertIsNone(table.lookup("alicex"))

    def test_certificate(self) -> None:
        self.init()
        path = os.path.join(self.root, "control", "servercert.pem")
        st = os.stat(path)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 4321))
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["mail.example.com"])

    def test_passwd_entry(self) -> None:
        from pymta.passwdfile import read_passwd, verify_password

        self.init("--user", "alice:secret", "--user", "bob")
        path = os.path.join(self.root, "users", "passwd")
        entries = read_passwd(path)
        self.assertEqual(sorted(entries), ["alice"])
        entry = entries["alice"]
        self.assertTrue(verify_password(entry.password, "secret"))
        self.assertFalse(verify_password(entry.password, "wrong"))
        self.assertEqual((entry.uid, entry.gid, entry.home), (4321, 4322, f"{self.root}/home/alice"))
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, 4322, 0o640))

    def test_second_run_changes_nothing(self) -> None:
        args = ("--user", "alice:secret", "--user", "bob")
        self.assertEqual(self.init(*args)[0], 0)
        before = snapshot(self.root)
        status, out, err = self.init(*args)
        self.assertEqual((status, err), (0, ""))
        self.assertNotIn("made ", out)
        self.assertEqual(snapshot(self.root), before)

    def test_second_run_adds_a_user_and_keeps_the_rest(self) -> None:
        self.init("--user", "alice:secret")
        with open(os.path.join(self.root, "users", "passwd")) as f:
            passwd_before = f.read()
        control_before = snapshot(os.path.join(self.root, "control"))
        alias_before = snapshot(os.path.join(self.root, "alias"))
        status, out, err = self.init("--user", "alice:other", "--user", "carol:pw")
        self.assertEqual(status, 0)
        with open(os.path.join(self.root, "users", "assign")) as f:
            self.assertEqual(
                f.read(),
                f"=alice:alice:4321:4322:{self.root}/home/alice:::\n"
                f"+alice-:alice:4321:4322:{self.root}/home/alice:-::\n"
                f"=carol:carol:4321:4322:{self.root}/home/carol:::\n"
                f"+carol-:carol:4321:4322:{self.root}/home/carol:-::\n.\n",
            )
        with open(os.path.join(self.root, "users", "passwd")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], passwd_before.splitlines()[0])  # alice's password not replaced
        self.assertTrue(lines[1].startswith("carol:{ARGON2ID}"))
        self.assertEqual(snapshot(os.path.join(self.root, "control")), control_before)
        self.assertEqual(snapshot(os.path.join(self.root, "alias")), alias_before)
        self.assertTrue(os.path.isdir(os.path.join(self.root, "home", "carol", "Maildir", "new")))

    def test_existing_me_is_kept(self) -> None:
        os.makedirs(os.path.join(self.root, "control"))
        with open(os.path.join(self.root, "control", "me"), "w") as f:
            f.write("old.example\n")
        status, out, err = self.init("--user", "alice")
        self.assertEqual(status, 0)
        self.assertIn("control/me already says 'old.example'", err)
        with open(os.path.join(self.root, "control", "rcpthosts")) as f:
            self.assertEqual(f.read(), "old.example\n")
        with open(os.path.join(self.root, "alias", ".qmail-postmaster")) as f:
            self.assertEqual(f.read(), "&alice@old.example\n")

    def test_assign_without_terminator_gets_one(self) -> None:
        os.makedirs(os.path.join(self.root, "users"))
        with open(os.path.join(self.root, "users", "assign"), "w") as f:
            f.write("=x:x:5:5:/x:::\n")
        self.init("--user", "alice")
        with open(os.path.join(self.root, "users", "assign")) as f:
            self.assertEqual(f.read(), f"=x:x:5:5:/x:::\n=alice:alice:4321:4322:{self.root}/home/alice:::\n"
                                       f"+alice-:alice:4321:4322:{self.root}/home/alice:-::\n.\n")

    def test_assign_update_keeps_mode_and_owner(self) -> None:
        os.makedirs(os.path.join(self.root, "users"))
        assign = os.path.join(self.root, "users", "assign")
        with open(assign, "w") as f:
            f.write("=x:x:5:5:/x:::\n.\n")
        os.chmod(assign, 0o600)
        if IS_ROOT:
            os.chown(assign, 1234, 2345)
        self.init("--user", "alice")
        st = os.stat(assign)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        if IS_ROOT:
            self.assertEqual((st.st_uid, st.st_gid), (1234, 2345))
        with open(assign) as f:
            self.assertTrue(f.read().startswith("=x:x:5:5:/x:::\n=alice:"))
        self.assertEqual([n for n in os.listdir(os.path.dirname(assign)) if ".tmp" in n], [])

    def test_no_user_aliases_go_to_alias_maildir(self) -> None:
        self.init()
        with open(os.path.join(self.root, "alias", ".qmail-postmaster")) as f:
            self.assertEqual(f.read(), "./Maildir/\n")
        st = os.stat(os.path.join(self.root, "alias", "Maildir", "new"))
        self.assertEqual(st.st_uid, 4321)
        self.assertFalse(os.path.exists(os.path.join(self.root, "users", "assign")))

    def test_duplicate_user_and_bad_me(self) -> None:
        self.assertEqual(self.init("--user", "a", "--user", "A")[0], 100)
        self.assertEqual(run_init([self.root, "--me", "bad host", "--mail-uid", MAIL_IDS])[0], 100)
        self.assertFalse(os.path.exists(self.root))

    def test_root_is_a_file(self) -> None:
        with open(self.root, "w") as f:
            f.write("x")
        status, _, err = self.init()
        self.assertEqual(status, 111)
        self.assertIn("pymta init: fatal:", err)


class UnprivilegedInitTests(SynchronousTestCase):
    """pymta init run by an ordinary account: a forked child that drops to nobody."""

    def setUp(self) -> None:
        if not IS_ROOT:
            raise self.skipTest("needs root to start a child as another account")
        self.base = tempfile.mkdtemp(prefix="pymta-init-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chown(self.base, 65534, 65534)

    def run_as_nobody(self, *argv: str) -> tuple[int, str]:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            status = 112
            try:
                os.close(read_fd)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                err = io.StringIO()
                status = init.main(list(argv), stdout=io.StringIO(), stderr=err)
                os.write(write_fd, err.getvalue().encode())
            finally:
                os._exit(status)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            err = f.read().decode()
        _, wait_status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(wait_status), err

    def test_ids_are_the_invokers(self) -> None:
        root = os.path.join(self.base, "r")
        status, err = self.run_as_nobody(root, "--me", "h.example", "--user", "nob:pw")
        self.assertEqual(status, 0, err)
        with open(os.path.join(root, "users", "assign")) as f:
            self.assertEqual(f.read(), f"=nob:nob:65534:65534:{root}/home/nob:::\n"
                                       f"+nob-:nob:65534:65534:{root}/home/nob:-::\n.\n")
        for path in ("control/me", "home/nob/Maildir/new", "queue/todo", "run", "users/passwd"):
            self.assertEqual(os.stat(os.path.join(root, path)).st_uid, 65534)

    def test_other_mail_uid_refused(self) -> None:
        status, err = self.run_as_nobody(os.path.join(self.base, "r"), "--mail-uid", "1:1")
        self.assertEqual(status, 100)
        self.assertIn("needs root", err)

    def test_unwritable_root(self) -> None:
        os.mkdir(os.path.join(self.base, "locked"), 0o755)
        status, err = self.run_as_nobody(os.path.join(self.base, "locked", "r"), "--me", "h.example")
        self.assertEqual(status, 111)
        self.assertIn("pymta init: fatal: unable to set up", err)
        self.assertIn("Permission denied", err)
