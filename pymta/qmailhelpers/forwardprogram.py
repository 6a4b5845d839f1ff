# -*- test-case-name: tests.qmailhelpers.test_fastforward -*-
"""
Running a C{|program} target of C{/etc/aliases} or C{~/.forward}, for
C{fastforward} and C{dot-forward}: C{/bin/sh -c COMMAND} in the current
directory (the delivery's home), with the message on stdin preceded by
C{$UFLINE}, C{$RPLINE} and C{$DTLINE}, as sendmail gave programs a
C{From } line and as qmail's dot-forward does.  Its output goes where the
helper's goes (into the delivery report).

Its exit code decides, as in program delivery
(L{pymta.local.program.PERMANENT_EXITS}): 0 and 99 succeed, 100, 64, 65,
70, 76, 77, 78 and 112 end the helper with 100 (bounce), anything else
(or a signal) with 111 (try again later).  A program that exits without
reading all of the message is judged by its exit code alone, as a
C{.qmail} program line is.
"""

from __future__ import annotations

import os
import subprocess
from typing import Mapping

from pymta.local.program import PERMANENT_EXITS
from pymta.qmailhelpers.common import PERMANENT, TEMPORARY, Fatal, exec_failure_code, reason

__all__ = ["run_target_program"]

_CHUNK = 65536


def _feed(fd: int, head: bytes) -> None:
    """C{head}, then fd 0 from the start, into C{fd}; stops quietly when the program stops reading."""
    try:
        data = head
        while data:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            data = os.read(0, _CHUNK)
    except BrokenPipeError:
        pass


def run_target_program(command: str, environ: Mapping[bytes, bytes]) -> None:
    """Run one program target from the start of the message; L{Fatal} unless it succeeds."""
    head = b""
    for name in (b"UFLINE", b"RPLINE", b"DTLINE"):
        value = environ.get(name)
        if value is None:
            raise Fatal(PERMANENT, f"{name.decode()} not set")
        head += value
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to rewind: {reason(e)}") from None
    try:
        child = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE, close_fds=True)
    except OSError as e:
        raise Fatal(exec_failure_code(e), f"unable to run /bin/sh: {reason(e)}") from None
    assert child.stdin is not None
    try:
        _feed(child.stdin.fileno(), head)
    except OSError as e:
        child.stdin.close()
        child.wait()
        raise Fatal(TEMPORARY, f"unable to read the message: {reason(e)}") from None
    child.stdin.close()
    code = child.wait()
    if code in (0, 99):
        return
    if code < 0:
        raise Fatal(TEMPORARY, f"program {command!r} crashed")
    raise Fatal(PERMANENT if code in PERMANENT_EXITS else TEMPORARY, f"program {command!r} exited {code}")
