"""
pymta.logrotation: twistd's log file after the privilege drop, in units and
with real `twistd pymta-send` children started as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

from twisted.logger import LogLevel, globalLogPublisher
from twisted.python import logfile
from twisted.trial.unittest import SynchronousTestCase

from pymta.fsaccess import Account
from pymta.logrotation import REOPEN, ROTATE, RotatingLogFile, UnsafeFile
from tests.waiting import process_ended, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIL = 4242


def read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class UnitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.realpath(self.mktemp())
        os.makedirs(self.dir)
        self.log_file = RotatingLogFile.fromFullPath(os.path.join(self.dir, "pymta.log"))
        self.addCleanup(self.log_file.close)
        self.me = Account(os.getuid(), os.getgid())
        # an account that may not write a 0555 directory (root may write anything)
        self.other = Account(MAIL, MAIL) if os.getuid() == 0 else self.me
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def messages(self, level: LogLevel) -> list[str]:
        return [e["log_format"].format(**e) for e in self.events if e.get("log_level") == level]

    def test_writable_directory_rotates(self) -> None:
        self.assertIsNone(self.log_file.hand_over(self.me))
        self.assertEqual(self.log_file.mode, ROTATE)
        self.log_file.write("first\n")
        self.log_file.on_usr1()
        self.log_file.write("second\n")
        self.assertEqual(read(self.log_file.path + ".1"), "first\n")
        self.assertEqual(read(self.log_file.path), "second\n")
        self.assertEqual(self.messages(LogLevel.info), [f"SIGUSR1: log file {self.log_file.path} rotated"])

    def test_threads_write_through_size_rotations_and_usr1(self) -> None:
        """Lines written by several threads while the size limit and SIGUSR1 rotate (one lock for both): each lands whole, once."""
        self.log_file.rotateLength = 4000
        self.assertIsNone(self.log_file.hand_over(self.me))
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads change often
        self.addCleanup(sys.setswitchinterval, interval)

        def writer(n: int) -> None:
            for i in range(300):
                self.log_file.write(f"writer {n} line {i} " + "x" * 40 + "\n")

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for _ in range(5):
            self.log_file.on_usr1()
        for t in threads:
            t.join()
        lines = []
        for name in os.listdir(self.dir):
            lines += read(os.path.join(self.dir, name)).splitlines()
        self.assertEqual(sorted(lines), sorted(f"writer {n} line {i} " + "x" * 40 for n in range(4) for i in range(300)))
        self.assertGreater(len(os.listdir(self.dir)), 10)

    def test_not_a_regular_file(self) -> None:
        log_file = RotatingLogFile.fromFullPath(os.devnull)
        self.addCleanup(log_file.close)
        before = os.stat(os.devnull)
        self.assertIsNone(log_file.hand_over(Account(MAIL, MAIL)))
        after = os.stat(os.devnull)
        self.assertEqual((after.st_uid, after.st_gid), (before.st_uid, before.st_gid))  # never given away
        self.assertIsNone(log_file.rotateLength)

    def test_rotation_not_permitted_is_logged(self) -> None:
        self.log_file.hand_over(self.me)
        self.patch(os, "access", lambda path, mode: False)
        self.log_file.write("kept\n")
        self.log_file.on_usr1()
        self.assertFalse(os.path.exists(self.log_file.path + ".1"))
        self.assertEqual(len(self.messages(LogLevel.error)), 1)
        self.assertIn("cannot rotate log file", self.messages(LogLevel.error)[0])

    def test_closed_directory_reopens(self) -> None:
        os.chmod(self.dir, 0o555)
        self.addCleanup(os.chmod, self.dir, 0o755)
        warning = self.log_file.hand_over(self.other)
        self.assertEqual(self.log_file.mode, REOPEN)
        self.assertIsNone(self.log_file.rotateLength)  # no size rotation that could not happen
        assert warning is not None
        self.assertIn(f"{self.dir} is not writable by uid {self.other.uid}", warning)
        self.assertIn("SIGUSR1 reopens it", warning)
        self.assertIn("journal", warning)
        os.chmod(self.dir, 0o755)
        # what logrotate does: move the file away, create the new one, send SIGUSR1
        self.log_file.write("before\n")
        os.rename(self.log_file.path, self.log_file.path + ".1")
        open(self.log_file.path, "w").close()
        self.log_file.on_usr1()
        self.log_file.write("after\n")
        self.assertEqual(read(self.log_file.path + ".1"), "before\n")
        self.assertEqual(read(self.log_file.path), "after\n")

    def test_failed_reopen_keeps_the_old_file(self) -> None:
        os.chmod(self.dir, 0o555)
        self.addCleanup(os.chmod, self.dir, 0o755)
        self.log_file.hand_over(self.other)
        self.assertEqual(self.log_file.mode, REOPEN)
        os.chmod(self.dir, 0o755)
        os.rename(self.log_file.path, self.log_file.path + ".1")
        os.mkdir(self.log_file.path)  # cannot be opened as the log
        self.log_file.on_usr1()
        self.log_file.write("still here\n")
        self.assertEqual(read(self.log_file.path + ".1"), "still here\n")
        self.assertIn("cannot reopen log file", self.messages(LogLevel.error)[0])


class AsTwistedWritesTests(SynchronousTestCase):
    """RotatingLogFile.write does what Twisted's LogFile.write does: the same files, the same size count."""

    def test_same_files_as_twisted(self) -> None:
        lines: list[str | bytes] = ["plain line\n", "caf\u00e9 \u2603 line\n", b"bytes line\n", "x" * 30 + "\n"] * 6
        results = []
        for kind in (logfile.LogFile, RotatingLogFile):
            directory = os.path.realpath(self.mktemp())
            os.makedirs(directory)
            log_file = kind("twistd.log", directory, rotateLength=50)
            sizes = []
            for line in lines:
                log_file.write(line)
                sizes.append(log_file.size)
            log_file.close()
            files = {name: read(os.path.join(directory, name)) for name in sorted(os.listdir(directory))}
            results.append((sizes, files))
        self.assertEqual(results[1], results[0])
        self.assertGreater(len(results[0][1]), 3)  # the size limit rotated several times


class LinkTests(SynchronousTestCase):
    """A link the account put at the log file's name: never opened through, never given away."""

    def setUp(self) -> None:
        self.dir = os.path.realpath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "pymta.log")
        self.victim = os.path.join(self.dir, "victim")
        with open(self.victim, "w") as f:
            f.write("secret\n")
        os.chmod(self.victim, 0o600)
        self.account = Account(MAIL, MAIL) if os.getuid() == 0 else Account(os.getuid(), os.getgid())

    def assertVictimUntouched(self) -> None:
        st = os.stat(self.victim)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (os.getuid(), os.getgid(), 0o600))
        self.assertEqual(read(self.victim), "secret\n")

    def test_symbolic_link_refused(self) -> None:
        os.symlink(self.victim, self.path)
        e = self.assertRaises(UnsafeFile, RotatingLogFile.fromFullPath, self.path)
        self.assertIn(f"{self.path} is a symbolic link", str(e))
        self.assertVictimUntouched()

    def test_hard_link_refused_as_root(self) -> None:
        if os.geteuid() != 0:
            raise self.skipTest("as root only: another account's own hard link gains it nothing")
        os.link(self.victim, self.path)
        e = self.assertRaises(UnsafeFile, RotatingLogFile.fromFullPath, self.path)
        self.assertIn("has 2 names (hard links)", str(e))
        self.assertVictimUntouched()

    def test_file_replaced_before_the_hand_over_is_kept(self) -> None:
        log_file = RotatingLogFile.fromFullPath(self.path)
        self.addCleanup(log_file.close)
        os.unlink(self.path)
        os.link(self.victim, self.path)  # what the account could do in its directory
        warning = log_file.hand_over(self.account)
        assert warning is not None
        self.assertIn(f"log file {self.path}: not given to {self.account}: ", warning)
        self.assertEqual(log_file.mode, REOPEN)
        self.assertVictimUntouched()

    def test_created_with_the_default_mode(self) -> None:
        log_file = RotatingLogFile.fromFullPath(self.path, defaultMode=0o640)
        self.addCleanup(log_file.close)
        log_file.write("line\n")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)
        self.assertEqual(read(self.path), "line\n")
        self.assertEqual(log_file.size, 5)


class TwistdChildTests(SynchronousTestCase):
    """As root: `twistd pymta-send --logfile --pidfile` with both files in a root-owned or a mail-owned directory."""

    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        self.base = tempfile.mkdtemp(prefix="pymta-log-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)
        self.root = os.path.join(self.base, "root")
        subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", "init", self.root, "--me", "log.test", "--mail-uid", f"{MAIL}:{MAIL}"],
            check=True, capture_output=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
        )
        self.logs = os.path.join(self.base, "logs")
        os.mkdir(self.logs, 0o755)
        self.log = os.path.join(self.logs, "send.log")
        self.pid = os.path.join(self.logs, "send.pid")

    def start(self) -> int:
        """A daemonized twistd pymta-send; its pid once it has dropped root."""
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        subprocess.run(
            [sys.executable, "-c", twistd, "--pidfile", self.pid, "--logfile", self.log, "pymta-send", "--root", self.root],
            check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), timeout=60,
        )
        self.assertTrue(wait_until(lambda: "dropped root" in read(self.log)), read(self.log))
        pid = int(read(self.pid))
        self.addCleanup(self.kill, pid)
        return pid

    def kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self, pid: int) -> None:
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: process_ended(pid)), "twistd did not stop")

    def test_root_owned_directory(self) -> None:
        pid = self.start()
        text = read(self.log)
        self.assertIn(f"[pymta#warn] log file {self.log}: {self.logs} is not writable by uid {MAIL} gid {MAIL}", text)
        self.assertIn(f"[pymta#info] pid file {self.pid}: {self.logs} is not writable by uid {MAIL} gid {MAIL}; "
                      "a helper process (pid ", text)
        # logrotate: rename, create the new file for the account, SIGUSR1
        os.rename(self.log, self.log + ".1")
        fd = os.open(self.log, os.O_CREAT | os.O_WRONLY, 0o640)
        os.fchown(fd, MAIL, MAIL)
        os.close(fd)
        os.kill(pid, signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: "reopened" in read(self.log)), read(self.log))
        self.stop(pid)
        self.assertIn("Server Shut Down.", read(self.log))
        self.assertNotIn("Server Shut Down.", read(self.log + ".1"))
        self.assertTrue(wait_until(lambda: not os.path.exists(self.pid)), "the pid file stayed")
        self.assertNotIn("Traceback", read(self.log) + read(self.log + ".1"))

    def test_directory_of_the_mail_account(self) -> None:
        os.chown(self.logs, MAIL, MAIL)
        pid = self.start()
        self.assertNotIn("is not writable", read(self.log))
        os.kill(pid, signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: "rotated" in read(self.log)), read(self.log))
        self.assertIn("dropped root: running as uid 4242", read(self.log + ".1"))
        self.stop(pid)
        self.assertIn("Server Shut Down.", read(self.log))
        self.assertFalse(os.path.exists(self.pid))  # removed by twistd itself, now the account's file
        self.assertNotIn("Traceback", read(self.log) + read(self.log + ".1"))

    def refused(self, *twistd_args: str) -> str:
        """stderr of a `twistd -n ... pymta-send` that must refuse to start."""
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        done = subprocess.run(
            [sys.executable, "-c", twistd, "-n", *twistd_args, "pymta-send", "--root", self.root],
            capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), timeout=60,
        )
        self.assertNotEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertNotIn("Traceback", done.stdout + done.stderr)
        return done.stderr.strip()

    def victim(self) -> str:
        victim = os.path.join(self.base, "victim")
        with open(victim, "w") as f:
            f.write("secret\n")
        os.chmod(victim, 0o600)
        return victim

    def assertRootsOwn(self, victim: str) -> None:
        st = os.stat(victim)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (0, 0, 0o600))
        self.assertEqual(read(victim), "secret\n")

    def test_log_file_symbolic_link_to_a_root_file(self) -> None:
        """The review's report: the account links its log file name to a root-owned file."""
        os.chown(self.logs, MAIL, MAIL)
        victim = self.victim()
        os.symlink(victim, self.log)
        error = self.refused("--pidfile=", "--logfile", self.log)
        self.assertEqual(error, f"pymta-send: cannot open the log file: {self.log} is a symbolic link (to {victim!r}); "
                                "pymta opens this file as root and follows no link there: name the file itself")
        self.assertRootsOwn(victim)

    def test_log_file_hard_link_to_a_root_file(self) -> None:
        os.chown(self.logs, MAIL, MAIL)
        victim = self.victim()
        os.link(victim, self.log)
        error = self.refused("--pidfile=", "--logfile", self.log)
        self.assertIn("cannot open the log file: ", error)
        self.assertIn("has 2 names (hard links)", error)
        self.assertNotIn("\n", error)
        self.assertRootsOwn(victim)

    def test_pid_file_symbolic_link(self) -> None:
        """A link to a name that does not exist yet: refused before twistd opens it (pymta.pidfilecheck), nothing created as root."""
        os.chown(self.logs, MAIL, MAIL)
        target = os.path.join(self.base, "created-by-root")
        os.symlink(target, self.pid)
        stderr = self.refused("--pidfile", self.pid, "--logfile", self.log)
        self.assertTrue(stderr.startswith(f"pymta-send: not starting: pid file: {self.pid} is a symbolic link"), stderr)
        self.assertEqual(len(stderr.splitlines()), 1, stderr)
        self.assertFalse(os.path.lexists(target))
        self.assertTrue(os.path.islink(self.pid))  # left as it was
