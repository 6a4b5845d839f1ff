# -*- test-case-name: tests.forwarding.test_guardedfile -*-
"""
Reading a file that says where mail goes (a C{.forward}, an C{:include:}
list), as qmail reads a C{.qmail} file: a regular file nobody but its
owner may change, read to a bound.

L{read_guarded} opens without waiting (a FIFO or device never blocks the
delivery), judges what it opened (C{fstat} of the descriptor) and raises
L{UnusableFile} with one of L{OPEN}, L{NOT_REGULAR}, L{WRITABLE},
L{READ}, L{TOO_LARGE}; the callers word the refusal their own way.
"""

from __future__ import annotations

import os
import stat

__all__ = ["UnusableFile", "read_guarded", "OPEN", "NOT_REGULAR", "WRITABLE", "READ", "TOO_LARGE"]

OPEN = "open"
NOT_REGULAR = "not regular"
WRITABLE = "writable"
READ = "read"
TOO_LARGE = "too large"


class UnusableFile(Exception):
    """Why the file cannot be used: C{kind} (one of the constants) and the L{OSError} behind it, if any."""

    def __init__(self, kind: str, error: OSError | None = None) -> None:
        super().__init__(kind, error)
        self.kind = kind
        self.error = error


def read_guarded(path: str, limit: int) -> bytes:
    """The content of C{path}, at most C{limit} bytes; L{UnusableFile} otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise UnusableFile(OPEN, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnusableFile(NOT_REGULAR)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnusableFile(WRITABLE)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise UnusableFile(READ, e) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnusableFile(TOO_LARGE)
    return data
