"""
End to end: C{pymta maildirsmtp} as a real process.

A running C{twistd pymta} delivers mail for C{alice-hold-ADDRESS} into a
held Maildir (C{~alice/.qmail-hold-default}); C{pymta maildirsmtp} hands it
over to that pymta's SMTP listener, and it arrives in alice's Maildir.  A
refusing server (451 and 550) leaves the deferred message and bounces the
refused one back to its sender through the queue.
"""

from __future__ import annotations

import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

from twisted.trial import unittest

from tests.serialmail.helpers import held_maildir, hold
from tests.test_end_to_end import SRC, free_port, start_twistd, wait_for


class RefusingHandler(socketserver.StreamRequestHandler):
    """An SMTP server that defers later@ with 451 and refuses no@ with 550; takes the rest."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 refusing.test ESMTP")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            self.server.commands.append(line.rstrip(b"\r\n"))  # type: ignore[attr-defined]
            if verb == b"RCPT":
                self.reply("451 try later" if b"later@" in line else "550 no such user here" if b"no@" in line
                           else "250 ok")
            elif verb == b"DATA":
                self.reply("354 go")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.reply("250 taken")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 refusing.test")


class MaildirSMTPTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-serial-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = os.path.join(base, "root")
        init = [self.root, "--me", "test.example", "--user", "alice:secret"]
        self.owner: tuple[int, int] | None = None
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
            self.owner = (4242, 4242)
        self.pymta("init", *init)
        self.home = os.path.join(self.root, "home", "alice")
        self.smtp = free_port()
        self.qmtp = free_port()
        self.log = os.path.join(self.root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", self.root, "--smtp", f"tcp:{self.smtp}:interface=127.0.0.1",
                      "--qmtp", f"tcp:{self.qmtp}:interface=127.0.0.1"],
                     self.log, [self.smtp, self.qmtp])

    def pymta(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], cwd=SRC, capture_output=True,
                              text=True, timeout=120, check=args[0] == "init")

    def maildirsmtp(self, *args: str) -> subprocess.CompletedProcess:
        return self.pymta("maildirsmtp", "--root", self.root, *args)

    def inbox(self) -> list[bytes]:
        new = os.path.join(self.home, "Maildir", "new")
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def send(self, rcpt: str, subject: str) -> None:
        import smtplib

        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as client:
            client.sendmail("bob@remote.example", [rcpt], f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")

    def hold_for_alice(self) -> str:
        """alice's held Maildir, where the running pymta delivers alice-hold-ADDRESS."""
        with open(os.path.join(self.home, ".qmail-hold-default"), "w") as f:
            f.write("./held/\n")
        held = os.path.join(self.home, "held")
        held_maildir(held)
        if self.owner:
            for path in (self.home + "/.qmail-hold-default", held, held + "/new", held + "/cur", held + "/tmp"):
                os.chown(path, *self.owner)
        return held

    def test_held_mail_is_handed_over_to_a_running_pymta(self) -> None:
        held = self.hold_for_alice()
        self.send("alice-hold-alice@test.example", "first")
        self.send("alice-hold-alice@test.example", "second")
        wait_for(lambda: len(os.listdir(os.path.join(held, "new"))) == 2, 60, "two held messages", self.log)
        self.assertEqual(self.inbox(), [])

        done = self.maildirsmtp(held, "alice-hold-", "127.0.0.1", "--port", str(self.smtp), "client.example")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr.count(" succeeded: 127.0.0.1 accepted message./Remote host said: 250 ok"), 2,
                         done.stderr)
        self.assertEqual(os.listdir(os.path.join(held, "new")) + os.listdir(os.path.join(held, "cur")), [])
        wait_for(lambda: len(self.inbox()) == 2, 60, "the handed-over messages in alice's Maildir", self.log)
        first, second = sorted(self.inbox(), key=lambda m: b"second" in m)
        # the envelope: sender from Return-Path, recipient from Delivered-To minus the prefix
        self.assertTrue(first.startswith(b"Return-Path: <bob@remote.example>\nDelivered-To: alice@test.example\n"),
                        first[:200])
        self.assertNotIn(b"alice-hold-alice", first)  # the held copy's Delivered-To line is not handed over
        self.assertIn(b"body of first", first)
        self.assertIn(b"body of second", second)

        again = self.maildirsmtp(held, "alice-hold-", "127.0.0.1", "--port", str(self.smtp))
        self.assertEqual((again.returncode, again.stderr), (0, ""))

    def test_maildirqmtp_hands_held_mail_over_qmtp(self) -> None:
        held = self.hold_for_alice()
        self.send("alice-hold-alice@test.example", "over qmtp")
        wait_for(lambda: len(os.listdir(os.path.join(held, "new"))) == 1, 60, "one held message", self.log)

        done = self.pymta("maildirqmtp", "--root", self.root, held, "alice-hold-", "127.0.0.1",
                          "--port", str(self.qmtp))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertRegex(done.stderr, r"^maildirqmtp: info: new/\S+ succeeded: 127\.0\.0\.1 accepted message\."
                                      r"/Remote host said: ok \d+ qp \d+\n$")
        self.assertEqual(os.listdir(os.path.join(held, "new")) + os.listdir(os.path.join(held, "cur")), [])
        wait_for(lambda: len(self.inbox()) == 1, 60, "the handed-over message in alice's Maildir", self.log)
        [message] = self.inbox()
        self.assertTrue(message.startswith(b"Return-Path: <bob@remote.example>\nDelivered-To: alice@test.example\n"),
                        message[:200])
        self.assertIn(b"with QMTP", message)
        self.assertNotIn(b"alice-hold-alice", message)  # the held copy's envelope lines stay behind
        self.assertIn(b"body of over qmtp", message)

    def test_refusing_server(self) -> None:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RefusingHandler)
        server.daemon_threads = True
        server.commands = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        held = held_maildir(os.path.abspath(self.mktemp()))
        now = time.time()
        hold(held, "1.a.host", "alice@test.example", "site-later@site.example", mtime=now - 30)
        hold(held, "2.b.host", "alice@test.example", "site-no@site.example", b"Subject: refused\n\nrefused body\n",
             mtime=now - 20)
        hold(held, "3.c.host", "alice@test.example", "site-yes@site.example", mtime=now - 10)

        done = self.maildirsmtp(held, "site-", "127.0.0.1", "--port", str(server.server_address[1]), "h.example")
        self.assertEqual(done.returncode, 111, done.stderr)
        lines = done.stderr.splitlines()
        self.assertEqual(len(lines), 3, done.stderr)
        self.assertEqual(lines[0], "maildirsmtp: info: new/1.a.host failed temporarily: 127.0.0.1 does not like "
                         "recipient./Remote host said: 451 try later/Giving up on 127.0.0.1.")
        self.assertTrue(lines[1].startswith("maildirsmtp: info: new/2.b.host bounced: 127.0.0.1 does not like "
                                            "recipient./Remote host said: 550 no such user here/Giving up on "
                                            "127.0.0.1.; returned to the sender: qp "), lines[1])
        self.assertTrue(lines[2].startswith("maildirsmtp: info: new/3.c.host succeeded: 127.0.0.1 accepted message."))
        self.assertEqual(os.listdir(os.path.join(held, "new")), ["1.a.host"])
        commands = server.commands  # type: ignore[attr-defined]
        self.assertIn(b"EHLO h.example", commands)
        self.assertIn(b"MAIL FROM:<alice@test.example>", [c.split(b" SIZE=")[0] for c in commands])
        self.assertIn(b"RCPT TO:<yes@site.example>", commands)

        # the failure notice went through the queue back to alice
        wait_for(lambda: len(self.inbox()) == 1, 60, "the failure notice in alice's Maildir", self.log)
        [notice] = self.inbox()
        self.assertIn(b"Subject: failure notice", notice)
        self.assertIn(b"Hi. This is the pymta maildirsmtp program at test.example.", notice)
        self.assertIn(b"<no@site.example>:\n127.0.0.1 does not like recipient.\nRemote host said: 550 no such user here",
                      notice)
        self.assertIn(b"--- Below this line is a copy of the message.\n\nReturn-Path: <alice@test.example>\n"
                      b"Subject: refused\n\nrefused body\n", notice)

    def test_a_second_run_at_the_same_time_touches_nothing(self) -> None:
        held = held_maildir(os.path.abspath(self.mktemp()))
        hold(held, "1.a.host", "alice@test.example", "site-alice@test.example")
        import fcntl

        fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a run under way holds it
        busy = self.maildirsmtp(held, "site-", "127.0.0.1", "--port", str(self.smtp))
        self.assertEqual(busy.returncode, 0, busy.stderr)
        self.assertIn("another run is handing over", busy.stderr)
        self.assertEqual(os.listdir(os.path.join(held, "new")), ["1.a.host"])
        fcntl.flock(fd, fcntl.LOCK_UN)
        done = self.maildirsmtp(held, "site-", "127.0.0.1", "--port", str(self.smtp))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(os.listdir(os.path.join(held, "new")), [])
        wait_for(lambda: len(self.inbox()) == 1, 60, "the message in alice's Maildir", self.log)

    def test_unreachable_server_leaves_everything(self) -> None:
        held = held_maildir(os.path.abspath(self.mktemp()))
        hold(held, "1.a.host", "alice@test.example", "site-a@x.example")
        hold(held, "2.b.host", "alice@test.example", "site-b@x.example")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]  # nothing listens there once the socket is closed
        done = self.maildirsmtp(held, "site-", "127.0.0.1", "--port", str(closed))
        self.assertEqual(done.returncode, 111, done.stderr)
        self.assertIn("failed temporarily: Sorry, I wasn't able to establish an SMTP connection", done.stderr)
        self.assertEqual(done.stderr.count("\n"), 1)
        self.assertEqual(sorted(os.listdir(os.path.join(held, "new"))), ["1.a.host", "2.b.host"])
