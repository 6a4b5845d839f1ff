# -*- test-case-name: tests.smtpd.test_authcheck -*-
"""
The decision on one SMTP AUTH exchange whose credentials are complete
(PLAIN, LOGIN, CRAM-MD5 alike), through the daemon's
L{pymta.authlimit.LoginLimiter}.  Replies (RFC 4954, with RFC 3463 codes
in qmail's style):

  - over a budget of failures, nothing is checked:
    C{421 too many failed logins from your address, try again later
    (#4.7.0)} (or C{... for this account ...}) and the session ends - every
    further attempt would be refused the same way (RFC 5321 4.2.2 allows a
    421 at any time);
  - too many checks already wait for a slot, or the checker could not
    decide: C{454 temporary authentication failure, try again later
    (#4.7.0)}; the session goes on;
  - a wrong login: C{535 authorization failed (#5.7.8)} after
    L{pymta.authlimit.failure_delay} (C{auth_failure_delay} per recent
    failure of the address, at most C{max_auth_delay}); the session's
    C{max_auth_failures}-th failure is answered C{421 too many
    authentication failures (#4.7.0)} and ends the session;
  - success: C{235 ok, go ahead (#2.0.0)}.

L{decide_auth} returns a Deferred of an L{AuthVerdict} (None once
cancelled).  The protocol cancels it when the connection is lost: a check
still waiting for a slot never runs.  One log line per refusal, failure and
success; never a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger

from pymta.address import safe_log
from pymta.loginflow import BUSY, OK, REFUSED, WRONG, LoginOutcome, limited_login
from pymta.smtpd.auth import ISubmitter, SASLExchange
from pymta.smtpd.context import SMTPDContext

__all__ = ["AuthVerdict", "decide_auth"]

log = Logger()

REPLY_TEMPORARY = "454 temporary authentication failure, try again later (#4.7.0)"

_REFUSED = {
    "address": "421 too many failed logins from your address, try again later (#4.7.0)",
    "account": "421 too many failed logins for this account, try again later (#4.7.0)",
}


@dataclass(frozen=True)
class AuthVerdict:
    """The reply to send; C{user} after a success; C{failed} for a wrong login; C{close} to end the session."""

    reply: str
    user: str | None = None
    failed: bool = False
    close: bool = False


def _avatar_name(result: tuple) -> str:
    avatar = result[1]
    return avatar.decode("utf-8", "replace") if isinstance(avatar, bytes) else str(avatar)


def decide_auth(
    ctx: SMTPDContext, ip: str, mechanism: str, exchange: SASLExchange, failures_before: int
) -> defer.Deferred:
    """Check C{exchange}'s credentials for a client at C{ip}; see the module."""
    portal, limiter = ctx.portal, ctx.auth_limiter
    assert portal is not None and limiter is not None
    user = safe_log(exchange.username or "")
    d = limited_login(
        limiter, ctx.clock, ip, exchange.username or "",
        lambda: portal.login(exchange.credentials, None, ISubmitter),  # type: ignore[arg-type]
        is_wrong=lambda f: f.check(UnauthorizedLogin) is not None,
        is_temporary=lambda f: f.check(UnauthorizedLogin) is None,
        base_delay=ctx.auth_failure_delay, max_delay=ctx.max_auth_delay,
    )

    def verdict(outcome: LoginOutcome | None) -> AuthVerdict | None:
        if outcome is None:
            return None
        if outcome.kind == OK:
            name = _avatar_name(outcome.result)
            log.info("smtpd: {ip}: AUTH {mech} ok as {user}", ip=ip, mech=mechanism, user=safe_log(name))
            return AuthVerdict("235 ok, go ahead (#2.0.0)", user=name)
        if outcome.kind in (REFUSED, BUSY):
            log.info("smtpd: {ip}: AUTH {mech} refused for {user}: {why}", ip=ip, mech=mechanism, user=user, why=outcome.reason)
            if outcome.kind == REFUSED:
                return AuthVerdict(_REFUSED[outcome.budget], close=True)
            return AuthVerdict(REPLY_TEMPORARY)
        if outcome.kind != WRONG:  # the checker could not decide or failed: not the client's fault
            assert outcome.failure is not None
            log.failure("smtpd: AUTH checker error", outcome.failure)
            return AuthVerdict(REPLY_TEMPORARY)
        failures = failures_before + 1
        log.info("smtpd: {ip}: AUTH {mech} failed for {user} ({n})", ip=ip, mech=mechanism, user=user, n=failures)
        if failures >= ctx.max_auth_failures:
            return AuthVerdict("421 too many authentication failures (#4.7.0)", failed=True, close=True)
        return AuthVerdict("535 authorization failed (#5.7.8)", failed=True)

    return d.addCallback(verdict)
