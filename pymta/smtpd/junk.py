# -*- test-case-name: tests.smtpd.test_junk -*-
"""
Commands that make no progress, counted per SMTP session (Postfix's
C{smtpd_junk_command_limit} idea), so that a client cannot hold a session
slot for ever by sending a harmless command before each deadline.

Counted as junk: NOOP, RSET, VRFY, EXPN, HELP and commands smtpd does not
know; HELO/EHLO and MAIL from their second time; RCPT beyond the
session's recipient limit.  Everything is counted since the last message
smtpd accepted (then the count starts again), so a client delivering mail
is never cut.  Once a session has sent more than C{limit} junk commands
it gets L{REPLY_TOO_MUCH_JUNK} and is closed.
"""

from __future__ import annotations

__all__ = ["JunkCounter", "JUNK_COMMAND_LIMIT", "REPLY_TOO_MUCH_JUNK", "NO_PROGRESS"]

JUNK_COMMAND_LIMIT = 100  # Postfix's smtpd_junk_command_limit default
REPLY_TOO_MUCH_JUNK = "421 too many commands that make no progress, closing (#4.7.0)"
NO_PROGRESS = frozenset({"noop", "rset", "vrfy", "expn", "help"})
REPEATS_COUNT = frozenset({"helo", "ehlo", "mail"})  # the first since the last message is progress


class JunkCounter:
    """One session's count of commands that make no progress."""

    def __init__(self, limit: int = JUNK_COMMAND_LIMIT, free_recipients: int = 1000) -> None:
        self.limit = limit
        self.free_recipients = free_recipients
        self.junk = 0
        self._seen: set[str] = set()
        self._recipients = 0

    def command(self, verb: str, known: bool) -> bool:
        """Count the command C{verb} (lower case; C{known}: smtpd has it); True when the session is over the limit."""
        if not known or verb in NO_PROGRESS:
            self.junk += 1
        elif verb in REPEATS_COUNT:
            verb = "helo" if verb == "ehlo" else verb
            if verb in self._seen:
                self.junk += 1
            self._seen.add(verb)
        elif verb == "rcpt":
            self._recipients += 1
            if self._recipients > self.free_recipients:
                self.junk += 1
        return self.junk > self.limit

    def message_accepted(self) -> None:
        """A message was queued: the client makes progress, the count starts again."""
        self.junk = 0
        self._seen.clear()
        self._recipients = 0
