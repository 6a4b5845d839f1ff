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
from typing import Any

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.address import safe_log
from pymta.authlimit import GateFull, OverBudget, failure_delay
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


def _gone(failure: Failure) -> None:
    """The client went away during the delay: nothing to answer."""
    failure.trap(defer.CancelledError)
    return None


def decide_auth(
    ctx: SMTPDContext, ip: str, mechanism: str, exchange: SASLExchange, failures_before: int
) -> defer.Deferred:
    """Check C{exchange}'s credentials for a client at C{ip}; see the module."""
    portal, limiter = ctx.portal, ctx.auth_limiter
    assert portal is not None and limiter is not None
    user = safe_log(exchange.username or "")
    try:
        attempt = limiter.begin(ip, exchange.username or "")
    except OverBudget as refusal:
        log.info("smtpd: {ip}: AUTH {mech} refused for {user}: {why}", ip=ip, mech=mechanism, user=user, why=str(refusal))
        return defer.succeed(AuthVerdict(_REFUSED[refusal.kind], close=True))
    d = attempt.run(
        lambda: portal.login(exchange.credentials, None, ISubmitter),  # type: ignore[arg-type]
        is_temporary=lambda f: f.check(UnauthorizedLogin) is None,
    )

    def succeeded(result: tuple) -> AuthVerdict:
        name = _avatar_name(result)
        log.info("smtpd: {ip}: AUTH {mech} ok as {user}", ip=ip, mech=mechanism, user=safe_log(name))
        return AuthVerdict("235 ok, go ahead (#2.0.0)", user=name)

    def failed(reason: Failure) -> Any:
        if reason.check(defer.CancelledError):
            return None
        if reason.check(GateFull):
            log.info("smtpd: {ip}: AUTH {mech} refused for {user}: {why}", ip=ip, mech=mechanism, user=user, why=str(reason.value))
            return AuthVerdict(REPLY_TEMPORARY)
        if not reason.check(UnauthorizedLogin):
            log.failure("smtpd: AUTH checker error", reason)
            return AuthVerdict(REPLY_TEMPORARY)
        failures = failures_before + 1
        log.info("smtpd: {ip}: AUTH {mech} failed for {user} ({n})", ip=ip, mech=mechanism, user=user, n=failures)
        if failures >= ctx.max_auth_failures:
            verdict = AuthVerdict("421 too many authentication failures (#4.7.0)", failed=True, close=True)
        else:
            verdict = AuthVerdict("535 authorization failed (#5.7.8)", failed=True)
        delay = failure_delay(attempt.failures, ctx.auth_failure_delay, ctx.max_auth_delay)
        if delay <= 0:
            return verdict
        return task.deferLater(ctx.clock, delay, lambda: verdict).addErrback(_gone)

    return d.addCallbacks(succeeded, failed)
