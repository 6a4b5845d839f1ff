# -*- test-case-name: tests.queue.test_retry -*-
"""
qmail-send's retry schedule (see docs/internals.md, 'Retry schedule').

A pass over a message's channel file that starts at C{now} schedules the
next pass, should recipients remain, at::

    birth + (isqrt(now - birth) + C) ** 2

with C{C = 10} for the local channel and C{20} for the remote one, so a
message is tried at ages 0, 100, 400, 900 s ... (local) and 0, 400, 1600,
3600 s ... (remote).  A pass that starts after C{birth + queuelifetime} is
"dying": its deferrals become permanent failures.
"""

from __future__ import annotations

from math import isqrt

__all__ = ["CHANNEL_SKIP", "SYSFAIL_DELAY", "next_retry", "is_dying", "DYING_TEXT"]

#: the C{C} of the formula for each channel
CHANNEL_SKIP = {"local": 10, "remote": 20}

#: qmail's delay after trouble with a queue file (stat, open, unlink, bounce injection)
SYSFAIL_DELAY = 123

#: appended to a deferral's text when the message has outlived queuelifetime
DYING_TEXT = "I'm not going to try again; this message has been in the queue too long.\n"


def next_retry(birth: int, now: int, channel: str) -> int:
    """When a pass of C{channel} starting at C{now} should be repeated (seconds since the epoch)."""
    age = now - birth
    n = isqrt(age) if age > 0 else 0
    n += CHANNEL_SKIP[channel]
    return birth + n * n


def is_dying(birth: int, now: int, lifetime: int) -> bool:
    """True when a pass starting at C{now} is the message's last chance."""
    return now > birth + lifetime
