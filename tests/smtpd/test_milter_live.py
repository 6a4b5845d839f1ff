"""
Content filters in a real `twistd pymta`: tests/milter/pymilterfilter.py (pymilter on Sendmail's libmilter,
Debian's python3-milter) on a loopback TCP port, listed in control/milters, mail sent with smtplib and read
back from the Maildirs and the queue.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

from twisted.trial import unittest

from tests.packages import ensure_debian_python_module
from tests.test_end_to_end import SRC, free_port, init_root, start_listening, start_twistd, wait_for

SCRIPT = os.path.join(SRC, "tests", "milter", "pymilterfilter.py")
TWISTD = [os.path.join(os.path.dirname(sys.executable), "twistd")]


class LiveFilterTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        python = ensure_debian_python_module("Milter", "python3-milter")
        if python is None:
            raise unittest.SkipTest("needs Debian's python3-milter (pymilter) for /usr/bin/python3")
        self.python = python
        base = tempfile.mkdtemp(prefix="pymta-mlt-")  # short: unix socket paths; traversable by the mail uid
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.base = base
        self.root = os.path.join(base, "root")
        init_root(self.root, "alice:secret", "bob:secret")
        self.log = os.path.join(self.root, "twistd.log")

    def pymta(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], check=True, cwd=SRC,
                              stdout=subprocess.PIPE, text=True).stdout

    def start(self, *filter_args: str, options: str = "") -> str:
        """The filter on a free port, control/milters naming it, then twistd pymta; the SMTP port."""
        port = free_port()
        self.seen = os.path.join(self.base, "seen.jsonl")
        start_listening(self, [self.python, SCRIPT, "--socket", f"inet:{port}@127.0.0.1", "--seen", self.seen,
                               *filter_args], "the test milter", None, [port])
        with open(os.path.join(self.root, "control", "milters"), "w") as f:
            f.write(f"test inet:127.0.0.1:{port} {options}\n")
        smtp, pop3 = free_port(), free_port()
        start_twistd(self, TWISTD, ["pymta", "--root", self.root, "--smtp", f"tcp:{smtp}:interface=127.0.0.1",
                                    "--pop3", f"tcp:{pop3}:interface=127.0.0.1"], self.log, [smtp])
        return str(smtp)

    def maildir(self, user: str) -> str:
        return os.path.join(self.root, "home", user, "Maildir", "new")

    def delivered(self, user: str) -> list[bytes]:
        found = []
        for name in sorted(os.listdir(self.maildir(user))):
            with open(os.path.join(self.maildir(user), name), "rb") as f:
                found.append(f.read())
        return found

    def logged(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def test_recipients_and_body_changed(self) -> None:
        port = self.start("--add-rcpt", "bob@test.example", "--del-rcpt", "alice@test.example",
                          "--replace-body", "the filter's body\r\n", "--add-header", "X-Filtered: yes")
        with smtplib.SMTP("127.0.0.1", int(port), timeout=30) as client:
            client.sendmail("sender@remote.example", ["alice@test.example"], "Subject: filtered\r\n\r\noriginal\r\n")
        wait_for(lambda: self.delivered("bob"), 60, "bob's delivery", self.log)
        [message] = self.delivered("bob")
        self.assertIn(b"\nX-Filtered: yes\n", message)
        self.assertIn(b"Subject: filtered\n", message)
        self.assertTrue(message.endswith(b"\n\nthe filter's body\n"), message)
        self.assertNotIn(b"original", message)
        wait_for(lambda: "end msg " in self.logged(), 30, "the end of the message", self.log)
        self.assertEqual(self.delivered("alice"), [])

    def test_quarantine_held_until_released(self) -> None:
        port = self.start("--quarantine", "looks bad")
        with smtplib.SMTP("127.0.0.1", int(port), timeout=30) as client:
            client.sendmail("sender@remote.example", ["alice@test.example"], "Subject: held\r\n\r\nbody\r\n")
        text = self.logged()
        self.assertIn("quarantined (queued held): looks bad", text)
        message_id = re.findall(r"message (\d+) queued", text)[-1]
        wait_for(lambda: f"{message_id} " in self.pymta("ctl", "--root", self.root, "queue"), 30, "the queue listing")
        listing = self.pymta("ctl", "--root", self.root, "queue")
        self.assertIn(f"msg {message_id} local held", listing)
        self.assertIn(f"#{message_id} ", self.pymta("qread", "--root", self.root))
        self.assertIn(" held", [line for line in self.pymta("qread", "--root", self.root).splitlines()
                                if f"#{message_id} " in line][0])
        self.assertEqual(self.delivered("alice"), [])
        self.assertIn("released", self.pymta("ctl", "--root", self.root, "release", message_id))
        wait_for(lambda: self.delivered("alice"), 60, "alice's delivery after the release", self.log)

    def test_a_silent_filter_tempfails_after_its_timeout_while_others_go_on(self) -> None:
        port = self.start("--silent-at", "rcpt", options="command=2")
        stalled = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
        self.addCleanup(stalled.close)
        stalled.ehlo("stalled.example")
        stalled.mail("sender@remote.example")
        started = time.monotonic()
        stalled.putcmd("rcpt", "TO:<alice@test.example>")
        with smtplib.SMTP("127.0.0.1", int(port), timeout=30) as other:  # meanwhile, another session
            self.assertEqual(other.ehlo("other.example")[0], 250)
            self.assertEqual(other.mail("sender@remote.example")[0], 250)
            self.assertEqual(other.noop()[0], 250)
        self.assertLess(time.monotonic() - started, 2)  # answered while the first session waited
        code, text = stalled.getreply()
        self.assertEqual(code // 100, 4, text)
        self.assertGreaterEqual(time.monotonic() - started, 1.5)
