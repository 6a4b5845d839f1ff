# -*- test-case-name: tests.qmailhelpers.test_fastforward -*-
"""
Running a C{|program} target of C{/etc/aliases} or C{~/.forward}, for
C{fastforward} and C{dot-forward}: C{/bin/sh -c COMMAND} in the current
directory (the delivery's home), with the message on stdin preceded by
C{$UFLINE}, C{$RPLINE} and C{$DTLINE}, as sendmail gave programs a
C{From } line and as qmail's dot-forward does.  Its output goes where the
helper's goes (into the delivery report).

Its exit code counts as in program delivery
(L{pymta.local.program.PERMANENT_EXITS}): 0 and 99 succeed, 100, 64, 65,
70, 76, 77, 78 and 112 end the helper with 100 (bounce), anything else
with 111 (try again later).
"""

from __future__ import annotations

import os
from typing import Mapping

from pymta.local.program import PERMANENT_EXITS
from pymta.qmailhelpers.common import PERMANENT, TEMPORARY, Fatal, reason
from pymta.qmailhelpers.preline import run_preceded

__all__ = ["run_target_program"]


def run_target_program(command: str, environ: Mapping[bytes, bytes]) -> None:
    """Run one program target from the start of the message; L{Fatal} unless it succeeds."""
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to rewind: {reason(e)}") from None
    head = b""
    for name in (b"UFLINE", b"RPLINE", b"DTLINE"):
        value = environ.get(name)
        if value is None:
            raise Fatal(PERMANENT, f"{name.decode()} not set")
        head += value
    code = run_preceded(["/bin/sh", "-c", command], head)
    if code in (0, 99):
        return
    raise Fatal(PERMANENT if code in PERMANENT_EXITS else TEMPORARY, f"program {command!r} exited {code}")
