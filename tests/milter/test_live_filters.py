"""
Acceptance (issue 20): a real C{twistd pymta} with C{control/milters}
naming a real filter from Debian's packages (L{tests.milterdaemons}), mail
sent over SMTP with smtplib, and what reaches the client and the mailbox:

  - rspamd: GTUBE is refused at the end of DATA with rspamd's own reply; a
    clean message is delivered with rspamd's header fields;
  - SpamAssassin (spamd + spamass-milter on a unix socket): GTUBE refused
    with spamass-milter's reply, or delivered tagged when it only tags;
  - ClamAV (clamd + clamav-milter): a message holding the test signature is
    refused with clamav-milter's reply naming it (or, quarantined, held in
    the queue until C{pymta ctl release}); a clean one is delivered marked
    as scanned;
  - OpenDKIM as a verifier: its Authentication-Results field reaches the
    mailbox once, written as a header field should be.

Each filter runs once per test class; each test has a pymta of its own.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
from typing import cast

from twisted.trial import unittest

from tests.milterdaemons import (CLAMAV_MARKER, CLAMAV_SIGNATURE, GTUBE, RSPAMD_GTUBE_REPLY, RunningFilter,
                                 shared_filter, start_clamav_milter, start_opendkim, start_rspamd,
                                 start_spamd_milter)
from tests.test_end_to_end import SRC, free_port, init_root, start_twistd, wait_for

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
RECIPIENT = "alice@test.example"


def message(subject: str, body: str) -> str:
    return (f"From: sender@example.org\r\nTo: {RECIPIENT}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
            "Date: Mon, 07 Dec 2026 23:00:00 +0000\r\n\r\n"
            f"{body}\r\n")


class LiveFilterCase(unittest.SynchronousTestCase):
    """A fresh C{twistd pymta} whose control/milters names one filter."""

    def start_pymta(self, running: RunningFilter, options: str = "") -> None:
        base = tempfile.mkdtemp(prefix="pymta-live-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.root = root = os.path.join(base, "root")
        init_root(root, "alice:secret")
        with open(os.path.join(root, "control", "milters"), "w") as f:
            f.write(running.milters_line(options))
        self.maildir = os.path.join(root, "home", "alice", "Maildir", "new")
        self.log = os.path.join(root, "twistd.log")
        self.port = free_port()
        start_twistd(self, [TWISTD], ["pymta", "--root", root, "--smtp", f"tcp:{self.port}:interface=127.0.0.1"],
                     self.log, [self.port])

    def pymta(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], check=True, cwd=SRC,
                              capture_output=True, text=True, env=dict(os.environ, PYMTA_ROOT=self.root)).stdout

    def send(self, text: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as client:
            client.sendmail("sender@example.org", [RECIPIENT], text.encode())

    def refused(self, text: str) -> tuple[int, str]:
        """The code and text of the refusal of C{text} at the end of DATA."""
        with self.assertRaises(smtplib.SMTPDataError) as caught:
            self.send(text)
        code, reply = caught.exception.args
        return code, reply.decode() if isinstance(reply, bytes) else reply

    def delivered(self, subject: str) -> email.message.EmailMessage:
        """The message with this subject once it is in alice's Maildir."""
        def find() -> email.message.EmailMessage | None:
            for name in os.listdir(self.maildir) if os.path.isdir(self.maildir) else ():
                with open(os.path.join(self.maildir, name), "rb") as f:
                    parsed = cast(email.message.EmailMessage,
                                  email.message_from_binary_file(f, policy=email.policy.default))
                if parsed["Subject"] == subject:
                    return parsed
            return None
        return wait_for(find, 60, f"the delivery of {subject!r}", self.log)

    def assertNothingDelivered(self) -> None:
        self.assertEqual(os.listdir(self.maildir) if os.path.isdir(self.maildir) else [], [])


class RspamdAcceptanceTests(LiveFilterCase):
    def test_gtube_refused_with_rspamds_reply(self) -> None:
        self.start_pymta(shared_filter(self, start_rspamd))
        code, reply = self.refused(message("gtube", GTUBE))
        expected_code, _, expected_text = RSPAMD_GTUBE_REPLY.partition(" ")
        self.assertEqual((code, reply), (int(expected_code), expected_text))
        self.assertNothingDelivered()

    def test_clean_message_delivered_with_rspamds_headers(self) -> None:
        self.start_pymta(shared_filter(self, start_rspamd))
        self.send(message("clean", "Hello, Alice."))
        delivered = self.delivered("clean")
        self.assertEqual(delivered["X-Rspamd-Action"], "no action")
        self.assertIn("default: False", delivered["X-Spamd-Result"])
        self.assertIsNotNone(delivered["X-Rspamd-Queue-Id"])
        self.assertIsNotNone(delivered["Authentication-Results"])
        self.assertIn("Hello, Alice.", delivered.get_content())


class SpamAssassinRejectAcceptanceTests(LiveFilterCase):
    def test_gtube_refused(self) -> None:
        self.start_pymta(shared_filter(self, start_spamd_milter))
        self.assertEqual(self.refused(message("gtube", GTUBE)), (550, "5.7.1 Blocked by SpamAssassin"))
        self.assertNothingDelivered()

    def test_clean_message_delivered_with_status(self) -> None:
        self.start_pymta(shared_filter(self, start_spamd_milter))
        self.send(message("clean", "Hello, Alice."))
        self.assertTrue(self.delivered("clean")["X-Spam-Status"].startswith("No, score="))


class SpamAssassinTagAcceptanceTests(LiveFilterCase):
    def test_gtube_delivered_tagged(self) -> None:
        self.start_pymta(shared_filter(self, start_spamd_milter, reject_score=None))
        self.send(message("gtube", GTUBE))
        delivered = self.delivered("gtube")
        self.assertEqual(delivered["X-Spam-Flag"], "YES")
        self.assertIn("GTUBE", delivered["X-Spam-Status"])


class ClamavAcceptanceTests(LiveFilterCase):
    def test_signature_refused_with_its_name(self) -> None:
        self.start_pymta(shared_filter(self, start_clamav_milter, reject_message="Virus found: %v"))
        code, reply = self.refused(message("infected", CLAMAV_MARKER))
        self.assertEqual((code, reply), (550, f"5.7.1 Virus found: {CLAMAV_SIGNATURE}"))
        self.assertNothingDelivered()

    def test_clean_message_delivered_marked_scanned(self) -> None:
        self.start_pymta(shared_filter(self, start_clamav_milter, reject_message="Virus found: %v"))
        self.send(message("clean", "Hello, Alice."))
        self.assertEqual(self.delivered("clean")["X-Virus-Status"], "Clean")


class ClamavQuarantineAcceptanceTests(LiveFilterCase):
    def test_infected_message_held_until_released(self) -> None:
        self.start_pymta(shared_filter(self, start_clamav_milter, on_infected="Quarantine"))
        self.send(message("infected", CLAMAV_MARKER))
        hold = os.path.join(self.root, "queue", "hold")
        wait_for(lambda: os.path.isdir(hold) and os.listdir(hold), 60, "the message held", self.log)
        wait_for(lambda: "held" in self.pymta("ctl", "queue"), 60, "pymta-send to hold it", self.log)
        self.assertNothingDelivered()
        self.assertIn("released", self.pymta("ctl", "release", "--recipient", RECIPIENT))
        delivered = self.delivered("infected")
        self.assertEqual(delivered["X-Virus-Status"], f"Infected ({CLAMAV_SIGNATURE})")


class OpenDKIMAcceptanceTests(LiveFilterCase):
    def test_verdict_delivered_once(self) -> None:
        self.start_pymta(shared_filter(self, start_opendkim))
        self.send(message("unsigned", "Hello, Alice."))
        delivered = self.delivered("unsigned")
        self.assertEqual([str(value) for value in delivered.get_all("Authentication-Results", [])],
                         ["filter.example; dkim=none; dkim-atps=neutral"])
        with open(os.path.join(self.maildir, os.listdir(self.maildir)[0]), "rb") as f:
            self.assertIn(b"\nAuthentication-Results: filter.example; dkim=none", f.read())
