"""The junk-command limit in SMTP sessions: every command that makes no progress counts, whatever its reply."""

from __future__ import annotations

from pymta.smtpd.junk import REPLY_TOO_MUCH_JUNK
from tests.smtpd.helpers import Session
from tests.smtpd.test_protocol_deadlines import Base as PlainBase
from tests.smtpd.test_tls_auth import Base as TLSBase, b64


def repeat(test: PlainBase | TLSBase, s: Session, lines: list[bytes], times: int) -> list[str]:
    """Send C{lines} in turn C{times} times, one every 2 s; every reply."""
    replies: list[str] = []
    for i in range(times):
        test.assertFalse(s.transport.disconnecting, f"closed after {i} lines")
        replies += s.send(lines[i % len(lines)])
        s.clock.advance(2)
    return replies


class RefusalsCount(PlainBase):
    def limit_reached(self, line: bytes, reply: str) -> None:
        s = self.session()
        s.cmd("EHLO first")
        self.assertEqual(set(repeat(self, s, [line], 100)), {reply})
        self.assertFalse(s.transport.disconnecting)
        self.assertEqual(s.cmd("NOOP"), [REPLY_TOO_MUCH_JUNK])
        self.assertTrue(s.transport.disconnecting)

    def test_data_without_mail(self) -> None:
        self.limit_reached(b"DATA\r\n", "503 MAIL first (#5.5.1)")

    def test_starttls_not_offered(self) -> None:
        self.limit_reached(b"STARTTLS\r\n", "502 unimplemented (#5.5.1)")

    def test_auth_not_offered(self) -> None:
        self.limit_reached(b"AUTH PLAIN\r\n", "502 unimplemented (#5.5.1)")

    def test_nul(self) -> None:
        self.limit_reached(b"NOOP\0\r\n", "501 NUL character in command (#5.5.2)")

    def test_invalid_utf8(self) -> None:
        self.limit_reached(b"NOOP \xff\r\n", "501 command is not valid UTF-8 (#5.5.2)")

    def test_line_too_long(self) -> None:
        self.limit_reached(b"X" * 5000 + b"\r\n", "500 line too long (#5.5.2)")

    def test_refused_mail_and_rcpt(self) -> None:
        s = self.session()
        s.cmd("EHLO first")
        repeat(self, s, [b"RCPT TO:<a@b>\r\n", b"MAIL FROM:<a@x> SIZE=many\r\n"], 100)
        self.assertEqual(s.cmd("NOOP"), [REPLY_TOO_MUCH_JUNK])

    def test_a_partial_long_line_counts_once_and_the_session_closes(self) -> None:
        s = self.session()
        repeat(self, s, [b"NOOP\r\n"], 100)
        self.assertEqual(s.send(b"X" * 5000), [REPLY_TOO_MUCH_JUNK])
        self.assertTrue(s.transport.disconnecting)


class ProgressDoesNotCount(PlainBase):
    def test_first_ehlo_accepted_mail_rcpt_and_data(self) -> None:
        s = self.session()
        repeat(self, s, [b"NOOP\r\n"], 99)
        self.assertEqual(s.cmd("EHLO first")[-1], "250 SIZE")
        self.assertEqual(s.cmd("MAIL FROM:<a@x>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<b@y>"), ["250 ok"])
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        self.assertEqual(s.send(b"body\r\n.\r\n")[0][:7], "250 ok ")
        repeat(self, s, [b"NOOP\r\n"], 100)  # an accepted message starts the count again
        self.assertEqual(s.cmd("NOOP"), [REPLY_TOO_MUCH_JUNK])

    def test_repeated_greeting_counts(self) -> None:
        s = self.session()
        s.cmd("HELO first")
        repeat(self, s, [b"HELO again\r\n", b"EHLO again\r\n"], 100)
        self.assertEqual(s.cmd("EHLO more"), [REPLY_TOO_MUCH_JUNK])


class AuthAndStartTLS(TLSBase):
    def test_every_auth_refusal_counts(self) -> None:
        s = self.session(submission=True)
        s.cmd("EHLO c")
        self.assertEqual(
            set(repeat(self, s, [b"AUTH PLAIN " + b64(b"\0alice\0secret").encode() + b"\r\n"], 20)),
            {"538 encryption required for requested authentication mechanism (#5.7.11)"},
        )
        s.cmd("STARTTLS")
        s.cmd("EHLO c")
        replies = repeat(self, s, [b"AUTH XYZ\r\n", b"AUTH\r\n", b"AUTH LOGIN\r\n", b"*\r\n"], 80 + 20)
        self.assertIn("504 auth type unimplemented (#5.5.4)", replies)
        self.assertIn("501 auth type required (#5.5.4)", replies)
        self.assertIn("501 auth exchange cancelled (#5.0.0)", replies)
        # 20 + 75 AUTH commands (the 25 `*` lines belong to their AUTH LOGIN): five more to the limit
        repeat(self, s, [b"NOOP\r\n"], 5)
        self.assertEqual(s.cmd("NOOP"), [REPLY_TOO_MUCH_JUNK])

    def test_starttls_that_starts_tls_and_the_ehlo_after_it_are_progress(self) -> None:
        s = self.session(submission=True)
        self.assertEqual(s.cmd("EHLO c")[-1], "250 STARTTLS")
        repeat(self, s, [b"NOOP\r\n"], 99)
        self.assertEqual(s.cmd("STARTTLS"), ["220 ready to start TLS"])
        self.assertIn("250 AUTH PLAIN LOGIN CRAM-MD5", s.cmd("EHLO c"))
        self.assertEqual(s.cmd("AUTH PLAIN " + b64(b"\0alice\0secret")), ["235 ok, go ahead (#2.0.0)"])
        self.assertEqual(s.cmd("STARTTLS"), ["503 TLS already active (#5.5.1)"])  # the 100th
        self.assertEqual(s.cmd("NOOP"), [REPLY_TOO_MUCH_JUNK])
