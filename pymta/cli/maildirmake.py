# -*- test-case-name: tests.cli.test_maildirmake -*-
"""
C{pymta maildirmake DIR}: create a Maildir (qmail's maildirmake).

C{DIR} is made with mode 0700 and must not exist yet; then C{tmp}, C{new}
and C{cur} inside it.  Errors print C{pymta maildirmake: fatal: unable to
mkdir DIR: REASON} and exit 111; a missing argument is a usage error, exit
100.  L{maildirmake} is the same operation for other code (C{pymta init}),
with optional ownership and an C{exist_ok} mode that completes a partial
Maildir without touching what is already there.
"""

from __future__ import annotations

import os
import stat
import sys

__all__ = ["maildirmake", "main", "MAILDIR_SUBDIRS"]

MAILDIR_SUBDIRS = ("tmp", "new", "cur")


def _mkdir(path: str, uid: int, gid: int, exist_ok: bool) -> bool:
    """Make one directory (0700, owned by uid/gid); False when it already existed."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not exist_ok or not stat.S_ISDIR(os.lstat(path).st_mode):
            raise
        return False
    os.chmod(path, 0o700)  # independent of the umask
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    return True


def maildirmake(path: str, uid: int = -1, gid: int = -1, exist_ok: bool = False) -> list[str]:
    """
    Create the Maildir C{path} (and C{tmp}, C{new}, C{cur}); returns the
    directories actually created.  Raises C{OSError} (C{FileExistsError}
    for an existing C{path} unless C{exist_ok}).  Directories that already
    exist are left exactly as they are.
    """
    made = []
    for directory in (path, *(os.path.join(path, sub) for sub in MAILDIR_SUBDIRS)):
        if _mkdir(directory, uid, gid, exist_ok):
            made.append(directory)
    return made


USAGE = "pymta maildirmake: usage: maildirmake name\n"


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if len(argv) != 1 or not argv[0] or argv[0].startswith("-"):
        sys.stderr.write(USAGE)
        return 100
    path = argv[0]
    for directory in (path, *(os.path.join(path, sub) for sub in MAILDIR_SUBDIRS)):
        try:
            _mkdir(directory, -1, -1, exist_ok=False)
        except OSError as e:
            shown = directory if directory == path else os.path.basename(directory)
            sys.stderr.write(f"pymta maildirmake: fatal: unable to mkdir {shown}: {e.strerror}\n")
            return 111
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
