"""
The age columns of a queue report, in minutes, as Postfix's C{qshape}
draws them: each column holds the ages below its limit and not below the
previous one (half-open: a message exactly 5 minutes old is in C{5-10}),
the last holds every age from the last limit on.  C{pymta qshape} and
pymta-send's C{pymta_queue_messages_by_age} metric both use these.
"""

from __future__ import annotations

__all__ = ["LIMITS", "age_index", "column_label"]

#: the columns' upper limits in minutes (a geometric series, as Postfix's default)
LIMITS = (5, 10, 20, 40, 80, 160, 320, 640, 1280)


def age_index(seconds: float) -> int:
    """The column of an age in seconds: 0 for under 5 minutes ... C{len(LIMITS)} from 1280 minutes on."""
    minutes = max(0.0, seconds) / 60
    for index, limit in enumerate(LIMITS):
        if minutes < limit:
            return index
    return len(LIMITS)


def column_label(index: int) -> str:
    """The metric's label of a column: C{"0-5"} ... C{"640-1280"}, C{"1280+"}."""
    if index >= len(LIMITS):
        return f"{LIMITS[-1]}+"
    low = LIMITS[index - 1] if index > 0 else 0
    return f"{low}-{LIMITS[index]}"
