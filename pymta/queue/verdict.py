# -*- test-case-name: tests.queue.test_verdict -*-
"""
Judging one recipient's delivery result as qmail-send does: what a channel
reported, bounded to L{REPORT_MAX} characters, a deferral turned into a
failure once the message has been in the queue longer than
C{queuelifetime}, and a malformed report deferred.  Pure: the caller logs
the verdict (L{pymta.queue.qmaillog.QmailLog.delivery}) and checkpoints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS
from pymta.queue.retry import DYING_TEXT

__all__ = ["REPORT_MAX", "Verdict", "judge"]

#: longest report text kept from a channel (qmail's REPORTMAX)
REPORT_MAX = 10000


@dataclass(frozen=True)
class Verdict:
    """
    One recipient's outcome as pymta-send keeps it: C{status} is C{K}, C{Z}
    or C{D}, or None for a malformed report (treated as a deferral); C{text}
    is what the log line and a bounce quote.
    """

    status: str | None
    text: str
    #: a success whose DSN request the next server took over (L{pymta.interfaces.DeliveryResult.notify_passed_on})
    notify_passed_on: bool = False

    @property
    def stat(self) -> str:
        """The L{pymta.queue.scheduler.Scheduler.stats} counter this verdict adds to."""
        if self.status == SUCCESS:
            return "delivered"
        if self.status == FAILURE:
            return "failed"
        return "deferred"


def judge(result: object, dying: bool) -> Verdict:
    """
    The verdict on a channel's C{result} for one recipient (a
    L{pymta.interfaces.DeliveryResult}, or anything else for a mangled
    report); C{dying}: the message has outlived C{queuelifetime}.
    """
    status = getattr(result, "status", None)
    text = getattr(result, "text", None)
    if status not in (SUCCESS, DEFERRAL, FAILURE) or not isinstance(text, str):
        return Verdict(None, "")
    text = text[:REPORT_MAX]
    if status == DEFERRAL and dying:
        status = FAILURE
        if text and not text.endswith("\n"):
            text += "\n"
        text += DYING_TEXT
    return Verdict(status, text, getattr(result, "notify_passed_on", False) is True)
