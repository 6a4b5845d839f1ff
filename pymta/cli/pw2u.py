# -*- test-case-name: tests.cli.test_pw2u -*-
"""
C{pymta pw2u [--root DIR] [-o|-h|-H] [-U|-u] [-C] [PASSWD]}: print
users/assign lines for the accounts of a V7 passwd file (qmail-pw2u).

Input is C{PASSWD} (default standard input); output is standard output,
ready for C{ROOT/users/assign} and C{pymta newu}.  Rules, as qmail-pw2u:
accounts with uid 0 are skipped; by default (C{-o}) so are accounts whose
home is missing or not owned by them (C{-h}: a missing home is fatal; C{-H}:
no home checks) and (C{-U}) accounts with uppercase letters (C{-u} allows
them).  Each account gets C{=name} and, unless C{-C}, C{+name-} entries.

Files in C{ROOT/users}: C{include} (only these accounts), C{exclude}
(never these), C{mailnames} (C{user:name1:name2:...} replaces the
addresses of C{user}), C{subusers} (C{sub:user:pre:} sends C{sub} to
C{~user/.qmail-pre}), C{append} (lines copied to the end).  Exit 0, 100
for bad input, 111 for unreadable files or a missing home with C{-h}.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Iterable, TextIO

from pymta.control import default_root

__all__ = ["main", "Account", "convert", "Pw2uError"]


class Pw2uError(Exception):
    def __init__(self, text: str, code: int = 100) -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str


def parse_passwd(lines: Iterable[str]) -> list[Account]:
    accounts = []
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 7:
            raise Pw2uError(f"passwd line {lineno}: expected 7 fields")
        name, _, uid, gid, _, home = fields[:6]
        if not (uid.isdigit() and gid.isdigit()):
            raise Pw2uError(f"passwd line {lineno}: uid and gid must be numbers")
        if ":" in name or not name:
            raise Pw2uError(f"passwd line {lineno}: bad account name")
        accounts.append(Account(name, int(uid), int(gid), home))
    return accounts


def _read_list(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Pw2uError(f"unable to read {path}: {e.strerror}", 111) from None


def convert(
    accounts: list[Account],
    usersdir: str,
    *,
    home_mode: str = "o",
    allow_upper: bool = False,
    extensions: bool = True,
) -> list[str]:
    """The assign lines (ending with C{.}) for C{accounts} under the rules of the module docstring."""
    include = _read_list(os.path.join(usersdir, "include"))
    exclude = set(_read_list(os.path.join(usersdir, "exclude")) or ())
    included = set(include) if include is not None else None
    mailnames: dict[str, list[str]] = {}
    for line in _read_list(os.path.join(usersdir, "mailnames")) or ():
        user, *names = line.rstrip(":").split(":")
        mailnames[user] = [n for n in names if n]
    by_name: dict[str, Account] = {}
    out: list[str] = []
    for account in accounts:
        if account.uid == 0 or account.name in by_name:
            continue
        if included is not None and account.name not in included:
            continue
        if account.name in exclude:
            continue
        if not allow_upper and account.name != account.name.lower():
            continue
        if home_mode != "H":
            try:
                st = os.stat(account.home)
            except OSError as e:
                if home_mode == "h":
                    raise Pw2uError(f"unable to stat {account.home}: {e.strerror}", 111) from None
                continue
            if st.st_uid != account.uid:
                continue
        by_name[account.name] = account
        a = account
        for name in mailnames.get(a.name, [a.name]):
            out.append(f"={name}:{a.name}:{a.uid}:{a.gid}:{a.home}:::")
            if extensions:
                out.append(f"+{name}-:{a.name}:{a.uid}:{a.gid}:{a.home}:-::")
    for line in _read_list(os.path.join(usersdir, "subusers")) or ():
        fields = line.split(":")
        if len(fields) < 3:
            raise Pw2uError(f"subusers: bad line {line!r} (expected sub:user:pre:)")
        sub, user, pre = fields[:3]
        owner = by_name.get(user)
        if owner is None:
            raise Pw2uError(f"subusers: unknown or skipped user {user!r}", 111)
        a = owner
        out.append(f"={sub}:{a.name}:{a.uid}:{a.gid}:{a.home}:-:{pre}:")
        if extensions:
            out.append(f"+{sub}-:{a.name}:{a.uid}:{a.gid}:{a.home}:-:{pre}-:")
    out.extend(_read_list(os.path.join(usersdir, "append")) or ())
    out.append(".")
    return out


def main(argv: list[str], stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pymta pw2u", description="turn a passwd file into users/assign lines",
        add_help=False,
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-o", dest="home", action="store_const", const="o", help="skip users without an owned home (default)")
    mode.add_argument("-h", dest="home", action="store_const", const="h", help="stop if a home does not exist")
    mode.add_argument("-H", dest="home", action="store_const", const="H", help="do not check homes")
    case = parser.add_mutually_exclusive_group()
    case.add_argument("-U", dest="upper", action="store_false", help="skip users with uppercase letters (default)")
    case.add_argument("-u", dest="upper", action="store_true", help="allow uppercase letters")
    parser.add_argument("-C", dest="extensions", action="store_false", help="no user-extension (+name-) entries")
    parser.add_argument("passwd", nargs="?", help="passwd file (default: standard input)")
    parser.set_defaults(home="o", upper=False, extensions=True)
    args = parser.parse_args(argv)
    root = args.root or default_root()
    out = stdout or sys.stdout
    try:
        if args.passwd:
            try:
                with open(args.passwd, encoding="utf-8", errors="surrogateescape") as f:
                    lines = f.readlines()
            except OSError as e:
                raise Pw2uError(f"unable to read {args.passwd}: {e.strerror}", 111) from None
        else:
            lines = (stdin or sys.stdin).readlines()
        result = convert(
            parse_passwd(lines),
            os.path.join(root, "users"),
            home_mode=args.home,
            allow_upper=args.upper,
            extensions=args.extensions,
        )
    except Pw2uError as e:
        sys.stderr.write(f"pymta pw2u: fatal: {e}\n")
        return e.code
    out.write("".join(line + "\n" for line in result))
    return 0
