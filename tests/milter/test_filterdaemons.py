"""
The real filters of L{tests.milterdaemons} answer as the acceptance tests
expect, asked directly over the milter protocol (L{tests.milterwire}):
what each says to GTUBE (or the test signature) and to a clean message.
"""

from __future__ import annotations

from twisted.trial import unittest

from tests.milterdaemons import (CLAMAV_MARKER, CLAMAV_SIGNATURE, GTUBE, RSPAMD_GTUBE_REPLY, shared_filter,
                                 start_clamav_milter, start_opendkim, start_rspamd,
                                 start_spamd_milter)
from tests.milterwire import ask_milter


def message(body: str) -> bytes:
    return ("From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: a test\r\n"
            "Message-ID: <filter-test@example.org>\r\nDate: Mon, 07 Dec 2026 23:00:00 +0000\r\n\r\n"
            f"{body}\r\n").encode()


class RspamdTests(unittest.SynchronousTestCase):
    def test_gtube_rejected_at_end_of_message(self) -> None:
        answer = ask_milter(shared_filter(self, start_rspamd).address(), message(GTUBE))
        self.assertEqual((answer.stage, answer.verdict, answer.reply), ("eom", "reply", RSPAMD_GTUBE_REPLY))

    def test_clean_message_gets_rspamd_headers(self) -> None:
        answer = ask_milter(shared_filter(self, start_rspamd).address(), message("Hello."))
        self.assertEqual((answer.stage, answer.verdict), ("eom", "accept"))
        added = answer.headers_added()
        self.assertEqual(added["X-Rspamd-Action"], "no action")
        self.assertIn("default: False", added["X-Spamd-Result"])
        self.assertIn("X-Rspamd-Server", added)
        self.assertIn("Authentication-Results", added)


class SpamAssassinRejectTests(unittest.SynchronousTestCase):
    def test_gtube_rejected(self) -> None:
        answer = ask_milter(shared_filter(self, start_spamd_milter).address(), message(GTUBE))
        self.assertEqual((answer.stage, answer.verdict, answer.reply),
                         ("eom", "reply", "550 5.7.1 Blocked by SpamAssassin"))

    def test_clean_message_passes_with_status(self) -> None:
        answer = ask_milter(shared_filter(self, start_spamd_milter).address(), message("Hello."))
        self.assertIn(answer.verdict, ("continue", "accept"))
        self.assertTrue(answer.headers_added()["X-Spam-Status"].startswith("No, score="))


class SpamAssassinTagTests(unittest.SynchronousTestCase):
    def test_gtube_tagged(self) -> None:
        answer = ask_milter(shared_filter(self, start_spamd_milter, reject_score=None).address(), message(GTUBE))
        self.assertIn(answer.verdict, ("continue", "accept"))
        added = answer.headers_added()
        self.assertEqual(added["X-Spam-Flag"], "YES")
        self.assertIn("GTUBE", added["X-Spam-Status"])
        self.assertNotIn("b", [command for command, _ in answer.modifications])  # -m: the body is left alone


class ClamavTests(unittest.SynchronousTestCase):
    def test_signature_rejected(self) -> None:
        answer = ask_milter(shared_filter(self, start_clamav_milter).address(), message(CLAMAV_MARKER))
        self.assertEqual((answer.stage, answer.verdict), ("eom", "reject"))
        self.assertEqual(answer.headers_added()["X-Virus-Status"], f"Infected ({CLAMAV_SIGNATURE})")

    def test_clean_message_scanned(self) -> None:
        answer = ask_milter(shared_filter(self, start_clamav_milter).address(), message("Hello."))
        self.assertEqual((answer.stage, answer.verdict), ("eom", "accept"))
        self.assertEqual(answer.headers_added()["X-Virus-Status"], "Clean")


class OpenDKIMTests(unittest.SynchronousTestCase):
    def test_unsigned_message_gets_its_verdict(self) -> None:
        answer = ask_milter(shared_filter(self, start_opendkim).address(), message("Hello."))
        self.assertEqual((answer.stage, answer.verdict), ("eom", "accept"))
        self.assertEqual(answer.headers_added()["Authentication-Results"].strip(),
                         "filter.example; dkim=none; dkim-atps=neutral")
