# -*- test-case-name: tests.smtpd.test_junk -*-
"""
Commands that make no progress, counted per SMTP session (Postfix's
C{smtpd_junk_command_limit} idea), so that a client cannot hold a session
slot for ever by sending a harmless command before each deadline.

Every command line counts - whatever its reply, also one smtpd cannot
read (a NUL, invalid UTF-8, over the line limit) - except one that makes
progress: the first HELO/EHLO (and the first after STARTTLS), an accepted
MAIL, an accepted RCPT within the session's recipient limit, DATA answered
with C{354}, a successful AUTH, a STARTTLS that starts TLS.  smtpd calls
L{JunkCounter.command} when a command line arrives, counting it, and the
command's handler calls the progress methods, which take it back.

Everything is counted since the last message smtpd accepted (then the
count starts again), so a client delivering mail is never cut.  A session
that has sent C{limit} junk commands gets L{REPLY_TOO_MUCH_JUNK} in answer
to its next command and is closed.
"""

from __future__ import annotations

__all__ = ["JunkCounter", "JUNK_COMMAND_LIMIT", "REPLY_TOO_MUCH_JUNK"]

JUNK_COMMAND_LIMIT = 100  # Postfix's smtpd_junk_command_limit default
REPLY_TOO_MUCH_JUNK = "421 too many commands that make no progress, closing (#4.7.0)"


class JunkCounter:
    """One session's count of commands that make no progress."""

    def __init__(self, limit: int = JUNK_COMMAND_LIMIT, free_recipients: int = 1000) -> None:
        self.limit = limit
        self.free_recipients = free_recipients
        self.junk = 0
        self._current_counted = False  # the command under way was counted and has not made progress
        self._greeted = False
        self._recipients = 0

    def command(self) -> bool:
        """A command line arrived: True when the session is already over the limit, else count it as junk."""
        if self.junk >= self.limit:
            return True
        self.junk += 1
        self._current_counted = True
        return False

    def progress(self) -> None:
        """The command under way made progress: it is not junk."""
        if self._current_counted:
            self._current_counted = False
            self.junk -= 1

    def greeted(self) -> None:
        """HELO or EHLO answered: progress the first time (since the start, STARTTLS, or the last message)."""
        if not self._greeted:
            self._greeted = True
            self.progress()

    def recipient_accepted(self) -> None:
        """RCPT accepted: progress while within the recipients a message may have."""
        self._recipients += 1
        if self._recipients <= self.free_recipients:
            self.progress()

    def tls_started(self) -> None:
        """STARTTLS started TLS: progress, and the session starts again (RFC 3207), greeting included."""
        self._greeted = False
        self.progress()

    def message_accepted(self) -> None:
        """A message was queued: the client makes progress, the count starts again."""
        self.junk = 0
        self._current_counted = False
        self._greeted = False
        self._recipients = 0
