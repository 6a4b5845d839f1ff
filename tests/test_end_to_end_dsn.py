"""
End to end: delivery status notifications through a real C{twistd pymta}
(and, as root with Debian's postfix, a real Postfix as the next hop).

Raw SMTP with RFC 3461's parameters goes in; what comes back to the sender
is read from its Maildir with Python's email package.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import smtplib
import sys
import tempfile

from twisted.trial import unittest

from tests.test_end_to_end import SRC, free_port, start_twistd, wait_for

SENDER = "alice@test.example"


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


class DsnEndToEndTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-dsn-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = os.path.join(base, "root")
        init = [self.root, "--me", "test.example", "--user", "alice:secret"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        self.pymta("init", *init)
        self.control = os.path.join(self.root, "control")
        if os.path.exists(os.path.join(self.control, "rcptcheck")):  # unknown addresses must reach the queue
            os.unlink(os.path.join(self.control, "rcptcheck"))
        self.smtp = free_port()
        self.maildir = os.path.join(self.root, "home", "alice", "Maildir", "new")
        self.seen: set[str] = set()

    def pymta(self, *args: str) -> None:
        import subprocess

        subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], check=True, cwd=SRC, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        submission, pop3 = free_port(), free_port()
        self.log = os.path.join(self.root, "twistd.log")
        self.proc = start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                                 ["pymta", "--root", self.root, "--smtp", f"tcp:{self.smtp}:interface=127.0.0.1",
                                  "--submission", f"tcp:{submission}:interface=127.0.0.1",
                                  "--pop3", f"tcp:{pop3}:interface=127.0.0.1"], self.log, [self.smtp])

    def send(self, rcpt: str, rcpt_options: list[str], mail_options: list[str] = (), subject: str = "t") -> None:  # type: ignore[assignment]
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as client:
            client.ehlo("client.test")
            self.assertTrue(client.has_extn("dsn"))
            client.sendmail(SENDER, [rcpt], f"Subject: {subject}\r\nFrom: {SENDER}\r\n\r\nbody\r\n",
                            mail_options=list(mail_options), rcpt_options=rcpt_options)

    def new_mail(self, count: int = 1) -> list[bytes]:
        """Wait for C{count} messages in alice's Maildir not seen before; their bytes."""
        def arrived() -> list[str] | None:
            names = sorted(set(os.listdir(self.maildir)) - self.seen) if os.path.isdir(self.maildir) else []
            return names if len(names) >= count else None

        names = wait_for(arrived, 60, f"{count} new message(s) for alice", self.log)
        self.seen.update(names)
        out = []
        for name in names:
            with open(os.path.join(self.maildir, name), "rb") as f:
                out.append(f.read())
        return out

    def queue_empty(self) -> bool:
        queue = os.path.join(self.root, "queue")
        return not os.listdir(os.path.join(queue, "todo")) and not any(
            os.listdir(os.path.join(queue, "info", sub)) for sub in os.listdir(os.path.join(queue, "info")))

    def test_local_notices_and_bounces(self) -> None:
        self.start()
        # NOTIFY=SUCCESS,FAILURE with ORCPT to a local user: the message and a success notice
        self.send(SENDER, ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;first@test.example"], ["ENVID=e2e+2B1"])
        mails = [parsed(m) for m in self.new_mail(2)]
        [notice] = [m for m in mails if m.get_content_type() == "multipart/report"]
        per_message, group = notice.get_payload()[1].get_payload()
        self.assertEqual(per_message["Reporting-MTA"], "dns; test.example")
        self.assertEqual(per_message["Original-Envelope-Id"], "e2e+1")  # ENVID=e2e+2B1, xtext decoded
        self.assertEqual((group["Action"], group["Status"]), ("delivered", "2.0.0"))
        self.assertEqual(group["Original-Recipient"], "rfc822;first@test.example")

        # an unknown local address, no DSN parameters: QSBMF by default
        self.send("nobody@test.example", [], subject="plain bounce")
        [bounce] = self.new_mail()
        self.assertIn(b"\n\nHi. This is the pymta-send program at test.example.", bounce)
        self.assertNotIn(b"multipart/report", bounce)

        # NOTIFY=NEVER: nothing comes back
        self.send("nobody@test.example", ["NOTIFY=NEVER"], subject="never")
        wait_for(self.queue_empty, 60, "the queue to empty", self.log)
        self.assertEqual(set(os.listdir(self.maildir)) - self.seen, set())

        # control/bounceformat says dsn: RFC 3464 for plain messages too (after a reload)
        with open(os.path.join(self.control, "bounceformat"), "w") as f:
            f.write("dsn\n")
        self.pymta("ctl", "--root", self.root, "reload")  # answers once the new controls are in use
        self.send("nobody@test.example", [], subject="report bounce")
        [report] = [parsed(m) for m in self.new_mail()]
        self.assertEqual(report.get_content_type(), "multipart/report")
        group = report.get_payload()[1].get_payload()[1]
        self.assertEqual((group["Final-Recipient"], group["Action"], group["Status"]),
                         ("rfc822; nobody@test.example", "failed", "5.1.1"))
        self.assertIn(b"Subject: report bounce", report.get_payload()[2].as_bytes())


class DsnPostfixTests(DsnEndToEndTests):
    """pymta relays to Postfix, which offers DSN: the requests go on, Postfix's own notice comes back."""

    def setUp(self) -> None:
        from tests.remote import postfix

        reason = postfix.available()
        if reason:
            raise unittest.SkipTest(reason)
        super().setUp()
        from tests.remote.smtpserver import make_certificate

        cert, key = make_certificate("sink.example.test")
        self.postfix_port = free_port()
        self.postfix = postfix.PostfixInstance(f"/tmp/pymta-dsn-postfix-{os.getpid()}", self.postfix_port, cert, key)
        self.addCleanup(self.postfix.remove)

    def test_local_notices_and_bounces(self) -> None:  # type: ignore[override]
        """Run once, in the class above."""

    def test_requests_passed_on_to_postfix(self) -> None:
        with open(os.path.join(self.postfix.base, "main.cf"), "a") as f:
            f.write(f"relayhost = [127.0.0.1]:{self.smtp}\n")  # Postfix's notices come back through pymta
        self.postfix.start()
        self.addCleanup(self.postfix.stop)
        with open(os.path.join(self.control, "smtproutes"), "w") as f:
            f.write(f"example.test:127.0.0.1:{self.postfix_port}\n")
        self.start()
        self.send("bob@example.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;robert@example.test"], ["ENVID=pf1"])
        wait_for(lambda: self.postfix.maildir_messages("bob"), 60, "delivery to Postfix", self.log)
        [notice] = [parsed(m) for m in self.new_mail()]
        self.assertEqual(notice.get_content_type(), "multipart/report")
        per_message, group = notice.get_payload()[1].get_payload()
        self.assertIn("sink.example.test", per_message["Reporting-MTA"])  # Postfix's notice, not pymta's
        self.assertEqual(per_message["Original-Envelope-Id"], "pf1")
        self.assertEqual(group["Action"], "delivered")
        self.assertEqual(group["Original-Recipient"], "rfc822;robert@example.test")
