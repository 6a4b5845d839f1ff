"""
The capabilities each unit keeps are enough, checked without systemd: the
daemons run from the deployed .tac files under C{setpriv} with exactly the
unit's C{CapabilityBoundingSet=} and C{NoNewPrivileges=} (pymta-smtpd as
the mail uid with its one ambient capability), bind ports below 1024, and a
message goes from SMTP to a Maildir and out over POP3 with STLS.

Root only (capabilities are what is tested); skipped without C{setpriv}.
"""

from __future__ import annotations

import contextlib
import io
import os
import poplib
import random
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

from typing import Callable

from twisted.trial.unittest import SkipTest, TestCase

from pymta.cli import init as init_command
from tests.deploy.units import parse_unit, write_deployment

SETPRIV = shutil.which("setpriv")
MAIL_UID = 4242
HOST = "127.0.0.1"
DEADLINE = 30.0


def low_port() -> int:
    """A free port below 1024 on 127.0.0.1 (binding it needs CAP_NET_BIND_SERVICE)."""
    for port in random.sample(range(600, 1000), 200):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise SkipTest("no free port below 1024 on 127.0.0.1")


def setpriv_caps(unit: dict[str, list[str]]) -> str:
    """CapabilityBoundingSet=CAP_A CAP_B as setpriv's +a,+b."""
    return ",".join("+" + c.removeprefix("CAP_").lower() for c in unit["Service.CapabilityBoundingSet"][0].split())




class CapabilityTests(TestCase):
    def setUp(self) -> None:
        if os.getuid() != 0:
            raise SkipTest("needs root (runs the daemons with the units' capability sets)")
        if SETPRIV is None:
            raise SkipTest("setpriv is not installed (Debian: util-linux)")
        # the mail uid must reach the root: not under trial's mode 0700 directories
        self.base = tempfile.mkdtemp(prefix="pymta-caps-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)
        self.running: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        self.root = os.path.join(self.base, "root")
        with contextlib.redirect_stdout(io.StringIO()):
            made = init_command.main([self.root, "--me", "caps.example", "--mail-uid", f"{MAIL_UID}:{MAIL_UID}",
                                      "--user", "alice:secret"])
        self.assertEqual(made, 0)
        paths = write_deployment(self.base, self.root)
        self.units = {}
        for name, path in paths.items():
            with open(path) as f:
                self.units[name] = parse_unit(f.read())
        self.tac_dir = os.path.join(self.base, "tac")
        self.smtp, self.pop3 = low_port(), low_port()
        self.env = {**os.environ, "PYMTA_ROOT": self.root,
                    "PYMTA_SMTP": f"tcp:{self.smtp}:interface={HOST}", "PYMTA_POP3": f"tcp:{self.pop3}:interface={HOST}",
                    "PYMTA_SUBMISSION": f"tcp:0:interface={HOST}"}

    def start(self, unit_name: str, tac: str, as_mail_user: bool = False) -> None:
        unit = self.units[unit_name]
        caps = setpriv_caps(unit)
        argv = [SETPRIV, "--bounding-set", f"-all,{caps}"]
        if as_mail_user:
            argv += ["--reuid", str(MAIL_UID), "--regid", str(MAIL_UID), "--clear-groups",
                     "--inh-caps", f"-all,{caps}", "--ambient-caps", f"-all,{caps}"]
        if unit["Service.NoNewPrivileges"] == ["yes"]:
            argv.append("--no-new-privs")
        twistd = unit["Service.ExecStart"][0].split()[0]
        log = os.path.join(self.base, tac + ".log")
        open(log, "w").close()
        if as_mail_user:
            os.chown(log, MAIL_UID, MAIL_UID)
        argv += [twistd, "--nodaemon", "--pidfile=", f"--logfile={log}", "-y", os.path.join(self.tac_dir, tac)]
        process = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop() -> None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.addCleanup(stop)
        self.running[tac] = (process, log)

    def wait_until(self, test: Callable[[], object], what: str) -> None:
        """Poll C{test} until true; fail at once, with its log, when a daemon has exited."""
        give_up = time.monotonic() + DEADLINE
        while time.monotonic() < give_up:
            for tac, (process, log) in self.running.items():
                if process.poll() is not None:
                    with open(log) as f:
                        tail = "".join(f.readlines()[-15:])
                    self.fail(f"{tac} exited with {process.returncode} while waiting for {what}:\n{tail}")
            try:
                if test():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}")

    def send_and_read(self) -> None:
        def smtp_up() -> bool:
            with smtplib.SMTP(HOST, self.smtp, timeout=10) as s:
                return s.noop()[0] == 250
        self.wait_until(smtp_up, f"SMTP on port {self.smtp}")
        with smtplib.SMTP(HOST, self.smtp, timeout=10) as s:
            s.starttls(context=ssl._create_unverified_context())
            refused = s.sendmail("carol@example.net", ["alice@caps.example"], "Subject: caps\n\nwithin the bounding set\n")
        self.assertEqual(refused, {})
        new = os.path.join(self.root, "home", "alice", "Maildir", "new")
        self.wait_until(lambda: len(os.listdir(new)) == 1, "delivery to alice's Maildir")
        delivered = os.path.join(new, os.listdir(new)[0])
        self.assertEqual(os.stat(delivered).st_uid, MAIL_UID)
        self.read_pop3(b"within the bounding set")

    def read_pop3(self, body: bytes) -> None:
        self.wait_until(lambda: poplib.POP3(HOST, self.pop3, timeout=10).quit(), f"POP3 on port {self.pop3}")
        p = poplib.POP3(HOST, self.pop3, timeout=10)
        p.stls(ssl._create_unverified_context())
        p.user("alice")
        p.pass_("secret")
        self.assertEqual(p.stat()[0], 1)
        self.assertIn(body, p.retr(1)[1])
        p.dele(1)
        p.quit()
        maildir = os.path.join(self.root, "home", "alice", "Maildir")
        self.assertEqual(os.listdir(os.path.join(maildir, "new")) + os.listdir(os.path.join(maildir, "cur")), [])

    def test_split_units(self) -> None:
        """pymta-send (root, 4 capabilities), pymta-smtpd (mail uid, 1), pymta-pop3d (root, 4)."""
        self.start("pymta-send.service", "send.tac")
        self.wait_until(lambda: os.path.exists(os.path.join(self.root, "run", "inject.sock")), "the inject socket")
        self.start("pymta-smtpd.service", "smtpd.tac", as_mail_user=True)
        self.start("pymta-pop3d.service", "pop3d.tac")
        self.send_and_read()

    def test_all_in_one(self) -> None:
        self.start("pymta.service", "pymta.tac")
        self.send_and_read()
