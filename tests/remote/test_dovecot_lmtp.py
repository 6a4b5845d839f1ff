"""
LMTP delivery to Debian's Dovecot through a running C{twistd pymta}.

A private Dovecot (L{tests.dovecot}: LMTP only, on a unix socket and on
127.0.0.1, run as an unprivileged account) holds the mailboxes of
C{mail.test} (by its unix socket) and C{tcp.mail.test} (by TCP, two
recipients a transaction).  Mail comes in over SMTP: the known user's copy
lands in Dovecot and C{doveadm fetch} reads it, with one Return-Path and
one Delivered-To, both Dovecot's; the user Dovecot does not know is
bounced with Dovecot's 550 text; with Dovecot stopped the recipient is
deferred, and delivered once Dovecot is back and the queue is flushed.
"""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from tests.dovecot import DovecotLMTP, missing
from tests.test_end_to_end import SRC, free_port, start_twistd, wait_for


class DovecotLMTPTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        reason = missing()
        if reason is not None:
            raise unittest.SkipTest(reason)
        base = tempfile.mkdtemp(prefix="pymta-lmtp-")  # short: unix socket paths are limited
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = os.path.join(base, "root")
        os.mkdir(os.path.join(base, "dovecot"))
        self.dovecot = DovecotLMTP(os.path.join(base, "dovecot"), ["bob", "carol"], free_port())
        self.dovecot.start()
        self.addCleanup(self.dovecot.stop)

    def log_text(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def logged(self, text: str, what: str) -> None:
        wait_for(lambda: text in self.log_text(), 60, what, self.log)

    def test_delivery_to_dovecot(self) -> None:
        init = [self.root, "--me", "test.example", "--user", "alice:secret"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                       stdout=subprocess.DEVNULL)
        control = os.path.join(self.root, "control")
        with open(os.path.join(control, "rcpthosts"), "a") as f:
            f.write("mail.test\ntcp.mail.test\n")
        with open(os.path.join(control, "lmtproutes"), "w") as f:
            f.write(f"mail.test:unix:{self.dovecot.socket}\n"
                    f"tcp.mail.test:127.0.0.1:{self.dovecot.port} recipients=2 concurrency=2\n")
        smtp = free_port()
        self.log = os.path.join(self.root, "twistd.log")
        proc = start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                            ["pymta", "--root", self.root, "--smtp", f"tcp:{smtp}:interface=127.0.0.1"], self.log,
                            [smtp])

        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("alice@test.example", ["bob@mail.test", "nobody@mail.test"],
                            "Subject: to Dovecot\r\n\r\nover LMTP\r\n.leading dot\r\n")
        socket_text = self.dovecot.socket.replace(" ", "_")
        self.logged(f": success: {socket_text}_accepted_message./Remote_host_said:_250_2.0.0_<bob@mail.test>_",
                    "the success line of bob's delivery")
        self.logged(f": failure: {socket_text}_does_not_like_recipient./Remote_host_said:_550_5.1.1_"
                    "<nobody@mail.test>_User_doesn't_exist:_nobody@mail.test/", "the failure line of nobody's")
        delivered = self.dovecot.fetch("bob")
        self.assertIn("Subject: to Dovecot\n\nover LMTP\n.leading dot\n", delivered)
        headers = delivered.partition("\n\n")[0].split("\n")
        self.assertEqual([h for h in headers if h.startswith(("Return-Path:", "Delivered-To:"))],
                         ["Return-Path: <alice@test.example>", "Delivered-To: bob@mail.test"])
        self.assertIn("\tby lmtp.test with LMTP", headers)  # Dovecot's Received line, after pymta's
        self.assertIn("by test.example with SMTP", delivered)

        # the bounce of nobody@mail.test reaches alice with Dovecot's text
        alice_new = os.path.join(self.root, "home", "alice", "Maildir", "new")
        [bounce] = wait_for(lambda: os.listdir(alice_new), 60, "the bounce to alice", self.log)
        with open(os.path.join(alice_new, bounce), encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.assertIn("<nobody@mail.test>:\n", text)
        self.assertIn("Remote host said: 550 5.1.1 <nobody@mail.test> User doesn't exist", text)

        # over TCP, two recipients in one transaction: each copy delivered
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("alice@test.example", ["bob@tcp.mail.test", "carol@tcp.mail.test"],
                            "Subject: over TCP\r\n\r\nto two\r\n")
        wait_for(lambda: "over TCP" in self.dovecot.fetch("carol", "hdr"), 60, "carol's copy", self.log)
        wait_for(lambda: "over TCP" in self.dovecot.fetch("bob", "hdr"), 60, "bob's second copy", self.log)
        self.assertEqual(self.log_text().count(": success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_"),
                         2)

        # Dovecot down: a deferral; back and flushed: delivered
        self.dovecot.stop()
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("alice@test.example", ["carol@mail.test"], "Subject: while down\r\n\r\nlater\r\n")
        self.logged(": deferral: Sorry,_I_wasn't_able_to_establish_an_LMTP_connection._(#4.4.1)/",
                    "the deferral while Dovecot is down")
        self.dovecot.start()
        os.kill(proc.pid, signal.SIGALRM)  # pymta ctl flush: retry now
        wait_for(lambda: "while down" in self.dovecot.fetch("carol", "hdr"), 60, "the deferred message", self.log)
