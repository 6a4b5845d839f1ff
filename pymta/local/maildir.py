# -*- test-case-name: tests.local.test_maildir -*-
"""
Maildir delivery (qmail-local's maildir child; see docs/internals.md, 'Mbox,
Maildir and program delivery').

The message is written to C{tmp/NAME} with Return-Path and Delivered-To
prepended, flushed and fsynced, then hard-linked to C{new/NAME}; the
C{new/} directory is fsynced so the link survives a crash, and C{tmp/NAME}
is removed.  A failure at any step removes C{tmp/NAME} and raises
L{DeliveryFailure} with qmail's temporary-failure text.

Unique names are C{SECONDS.MMICROSPPID[QN].HOST}: the C{Q} part counts
deliveries made by one process (needed when one process delivers many
messages in the same microsecond, e.g. in-process benchmarks).
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import time
from typing import Callable, Iterable

from pymta.fsutil import fsync_dir
from pymta.local.errors import DeliveryFailure
from pymta.local.messagecopy import ChunkCopy, MessageCopy

__all__ = ["deliver_maildir", "unique_name", "maildir_hostname"]

_counter = itertools.count(1)
_TRIES = 3


def maildir_hostname() -> str:
    """This host's name with C{/} and C{:} encoded as the Maildir convention asks."""
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072")


def unique_name(now: float | None = None, pid: int | None = None, host: str | None = None) -> str:
    """A Maildir file name no other delivery on this host uses."""
    t = time.time() if now is None else now
    seconds = int(t)
    micros = int((t - seconds) * 1_000_000)
    p = os.getpid() if pid is None else pid
    h = maildir_hostname() if host is None else host
    return f"{seconds}.M{micros}P{p}Q{next(_counter)}.{h}"


def deliver_maildir(
    maildir: str,
    prefix: bytes,
    body: Iterable[bytes] | MessageCopy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """
    Deliver C{prefix} + C{body} into C{maildir}; return the path in C{new/}.
    C{body} is the message's chunks, or a L{MessageCopy} that writes it.

    Raises L{DeliveryFailure} (always temporary, as in qmail) on any error.
    """
    message = body if isinstance(body, MessageCopy) else ChunkCopy(body)
    if not os.path.isdir(maildir):
        raise DeliveryFailure.temporary("Unable to chdir to maildir. (#4.2.1)")
    tmpdir = os.path.join(maildir, "tmp")
    newdir = os.path.join(maildir, "new")
    for attempt in range(_TRIES):
        name = unique_name()
        tmppath = os.path.join(tmpdir, name)
        try:
            fd = os.open(tmppath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if attempt + 1 < _TRIES:
                sleep(2)
                continue
            raise DeliveryFailure.temporary(
                "Temporary error on maildir delivery: no unique name in tmp/. (#4.3.0)"
            ) from None
        except OSError as e:
            missing = " (is this a Maildir?)" if e.errno in (errno.ENOENT, errno.ENOTDIR) else ""
            raise DeliveryFailure.temporary(
                f"Temporary error on maildir delivery: cannot create tmp/{name}: {e.strerror}{missing}. (#4.3.0)"
            ) from None
        break
    try:
        try:
            with os.fdopen(fd, "wb", buffering=65536) as f:
                f.write(prefix)
                message.copy_to(f)
                f.flush()
                os.fsync(f.fileno())
        except DeliveryFailure:
            raise
        except OSError as e:
            raise DeliveryFailure.temporary(
                f"Temporary error on maildir delivery: writing tmp/{name}: {e.strerror}. (#4.3.0)"
            ) from None
        newpath = os.path.join(newdir, name)
        try:
            os.link(tmppath, newpath)
        except OSError as e:
            raise DeliveryFailure.temporary(
                f"Temporary error on maildir delivery: linking to new/{name}: {e.strerror}. (#4.3.0)"
            ) from None
        try:
            fsync_dir(newdir)
        except OSError as e:
            try:
                os.unlink(newpath)
            except OSError:
                pass
            raise DeliveryFailure.temporary(
                f"Temporary error on maildir delivery: syncing new/: {e.strerror}. (#4.3.0)"
            ) from None
    finally:
        try:
            os.unlink(tmppath)
        except OSError:
            pass
    return newpath
