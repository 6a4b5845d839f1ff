# -*- test-case-name: tests.report.test_when -*-
"""
The times C{pymta report --since/--until} accept, as seconds since the epoch:

  - ISO 8601 as the log writes it or shorter: C{2026-05-01},
    C{2026-05-01T10:00}, C{2026-05-01 10:00:00+0200}; without a zone the
    local time zone is meant, as in the log;
  - an age: C{90s}, C{30m}, C{12h}, C{7d}, C{2w} - that long before now;
  - C{@SECONDS}: seconds since the epoch.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["parse_when"]

_AGE = re.compile(r"(\d{1,9})([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, now: float) -> float:
    """Seconds since the epoch for C{text}; L{ValueError} naming the forms when it is none of them."""
    text = text.strip()
    if m := _AGE.match(text):
        return now - int(m[1]) * _UNITS[m[2]]
    if text.startswith("@"):
        try:
            return float(text[1:])
        except ValueError:
            pass
    else:
        try:
            return datetime.fromisoformat(text).timestamp()  # naive: local time
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a time: give 2026-05-01[T10:00[:00][+0200]], an age (90s, 30m, 12h, 7d, 2w)"
                     " or @SECONDS")
