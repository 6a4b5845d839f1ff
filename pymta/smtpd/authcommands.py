# -*- test-case-name: tests.smtpd.test_authcheck -*-
"""
The AUTH dialogue of an SMTP session (RFC 4954): the AUTH command, its
334 challenges and the client's answers, and the verdict of
L{pymta.smtpd.authcheck.decide_auth} (the daemon's login limiter and
portal).  Mixed into L{pymta.smtpd.protocol.SMTPServerProtocol}, which
provides the session state and the reply methods declared below.
"""

from __future__ import annotations

import base64
from typing import Callable

from twisted.internet import defer

from pymta.control import Controls
from pymta.smtpd.auth import AuthSyntaxError, SASLExchange, start_exchange
from pymta.smtpd.authcheck import AuthVerdict, decide_auth
from pymta.smtpd.context import ListenerSettings, SMTPDContext
from pymta.smtpd.junk import JunkCounter
from pymta.smtpd.modes import AUTH, CLOSED, COMMAND, REPLY_UNIMPLEMENTED

__all__ = ["AuthCommands"]


class AuthCommands:
    """C{smtp_auth} and the lines of an AUTH exchange."""

    # provided by SMTPServerProtocol
    ctx: SMTPDContext
    settings: ListenerSettings
    controls: Controls
    remote_ip: str
    tls: bool
    auth_user: str | None
    auth_failures: int
    sender: str | None
    _mode: str
    _sasl: SASLExchange | None
    _sasl_mechanism: str
    reply: Callable[[str], None]
    _close_with: Callable[[str], None]
    _run_pending: Callable[..., None]
    _junk: JunkCounter



    def smtp_auth(self, arg: str) -> defer.Deferred | None:
        if not self.settings.submission or self.ctx.portal is None or not self.ctx.auth_mechanisms():
            self.reply(REPLY_UNIMPLEMENTED)
            return None
        if not (self.tls or self.ctx.auth_without_tls):
            self.reply("538 encryption required for requested authentication mechanism (#5.7.11)")
            return None
        if self.auth_user is not None:
            self.reply("503 you are already authenticated (#5.5.1)")
            return None
        if self.sender is not None:
            self.reply("503 no AUTH during a mail transaction (#5.5.1)")
            return None
        mechanism, _, initial = arg.partition(" ")
        if not mechanism:
            self.reply("501 auth type required (#5.5.4)")
            return None
        initial = initial.strip()
        try:
            exchange = start_exchange(
                mechanism,
                initial.encode("ascii") if initial else None,
                self.ctx.auth_mechanisms(),
                (self.controls.me or "localhost").encode("ascii", "replace"),
            )
        except (AuthSyntaxError, UnicodeEncodeError):
            self.reply("501 malformed auth input (#5.5.4)")
            return None
        if exchange is None:
            self.reply("504 auth type unimplemented (#5.5.4)")
            return None
        self._sasl_mechanism = mechanism.upper()
        return self._auth_step(exchange)

    def _auth_step(self, exchange: SASLExchange) -> defer.Deferred | None:
        if exchange.challenge is not None:
            self._sasl = exchange
            self._mode = AUTH
            self.reply("334 " + base64.b64encode(exchange.challenge).decode("ascii"))
            return None
        self._sasl = None
        self._mode = COMMAND
        d = decide_auth(self.ctx, self.remote_ip, self._sasl_mechanism, exchange, self.auth_failures)
        # cancelled when the client goes: a check still waiting for a slot never runs
        self._run_pending(d.addCallback(self._auth_decided), cancel_on_close=True)
        return None

    def _auth_decided(self, verdict: AuthVerdict | None) -> None:
        if verdict is None or self._mode == CLOSED:
            return
        self.auth_user = verdict.user or self.auth_user
        if verdict.user:
            self._junk.progress()
        self.auth_failures += verdict.failed
        if verdict.close:
            self._close_with(verdict.reply)
        else:
            self.reply(verdict.reply)

    def _auth_line(self, line: bytes) -> defer.Deferred | None:
        exchange = self._sasl
        assert exchange is not None
        if line.strip() == b"*":
            self._sasl = None
            self._mode = COMMAND
            self.reply("501 auth exchange cancelled (#5.0.0)")
            return None
        try:
            exchange.respond(line.strip())
        except AuthSyntaxError:
            self._sasl = None
            self._mode = COMMAND
            self.reply("501 malformed auth input (#5.5.4)")
            return None
        return self._auth_step(exchange)
