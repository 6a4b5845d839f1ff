"""
pymta.cli.initcontrols: the settings `pymta init` writes into a new root
are read by the daemons' own parsers as meant, are listed in
docs/control.md, and hold on a real server built from a fresh root: an
unknown local recipient is refused at RCPT with 550, a message over the
size limit with 552.
"""

from __future__ import annotations

import io
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import init
from pymta.cli.initcontrols import MESSAGE_SIZE_LIMIT, NEW_ROOT_CONTROLS, SMTPD_LINE_TIMEOUT
from pymta.control import load_controls
from pymta.extracontrols import check_extra_controls
from pymta.smtpd.rcptcheck import rcptcheck_enabled
from tests.waiting import wait_until

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
ME = "mx.example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SettingsTests(SynchronousTestCase):
    def test_read_by_the_daemons_parsers(self) -> None:
        control = os.path.join(self.mktemp(), "control")
        os.makedirs(control)
        for setting in NEW_ROOT_CONTROLS:
            with open(os.path.join(control, setting.name), "wb") as f:
                f.write(setting.data)
        controls = load_controls(os.path.dirname(control))
        check_extra_controls(controls)
        self.assertEqual(controls.databytes, MESSAGE_SIZE_LIMIT)
        self.assertEqual(controls.databytes, 36700160)
        self.assertEqual(controls.timeoutsmtpd, SMTPD_LINE_TIMEOUT)
        self.assertTrue(rcptcheck_enabled(controls))
        self.assertEqual(controls.extra_lines("rcptcheck"), [])  # comment lines only

    def test_listed_in_docs_with_a_reason(self) -> None:
        with open(os.path.join(PROJECT, "docs", "control.md"), encoding="utf-8") as f:
            text = f.read()
        match = re.search(r"^## What pymta init writes, and why\n(.*?)(?=^## )", text, re.M | re.S)
        assert match is not None, "docs/control.md has no section 'What pymta init writes, and why'"
        section = match.group(1)
        for setting in NEW_ROOT_CONTROLS:
            row = re.search(rf"^\| `{setting.name}` \|([^\n]*)$", section, re.M)
            assert row is not None, setting.name
            value = setting.text.strip() if not setting.text.startswith("#") else "(present)"
            self.assertIn(value, row.group(1).replace(",", ""))


class FreshRootServerTests(SynchronousTestCase):
    """
    `pymta init` (as root with the nobody account as mail uid, else as the
    invoking user), nothing changed afterwards, then `twistd -n pymta` on a
    free loopback port, talked to with smtplib.
    """

    timeout = 120

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-initdefaults-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)  # the mail uid must reach the root
        self.root = os.path.join(self.base, "root")
        argv = [self.root, "--me", ME, "--user", "alice:secret"]
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            argv += ["--mail-uid", f"{nobody.pw_uid}:{nobody.pw_gid}"]
        err = io.StringIO()
        self.assertEqual(init.main(argv, stdout=io.StringIO(), stderr=err), 0, err.getvalue())
        self.port = free_port()
        self.log = os.path.join(self.base, "twistd.log")
        with open(self.log, "wb") as log:
            self.twistd = subprocess.Popen(
                [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "--logfile=-", "pymta", "--root", self.root,
                 "--smtp", f"tcp:{self.port}:interface=127.0.0.1"],
                cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
            )
        self.addCleanup(self.stop)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return self.twistd.poll() is not None

        self.assertTrue(wait_until(listening, 60) and self.twistd.poll() is None, self.text())

    def stop(self) -> None:
        if self.twistd.poll() is None:
            self.twistd.terminate()
            try:
                self.twistd.wait(30)
            except subprocess.TimeoutExpired:
                self.twistd.kill()
                self.twistd.wait()

    def text(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def test_unknown_local_user_refused_at_rcpt(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            self.assertEqual(client.ehlo("client.example")[0], 250)
            self.assertEqual(client.mail("carol@example.net")[0], 250)
            self.assertEqual(client.rcpt(f"nosuchuser@{ME}"), (550, b"sorry, no mailbox here by that name (#5.1.1)"))
            self.assertEqual(client.rcpt(f"alice-nosuchlist@{ME}")[0], 550)
            self.assertEqual(client.rcpt(f"alice@{ME}")[0], 250)
            self.assertEqual(client.rcpt(f"postmaster@{ME}")[0], 250)
            self.assertEqual(client.data(b"Subject: known\r\n\r\nfor alice and postmaster\r\n")[0], 250)
        new = os.path.join(self.root, "home", "alice", "Maildir", "new")
        self.assertTrue(wait_until(lambda: len(os.listdir(new)) == 2, 30), self.text())  # alice, and postmaster's &alice
        self.assertNotIn("bounce msg", self.text())

    def test_size_limit(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo("client.example")
            self.assertEqual(client.esmtp_features["size"], str(MESSAGE_SIZE_LIMIT))
            code, text = client.mail("carol@example.net", [f"SIZE={MESSAGE_SIZE_LIMIT + 1}"])
            self.assertEqual((code, text), (552, b"sorry, that message size exceeds my databytes limit (#5.3.4)"))
            self.assertEqual(client.mail("carol@example.net", [f"SIZE={MESSAGE_SIZE_LIMIT}"])[0], 250)
