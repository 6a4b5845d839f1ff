# -*- test-case-name: tests.smtpd.test_protocol -*-
"""
The SMTP commands that make no progress - RSET, NOOP, VRFY, HELP - with
qmail-smtpd's replies.  Mixed into L{pymta.smtpd.protocol.SMTPServerProtocol},
which provides the methods declared below; and the junk-command limit
(L{pymta.smtpd.junk}): every command line is counted here when it arrives.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

from pymta.smtpd.junk import REPLY_TOO_MUCH_JUNK, JunkCounter

__all__ = ["IdleCommands"]

log = Logger()


class IdleCommands:
    """C{smtp_rset}, C{smtp_noop}, C{smtp_vrfy}, C{smtp_help}; counting junk commands."""

    # provided by SMTPServerProtocol
    remote_ip: str
    _junk: JunkCounter
    reply: Callable[[str], None]
    _close_with: Callable[[str], None]
    _reset_transaction: Callable[[], None]

    def _too_much_junk(self) -> bool:
        """Count the command line that arrived; True when the session was over the limit and is now closing."""
        if not self._junk.command():
            return False
        log.info("smtpd: {ip}: too many commands that make no progress", ip=self.remote_ip)
        self._close_with(REPLY_TOO_MUCH_JUNK)
        return True

    def smtp_rset(self, arg: str) -> None:
        self._reset_transaction()
        self.reply("250 flushed")

    def smtp_noop(self, arg: str) -> None:
        self.reply("250 ok")

    def smtp_vrfy(self, arg: str) -> None:
        self.reply("252 send some mail, i'll try my best")

    def smtp_help(self, arg: str) -> None:
        self.reply("214 pymta, a qmail-compatible mail transfer agent")
