# -*- test-case-name: tests.pop3d.test_login -*-
"""
One POP3 login attempt (USER/PASS, APOP, AUTH PLAIN) through the shared
L{pymta.authlimit.LoginLimiter}: what the protocol answers, decided before,
during and after the password check.

  - over a budget, nothing is checked: C{-ERR [LOGIN-DELAY] ...} and the
    connection is closed (RFC 2449);
  - too many checks already wait for a slot: C{-ERR [SYS/TEMP] ...}, the
    client may try again on this connection;
  - the check could not be made (L{LoginTemporaryFailure}): C{-ERR
    [SYS/TEMP]} with its text;
  - a wrong login: C{-ERR [AUTH] authorization failed} after
    L{pymta.authlimit.failure_delay} (C{base} seconds per recent failure of
    the address, at most L{MAX_DELAY}); the connection is closed at the
    connection's C{max_failures}-th failure;
  - success: the L{Account}.

L{attempt_login} returns a Deferred firing with an Account or a
L{LoginAnswer}.  Cancel it when the connection is lost: a check still
waiting for a slot never runs, a running checkpassword is killed.  One log
line per refusal and per failure, never with a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from pymta.address import safe_log
from pymta.authlimit import LoginLimiter
from pymta.loginflow import BUSY, ERROR, OK, REFUSED, TEMPORARY, LoginOutcome, limited_login
from pymta.pop3d.auth import LoginFailed, LoginTemporaryFailure

__all__ = ["LoginAnswer", "LoginRules", "attempt_login", "MAX_DELAY"]

log = Logger(namespace="pymta.pop3d")

#: the longest wait before a failed login is answered, in seconds
MAX_DELAY = 30.0

_REFUSED = {
    "address": b"[LOGIN-DELAY] too many failed logins from your address, try again later",
    "account": b"[LOGIN-DELAY] too many failed logins for this account, try again later",
}


@dataclass(frozen=True)
class LoginAnswer:
    """An unsuccessful login: the C{-ERR} text, whether to close, whether it was a wrong login."""

    text: bytes
    close: bool = False
    failed: bool = False


@dataclass(frozen=True)
class LoginRules:
    """What one connection's login needs from its listener."""

    limiter: LoginLimiter
    clock: Any
    base_delay: float
    max_failures: int


def _name(user: bytes) -> str:
    return safe_log(user.decode("utf-8", "replace"))


def attempt_login(
    rules: LoginRules, peer: str, user: bytes, check: Callable[[], defer.Deferred], failures_before: int
) -> defer.Deferred:
    """Check one login of C{user} from C{peer} (C{check} starts the password check); see the module."""
    d = limited_login(
        rules.limiter, rules.clock, peer, user, check,
        is_wrong=lambda f: f.check(LoginFailed) is not None,
        is_temporary=lambda f: f.check(LoginTemporaryFailure) is not None,
        base_delay=rules.base_delay, max_delay=MAX_DELAY,
    )

    def answer(outcome: LoginOutcome | None) -> Any:
        if outcome is None:
            return None
        if outcome.kind == OK:
            return outcome.result
        if outcome.kind in (REFUSED, BUSY):
            log.info("pop3 login refused {user} from {peer}: {why}", user=_name(user), peer=peer, why=outcome.reason)
            if outcome.kind == REFUSED:
                return LoginAnswer(_REFUSED[outcome.budget], close=True)
            return LoginAnswer(b"[SYS/TEMP] too many logins in progress, try again later")
        failure = outcome.failure
        if outcome.kind == TEMPORARY and failure is not None:
            return LoginAnswer(b"[SYS/TEMP] " + str(failure.value).encode("utf-8", "replace"))
        if outcome.kind == ERROR:
            log.failure("pop3 login check failed", failure)
            return LoginAnswer(b"[SYS/TEMP] unable to check the password", close=True)
        log.info("pop3 login failed {user} from {peer}", user=_name(user), peer=peer)
        return LoginAnswer(b"[AUTH] authorization failed", close=failures_before + 1 >= rules.max_failures, failed=True)

    return d.addCallback(answer)
