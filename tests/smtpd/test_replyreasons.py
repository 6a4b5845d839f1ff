"""Tests for pymta.smtpd.replyreasons: what each reply line counts as."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.connectionlimit import TOTAL
from pymta.sessionevents import SessionEvents
from pymta.smtpd import policy
from pymta.smtpd.context import LIMIT_REPLIES
from pymta.smtpd.replyreasons import reply_event, tell


class Recorder(SessionEvents):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def accepted(self) -> None:
        self.seen.append("accepted")

    def refused(self, reason: str) -> None:
        self.seen.append(reason)

    def tls_started(self) -> None:
        self.seen.append("tls")

    def login_failed(self) -> None:
        self.seen.append("login")


class ReplyEventTests(unittest.TestCase):
    def test_refusals(self) -> None:
        cases = {
            policy.REPLY_RCPTHOSTS: "relaying_denied",
            policy.REPLY_BADMAILFROM: "badmailfrom",
            policy.REPLY_DATABYTES: "message_too_big",
            "550 sorry, no mailbox here by that name (#5.1.1)": "unknown_recipient",
            "554 too many hops, this message is looping (#5.4.6)": "mail_loop",
            "451 qq trouble making network connection (#4.3.0)": "queue_error",
            "451 qqt failure (#4.3.0)": "queue_error",
            LIMIT_REPLIES[TOTAL]: "connection_limit",
        }
        for line, reason in cases.items():
            self.assertEqual(reply_event(line), [f"refused:{reason}"], line)

    def test_other_refusals(self) -> None:
        """DNSBL, SPF and DMARC refusals carry configured text: each counts as C{other}."""
        for line in ("553 listed at dnsbl.example: see https://dnsbl.example/?192.0.2.1",
                     "451 dnsbl.example lookup failed, try again later",
                     "550 the SPF record of example.com does not allow 192.0.2.1 to send its mail (#5.7.23)",
                     "550 DMARC policy of example.com rejects this message: neither SPF nor DKIM aligns",
                     "421 too many commands that make no progress, closing (#4.7.0)"):
            self.assertEqual(reply_event(line), ["refused:other"], line)
        recorder = Recorder()
        tell(recorder, "553 listed at dnsbl.example")
        self.assertEqual(recorder.seen, ["other"])

    def test_accepted_and_tls(self) -> None:
        self.assertEqual(reply_event("250 ok 1700000000 qp 1234"), ["accepted"])
        self.assertEqual(reply_event("220 ready to start TLS"), ["tls"])

    def test_login_failures(self) -> None:
        self.assertEqual(reply_event("535 authorization failed (#5.7.8)"), ["login failed"])
        self.assertEqual(reply_event("421 too many authentication failures (#4.7.0)"),
                         ["login failed", "refused:login_budget"])

    def test_dialogue_counts_nothing(self) -> None:
        for line in ("250 ok", "354 go ahead", "503 MAIL first (#5.5.1)", "502 unimplemented (#5.5.1)",
                     "500 line too long (#5.5.2)", "501 malformed SIZE parameter (#5.5.4)",
                     "555 syntax error (#5.5.4)", "504 auth type unimplemented (#5.5.4)",
                     "454 temporary authentication failure, try again later (#4.7.0)",
                     "538 encryption required for requested authentication mechanism (#5.7.11)",
                     "220 mail.example ESMTP", "250 ok 1700000000 qp"):
            self.assertEqual(reply_event(line), [], line)

    def test_tell(self) -> None:
        events = Recorder()
        for line in ("250 ok 1 qp 2", policy.REPLY_BADMAILFROM, "535 authorization failed (#5.7.8)", "250 ok"):
            tell(events, line)
        self.assertEqual(events.seen, ["accepted", "badmailfrom", "login"])
