# -*- test-case-name: tests.test_secretfile -*-
"""
The rule for files that hold secrets pymta's daemons read as the mail
account (L{pymta.privileges.mail_account}): the DKIM private keys of
C{control/dkimkeys} (L{pymta.dkim.keys}).

Such a file must be a regular file (not a symbolic link) that nobody but
the mail account can read: owned by the mail account's uid with mode 0600
or stricter, or owned by root and the mail account's group with mode 0640
or stricter (so an administrator may keep it root's and let the daemons
only read it).  L{secret_file_problem} says in one line why a file breaks
the rule; the daemons refuse to start (and a reload keeps the old
configuration) when it does.  L{read_secret_file} reads such a file
judging what it opened (never a link, the checks on the open
descriptor), so the file cannot be swapped between the check and the
read.
"""

from __future__ import annotations

import errno
import os
import stat

from pymta.privileges import PrivilegeError, mail_account

__all__ = ["secret_file_problem", "read_secret_file", "SecretFileProblem", "daemon_account"]

_NOT_REGULAR = "not a regular file: it must be a file of mode 0600 owned by the mail account"


class SecretFileProblem(Exception):
    """A file that may not hold the secret, or cannot be read: the one-line reason."""


def secret_file_problem(path: str, account: tuple[int, int] | None, what: str = "the secret") -> str | None:
    """
    Why the file at C{path} may not hold C{what}, or None.  C{account}
    is the mail account's C{(uid, gid)} (None: root runs everything, only
    the mode is judged).  A missing file is a problem too.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"cannot check it: {e.strerror}"
    return _stat_problem(st, account, what)


def read_secret_file(path: str, account: tuple[int, int] | None, what: str, limit: int) -> bytes:
    """
    At most C{limit} bytes of the file at C{path}, opened without
    following a link and judged by L{secret_file_problem}'s rule on the
    open descriptor; L{SecretFileProblem} saying why not.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretFileProblem("no such file") from None
    except OSError as e:
        raise SecretFileProblem(_NOT_REGULAR if e.errno == errno.ELOOP else f"cannot read it: {e.strerror}") from None
    try:
        problem = _stat_problem(os.fstat(fd), account, what)
        if problem is not None:
            raise SecretFileProblem(problem)
        chunks = []
        while limit > 0:
            chunk = os.read(fd, limit)
            if not chunk:
                break
            chunks.append(chunk)
            limit -= len(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise SecretFileProblem(f"cannot read it: {e.strerror}") from None
    finally:
        os.close(fd)


def _stat_problem(st: os.stat_result, account: tuple[int, int] | None, what: str) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return _NOT_REGULAR
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == 0 and account is not None and account[0] != 0:
        if st.st_gid != account[1]:
            return (f"owned by root and group {st.st_gid}, not the mail account's group {account[1]}: "
                    f"the daemons could not read {what} (chown 0:{account[1]}, or chown {account[0]}:{account[1]})")
        if mode & 0o037:
            return f"mode {mode:04o}: others than root and the mail account's group can read or change {what} (chmod 640)"
        return None
    if mode & 0o077:
        return f"mode {mode:04o}: others than its owner can read or change {what} (chmod 600)"
    if account is not None and st.st_uid != account[0]:
        return (f"owned by uid {st.st_uid}, not by uid {account[0]}, the mail account the daemons run as "
                f"(chown {account[0]}:{account[1]})")
    return None


def daemon_account(root: str) -> tuple[int, int] | None:
    """The account the daemons of C{root} run as: the mail account, else this process's (None for root)."""
    try:
        return mail_account(root)
    except PrivilegeError:
        return None if os.geteuid() == 0 else (os.geteuid(), os.getegid())
