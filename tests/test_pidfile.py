"""pymta.pidfile: a pid file the dropped account cannot remove is removed by a helper when the daemon ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from twisted.trial.unittest import SynchronousTestCase

from pymta.fsaccess import Account
from pymta.pidfile import UnsafeFile, hand_over_pid_file, write_pid_file
from tests.waiting import process_ended, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# writes its pid file, hands it over for an account that may not write the directory, then
# "exit" (ends), "sleep" (waits to be killed) or "replace" (another process's pid, then ends)
DAEMON = textwrap.dedent(
    """
    import os, sys, time
    from pymta.fsaccess import Account
    from pymta.pidfile import hand_over_pid_file
    path, how = sys.argv[1], sys.argv[2]
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\\n")
    print(hand_over_pid_file(path, Account(os.getuid() + 4242, os.getgid() + 4242)), flush=True)
    if how == "sleep":
        time.sleep(60)
    if how == "replace":
        with open(path, "w") as f:
            f.write("1\\n")
    """
)


class HelperTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pymta-pid-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)  # writable by its owner only
        self.path = os.path.join(self.dir, "twistd.pid")

    def daemon(self, how: str) -> subprocess.Popen:
        """The daemon, once it has handed its pid file over; its helper's pid in C{self.helper}."""
        proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, self.path, how],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO,
        )
        self.addCleanup(proc.wait, 30)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        assert proc.stdout is not None
        line = proc.stdout.readline()
        self.assertIn(f"pid file {self.path}: {self.dir} is not writable by uid ", line)
        self.assertIn("a helper process (pid ", line)
        self.helper = int(line.split("a helper process (pid ", 1)[1].split(",", 1)[0])
        return proc

    def test_removed_after_a_normal_end(self) -> None:
        proc = self.daemon("exit")
        self.assertEqual(proc.wait(30), 0)
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path)), "pid file still there")

    def test_removed_after_sigkill(self) -> None:
        proc = self.daemon("sleep")
        time.sleep(0.2)
        self.assertTrue(os.path.exists(self.path))  # kept while the daemon runs
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path)), "pid file still there")

    def test_helper_ignores_the_terminals_signals(self) -> None:
        proc = self.daemon("sleep")
        os.kill(self.helper, signal.SIGINT)
        os.kill(self.helper, signal.SIGTERM)
        time.sleep(0.2)
        os.kill(self.helper, 0)  # still there
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path)), "pid file still there")

    def test_a_file_naming_another_process_stays(self) -> None:
        proc = self.daemon("replace")
        self.assertEqual(proc.wait(30), 0)
        self.assertTrue(wait_until(lambda: process_ended(self.helper)), "the helper is still there")  # it has decided
        with open(self.path) as f:
            self.assertEqual(f.read(), "1\n")


class OwnDirectoryTests(SynchronousTestCase):
    def test_account_may_write_the_directory(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (chown)")
        directory = tempfile.mkdtemp(prefix="pymta-pid-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)
        os.chown(directory, 4242, 4242)
        path = os.path.join(directory, "twistd.pid")
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
        self.assertIsNone(hand_over_pid_file(path, Account(4242, 4242)))
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid), (4242, 4242))

    def test_hard_link_not_given_away(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (chown)")
        directory = tempfile.mkdtemp(prefix="pymta-pid-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chown(directory, 4242, 4242)
        victim = os.path.join(directory, "victim")
        with open(victim, "w") as f:
            f.write("1\n")
        os.chmod(victim, 0o600)
        path = os.path.join(directory, "twistd.pid")
        os.link(victim, path)  # what the account could do in its directory
        e = self.assertRaises(UnsafeFile, hand_over_pid_file, path, Account(4242, 4242))
        self.assertIn("has 2 names (hard links)", str(e))
        self.assertEqual(os.stat(victim).st_uid, 0)

    def test_written_anew_and_given_through_its_descriptor(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (chown)")
        directory = tempfile.mkdtemp(prefix="pymta-pid-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chown(directory, 4242, 4242)
        path = os.path.join(directory, "twistd.pid")
        fd = write_pid_file(path)
        try:
            self.assertIsNone(hand_over_pid_file(path, Account(4242, 4242), fd))
        finally:
            os.close(fd)
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (4242, 0o644))
        with open(path) as f:
            self.assertEqual(f.read(), str(os.getpid()))
        e = self.assertRaises(UnsafeFile, write_pid_file, path)  # never over what is there
        self.assertIn("appeared after twistd checked it", str(e))
