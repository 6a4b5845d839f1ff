# -*- test-case-name: tests.dsn.test_bounceformat -*-
"""
C{control/bounceformat}: the form of pymta-send's failure reports.

- C{qsbmf} (the default, no file): qmail's bounce text, which mailing list
  managers and other qmail tools parse - except for a message whose client
  asked for delivery notices with RFC 3461's parameters (its DSN data):
  having offered DSN, pymta owes that client RFC 3464 reports.
- C{dsn}: every report in RFC 3464's multipart/report form.

Double bounces (to C{doublebounceto}) stay QSBMF, and success notices are
always RFC 3464 (QSBMF has no such report).
"""

from __future__ import annotations

from pymta.control import Controls, entry_error

__all__ = ["BOUNCE_FORMATS", "parse_bounceformat", "bounce_format"]

#: the values of control/bounceformat, the default first
BOUNCE_FORMATS = ("qsbmf", "dsn")


def parse_bounceformat(lines: list[str] | None) -> str:
    """The format control/bounceformat's entries name (C{qsbmf} without any); L{ControlError} otherwise."""
    if not lines:
        return BOUNCE_FORMATS[0]
    wanted = lines[0].strip().lower()
    if wanted not in BOUNCE_FORMATS:
        raise entry_error(lines, 0, f"unknown format {lines[0]!r} (expected {' or '.join(BOUNCE_FORMATS)})",
                          "bounceformat")
    if len(lines) > 1:
        raise entry_error(lines, 1, f"only one format is read: this line would be ignored: {lines[1]!r}", "bounceformat")
    return wanted


def bounce_format(controls: Controls) -> str:
    """The format C{controls}' control/bounceformat asks for."""
    return parse_bounceformat(controls.extra_lines("bounceformat"))
