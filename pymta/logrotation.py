# -*- test-case-name: tests.test_logrotation -*-
"""
twistd's log file (C{--logfile}) across the privilege drop.

twistd opens the log file while the process is still root; after
L{pymta.privileges.RootDroppingService} switched to the mail account,
Twisted's C{LogFile.rotate} checks C{os.access} on the file and its
directory and silently does nothing when the account may not write there:
neither the size limit nor SIGUSR1 rotated anything, and the file grew
without end.

L{RotatingLogFile.hand_over}, called as root just before the drop, makes
rotation work where it can and says so where it cannot:

- the file is given to the account (so it can reopen it after a rotation);
- when the account may write in the file's directory, rotation works as
  with twistd (size limit, SIGUSR1);
- otherwise pymta cannot create the next file there: the size limit is
  turned off and SIGUSR1 I{reopens} the file instead, which is what an
  outside rotation tool needs (logrotate with C{create MODE UID GID} and
  C{postrotate kill -USR1}); the log says this once, at start.

The file is opened without following a symbolic link (C{O_NOFOLLOW}), and
given to the account only when it is a regular file with one name, the one at
the path (L{pymta.ownfile}): the account may own the directory, and could
otherwise make root give it any file through a link.  As root, a file with
more than one name is not even opened for writing.

Under systemd, logging to the journal (C{twistd -n} without C{--logfile},
as the shipped units do) needs none of this.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

from twisted.logger import Logger
from twisted.python import logfile

from pymta.fsaccess import Account, may_write_in
from pymta.ownfile import UnsafeFile, open_no_follow, require_sole_regular

__all__ = ["RotatingLogFile", "ROTATE", "REOPEN", "UnsafeFile"]

log = Logger(namespace="pymta")

ROTATE = "rotate"
REOPEN = "reopen"


class RotatingLogFile(logfile.LogFile):
    """
    A twistd C{LogFile} that can be handed to the account the process drops
    to.  Its file is unbuffered, as Twisted's: each C{write} reaches the
    descriptor at once (L{pymta.twistdlog} counts on it).

    Writes, rotations and reopenings hold one lock of the C{threading}
    module, where Twisted's C{write} and C{rotate} each take a lock written
    in Python: a line costs a few calls instead of about ten.
    """

    def __init__(self, name: str, directory: str, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        super().__init__(name, directory, **kwargs)
        self.mode = ROTATE

    def write(self, data: str | bytes) -> None:
        """
        Twisted's C{LogFile.write} (C{BaseLogFile.write} and C{shouldRotate}
        included) in one frame: rotate first when the size limit is reached,
        write the line (text as UTF-8), count its length as Twisted does.
        """
        with self._lock:
            if self.rotateLength and self.size >= self.rotateLength:
                self.flush()
                self.rotate()
            self._file.write(data.encode("utf8") if isinstance(data, str) else data)
            self.size += len(data)

    def rotate(self) -> None:
        with self._lock:
            super().rotate()

    def _openFile(self) -> None:
        """Twisted's open (append at the end, create when missing), but through no symbolic link (see the module docstring)."""
        mode = 0o666 if self.defaultMode is None else self.defaultMode
        fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT, mode)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                if os.geteuid() == 0 and st.st_nlink != 1:
                    raise UnsafeFile(f"{self.path} has {st.st_nlink} names (hard links); as root pymta writes only a log file with one name")
                if self.defaultMode is not None:
                    os.fchmod(fd, self.defaultMode)
            self._file = os.fdopen(fd, "rb+", 0)
        except BaseException:
            os.close(fd)
            raise
        self.closed = False
        self._file.seek(0, 2)
        self.size = self._file.tell()

    def hand_over(self, account: Account) -> str | None:
        """
        As root, before the drop to C{account}: give it the file and choose
        how SIGUSR1 works.  Returns a warning for the log when pymta cannot
        rotate the file itself, else None.
        """
        fd = self._file.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            # /dev/null, a terminal, a pipe: nothing to give away or rotate
            self.mode = REOPEN
            self.rotateLength = None
            return None
        try:
            require_sole_regular(fd, self.path)
        except UnsafeFile as e:
            # kept as root's: the account writes through the descriptor it inherits, and cannot reopen the file
            self.mode = REOPEN
            self.rotateLength = None
            return f"log file {self.path}: not given to {account}: {e}"
        os.fchown(fd, account.uid, account.gid)
        if may_write_in(self.directory, account):
            self.mode = ROTATE
            return None
        self.mode = REOPEN
        self.rotateLength = None
        return (
            f"log file {self.path}: {self.directory} is not writable by {account}, so pymta cannot rotate "
            "this file after dropping root; SIGUSR1 reopens it instead (for logrotate with "
            f"'create 0640 {account.uid} {account.gid}' and 'postrotate kill -USR1'); or log to a directory "
            "the account owns, or to the journal (twistd -n without --logfile under systemd)"
        )

    def on_usr1(self) -> None:
        """SIGUSR1: rotate, or reopen after an outside rotation (see the module docstring)."""
        if self.mode == REOPEN:
            try:
                self._reopen_keeping_old_on_error()
            except OSError as e:
                log.error("SIGUSR1: cannot reopen log file {path}: {error}", path=self.path, error=e.strerror or str(e))
            else:
                log.info("SIGUSR1: log file {path} reopened", path=self.path)
            return
        if not (os.access(self.directory, os.W_OK | os.X_OK) and os.access(self.path, os.W_OK)):
            # Twisted's rotate() would do nothing, silently
            log.error(
                "SIGUSR1: cannot rotate log file {path}: this process (uid {uid}) may not write it or its directory",
                path=self.path, uid=os.getuid(),
            )
            return
        self.rotate()
        log.info("SIGUSR1: log file {path} rotated", path=self.path)

    def _reopen_keeping_old_on_error(self) -> None:
        """Open the path again; when that fails, the file open until now stays in use (Twisted's reopen closes it first)."""
        with self._lock:
            old = self._file
            self._openFile()
            old.close()
