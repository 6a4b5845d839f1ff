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

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.address import safe_log
from pymta.authlimit import GateFull, LoginLimiter, OverBudget, failure_delay
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


def _gone(failure: Failure) -> None:
    """The client went away during the delay: nothing to answer."""
    failure.trap(defer.CancelledError)
    return None


def attempt_login(
    rules: LoginRules, peer: str, user: bytes, check: Callable[[], defer.Deferred], failures_before: int
) -> defer.Deferred:
    """Check one login of C{user} from C{peer} (C{check} starts the password check); see the module."""
    try:
        attempt = rules.limiter.begin(peer, user)
    except OverBudget as refusal:
        log.info("pop3 login refused {user} from {peer}: {why}", user=_name(user), peer=peer, why=str(refusal))
        return defer.succeed(LoginAnswer(_REFUSED[refusal.kind], close=True))
    d = attempt.run(check, is_temporary=lambda f: f.check(LoginTemporaryFailure) is not None)

    def failed(failure: Failure) -> Any:
        if failure.check(defer.CancelledError):
            return None
        if failure.check(GateFull):
            log.info("pop3 login refused {user} from {peer}: {why}", user=_name(user), peer=peer, why=str(failure.value))
            return LoginAnswer(b"[SYS/TEMP] too many logins in progress, try again later")
        if failure.check(LoginTemporaryFailure):
            return LoginAnswer(b"[SYS/TEMP] " + str(failure.value).encode("utf-8", "replace"))
        if not failure.check(LoginFailed):
            log.failure("pop3 login check failed", failure)
            return LoginAnswer(b"[SYS/TEMP] unable to check the password", close=True)
        log.info("pop3 login failed {user} from {peer}", user=_name(user), peer=peer)
        answer = LoginAnswer(
            b"[AUTH] authorization failed", close=failures_before + 1 >= rules.max_failures, failed=True
        )
        delay = failure_delay(attempt.failures, rules.base_delay, MAX_DELAY)
        if delay <= 0:
            return answer
        return task.deferLater(rules.clock, delay, lambda: answer).addErrback(_gone)

    return d.addErrback(failed)
