# -*- test-case-name: tests.test_ownfile -*-
"""
Opening, as root, a file in a directory another account may write: twistd's
log file and pid file (L{pymta.logrotation}, L{pymta.pidfile}).

The account that owns such a directory can put a symbolic link or a hard
link to any file there.  A root process that opens the name and then gives
the file to the account (C{fchown}) would give away the link's target.  So
pymta never follows a symbolic link at the last part of the name
(C{O_NOFOLLOW}), and gives a file away only when it is a regular file with
one name, the one at the path (the same inode from C{lstat} and C{fstat}).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["UnsafeFile", "open_no_follow", "require_sole_regular"]


class UnsafeFile(OSError):
    """A file pymta will not open or give away as root; the message says why, in one line."""


def open_no_follow(path: str, flags: int, mode: int = 0o666) -> int:
    """
    C{os.open} with C{O_NOFOLLOW} and C{O_CLOEXEC}; a symbolic link at
    C{path} raises L{UnsafeFile} naming it (other errors stay C{OSError}).
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EEXIST and os.path.islink(path)):
            raise UnsafeFile(
                f"{path} is a symbolic link (to {os.readlink(path)!r}); pymta opens this file as root and follows no link "
                "there: name the file itself"
            ) from None
        raise


def require_sole_regular(fd: int, path: str) -> os.stat_result:
    """
    The C{fstat} of C{fd} when it is a regular file with one name, and
    C{path} names it (not a link, not another file put there since it was
    opened); L{UnsafeFile} saying which of these failed otherwise.
    """
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{path} is not a regular file")
    if st.st_nlink != 1:
        raise UnsafeFile(f"{path} has {st.st_nlink} names (hard links); pymta gives away only a file with one name")
    try:
        named = os.lstat(path)
    except OSError as e:
        raise UnsafeFile(f"{path} is gone ({e.strerror}) since it was opened") from None
    if (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino):
        raise UnsafeFile(f"{path} names another file than the one opened (replaced since)")
    return st
