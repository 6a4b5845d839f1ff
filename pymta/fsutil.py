# -*- test-case-name: tests.test_fsutil -*-
"""
Durable file writes: the one place pymta fsyncs directories and writes whole
files atomically.

qmail trusts the file system to keep directory changes (creates, links,
renames) once the call returns; ext4 and friends promise that only after
the directory itself is fsynced, so every writer that acknowledges
something on the strength of a new name calls L{fsync_dir} afterwards.

  - L{write_all}: write all of C{data} to a descriptor (C{os.write} may
    write less than asked).
  - L{write_new_file}: create a file that must not exist yet, complete or
    not at all (temporary name, fsync, hard link, directory fsync); an
    existing file is never replaced.
  - L{replace_file}: replace a file atomically (temporary name, fsync,
    rename, directory fsync); readers see the old or the new content.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["fsync_dir", "write_all", "write_new_file", "replace_file"]


def fsync_dir(path: str) -> None:
    """fsync the directory C{path}, so the names created in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of C{data} to C{fd}, however many calls that takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temporary_name(path: str) -> str:
    return f"{path}.tmp.{os.getpid()}"


def write_new_file(path: str, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> bool:
    """
    Create C{path} (which must not exist) with C{data}, durably: a temporary
    file is written, given C{mode} (and C{uid}/C{gid} unless both are -1),
    fsynced, hard-linked to C{path} and the directory fsynced.  Returns
    False, changing nothing, when C{path} exists by the time of the link.
    """
    tmp = _temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True


def replace_file(path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """
    Replace C{path} (or create it) with C{data} atomically and durably: a
    new temporary file beside it (exclusive, mode 0600 until written) is written, given C{mode} (and C{owner}, a C{(uid, gid)},
    when given), fsynced, renamed over C{path} and the directory fsynced.
    An error while the temporary file is written removes it again; C{path}
    is unchanged until the rename.
    """
    # a new name, created exclusively (never through a link someone planted in the directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp.", dir=os.path.dirname(os.path.abspath(path)))
    try:
        write_all(fd, data)
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
