# -*- test-case-name: tests.local.test_getpw -*-
"""
Which user receives mail for a local part (qmail-lspawn + qmail-getpw; see
docs/internals.md, 'Finding the local user').

Order:

1. C{users/assign} (through L{pymta.local.assign.AssignCache});
2. the system password database with qmail-getpw's rules: prefixes of the
   local part ending at its end or just before a C{-}, longest first, each
   lowercased; accepted when shorter than 32 characters, known to
   C{getpwnam}, uid not 0, and the home directory exists and is owned by
   that uid.  An exact match has dash and ext empty, otherwise dash is C{-}
   and ext the rest after the C{-} (original case);
3. the alias user: C{ROOT/alias}, with the uid and gid that own that
   directory, dash C{-} and ext = the whole local part.

The result is a L{LocalUser}; trouble raises
L{pymta.local.errors.DeliveryFailure} (always temporary).
"""

from __future__ import annotations

import errno
import os
import pwd
from dataclasses import dataclass
from typing import Callable

from pymta.local.assign import AssignError, AssignTable
from pymta.local.errors import DeliveryFailure

__all__ = ["LocalUser", "find_user", "passwd_candidates", "ALIAS_DIR"]

ALIAS_DIR = "alias"
MAX_ACCOUNT = 32


@dataclass(frozen=True)
class LocalUser:
    """Who gets the mail and where his .qmail files are: qmail-local's user/homedir/dash/ext."""

    user: str
    uid: int
    gid: int
    home: str
    dash: str
    ext: str
    source: str  # "assign", "passwd" or "alias"


def passwd_candidates(local: str) -> list[tuple[str, str, str]]:
    """(account, dash, ext) candidates for the password database, longest first."""
    out = [(local.lower(), "", "")]
    i = len(local)
    while True:
        i = local.rfind("-", 0, i)
        if i == -1:
            break
        out.append((local[:i].lower(), "-", local[i + 1 :]))
    return out


def find_user(
    root: str,
    local: str,
    assign: AssignTable | None,
    *,
    getpwnam: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    use_passwd: bool = True,
) -> LocalUser:
    """The L{LocalUser} for C{local} (see the module docstring for the order)."""
    if assign is not None:
        match = assign.lookup(local)
        if match is not None:
            e = match.entry
            return LocalUser(e.user, e.uid, e.gid, e.home, e.dash, match.ext, "assign")
    if use_passwd:
        for account, dash, ext in passwd_candidates(local):
            if len(account) >= MAX_ACCOUNT or not account or "\0" in account:
                continue
            try:
                pw = getpwnam(account)
            except KeyError:
                continue
            if pw.pw_uid == 0:
                continue
            try:
                st = os.stat(pw.pw_dir)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    continue
                raise DeliveryFailure.temporary(
                    f"Unable to stat home directory of {account}: {e.strerror}. (#4.3.0)"
                ) from None
            if st.st_uid != pw.pw_uid:
                continue
            return LocalUser(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, dash, ext, "passwd")
    alias = os.path.join(os.path.abspath(root), ALIAS_DIR)
    try:
        st = os.stat(alias)
    except OSError:
        raise DeliveryFailure.temporary("Unable to find alias user! (#4.3.0)") from None
    return LocalUser("alias", st.st_uid, st.st_gid, alias, "-", local, "alias")


def load_assign(cache: "object") -> AssignTable | None:
    """C{cache.table()} with its errors turned into a deferral."""
    try:
        return cache.table()  # type: ignore[attr-defined]
    except AssignError as e:
        raise DeliveryFailure.temporary(f"Trouble reading users/assign: {e}. (#4.3.0)") from None
