# -*- test-case-name: tests.test_loginflow -*-
"""
One login through a L{pymta.authlimit.LoginLimiter}, the same for SMTP AUTH
and POP3: reserve the attempt (or be refused over budget), check through the
gate, wait before a wrong login is answered, and say what happened as a
L{LoginOutcome}.  Each protocol turns the outcome into its own reply and log
line (L{pymta.smtpd.authcheck}, L{pymta.pop3d.login}).

The Deferred fires with None when it was cancelled (the client went away):
a check still waiting for a slot never runs, and nothing is to be answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer, task
from twisted.python.failure import Failure

from pymta.authlimit import GateFull, LoginLimiter, OverBudget, failure_delay

__all__ = ["LoginOutcome", "OK", "REFUSED", "BUSY", "TEMPORARY", "ERROR", "WRONG", "limited_login"]

OK = "ok"  # the check accepted the login: C{result} is what it returned
REFUSED = "refused"  # over budget, nothing checked: C{budget} is "address" or "account"
BUSY = "busy"  # too many checks already wait for a slot
TEMPORARY = "temporary"  # the check could not decide (not counted): C{failure}
ERROR = "error"  # the check failed unexpectedly (counted): C{failure}
WRONG = "wrong"  # a wrong login, answered after the delay


@dataclass(frozen=True)
class LoginOutcome:
    """What became of one login; C{reason} is the limiter's text for a refusal."""

    kind: str
    result: Any = None
    budget: str = ""
    reason: str = ""
    failure: Failure | None = None


def _gone(failure: Failure) -> None:
    """Cancelled (the client went away): nothing to answer."""
    failure.trap(defer.CancelledError)
    return None


def limited_login(
    limiter: LoginLimiter,
    clock: Any,
    peer: str,
    user: bytes | str,
    check: Callable[[], defer.Deferred],
    is_wrong: Callable[[Failure], bool],
    is_temporary: Callable[[Failure], bool],
    base_delay: float,
    max_delay: float,
) -> defer.Deferred:
    """
    A Deferred of the L{LoginOutcome} of C{check()} for C{user} from
    C{peer}.  C{is_wrong(failure)}: the check refused the login;
    C{is_temporary(failure)}: it could not decide.  A wrong login's outcome
    comes after L{failure_delay} of the address's recent failures.
    """
    try:
        attempt = limiter.begin(peer, user)
    except OverBudget as refusal:
        return defer.succeed(LoginOutcome(REFUSED, budget=refusal.kind, reason=str(refusal)))

    def failed(failure: Failure) -> Any:
        if failure.check(defer.CancelledError):
            return None
        if failure.check(GateFull):
            return LoginOutcome(BUSY, reason=str(failure.value))
        if is_temporary(failure):
            return LoginOutcome(TEMPORARY, failure=failure)
        if not is_wrong(failure):
            return LoginOutcome(ERROR, failure=failure)
        outcome = LoginOutcome(WRONG)
        delay = failure_delay(attempt.failures, base_delay, max_delay)
        if delay <= 0:
            return outcome
        return task.deferLater(clock, delay, lambda: outcome).addErrback(_gone)

    d = attempt.run(check, is_temporary=is_temporary)
    return d.addCallbacks(lambda result: LoginOutcome(OK, result=result), failed)
