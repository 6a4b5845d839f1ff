# -*- test-case-name: tests.test_fsaccess -*-
"""
What an account may do with a path, worked out as root from owners and
mode bits, before any process becomes that account.

An account here is one uid and one gid: pymta drops privileges with
C{setgroups([gid])}, C{setgid}, C{setuid} (L{pymta.privileges}, the local
delivery children, the POP3 mailbox children), so no supplementary group
ever counts.  POSIX ACLs are not read: a path that an ACL opens is reported
as closed (the safe side for a check that refuses to start).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

__all__ = ["Account", "may", "blocking_directory", "may_write_in", "describe"]

READ, WRITE, SEARCH = 4, 2, 1


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"uid {self.uid} gid {self.gid}"


def may(st: os.stat_result, account: Account, want: int) -> bool:
    """Whether C{account} has every permission in C{want} (C{READ|WRITE|SEARCH} bits) on a file with C{st}."""
    if account.uid == 0:
        return True
    if st.st_uid == account.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid == account.gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def describe(path: str, st: os.stat_result) -> str:
    """C{PATH (mode 0700, owner 0:0)} for messages."""
    return f"{path} (mode {stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid})"


def blocking_directory(path: str, account: Account) -> tuple[str, os.stat_result] | None:
    """
    The first directory on the way to C{path} (symbolic links resolved;
    C{path} itself too when it is a directory) that C{account} may not
    search, with its C{stat}; None when the account gets through.  Parts of
    the path that do not exist yet are not judged.
    """
    real = os.path.realpath(path)
    current = "/"
    parts = [p for p in real.split("/") if p]
    for index in range(len(parts) + 1):
        if index:
            current = os.path.join(current, parts[index - 1])
        try:
            st = os.stat(current)
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        if not may(st, account, SEARCH):
            return current, st
    return None


def may_write_in(directory: str, account: Account) -> bool:
    """Whether C{account} can reach C{directory} and create, rename and remove entries in it."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return blocking_directory(directory, account) is None and may(st, account, WRITE | SEARCH)
