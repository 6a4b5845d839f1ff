# -*- test-case-name: tests.pop3d.test_maildir -*-
"""
A Maildir as one POP3 session sees it (qmail-pop3d semantics), synchronous.

Used in-process for virtual users and inside the per-user mailbox child for
system users.  At L{MaildirStore.load}:

  - files in C{tmp/} whose atime is older than 36 hours are removed;
  - every C{new/X} is moved to C{cur/X:2,} (at session start, as the issue
    asks; qmail-pop3d moves at QUIT - either way nothing is lost: the move
    is C{link} then C{unlink}, so an existing C{cur/} name is never
    overwritten and a crash leaves at worst a second link that the next
    session removes);
  - C{cur/} is listed (names starting with C{.} skipped, non-regular files
    skipped) and sorted by mtime, then name; the numbering 1..N is fixed for
    the session.  Unlike qmail, files with an mtime in the current second are
    listed too: a file in C{new/} is complete by the Maildir protocol.

Sizes are CRLF sizes (what the client receives); a Dovecot-style C{,W=N}
in the name is trusted, otherwise the file is read once and the result
cached by (inode, size, mtime).  The UIDL is the file name up to the first
C{:}.  Message files are opened with C{O_NOFOLLOW}: a symlink planted in a
Maildir is never followed.  L{MaildirStore.commit} unlinks the messages
deleted in the session (QUIT in the UPDATE state); a message already removed
by another session counts as deleted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable

from pymta.pop3d.encoding import file_crlf_size

__all__ = ["MaildirStore", "MaildirMessage", "NoMaildir", "MessageUnavailable", "TMP_MAX_AGE"]

TMP_MAX_AGE = 36 * 3600
_VSIZE = re.compile(r",W=(\d+)")
_SIZE_CACHE_MAX = 200_000
_size_cache: dict[tuple[int, int, int, int], int] = {}


class NoMaildir(Exception):
    """The account's Maildir (new/ and cur/) does not exist or cannot be read."""


class MessageUnavailable(Exception):
    """The message file is gone or cannot be opened."""


@dataclass
class MaildirMessage:
    uid: str
    name: str  # current file name in cur/
    size: int
    mtime: float


def uid_of(name: str) -> str:
    """The UIDL of a Maildir file name: the part before the first C{:}, made RFC 1939-safe."""
    base = name.split(":", 1)[0]
    if 0 < len(base) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in base):
        return base
    return hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:64]


def _cached_size(path: str, st: os.stat_result, name: str) -> int:
    m = _VSIZE.search(name.split(":", 1)[0])
    if m:
        return int(m.group(1))
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    size = _size_cache.get(key)
    if size is None:
        with _open_nofollow(path) as f:
            size = file_crlf_size(f)
        if len(_size_cache) >= _SIZE_CACHE_MAX:
            _size_cache.clear()
        _size_cache[key] = size
    return size


def _open_nofollow(path: str) -> BinaryIO:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


class MaildirStore:
    """One session's view of a Maildir."""

    def __init__(self, maildir: str, now: Callable[[], float] = time.time) -> None:
        self.maildir = maildir
        self._now = now
        self.messages: list[MaildirMessage] = []

    def _path(self, *parts: str) -> str:
        return os.path.join(self.maildir, *parts)

    def load(self) -> list[MaildirMessage]:
        """Clean tmp/, move new/ to cur/, list cur/; L{NoMaildir} if it is missing."""
        for sub in ("new", "cur"):
            if not os.path.isdir(self._path(sub)):
                raise NoMaildir(self.maildir)
        self._clean_tmp()
        try:
            self._move_new()
            messages = self._scan_cur()
        except OSError as e:
            raise NoMaildir(f"{self.maildir}: {e.strerror}") from e
        messages.sort(key=lambda m: (m.mtime, m.name))
        self.messages = messages
        return messages

    def _clean_tmp(self) -> None:
        tmp = self._path("tmp")
        try:
            names = os.listdir(tmp)
        except OSError:
            return
        limit = self._now() - TMP_MAX_AGE
        for name in names:
            path = os.path.join(tmp, name)
            try:
                st = os.lstat(path)
                if st.st_atime < limit and not stat.S_ISDIR(st.st_mode):
                    os.unlink(path)
            except OSError:
                continue

    def _move_new(self) -> None:
        for name in os.listdir(self._path("new")):
            if name.startswith("."):
                continue
            source = self._path("new", name)
            target = self._path("cur", name if ":" in name else name + ":2,")
            try:
                os.link(source, target)
            except FileExistsError:
                # A crash between link and unlink, or a name clash: drop new/X
                # only when both names are the same file.
                try:
                    if os.path.samestat(os.lstat(source), os.lstat(target)):
                        os.unlink(source)
                except OSError:
                    pass
                continue
            except FileNotFoundError:
                continue  # another session moved it
            try:
                os.unlink(source)
            except FileNotFoundError:
                pass

    def _scan_cur(self) -> list[MaildirMessage]:
        messages = []
        cur = self._path("cur")
        for name in os.listdir(cur):
            if name.startswith("."):
                continue
            path = os.path.join(cur, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                size = _cached_size(path, st, name)
            except OSError:
                continue  # vanished or unreadable: not part of this session
            messages.append(MaildirMessage(uid_of(name), name, size, st.st_mtime))
        return messages

    def _relocate(self, message: MaildirMessage) -> bool:
        """Find C{message} again after another client changed its flags (renamed it)."""
        try:
            names = os.listdir(self._path("cur"))
        except OSError:
            return False
        for name in names:
            if not name.startswith(".") and uid_of(name) == message.uid:
                message.name = name
                return True
        return False

    def open(self, index: int) -> BinaryIO:
        """The message file (binary, unbuffered); L{MessageUnavailable} if it cannot be opened."""
        message = self.messages[index]
        for attempt in (1, 2):
            try:
                return _open_nofollow(self._path("cur", message.name))
            except FileNotFoundError:
                if attempt == 1 and self._relocate(message):
                    continue
                raise MessageUnavailable(message.uid) from None
            except OSError as e:
                raise MessageUnavailable(f"{message.uid}: {e.strerror}") from None
        raise MessageUnavailable(message.uid)

    def commit(self, deleted: Iterable[int]) -> bool:
        """Unlink the given messages; True when every one is gone."""
        ok = True
        for index in deleted:
            message = self.messages[index]
            for attempt in (1, 2):
                try:
                    os.unlink(self._path("cur", message.name))
                    break
                except FileNotFoundError:
                    if attempt == 1 and self._relocate(message):
                        continue
                    break  # already removed by another session: gone is what was asked
                except OSError:
                    ok = False
                    break
        return ok
