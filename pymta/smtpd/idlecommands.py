# -*- test-case-name: tests.smtpd.test_protocol -*-
"""
The SMTP commands that make no progress - RSET, NOOP, VRFY, HELP - with
qmail-smtpd's replies.  Mixed into L{pymta.smtpd.protocol.SMTPServerProtocol},
which counts them (L{pymta.smtpd.junk}) and provides the methods declared
below.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["IdleCommands"]


class IdleCommands:
    """C{smtp_rset}, C{smtp_noop}, C{smtp_vrfy}, C{smtp_help}."""

    # provided by SMTPServerProtocol
    reply: Callable[[str], None]
    _reset_transaction: Callable[[], None]

    def smtp_rset(self, arg: str) -> None:
        self._reset_transaction()
        self.reply("250 flushed")

    def smtp_noop(self, arg: str) -> None:
        self.reply("250 ok")

    def smtp_vrfy(self, arg: str) -> None:
        self.reply("252 send some mail, i'll try my best")

    def smtp_help(self, arg: str) -> None:
        self.reply("214 pymta, a qmail-compatible mail transfer agent")
