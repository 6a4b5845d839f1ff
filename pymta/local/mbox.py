# -*- test-case-name: tests.local.test_mbox -*-
"""
mbox delivery (see docs/internals.md, 'Mbox, Maildir and program delivery').

The file is opened for appending (created with mode 0600), locked with both
C{flock} and C{fcntl} record locks (so readers using either convention are
kept out), polled until C{lock_timeout} seconds have passed.  The message is
appended as C{From } line, Return-Path, Delivered-To, the message with
every C{>*From } line quoted by one more C{>}, a final newline if missing,
and one empty line; then fsynced.  On any write error the file is
truncated back to its old size, so a failed append leaves no partial
message behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from typing import Callable, Iterable

from pymta.fsutil import write_all
from pymta.local.errors import DeliveryFailure, guard_reads

__all__ = ["deliver_mbox", "LOCK_TIMEOUT"]

LOCK_TIMEOUT = 30.0
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_FROM = re.compile(rb">*From ")


def _lock(fd: int, timeout: float, sleep: Callable[[float], None], clock: Callable[[], float]) -> bool:
    """
    Take flock and fcntl locks; True when locked, False when the file system
    cannot lock (delivery then proceeds unlocked, as qmail does).
    Raises L{DeliveryFailure} when another writer holds the lock too long.
    """
    deadline = clock() + timeout
    delay = 0.005
    for kind in ("flock", "fcntl"):
        while True:
            try:
                if kind == "flock":
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in _BUSY:
                    return False
            if clock() >= deadline:
                raise DeliveryFailure.temporary(
                    f"File has been locked for {timeout:g} seconds straight. (#4.3.0)"
                )
            sleep(delay)
            delay = min(delay * 2, 0.2)
    return True


def _quoted(lines: Iterable[bytes]) -> Iterable[bytes]:
    last = b"\n"
    for line in lines:
        if _FROM.match(line):
            line = b">" + line
        last = line
        yield line
    if not last.endswith(b"\n"):
        yield b"\n"
    yield b"\n"


def deliver_mbox(
    path: str,
    display: str,
    prefix: bytes,
    lines: Iterable[bytes],
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """
    Append one message to the mbox at C{path} (C{display} is the name used in
    error texts, the path as the .qmail line wrote it).  C{prefix} holds the
    UFLINE, RPLINE and DTLINE; C{lines} the message's lines.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY, 0o600)
    except OSError as e:
        raise DeliveryFailure.temporary(f"Unable to open {display}: {e.strerror}. (#4.2.1)") from None
    try:
        locked = _lock(fd, lock_timeout, sleep, clock)
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            buffer = bytearray(prefix)
            for piece in _quoted(guard_reads(lines)):
                buffer += piece
                if len(buffer) >= 65536:
                    write_all(fd, buffer)
                    buffer.clear()
            write_all(fd, buffer)
            os.fsync(fd)
        except DeliveryFailure:
            _truncate(fd, start, locked)
            raise
        except OSError as e:
            _truncate(fd, start, locked)
            raise DeliveryFailure.temporary(f"Unable to write {display}: {e.strerror}. (#4.3.0)") from None
    finally:
        os.close(fd)  # closing drops both locks


def _truncate(fd: int, size: int, locked: bool) -> None:
    """Cut the file back to C{size}; only when we hold the lock (else another writer may have appended)."""
    if not locked:
        return
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass
