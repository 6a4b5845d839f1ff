"""
QMAILQUEUE with real processes: C{pymta inject} and C{twistd pymta}
running shell scripts with qmail-queue's interface, one of which tags the
message and passes it on through pymta's own qmail-queue (C{pymta queue}).
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from tests.qmailhelpers.test_end_to_end import MAIL_UID, delivery_python
from tests.test_end_to_end import SRC, free_port, init_root, start_listening, wait_for


def write_script(path: str, body: str) -> str:
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


class Base(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        # traversable by the mail uid the daemon becomes when the test runs as root
        self.base = tempfile.mkdtemp(prefix="pymta-qq-")
        os.chmod(self.base, 0o755)
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        self.out = os.path.join(self.base, "out")
        os.mkdir(self.out)
        os.chmod(self.out, 0o777)
        self.reject = write_script(os.path.join(self.base, "reject"), "cat > /dev/null; exit 31\n")
        self.later = write_script(os.path.join(self.base, "later"), "exit 71\n")
        self.hang = write_script(os.path.join(self.base, "hang"), "exec sleep 600\n")
        self.save = write_script(os.path.join(self.base, "save"),
                                 f'cat > {self.out}/message; cat <&1 > {self.out}/envelope; exit 0\n')
        self.tag = write_script(os.path.join(self.base, "tag"),
                                '{ echo "X-Scanned: tagged by the filter"; cat; } | "$QMAILQUEUE"\n')

    def pymta(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], cwd=SRC, env=env,
                              input=b"From: a@test.example\nSubject: hello\n\nbody\n", capture_output=True, timeout=120)


class InjectTests(Base):
    def setUp(self) -> None:
        super().setUp()
        init_root(self.root, mail_uid=MAIL_UID)

    def inject(self, program: str, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, QMAILQUEUE=program, PYMTA_ROOT=self.root)
        return self.pymta(*args, "-f", "a@test.example", "b@remote.example", env=env)

    def test_exit_31_is_exit_100_with_the_text(self) -> None:
        done = self.inject(self.reject, "inject")
        self.assertEqual(done.returncode, 100, done.stderr)
        self.assertIn(b"pymta inject: fatal: mail server permanently rejected message (#5.3.0)", done.stderr)

    def test_exit_71_is_exit_111(self) -> None:
        done = self.inject(self.later, "inject")
        self.assertEqual(done.returncode, 111, done.stderr)
        self.assertIn(b"mail server temporarily rejected message (#4.3.0)", done.stderr)

    def test_the_program_wins_over_a_null_clients_qmqp_servers(self) -> None:
        with open(os.path.join(self.root, "control", "qmqpservers"), "w") as f:
            f.write("127.0.0.1\n")  # nobody listens there: a QMQP attempt would fail
        for command in ("inject", "sendmail"):
            done = self.inject(self.save, command)
            self.assertEqual(done.returncode, 0, done.stderr)
            with open(os.path.join(self.out, "envelope"), "rb") as f:
                self.assertEqual(f.read(), b"Fa@test.example\0Tb@remote.example\0\0")
            with open(os.path.join(self.out, "message"), "rb") as f:
                self.assertIn(b"Subject: hello\n\nbody\n", f.read())


class DaemonTests(Base):
    """One C{twistd pymta}: QMAILQUEUE from its environment, and per client address from etc/tcp.smtp."""

    def setUp(self) -> None:
        super().setUp()
        init_root(self.root, "alice:secret", mail_uid=MAIL_UID)
        # the daemon's interpreter, which the filter's qmail-queue runs as the mail uid too
        python = delivery_python(self.base, MAIL_UID if os.getuid() == 0 else None)
        with open(os.path.join(self.root, "control", "timeoutqmailqueue"), "w") as f:
            f.write("2\n")
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write(f'127.0.0.2:allow,QMAILQUEUE="{self.reject}"\n'
                    f'127.0.0.3:allow,QMAILQUEUE="{self.later}"\n'
                    f'127.0.0.4:allow,QMAILQUEUE="{self.hang}"\n'
                    '127.0.0.5:allow,QMAILQUEUE=""\n'
                    ':allow\n')
        self.smtp = free_port()
        self.log = os.path.join(self.root, "twistd.log")
        twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        start_listening(self, [python, "-c", twistd, "-n", "--pidfile=", f"--logfile={self.log}", "pymta", "--root", self.root,
                               "--smtp", f"tcp:{self.smtp}:interface=127.0.0.1"],
                        "twistd pymta", self.log, [self.smtp], cwd=SRC, stderr=subprocess.STDOUT,
                        env=dict(os.environ, QMAILQUEUE=self.tag))
        self.maildir = os.path.join(self.root, "home", "alice", "Maildir", "new")

    def send(self, source: str, subject: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60, source_address=(source, 0)) as client:
            client.ehlo("client.example")
            client.mail("a@remote.example")
            client.rcpt("alice@test.example")
            return client.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())

    def delivered(self) -> list[bytes]:
        out = []
        for name in sorted(os.listdir(self.maildir)):
            with open(os.path.join(self.maildir, name), "rb") as f:
                out.append(f.read())
        return out

    def test_programs_by_client(self) -> None:
        code, text = self.send("127.0.0.1", "tagged")
        self.assertEqual(code, 250, (text, open(self.log).read()[-3000:]))
        self.assertRegex(text.decode(), r"^ok \d+ qp \d+$")
        wait_for(lambda: len(os.listdir(self.maildir)) >= 1, 60, "the tagged message's delivery", self.log)
        [message] = self.delivered()
        self.assertIn(b"X-Scanned: tagged by the filter\nReceived: from unknown (HELO client.example) (127.0.0.1)", message)
        self.assertIn(b"Subject: tagged", message)

        self.assertEqual(self.send("127.0.0.2", "rejected"), (554, b"mail server permanently rejected message (#5.3.0)"))
        self.assertEqual(self.send("127.0.0.3", "later"), (451, b"mail server temporarily rejected message (#4.3.0)"))
        self.assertEqual(self.send("127.0.0.4", "hangs"), (451, b"qq timeout (#4.3.0)"))
        code, text = self.send("127.0.0.5", "unfiltered")
        self.assertEqual(code, 250, text)
        wait_for(lambda: len(os.listdir(self.maildir)) >= 2, 60, "the unfiltered message's delivery", self.log)
        messages = self.delivered()
        self.assertEqual(len(messages), 2)
        unfiltered = [m for m in messages if b"Subject: unfiltered" in m]
        self.assertEqual(len(unfiltered), 1)
        self.assertNotIn(b"X-Scanned", unfiltered[0])
        with open(self.log, encoding="utf-8", errors="replace") as f:
            self.assertEqual(f.read().count("new msg "), 2)

    def test_a_bounce_goes_through_the_daemons_program(self) -> None:
        """pymta-send queues its bounce through QMAILQUEUE, as qmail-send through qmail-queue."""
        home = os.path.join(self.root, "home", "alice")
        failing = os.path.join(home, ".qmail-fail")
        with open(failing, "w") as f:
            f.write("|exit 100\n")  # a permanent failure: a bounce to the sender
        os.chown(failing, os.stat(home).st_uid, os.stat(home).st_gid)
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60, source_address=("127.0.0.5", 0)) as client:
            client.ehlo("client.example")
            client.mail("alice@test.example")
            client.rcpt("alice-fail@test.example")
            code, text = client.data(b"Subject: to nobody\r\n\r\nbody\r\n")
        self.assertEqual(code, 250, text)
        wait_for(lambda: len(os.listdir(self.maildir)) >= 1, 60, "the bounce's delivery", self.log)
        [bounce] = self.delivered()
        self.assertIn(b"Subject: to nobody", bounce)  # the bounce quotes the message, which came unfiltered (127.0.0.5)
        self.assertEqual(bounce.count(b"X-Scanned: tagged by the filter\n"), 1, bounce[:600])

    def test_a_forward_goes_through_the_daemons_program(self) -> None:
        """A .qmail file's &address forward passes QMAILQUEUE, as qmail-local's through qmail-queue."""
        home = os.path.join(self.root, "home", "alice")
        forwarding = os.path.join(home, ".qmail-fwd")
        with open(forwarding, "w") as f:
            f.write("&alice@test.example\n")
        os.chown(forwarding, os.stat(home).st_uid, os.stat(home).st_gid)
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=60, source_address=("127.0.0.5", 0)) as client:
            client.ehlo("client.example")
            client.mail("a@remote.example")
            client.rcpt("alice-fwd@test.example")
            code, text = client.data(b"Subject: forwarded\r\n\r\nbody\r\n")
        self.assertEqual(code, 250, text)  # it came unfiltered (127.0.0.5): only its forward meets the filter
        wait_for(lambda: len(os.listdir(self.maildir)) >= 1, 60, "the forward's delivery", self.log)
        [forward] = self.delivered()
        self.assertIn(b"X-Scanned: tagged by the filter\nDelivered-To: alice-fwd@test.example\n", forward)
        self.assertEqual(forward.count(b"X-Scanned"), 1, forward[:600])

        def forwarded() -> bool:  # the first delivery's result, logged once the program has exited 0
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return re.search(r"delivery 1: success: did_0\+1\+0/qp_\d+/", f.read()) is not None

        wait_for(forwarded, 60, "the forwarding delivery's success", self.log)
