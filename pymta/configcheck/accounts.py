# -*- test-case-name: tests.configcheck.test_accounts -*-
"""
Who receives and who logs in: C{users/assign} and its index, C{users/passwd},
and the homes they name.

  - C{users/assign}: every bad line through L{pymta.local.assign.parse_assign}
    (local delivery's parser); the index through L{AssignCache}, whose
    complaints (missing or stale index: run C{pymta newu}) are warnings;
  - C{users/passwd}: every bad line through L{pymta.passwdfile.parse_passwd}
    (the daemons skip a bad line, so that account can never log in: an
    error); an unknown password scheme (a warning); a file the daemons'
    account cannot read (an error: pop3d and submission re-read it after
    dropping root, so no login would work); a file every local user can
    read (a warning, loud when it keeps clear-text passwords);
  - homes: each home of users/assign and the alias home (C{ROOT/alias})
    through local delivery's own L{pymta.local.dotqmail.check_home}
    (missing, not a directory, writable by others, sticky), owned by
    another uid than the entry's; each home of users/passwd must hold a
    C{Maildir/}.  A home concerns one user, not the daemons: warnings.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Iterator

from pymta.configcheck.certificate import may_read
from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem, every_error, problem_from_message

if TYPE_CHECKING:
    from pymta.passwdfile import PasswdEntry, PasswdFileError

__all__ = ["check_assign", "check_passwd", "check_homes"]


def _read_text(path: str) -> tuple[str | None, Problem | None]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, Problem(path, 0, ERROR, f"cannot read it: {e.strerror}")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, Problem(path, data[: e.start].count(b"\n") + 1, ERROR, "not valid UTF-8")


def _readable_by_daemons(path: str, ctx: CheckContext, what: str) -> Iterator[Problem]:
    if ctx.account is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    if not may_read(st, ctx.account):
        yield Problem(path, 0, ERROR, f"not readable by uid {ctx.account[0]}, the account the daemons run as: {what}")


def check_assign(ctx: CheckContext) -> Iterator[Problem]:
    from pymta.local.assign import AssignCache, AssignError, parse_assign

    path = ctx.path("users", "assign")
    text, trouble = _read_text(path)
    if trouble is not None:
        yield trouble
    if text is None:
        return
    yield from _readable_by_daemons(path, ctx, "local delivery would defer every message")
    lines = text.splitlines(keepends=True)
    errors = every_error(lines, lambda work: parse_assign(work, path), (AssignError,),
                         lambda e: problem_from_message(str(e), path).line)
    for error in errors:
        yield problem_from_message(str(error), path)
    if errors:
        return
    warnings: list[str] = []
    try:
        AssignCache(ctx.root, warn=warnings.append).table()
    except AssignError as e:
        yield problem_from_message(str(e), ctx.path("users", "assign.idx"))
    for warning in warnings:
        yield Problem(ctx.path("users", "assign.idx"), 0, WARNING, warning)


def _passwd_entries(path: str, text: str) -> tuple[dict[str, "PasswdEntry"], list["PasswdFileError"]]:
    """The accounts the daemons use (bad lines left out, as they do) and the errors of the bad lines."""
    from pymta.passwdfile import PasswdFileError, parse_passwd

    lines = text.split("\n")
    errors = every_error(lines, lambda work: parse_passwd("\n".join(work), path, strict=True), (PasswdFileError,),
                         lambda e: e.lineno or 0)
    for error in errors:
        if error.lineno:
            lines[error.lineno - 1] = ""
    try:
        return parse_passwd("\n".join(lines), path, strict=True), errors
    except PasswdFileError:
        return {}, errors


def check_passwd(ctx: CheckContext) -> Iterator[Problem]:
    from pymta.passwdfile import SCHEMES

    path = ctx.path("users", "passwd")
    text, trouble = _read_text(path)
    if trouble is not None:
        yield trouble
    if text is None:
        return
    yield from _readable_by_daemons(path, ctx, "no POP3 or SMTP AUTH login would work")
    entries, errors = _passwd_entries(path, text)
    for error in errors:
        yield Problem(path, error.lineno or 0, ERROR, f"{error.reason} (the daemons skip this line: no login)")
    lines = text.split("\n")
    line_of: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        line_of.setdefault(line.split(":", 1)[0], lineno)
    clear = False
    for user, entry in entries.items():
        if entry.scheme not in SCHEMES:
            yield Problem(path, line_of.get(user, 0), WARNING,
                          f"{user}: unknown password scheme {entry.scheme} (one of {', '.join(SCHEMES)}): "
                          "this account can never log in")
        clear = clear or entry.plaintext_secret() is not None
    st = os.stat(path)
    if st.st_mode & stat.S_IROTH:
        kept = "CLEAR-TEXT PASSWORDS" if clear else "password hashes"
        yield Problem(path, 0, WARNING, f"every local user can read its {kept} (chmod o-r)")


def _home_problems(home: str, uid: int | None, whose: str) -> Iterator[Problem]:
    from pymta.local.dotqmail import check_home
    from pymta.local.errors import DeliveryFailure

    try:
        check_home(home)
    except DeliveryFailure as e:
        yield Problem(home, 0, WARNING, f"home of {whose}: local delivery defers: {e.text}")
        return
    if uid is not None:
        owner = os.stat(home).st_uid
        if owner != uid:
            yield Problem(home, 0, WARNING, f"home of {whose} is owned by uid {owner}, not {uid}")


def check_homes(ctx: CheckContext) -> Iterator[Problem]:
    from pymta.local.assign import AssignError, read_assign

    seen: set[str] = set()
    alias = ctx.path("alias")
    if os.path.exists(alias):
        seen.add(alias)
        yield from _home_problems(alias, None, "the alias user")
    try:
        table = read_assign(ctx.path("users", "assign")) if os.path.exists(ctx.path("users", "assign")) else None
    except AssignError:
        table = None  # check_assign reports it
    if table is not None:
        for kind, entries in (("=", table.simple), ("+", table.wildcard)):
            for key, entry in sorted(entries.items()):
                if entry.home in seen:
                    continue
                seen.add(entry.home)
                yield from _home_problems(entry.home, entry.uid, f"{kind}{key} in users/assign")
    text, _ = _read_text(ctx.path("users", "passwd"))
    accounts, _ = _passwd_entries(ctx.path("users", "passwd"), text or "")
    for user, account in sorted(accounts.items()):
        if not account.home:
            continue
        if not os.path.isdir(os.path.join(account.home, "Maildir")):
            yield Problem(account.home, 0, WARNING,
                          f"home of {user} in users/passwd has no Maildir/: POP3 login would fail")
