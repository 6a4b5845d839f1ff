# -*- test-case-name: tests.queue.test_handoff -*-
"""
Why hand-offs to the queue fail, logged once per condition.

L{InjectClientSink} tells a L{HandOffLog} the outcome of every message it
hands to pymta-send.  The first temporary failure of a condition (the
inject socket missing, the connection refused, no reply in time, a lost
connection, the queue's own error such as C{qq write error or disk full})
is logged as a warning naming the cause; further failures of the same
condition are only counted.  A different condition is logged at once
(with the count of the previous one), and the first hand-off that works
again logs one line saying so and how many failed meanwhile.

Permanent refusals (C{554}, say an address too long) are about one message,
not about the hand-off, and change nothing here.  L{describe_connect_failure}
turns a failed connection into a cause an administrator can act on.
"""

from __future__ import annotations

import errno

from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.interfaces import QueueReceipt, QueueRefused

__all__ = ["HandOffLog", "describe_connect_failure"]


def describe_connect_failure(failure: Failure, path: str) -> str:
    """The cause of a failed connection to the inject socket at C{path}."""
    if failure.check(ConnectionRefusedError):
        return f"inject socket {path} refuses connections: pymta-send is not listening on it"
    if failure.check(ConnectError):
        os_error = getattr(failure.value, "osError", None)
        code = os_error if isinstance(os_error, int) else getattr(os_error, "errno", None)
        if code == errno.ENOENT or "No such file or directory" in failure.getErrorMessage():
            return f"inject socket {path} is missing: is pymta-send running?"
        if code == errno.EACCES or "Permission denied" in failure.getErrorMessage():
            return f"inject socket {path}: permission denied"
    return f"inject socket {path}: {failure.getErrorMessage()}"


def _cause(refusal: QueueRefused) -> str:
    detail = getattr(refusal, "detail", "")
    return f"{refusal.text}: {detail}" if detail else refusal.text


class HandOffLog:
    """The state of hand-offs to the queue: working, or failing for one cause (and how often)."""

    def __init__(self, log: Logger | None = None) -> None:
        self.log = log if log is not None else Logger(namespace="pymta.queue.handoff")
        self.cause: str | None = None  # the condition failing now, None while hand-offs work
        self.failures = 0  # hand-offs failed since they last worked
        self.failures_of_cause = 0

    def outcome(self, result: QueueReceipt | QueueRefused) -> None:
        """One message's hand-off ended with C{result}."""
        if isinstance(result, QueueReceipt):
            self.worked()
        elif not result.permanent:
            self.failed(_cause(result))

    def failed(self, cause: str) -> None:
        self.failures += 1
        if cause == self.cause:
            self.failures_of_cause += 1
            return
        if self.cause is None:
            self.log.warn("queue hand-off failed: {cause} (repeats of this cause are counted, not logged)",
                          cause=cause)
        else:
            self.log.warn("queue hand-off failed: {cause} (after {count} failed: {previous})",
                          cause=cause, count=self.failures_of_cause, previous=self.cause)
        self.cause = cause
        self.failures_of_cause = 1

    def worked(self) -> None:
        if self.cause is None:
            return
        self.log.info("queue hand-off works again; {count} failed meanwhile (last cause: {cause})",
                      count=self.failures, cause=self.cause)
        self.cause = None
        self.failures = self.failures_of_cause = 0
