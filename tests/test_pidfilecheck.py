"""pymta.pidfilecheck: twistd's pid file looked at, as root, before twistd opens it."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.pidfilecheck import pid_file_problem, refuse_unsafe_pid_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


class ProblemTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "twistd.pid")
        self.other = os.path.join(self.dir, "other")
        with open(self.other, "w") as f:
            f.write("not a pid\n")

    def test_nothing_there(self) -> None:
        self.assertIsNone(pid_file_problem(self.path))

    def test_stale_regular_file(self) -> None:
        with open(self.path, "w") as f:
            f.write("999999\n")
        self.assertIsNone(pid_file_problem(self.path))

    def test_fifo_is_not_waited_for(self) -> None:
        os.mkfifo(self.path)
        self.assertEqual(pid_file_problem(self.path), f"{self.path} is not a regular file")

    def test_symbolic_link(self) -> None:
        os.symlink(self.other, self.path)
        problem = pid_file_problem(self.path)
        assert problem is not None
        self.assertIn(f"{self.path} is a symbolic link", problem)

    def test_hard_link(self) -> None:
        os.link(self.other, self.path)
        self.assertIn("2 names", pid_file_problem(self.path) or "")

    def test_directory(self) -> None:
        os.mkdir(self.path)
        self.assertEqual(pid_file_problem(self.path), f"{self.path} is not a regular file")

    def test_refusal_is_one_line_and_only_as_root(self) -> None:
        os.mkfifo(self.path)

        class Parent(dict):  # type: ignore[type-arg]
            pass

        class Options:
            parent = Parent(pidfile=self.path)

        if os.geteuid() != 0:
            refuse_unsafe_pid_file(Options(), "pymta-test")  # not root: twistd's own way
            return
        e = self.assertRaises(SystemExit, refuse_unsafe_pid_file, Options(), "pymta-test")
        self.assertEqual(str(e.code), f"pymta-test: not starting: pid file: {self.path} is not a regular file")
        Options.parent = Parent(pidfile="")
        refuse_unsafe_pid_file(Options(), "pymta-test")  # no pid file: nothing to look at


class TwistdChildTests(SynchronousTestCase):
    """A real C{twistd} child as root, with the mail account's tricks at the pid file's path."""

    PLUGINS = {
        "pymta-smtpd": ["--listen", "tcp:0:interface=127.0.0.1"],
        "pymta-pop3d": ["--listen", "tcp:0:interface=127.0.0.1"],
        "pymta-send": [],
        "pymta": ["--smtp", "tcp:0:interface=127.0.0.1"],
    }

    def setUp(self) -> None:
        if os.geteuid() != 0:
            raise self.skipTest("needs root: the check runs only as root")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.base, "run"))
        self.pidfile = os.path.join(self.base, "run", "twistd.pid")

    def twistd(self, plugin: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", TWISTD, "-n", f"--pidfile={self.pidfile}",
                   f"--logfile={os.path.join(self.base, 'twistd.log')}", plugin,
                   "--root", os.path.join(self.base, "no-such-root"), *self.PLUGINS[plugin]]
        return subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    def test_fifo_refused_at_once_by_every_plugin(self) -> None:
        os.mkfifo(self.pidfile)
        for plugin in self.PLUGINS:
            done = self.twistd(plugin)
            self.assertNotEqual(done.returncode, 0, plugin)
            self.assertEqual(
                done.stderr.strip().splitlines(),
                [f"{plugin}: not starting: pid file: {self.pidfile} is not a regular file"],
            )

    def test_symbolic_link_refused(self) -> None:
        target = os.path.join(self.base, "target")
        with open(target, "w") as f:
            f.write("1\n")  # a live pid: twistd would refuse to start, following the link
        os.symlink(target, self.pidfile)
        done = self.twistd("pymta-smtpd")
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn(f"pymta-smtpd: not starting: pid file: {self.pidfile} is a symbolic link", done.stderr)

    def test_stale_regular_file_is_removed_by_twistd(self) -> None:
        with open(self.pidfile, "w") as f:
            f.write("999999999\n")  # above pid_max: no such process
        done = self.twistd("pymta-smtpd")
        self.assertNotIn("pid file", done.stderr)
        self.assertFalse(os.path.exists(self.pidfile))  # twistd's checkPID ran and removed it
