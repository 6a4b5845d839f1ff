# -*- test-case-name: tests.qmailhelpers.test_common -*-
"""
What the .qmail helpers share: qmail's exit codes, the fatal-error exit
(L{Fatal}: C{NAME: fatal: text} on stderr), reading the variables local
delivery sets, and running a program the way qmail's helpers do
(L{run_program}).

A program that cannot be started counts as if it had exited 111 when the
reason may go away (L{TEMPORARY_ERRNOS}: out of memory or descriptors, a
busy executable, an I/O error, a timeout) and 100 otherwise (no such file,
permission denied): the helper then maps that code like any other.  A
program killed by a signal is a temporary failure of the helper
(C{child crashed}).
"""

from __future__ import annotations

import errno
import subprocess
import sys
from typing import Callable, Mapping

__all__ = [
    "OK",
    "STOP",
    "PERMANENT",
    "TEMPORARY",
    "TEMPORARY_ERRNOS",
    "Fatal",
    "say",
    "reason",
    "exec_failure_code",
    "run_program",
    "required",
    "run_helper",
]

OK = 0
STOP = 99
PERMANENT = 100
TEMPORARY = 111

TEMPORARY_ERRNOS = frozenset({
    errno.EINTR, errno.ENOMEM, errno.ETXTBSY, errno.EIO, errno.EAGAIN, errno.ENFILE, errno.EMFILE,
    errno.ENOSPC, errno.EDQUOT, errno.ETIMEDOUT, errno.EBUSY, errno.ESTALE,
})


class Fatal(Exception):
    """Stop the helper with C{code}, printing C{NAME: fatal: text}."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def say(name: str, text: str) -> None:
    """One line on stderr (local delivery puts it into the delivery report)."""
    sys.stderr.write(f"{name}: {text}\n")
    sys.stderr.flush()


def reason(error: OSError) -> str:
    """An OS error's text in qmail's lowercase style, e.g. C{broken pipe}."""
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]


def exec_failure_code(error: OSError) -> int:
    """The exit code a program that could not be started counts as: 111 or 100."""
    return TEMPORARY if error.errno in TEMPORARY_ERRNOS else PERMANENT


def run_program(argv: list[str]) -> int:
    """
    Run C{argv} (found on PATH) with this process's stdin, stdout and stderr
    and wait for it; its exit code, or L{exec_failure_code} when it cannot
    start.  Raises L{Fatal} (111, C{child crashed}) when a signal killed it.
    """
    try:
        child = subprocess.Popen(argv, close_fds=True)
    except OSError as e:
        return exec_failure_code(e)
    code = child.wait()
    if code < 0:
        raise Fatal(TEMPORARY, "child crashed")
    return code


def required(environ: Mapping[str, str], name: str) -> str:
    """C{environ[name]}, or L{Fatal} (100, C{NAME not set}) as qmail's helpers do outside a delivery."""
    value = environ.get(name)
    if value is None:
        raise Fatal(PERMANENT, f"{name} not set")
    return value


def run_helper(name: str, body: Callable[[], int]) -> int:
    """C{body()}'s exit code; a L{Fatal} is printed as C{NAME: fatal: text} and gives its code."""
    try:
        return body()
    except Fatal as e:
        say(name, f"fatal: {e.text}")
        return e.code
