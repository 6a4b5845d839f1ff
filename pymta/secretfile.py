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
configuration) when it does.
"""

from __future__ import annotations

import os
import stat

from pymta.privileges import PrivilegeError, mail_account

__all__ = ["secret_file_problem", "daemon_account"]


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
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file: it must be a file of mode 0600 owned by the mail account"
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
