# -*- test-case-name: tests.cli.test_queuerun -*-
"""
C{sendmail -q[...]}: what a sendmail-style queue run means to pymta.

- C{-q}: every queued message is retried now, through pymta-send's control
  socket as C{pymta ctl doqueue} does (or its signal when the socket is
  missing).  Silent on success, as cron jobs like it.
- C{-q30m}, C{-q1h}...: a sendmail daemon's interval between queue runs.
  Refused with a clear message: pymta-send schedules its own retries
  (docs/queue.md), so there is nothing to run periodically.
- C{-qRdomain}, C{-qSsender}: retry now only the messages to that domain or
  from that sender, as C{pymta ctl retry --domain D} / C{--sender S}.

Exit codes are sendmail's: 0 done, 64 usage (or unsupported form), 75
pymta-send not running or the command failed (try again).
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import TextIO

__all__ = ["run_queue", "ctl_arguments", "QueueRunRefused"]

EX_OK = 0
EX_USAGE = 64
EX_TEMPFAIL = 75

#: -qR / -qS and the ctl selector each becomes
SELECTORS = {"R": "--domain", "S": "--sender"}
_INTERVAL = re.compile(r"^[0-9]")


class QueueRunRefused(Exception):
    """A C{-q} form pymta does not run; the text says why and what to use."""


def ctl_arguments(text: str) -> list[str]:
    """The C{pymta ctl} arguments for C{-q<text>}; raises L{QueueRunRefused}."""
    if text == "":
        return ["doqueue"]
    if _INTERVAL.match(text):
        raise QueueRunRefused(
            f"-q{text}: pymta-send schedules its own retries and needs no queue-run interval; "
            "use 'sendmail -q' or 'pymta ctl doqueue' to retry everything now"
        )
    letter, value = text[:1], text[1:]
    if letter in SELECTORS:
        if not value:
            raise QueueRunRefused(f"-q{letter} needs a value (-q{letter}example.com)")
        return ["retry", SELECTORS[letter], value]
    raise QueueRunRefused(f"-q{text}: unsupported (pymta knows -q, -qRdomain and -qSsender)")


def run_queue(name: str, root: str, text: str, err: TextIO) -> int:
    """Run C{sendmail -q<text>} against the pymta-send of C{root}; returns sendmail's exit code."""
    from pymta.cli import ctl

    try:
        arguments = ctl_arguments(text)
    except QueueRunRefused as e:
        err.write(f"{name}: {e}\n")
        return EX_USAGE
    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(err):
        status = ctl.main(["--root", root, *arguments])
    if status == ctl.EXIT_OK:
        return EX_OK
    return EX_USAGE if status == ctl.EXIT_USAGE else EX_TEMPFAIL
