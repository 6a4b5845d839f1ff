# -*- test-case-name: tests.configcheck.test_dotqmails -*-
"""
The C{.qmail} files and homes local delivery would refuse, listed before
mail waits for them: L{check_dotqmail_files}.

Local delivery defers the mail of a home, or of a C{.qmail} file, that is
writable by its group or by everyone (L{pymta.local.dotqmail}); qmail
refuses only the world-writable ones, so a site moving from qmail may have
group-writable files that qmail accepted.  This check looks at every home
local delivery uses:

  - the alias home C{ROOT/alias} and the homes of C{users/assign};
  - the system accounts local delivery accepts (L{pymta.local.getpw}'s
    rule: uid not 0, a name shorter than 32 characters, a home owned by
    the account), whose homes it also checks as L{check_homes} checks
    the others;

and reports each writable C{.qmail*} file in them as a warning naming the
fix (C{chmod go-w FILE}).  Homes this process may not read are counted in
one warning (run C{pymta check} as root to see into them).  The daemons do
not run this check: it walks every home of the system.
"""

from __future__ import annotations

import os
import pwd
import stat
from typing import Iterable, Iterator

from pymta.configcheck.problem import WARNING, CheckContext, Problem

__all__ = ["check_dotqmail_files", "system_accounts", "writable_dotqmail_files"]

MAX_ACCOUNT = 32


def system_accounts() -> Iterable[pwd.struct_passwd]:
    """The password database (a seam for tests)."""
    return pwd.getpwall()


def _delivery_accounts() -> Iterator[tuple[str, int, str]]:
    """(name, uid, home) of each system account local delivery would deliver to."""
    for pw in system_accounts():
        if pw.pw_uid == 0 or not pw.pw_name or len(pw.pw_name) >= MAX_ACCOUNT or not os.path.isabs(pw.pw_dir):
            continue
        try:
            if os.stat(pw.pw_dir).st_uid != pw.pw_uid:
                continue
        except OSError:
            continue
        yield pw.pw_name, pw.pw_uid, pw.pw_dir


def _assign_homes(ctx: CheckContext) -> list[str]:
    from pymta.local.assign import AssignError, read_assign

    path = ctx.path("users", "assign")
    try:
        table = read_assign(path) if os.path.exists(path) else None
    except AssignError:
        return []  # check_assign reports it
    if table is None:
        return []
    return sorted({entry.home for entries in (table.simple, table.wildcard) for entry in entries.values()})


def writable_dotqmail_files(home: str) -> list[tuple[str, int]]:
    """(path, mode) of each C{.qmail*} file in C{home} that local delivery refuses as writable; OSError if unreadable."""
    from pymta.local.dotqmail import WRITABLE_BITS

    found = []
    for name in sorted(os.listdir(home)):
        if not name.startswith(".qmail"):
            continue
        path = os.path.join(home, name)
        try:
            st = os.stat(path)  # delivery follows a symbolic link too
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & WRITABLE_BITS:
            found.append((path, st.st_mode))
    return found


def _file_problem(path: str, mode: int) -> Problem:
    if mode & stat.S_IWOTH:
        who = "everyone"
    else:
        who = "its group (qmail accepted that, pymta does not)"
    return Problem(path, 0, WARNING, f"writable by {who}: local delivery defers the mail this file controls "
                                     f"(Uh-oh: .qmail file is writable); fix: chmod go-w {path}")


def check_dotqmail_files(ctx: CheckContext) -> Iterator[Problem]:
    from pymta.local.dotqmail import check_home
    from pymta.local.errors import DeliveryFailure

    homes: dict[str, None] = {}
    alias = ctx.path("alias")
    if os.path.isdir(alias):
        homes[alias] = None
    for home in _assign_homes(ctx):
        homes.setdefault(home, None)
    for name, uid, home in _delivery_accounts():
        if home in homes:
            continue
        homes[home] = None
        try:
            check_home(home)
        except DeliveryFailure as e:
            yield Problem(home, 0, WARNING, f"home of the system account {name}: local delivery defers: {e.text}")
    unreadable = []
    for home in homes:
        try:
            found = writable_dotqmail_files(home)
        except FileNotFoundError:
            continue  # check_homes reports a missing home of users/assign
        except OSError:
            unreadable.append(home)
            continue
        for path, mode in found:
            yield _file_problem(path, mode)
    if unreadable:
        others = f" and {len(unreadable) - 1} other home(s)" if len(unreadable) > 1 else ""
        yield Problem(unreadable[0], 0, WARNING, f"cannot read it{others} to look for writable .qmail files "
                                                 "(run pymta check as root)")
