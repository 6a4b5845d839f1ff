# -*- test-case-name: tests.smtpd.test_protocol -*-
"""
HELO and EHLO with qmail-smtpd's replies (EHLO adds the ESMTP extensions
this session offers).  Mixed into L{pymta.smtpd.protocol.SMTPServerProtocol},
which provides the session state and the methods declared below (the
content filters are asked first, L{pymta.smtpd.miltercommands}); the first
greeting of a session (and the first after STARTTLS) is progress for
L{pymta.smtpd.junk.JunkCounter}, a repeated one is not.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import ITLSTransport

from pymta.control import Controls
from pymta.smtpd.context import ListenerSettings, SMTPDContext
from pymta.smtpd.junk import JunkCounter

__all__ = ["GreetCommands"]


class GreetCommands:
    """C{smtp_helo}, C{smtp_ehlo}, and what EHLO offers."""

    # provided by SMTPServerProtocol
    ctx: SMTPDContext
    controls: Controls
    helo: str | None
    esmtp: bool
    databytes: int
    auth_user: str | None
    settings: ListenerSettings
    tls: bool
    transport: Any
    _junk: JunkCounter
    reply: Callable[[str], None]
    _reset_transaction: Callable[[], None]
    _helo_after_filters: Callable[[str, Callable[[], None]], Any]  # pymta.smtpd.miltercommands

    @property
    def auth_offered(self) -> bool:
        return (
            self.settings.submission
            and self.ctx.portal is not None
            and (self.tls or self.ctx.auth_without_tls)
            and bool(self.ctx.auth_mechanisms())
        )

    @property
    def starttls_offered(self) -> bool:
        return (
            not self.tls
            and self.ctx.tls is not None
            and self.ctx.tls.available
            and ITLSTransport.providedBy(self.transport)
        )

    def smtp_helo(self, arg: str) -> Any:
        return self._helo_after_filters(arg, lambda: self._helo_accepted(arg))

    def smtp_ehlo(self, arg: str) -> Any:
        return self._helo_after_filters(arg, lambda: self._ehlo_accepted(arg))

    def _helo_accepted(self, arg: str) -> None:
        self.helo = arg
        self.esmtp = False
        self._reset_transaction()
        self._junk.greeted()
        self.reply(f"250 {self.controls.smtpgreeting}")

    def _ehlo_accepted(self, arg: str) -> None:
        self.helo = arg
        self.esmtp = True
        self._reset_transaction()
        self._junk.greeted()
        lines = [self.controls.smtpgreeting, "PIPELINING", "8BITMIME", "DSN"]
        lines.append(f"SIZE {self.databytes}" if self.databytes else "SIZE")
        if self.starttls_offered:
            lines.append("STARTTLS")
        if self.auth_offered and self.auth_user is None:
            lines.append("AUTH " + " ".join(self.ctx.auth_mechanisms()))
        self.reply("\r\n".join(f"250-{text}" for text in lines[:-1]) + f"\r\n250 {lines[-1]}")
