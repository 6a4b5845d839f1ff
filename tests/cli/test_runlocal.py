"""
pymta.cli.runlocal (`make run`): where the embedded root goes when the mail
uid could not reach it, and - as root - `make run` in a fresh clone inside a
0700 directory, delivering a message sent over SMTP and reading it back over
POP3.
"""

from __future__ import annotations

import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.runlocal import RootLocationError, reachable_root
from pymta.fsaccess import Account

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = Account(65534, 65534)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def daemon_pid(marker: str) -> int:
    """The process whose command line has C{marker} and that runs as uid 65534."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace").split("\0")
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        if marker in cmdline and uid == 65534:
            return int(name)
    raise AssertionError(f"no process with {marker}")


def held_directories(pid: int) -> set[str]:
    paths = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if os.path.isdir(target):
            paths.add(target)
    return paths


class ReachableRootTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="pymta-runlocal-"))
        self.addCleanup(shutil.rmtree, self.base, True)
        self.relocated = os.path.join(self.base, "relocated")

    def test_not_root_nothing_to_check(self) -> None:
        requested = os.path.join(self.base, "var", "pymta")
        self.assertEqual(reachable_root(requested, None, self.relocated), (requested, None))

    def test_reachable_stays(self) -> None:
        os.chmod(self.base, 0o755)
        requested = os.path.join(self.base, "var", "pymta")
        self.assertEqual(reachable_root(requested, NOBODY, self.relocated), (requested, None))
        self.assertFalse(os.path.exists(self.relocated))

    def test_unreachable_requested_root(self) -> None:
        os.chmod(self.base, 0o711)
        private = os.path.join(self.base, "private")
        os.mkdir(private, 0o700)
        requested = os.path.join(private, "clone", "var", "pymta")
        root, note = reachable_root(requested, NOBODY, self.relocated)
        self.assertTrue(root.startswith(self.relocated + "/"))
        self.assertEqual(os.readlink(requested), root)
        assert note is not None
        self.assertIn(f"{private} (mode 0700, owner {os.getuid()}:{os.getgid()}) does not let uid 65534", note)
        # the next run finds it through the link
        self.assertEqual(reachable_root(requested, NOBODY, self.relocated), (root, None))

    def test_existing_unreachable_root_is_refused(self) -> None:
        os.chmod(self.base, 0o711)
        private = os.path.join(self.base, "private")
        requested = os.path.join(private, "var", "pymta")
        os.makedirs(requested)
        os.chmod(private, 0o700)
        with self.assertRaises(RootLocationError) as cm:
            reachable_root(requested, NOBODY, self.relocated)
        self.assertIn(f"remove it (rm -rf {requested})", str(cm.exception))
        self.assertFalse(os.path.exists(self.relocated))


class MakeRunFromPrivateCloneTests(SynchronousTestCase):
    """
    As root: `git clone` of this checkout into a fresh 0700 directory, its
    working tree's changes copied over, `.venv` a link to the running
    virtual environment (no pip install; make is told not to rebuild it),
    PYTHONPATH the clone so the code imported is the clone's.  `make run`
    on free loopback ports; a message over SMTP lands in the Maildir and
    comes back over POP3.
    """

    timeout = 180

    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        if sys.prefix == sys.base_prefix:
            raise self.skipTest("needs to run in a virtual environment (it is reused)")
        for program in ("git", "make"):
            if shutil.which(program) is None:
                raise self.skipTest(f"needs {program}")
        if subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
            raise self.skipTest("not a git checkout")
        self.base = tempfile.mkdtemp(prefix="pymta-makerun-")  # 0700: only root may enter
        self.addCleanup(shutil.rmtree, self.base, True)
        self.clone = os.path.join(self.base, "pymta")
        subprocess.run(["git", "clone", "-q", REPO, self.clone], check=True, timeout=120)
        changed = subprocess.run(
            ["git", "-C", REPO, "ls-files", "--modified", "--others", "--exclude-standard", "-z"],
            capture_output=True, check=True,
        ).stdout.decode().split("\0")
        for name in filter(None, changed):  # test the working tree, not only what is committed
            source = os.path.join(REPO, name)
            if os.path.isfile(source):
                os.makedirs(os.path.dirname(os.path.join(self.clone, name)), exist_ok=True)
                shutil.copy2(source, os.path.join(self.clone, name))
        os.symlink(sys.prefix, os.path.join(self.clone, ".venv"))

    def test_make_run_delivers(self) -> None:
        smtp, submission, pop3 = free_ports(3)
        env = dict(os.environ, PYTHONPATH=self.clone)
        for name in ("SUDO_UID", "SUDO_GID", "PYMTA_ROOT"):
            env.pop(name, None)
        make = subprocess.Popen(
            ["make", "-o", ".venv/bin/pymta", "run",
             f"SMTP=tcp:{smtp}:interface=127.0.0.1", f"SUBMISSION=tcp:{submission}:interface=127.0.0.1",
             f"POP3=tcp:{pop3}:interface=127.0.0.1"],
            cwd=self.clone, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output = os.path.join(self.base, "make-run.txt")

        def stop() -> None:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGINT)
                try:
                    make.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(make.pid, signal.SIGKILL)
                    make.wait()

        self.addCleanup(stop)
        reader = subprocess.Popen(["tee", output], stdin=make.stdout, stdout=subprocess.DEVNULL)
        self.addCleanup(reader.wait, 30)

        def text() -> str:
            with open(output, errors="replace") as f:
                return f.read()

        started = wait_until(lambda: os.path.exists(output) and ("dropped root" in text() or make.poll() is not None), 90)
        self.assertTrue(started and make.poll() is None, text() if os.path.exists(output) else "make run did not start")
        match = re.search(r"pymta is starting on (\S+)", text())
        assert match is not None, text()
        root = match.group(1)
        if root.startswith("/var/lib/pymta-make-run/"):
            self.addCleanup(shutil.rmtree, root, True)
        self.assertEqual(os.path.realpath(os.path.join(self.clone, "var", "pymta")), root)
        self.assertIn(f"{self.base} (mode 0700, owner 0:0) does not let uid 65534 gid 65534", text())
        self.assertIn("dropped root: running as uid 65534 gid 65534", text())
        # the daemon holds the directories of its code open (pymta.heldimports)
        daemon = daemon_pid(f"tcp:{smtp}:interface=127.0.0.1")
        held = held_directories(daemon)
        self.assertIn(self.clone, held)
        self.assertTrue(any(path.startswith(os.path.join(self.clone, ".venv")) or path.startswith(sys.prefix) for path in held), held)

        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            self.assertEqual(client.sendmail("me@localhost", ["admin@localhost"], b"Subject: private clone\r\n\r\nhello\r\n"), {})
        new = os.path.join(root, "home", "admin", "Maildir", "new")
        self.assertTrue(wait_until(lambda: os.listdir(new), 30), text())

        with open(os.path.join(root, "run", "first-password")) as f:
            user, _, password = f.read().strip().partition(":")
        pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
        pop.stls(ssl._create_unverified_context())
        pop.user(user)
        pop.pass_(password)
        self.assertEqual(pop.retr(1)[1][-1], b"hello")
        pop.quit()

        stop()
        self.assertNotIn("Traceback", text())
        self.assertNotIn("PermissionError", text())
