"""
pymta.privileges: the mail account of a root, and no daemon started as root
without one - real twistd children (plugins and .tac files) refuse with one
line, no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.privileges import PrivilegeError, mail_account, refuse_root_without_account

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


class MailAccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root (chown)")
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def make(self, name: str, owner: int) -> str:
        path = os.path.join(self.root, name)
        os.mkdir(path)
        os.chown(path, owner, owner + 1)
        return path

    def test_queue_owner(self) -> None:
        self.make("queue", 4242)
        self.make("run", 4343)
        self.assertEqual(mail_account(self.root), (4242, 4243))

    def test_root_owned_queue(self) -> None:
        queue = self.make("queue", 0)
        self.make("run", 4343)  # does not stand in for a queue owned by root
        e = self.assertRaises(PrivilegeError, mail_account, self.root)
        self.assertIn(f"{queue} is owned by root", str(e))
        self.assertIn(f"chown -R UID:GID {queue} {self.root}/run", str(e))

    def test_pop3_only_root_uses_run(self) -> None:
        self.make("run", 4343)
        self.assertEqual(mail_account(self.root), (4343, 4344))

    def test_pop3_only_root_with_root_owned_run(self) -> None:
        run = self.make("run", 0)
        e = self.assertRaises(PrivilegeError, mail_account, self.root)
        self.assertIn(f"{run} is owned by root and there is no queue", str(e))
        self.assertIn(f"chown UID:GID {run}", str(e))

    def test_neither(self) -> None:
        e = self.assertRaises(PrivilegeError, mail_account, self.root)
        self.assertIn(f"pymta init {self.root} --mail-uid UID:GID", str(e))

    def test_refusal_is_one_line(self) -> None:
        self.make("queue", 0)
        e = self.assertRaises(SystemExit, refuse_root_without_account, self.root, "pymta-test")
        text = str(e.code)
        self.assertTrue(text.startswith("pymta-test: refusing to run as root: "), text)
        self.assertNotIn("\n", text)
        self.make("run", 4242)
        os.rmdir(os.path.join(self.root, "queue"))
        refuse_root_without_account(self.root, "pymta-test")  # an account now: nothing happens


class RefusingChildrenTests(SynchronousTestCase):
    """Started as root on a root whose queue root owns, every daemon exits non-zero with one line."""

    def setUp(self) -> None:
        if os.getuid() != 0:
            raise self.skipTest("needs root")
        base = tempfile.mkdtemp(prefix="pymta-priv-")
        self.addCleanup(shutil.rmtree, base, True)
        os.chmod(base, 0o755)  # the mail uid must reach the root
        self.root = os.path.join(base, "root")
        subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", "init", self.root, "--me", "priv.test", "--mail-uid", "4242:4242"],
            check=True, capture_output=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
        )
        for dirpath, _, filenames in os.walk(os.path.join(self.root, "queue")):
            for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                os.lchown(name, 0, 0)
        self.queue = os.path.join(self.root, "queue")

    def run_twistd(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = subprocess.run(
            [sys.executable, "-c", TWISTD, *args], capture_output=True, text=True, timeout=60, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=REPO, **(env or {})),
        )
        return proc.returncode, proc.stdout, proc.stderr

    def assertRefused(self, program: str, code: int, out: str, err: str) -> None:
        self.assertNotEqual(code, 0)
        text = out + err
        self.assertNotIn("Traceback", text)
        lines = [line for line in text.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, text)
        self.assertIn(f"{program}: refusing to run as root: {self.queue} is owned by root", lines[0])
        self.assertIn("chown -R UID:GID", lines[0])

    def test_plugins(self) -> None:
        listen = "tcp:0:interface=127.0.0.1"
        for program, args in (
            ("pymta-smtpd", ["--listen", listen]),
            ("pymta-send", []),
            ("pymta-pop3d", ["--listen", listen]),
            ("pymta", ["--smtp", listen]),
        ):
            with self.subTest(program=program):
                code, out, err = self.run_twistd("-n", "--pidfile=", "--logfile=-", program, "--root", self.root, *args)
                self.assertRefused(program, code, out, err)

    def test_daemon_mode_refuses_before_detaching(self) -> None:
        pid_file = os.path.join(os.path.dirname(self.root), "smtpd.pid")
        code, out, err = self.run_twistd(
            "--pidfile", pid_file, "--logfile", os.devnull,
            "pymta-smtpd", "--root", self.root, "--listen", "tcp:0:interface=127.0.0.1",
        )
        self.assertRefused("pymta-smtpd", code, out, err)
        self.assertFalse(os.path.exists(pid_file))

    def test_tac_files(self) -> None:
        env = {"PYMTA_ROOT": self.root, "PYMTA_SMTP": "tcp:0:interface=127.0.0.1", "PYMTA_SUBMISSION": "",
               "PYMTA_POP3": "tcp:0:interface=127.0.0.1"}
        for tac, program in (("smtpd.tac", "pymta-smtpd"), ("pymta.tac", "pymta"), ("pop3d.tac", "pymta-pop3d")):
            with self.subTest(tac=tac):
                code, out, err = self.run_twistd(
                    "-n", "--pidfile=", "--logfile=-", "-y", os.path.join(REPO, "pymta", "deploy", "tac", tac), env=env
                )
                self.assertRefused(program, code, out, err)

    def test_twistd_uid_is_an_account(self) -> None:
        """With twistd's own --uid the process does not stay root: no refusal at start."""
        from pymta.privileges import RootDroppingService

        class Options(dict):  # what use_twistd_options reads of twistd's ServerOptions
            subCommand = "pymta-smtpd"

        service = RootDroppingService(self.root)
        service.use_twistd_options(Options(uid=65534, gid=65534, nodaemon=True, logfile="-"))
        self.assertIsNone(service.log_observer)  # not twistd's real options: twistd's own logger stays
        self.assertRaises(SystemExit, service.use_twistd_options, Options(uid=None, nodaemon=True))
