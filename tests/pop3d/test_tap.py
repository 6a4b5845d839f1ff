"""The pymta-pop3d twistd plugin: option parsing and one real `twistd -n pymta-pop3d` run."""

from __future__ import annotations

import os
import poplib
import signal
import socket
import subprocess
import sys
import time

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pymta.passwdfile import set_password
from pymta.pop3d.tap import Options
from tests.pop3d.helpers import sample_maildir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OptionsTests(SynchronousTestCase):
    def test_listen_repeatable_and_flags(self) -> None:
        options = Options()
        options.parseOptions(["--root", "/r", "--listen", "tcp:110", "-l", "ssl:995", "--allow-plaintext-auth", "--timeout", "30"])
        self.assertEqual(options["listen"], ["tcp:110", "ssl:995"])
        self.assertTrue(options["allow-plaintext-auth"])
        self.assertEqual(options["timeout"], 30.0)

    def test_errors(self) -> None:
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--root", "/r"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--listen", "bogus:1"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--listen", "tcp:110", "--checkpassword", "relative"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--listen", "tcp:110", "--timeout", "0"])

    def test_checkpassword_split(self) -> None:
        options = Options()
        options.parseOptions(["--listen", "tcp:110", "--checkpassword", "/bin/true extra"])
        self.assertEqual(options["checkpassword"], ["/bin/true", "extra"])

    def test_default_root(self) -> None:
        self.patch(os, "environ", {"PYMTA_ROOT": "/from/env"})
        options = Options()
        options.parseOptions(["--listen", "tcp:110"])
        self.assertEqual(options["root"], "/from/env")


class TwistdRunTests(SynchronousTestCase):
    def test_twistd_pymta_pop3d(self) -> None:
        root = os.path.abspath(self.mktemp())
        home = os.path.join(root, "home", "u")
        sample_maildir(os.path.join(home, "Maildir"))
        uid = os.getuid()
        if uid == 0:  # a POP3-only root: pop3d runs as the owner of ROOT/run, here the mailbox's uid
            from tests.pop3d.test_childmailbox import TEST_GID, TEST_UID, chown_tree

            os.chmod(os.path.dirname(root), 0o755)
            chown_tree(home, TEST_UID, TEST_GID)
            os.makedirs(os.path.join(root, "run"))
            os.chown(os.path.join(root, "run"), TEST_UID, TEST_GID)
            uid = TEST_UID
        set_password(os.path.join(root, "users", "passwd"), "u", "pw", uid, uid, home, scheme="BLF-CRYPT")
        if os.getuid() == 0:
            os.chmod(os.path.join(root, "users", "passwd"), 0o644)
        port = free_port()
        env = dict(os.environ, PYTHONPATH=REPO)
        proc = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
               "-n", "--pidfile=", "--logfile=-", "pymta-pop3d", "--root", root,
               "--listen", f"tcp:{port}:interface=127.0.0.1", "--allow-plaintext-auth"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.send_signal, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while True:
            try:
                pop = poplib.POP3("127.0.0.1", port, timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    out = proc.stdout.read() if proc.poll() is not None else b""
                    self.fail(f"twistd did not start: {out!r}")
                time.sleep(0.1)
        pop.user("u")
        pop.pass_("pw")
        self.assertEqual(pop.stat(), (3, 83))
        self.assertEqual(pop.retr(1)[1], [b"Subject: one", b"", b"body1"])
        pop.dele(1)
        pop.quit()
        self.assertEqual(sorted(os.listdir(os.path.join(home, "Maildir", "cur"))), ["1001.B.host:2,", "1002.C.host:2,"])
        proc.send_signal(signal.SIGTERM)
        self.assertIn(proc.wait(30), (0, -signal.SIGTERM))  # twistd re-raises the signal it stopped on
        log = proc.stdout.read().decode()
        self.assertIn("pop3 login u from 127.0.0.1: 3 messages", log)
        if os.getuid() == 0:
            from tests.pop3d.test_childmailbox import TEST_GID

            self.assertIn(f"dropped root: running as uid {uid} gid {TEST_GID}", log)


class TwistdDroppedPrivilegesTests(SynchronousTestCase):
    """As root with `twistd --uid nobody`: virtual users in-process, system users through the root spawner."""

    def test_uid_drop_keeps_spawner(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        import pwd

        from tests.pop3d.test_childmailbox import TEST_GID, TEST_UID, chown_tree

        nobody = pwd.getpwnam("nobody")
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        os.chmod(os.path.dirname(root), 0o755)
        homes = {"virt": (nobody.pw_uid, nobody.pw_gid), "sys": (TEST_UID, TEST_GID)}
        passwd = os.path.join(root, "users", "passwd")
        for name, (uid, gid) in homes.items():
            home = os.path.join(root, "home", name)
            sample_maildir(os.path.join(home, "Maildir"))
            chown_tree(home, uid, gid)
            os.chmod(home, 0o700)
            set_password(passwd, name, "pw", uid, gid, home, scheme="PLAIN")
        os.chmod(passwd, 0o644)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "--logfile=-", "--uid", str(nobody.pw_uid), "--gid", str(nobody.pw_gid),
             "pymta-pop3d", "--root", root, "--listen", f"tcp:{port}:interface=127.0.0.1", "--allow-plaintext-auth"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.send_signal, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    self.fail("twistd did not start")
                time.sleep(0.1)
        # the port is bound before twistd drops to --uid: wait for the drop itself
        wanted = f"Uid:\t{nobody.pw_uid}\t{nobody.pw_uid}"
        while True:
            with open(f"/proc/{proc.pid}/status") as f:
                status = f.read()
            if wanted in status:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                self.assertIn(wanted, status)
            time.sleep(0.05)
        for name in homes:
            pop = poplib.POP3("127.0.0.1", port, timeout=10)
            pop.user(name)
            pop.pass_("pw")
            self.assertEqual(pop.retr(3)[1], [b"Subject: three", b"", b"last"])
            pop.dele(1)
            pop.quit()
        for name, (uid, _) in homes.items():
            cur = os.path.join(root, "home", name, "Maildir", "cur")
            self.assertEqual(sorted(os.listdir(cur)), ["1001.B.host:2,", "1002.C.host:2,"])
            self.assertEqual(os.stat(os.path.join(cur, "1001.B.host:2,")).st_uid, uid)
