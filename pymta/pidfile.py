# -*- test-case-name: tests.test_pidfile -*-
"""
twistd's pid file (C{--pidfile}) across the privilege drop.

twistd writes the pid file as root and removes it when the reactor has
stopped, by then as the mail account: in a directory only root may write
(C{/run}, C{/var/run}, root's home) the removal failed and the file stayed.

L{hand_over_pid_file}, called as root just before the drop:

- when the account may write in the pid file's directory, the file is given
  to the account (which also covers a sticky directory such as C{/tmp}) and
  twistd removes it at exit as usual;
- otherwise a small helper process is forked that keeps root, holds no
  descriptor but the read end of a pipe from the daemon, ignores the
  terminal's and systemd's stop signals, and waits for end of file on that
  pipe, which comes when the daemon ends in any way (even C{SIGKILL}).  It
  then removes the pid file if the file still names the daemon, and exits.
  It reads nothing the network side could influence.

The account may own the pid file's directory, and put a symbolic link or a
hard link there.  So, as root, pymta writes the pid file itself
(L{write_pid_file}, instead of twistd, which opens the name and follows a
link): it creates a new file and fails when anything is at the name
(C{O_CREAT|O_EXCL}, which follows no link; twistd has removed a stale file
just before).  The file is given away through that descriptor, or, for a
file named by the caller, only when it is a regular file with one name
(L{pymta.ownfile}); the helper reads the file through no symbolic link.
"""

from __future__ import annotations

import os
import signal
import stat

from pymta.fsaccess import Account, may_write_in
from pymta.ownfile import UnsafeFile, open_no_follow, require_sole_regular
from pymta.privsep import fork_child

__all__ = ["hand_over_pid_file", "start_pid_file_remover", "write_pid_file", "UnsafeFile"]

#: write ends of the pipes to remover helpers: open for the life of the process
_HELD: list[int] = []


def write_pid_file(path: str) -> int:
    """
    Create C{path} anew (mode 0644) holding this process's pid, through no
    link and over nothing (see the module docstring); returns its
    descriptor, for L{hand_over_pid_file}.  L{UnsafeFile} (one line) when
    something is at the name.
    """
    try:
        fd = open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise UnsafeFile(f"pid file {path} appeared after twistd checked it; pymta creates it anew as root") from None
    try:
        os.write(fd, b"%d" % os.getpid())
    except BaseException:
        os.close(fd)
        raise
    return fd


def hand_over_pid_file(path: str, account: Account, fd: int | None = None) -> str | None:
    """
    As root, before the drop to C{account}: make sure C{path} is removed
    when this process ends.  Returns what was done, for the log, or None
    when the account can remove it itself (twistd then does).  C{fd}, when
    given, is the descriptor L{write_pid_file} returned; otherwise the file
    at C{path} is opened, and given away only when it is a regular file
    with one name (L{UnsafeFile} otherwise).
    """
    path = os.path.abspath(path)
    if may_write_in(os.path.dirname(path), account):
        if fd is not None:
            os.fchown(fd, account.uid, account.gid)
            return None
        own = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            require_sole_regular(own, path)
            os.fchown(own, account.uid, account.gid)
        finally:
            os.close(own)
        return None
    helper = start_pid_file_remover(path, os.getpid())
    return (
        f"pid file {path}: {os.path.dirname(path)} is not writable by {account}; "
        f"a helper process (pid {helper}, root, idle) removes the file when this process ends"
    )


#: the signals the helper ignores: the terminal's, systemd's stop, the daemon's own controls
_IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)


def start_pid_file_remover(path: str, pid: int) -> int:
    """Fork the helper described in the module docstring; returns its pid."""
    read_end, write_end = os.pipe()
    # blocked across the fork, so none of them can end the helper before it ignores them
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _IGNORED)
    try:
        # never reaped by the daemon: the helper outlives it (see the module docstring)
        child = fork_child(lambda: _remover(path, pid, read_end), status_on_error=0)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    os.close(read_end)
    _HELD.append(write_end)
    return child


def _remover(path: str, pid: int, read_end: int) -> None:
    for signum in _IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.closerange(0, read_end)
    os.closerange(read_end + 1, os.sysconf("SC_OPEN_MAX"))
    try:
        while os.read(read_end, 4096):
            pass
    except OSError:
        pass
    try:
        fd = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        named = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        return
    finally:
        os.close(fd)
    if named == str(pid):
        try:
            os.unlink(path)
        except OSError:
            pass
