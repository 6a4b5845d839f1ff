# -*- test-case-name: tests.queue.test_cleaner -*-
"""
Removal of files a crashed writer left in the queue (see docs/internals.md,
'Enqueue order and leftovers').

A writer that dies before its commit point leaves, depending on the
instant: a C{pid/} file (state S1 plus a name), a C{mess/N/ID} file (S2),
or C{mess/N/ID} and C{intd/ID} (S3).  None of them is visible to the
scheduler, which works from C{todo/} and C{info/}; L{clean_queue} removes
them.

How a leftover is told from a message being written right now: every pymta
writer holds an exclusive C{flock} on its file's inode from the moment the
pid file is created until its commit (or abort) is over.  A file the cleaner
can lock has no live writer.  For a message file the cleaner then checks,
in this order, that neither C{todo/ID} nor C{info/ID} exists (the scheduler
creates C{info/ID} before it removes C{todo/ID}, so this order never misses
a message in flight).  A C{reason/N/ID} or C{dsn/N/ID} file (pymta's own)
goes, whatever its age, when its message has no C{info/N/ID} (they are
written only while it exists) - a dsn file only when there is no C{todo/ID}
either, checked first: preprocessing, redoing a message, writes it afresh
beside a new C{info/N/ID}; a temporary file a rewrite of one left goes like the
rest.  Files younger than C{grace} seconds are otherwise left alone (a writer creates its pid file an instant before locking it).  On a
filesystem without C{flock}, qmail's rule applies instead: 36 hours of age.

A message C{pymta ctl delete} was removing when it died leaves a channel
file, C{bounce/ID}, C{hold/ID} or C{reason/N/ID} under an id with neither C{todo/ID} nor
C{info/ID} (nothing else does: preprocessing writes C{info} before the
channel files, finishing removes them before C{info}; a writer queuing a
message held writes C{hold/ID} before C{todo/ID}, holding the message
file's lock, so those files are left alone while a writer holds it, or
without C{flock} while C{hold/ID} is younger than C{grace}).  Those files go at
once, whatever their age, and the message file with them unless a writer
holds its lock (L{pymta.queue.ctldisk} has the order).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from typing import Callable

from twisted.logger import Logger

from pymta.queue.ctldisk import leftover_paths
from pymta.queue.layout import QueueLayout

__all__ = ["clean_queue", "STALE_AGE", "GRACE"]

log = Logger(namespace="pymta.queue.cleaner")

#: qmail's age for crash leftovers when no lock tells (129600 s)
STALE_AGE = 36 * 3600
#: files younger than this are never touched
GRACE = 10.0


class _Unlockable(Exception):
    """The filesystem does not support flock here."""


def _try_lock(path: str) -> int | None:
    """An fd holding the file's exclusive lock, or C{None} when a writer holds it / it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise _Unlockable(str(e)) from e
    return fd


def _age(path: str, now: float) -> float | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return now - st.st_mtime


def _remove(path: str, removed: list[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as e:
        log.warn("cleaner: unable to remove {path}: {error}", path=path, error=e.strerror)
        return
    removed.append(path)


def _stale(path: str, now: float, grace: float, still_stale) -> bool | int:
    """
    Decide about one file: C{False} to keep it, else an fd holding its lock
    (or C{True} when decided by age) - the caller removes and unlocks.
    """
    age = _age(path, now)
    if age is None or age < grace:
        return False
    try:
        fd = _try_lock(path)
    except _Unlockable:
        return age > STALE_AGE and still_stale()
    if fd is None:
        return False
    if not still_stale():
        os.close(fd)
        return False
    return fd


def _being_written(path: str, fresh: str, now: float, grace: float) -> bool:
    """
    A writer holds the lock of the message file C{path}; without flock, a
    writer may be at work while C{fresh} (its hold/ID, written just before
    todo/ID) is younger than C{grace}.
    """
    try:
        fd = _try_lock(path)
    except _Unlockable:
        age = _age(fresh, now)
        return age is not None and age < grace
    if fd is None:
        return os.path.exists(path)
    os.close(fd)
    return False


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _finish_deletes(layout: QueueLayout, now: float, grace: float, unprocessed: Callable[[int], bool],
                    removed: list[str]) -> None:
    """Remove what an interrupted C{pymta ctl delete} left (see the module docstring)."""
    found: set[int] = set()
    for top in ("local", "remote"):
        for sub in _listdir(layout.dir(top)):
            found.update(int(name) for name in _listdir(os.path.join(layout.dir(top), sub)) if name.isdigit())
    for top in ("bounce", "hold"):
        found.update(int(name) for name in _listdir(layout.dir(top)) if name.isdigit())
    for sub in _listdir(layout.dir("reason")):
        found.update(int(name) for name in _listdir(os.path.join(layout.dir("reason"), sub)) if name.isdigit())
    for message_id in sorted(found):
        # a writer queuing a message held writes hold/ID before todo/ID, under its lock: asked again
        # after the lock, as the writer lets go of it only once todo/ID is there
        if (not unprocessed(message_id) or _being_written(layout.mess(message_id), layout.hold(message_id), now, grace)
                or not unprocessed(message_id)):
            continue
        *files, mess = leftover_paths(layout, message_id)
        for path in files:
            _remove(path, removed)
        verdict = _stale(mess, now, 0.0, lambda: unprocessed(message_id))
        if verdict is not False:
            _remove(mess, removed)
            if verdict is not True:
                os.close(verdict)


def clean_queue(layout: QueueLayout, now: float | None = None, grace: float = GRACE) -> list[str]:
    """
    Remove crash leftovers: C{pid/} files, C{mess/N/ID} with neither
    C{todo/ID} nor C{info/ID} (with their C{intd/ID}), and C{intd/ID}
    without C{todo/ID} whose message file is gone or stale.  Safe while
    other processes write the queue.  Returns the removed paths, for the log.
    """
    if now is None:
        now = time.time()
    removed: list[str] = []

    piddir = layout.dir("pid")
    for name in _listdir(piddir):
        path = os.path.join(piddir, name)
        verdict = _stale(path, now, grace, lambda: True)
        if verdict is not False:
            _remove(path, removed)
            if verdict is not True:
                os.close(verdict)

    def unprocessed(message_id: int) -> bool:
        return not os.path.exists(layout.todo(message_id)) and not os.path.exists(layout.info(message_id))

    _finish_deletes(layout, now, grace, unprocessed, removed)

    messdir = layout.dir("mess")
    for sub in _listdir(messdir):
        subdir = os.path.join(messdir, sub)
        if not os.path.isdir(subdir):
            continue
        for name in _listdir(subdir):
            if not name.isdigit():
                continue
            message_id = int(name)
            path = os.path.join(subdir, name)
            verdict = _stale(path, now, grace, lambda: unprocessed(message_id))
            if verdict is not False:
                _remove(layout.intd(message_id), removed)
                _remove(path, removed)
                if verdict is not True:
                    os.close(verdict)

    intddir = layout.dir("intd")
    for name in _listdir(intddir):
        if not name.isdigit():
            continue
        message_id = int(name)
        if os.path.exists(layout.todo(message_id)):
            continue
        path = os.path.join(intddir, name)
        mess = layout.mess(message_id)
        if os.path.exists(mess):
            # its message file decides (it was skipped above: young or locked)
            continue
        age = _age(path, now)
        if age is not None and age >= grace and not os.path.exists(layout.todo(message_id)):
            _remove(path, removed)

    _clean_reasons(layout, now, grace, removed)
    for path in removed:
        log.info("cleaner: removed {path}", path=path)
    return removed


def _clean_reasons(layout: QueueLayout, now: float, grace: float, removed: list[str]) -> None:
    """Reason and dsn files whose message is gone, and temporary files of rewrites that never ended."""

    def no_info(message_id: int) -> bool:
        return not os.path.exists(layout.info(message_id))

    def gone(message_id: int) -> bool:  # in this order: preprocessing makes info/ID before todo/ID goes
        return not os.path.exists(layout.todo(message_id)) and no_info(message_id)

    _clean_beside_info(layout, layout.dir("reason"), now, grace, removed, no_info)
    _clean_beside_info(layout, layout.dir("dsn"), now, grace, removed, gone)


def _clean_beside_info(layout: QueueLayout, top: str, now: float, grace: float, removed: list[str],
                       gone: Callable[[int], bool]) -> None:
    for sub in _listdir(top):
        subdir = os.path.join(top, sub)
        if not os.path.isdir(subdir):
            continue
        for name in _listdir(subdir):
            path = os.path.join(subdir, name)
            if name.isdigit():
                # written only while info/ID exists: without it, a leftover at any age
                if gone(int(name)):
                    _remove(path, removed)
                continue
            age = _age(path, now)
            if age is not None and age >= grace:
                _remove(path, removed)  # a rewrite's temporary file that never ended
