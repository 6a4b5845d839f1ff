# -*- test-case-name: tests.cli.test_passwd -*-
"""
C{pymta passwd [--root DIR] [--scheme S] [--uid N] [--gid N] [--home DIR] USER}:
set a mailbox password in C{ROOT/users/passwd}.

The password is the first line of standard input when it is not a
terminal (a trailing CR/LF is removed), else it is prompted for twice.
An existing account keeps its uid, gid and home unless given; a new one
defaults to C{ROOT/home/USER} and the invoking uid/gid - or, as root, the
mail uid/gid that owns C{ROOT/queue} (a mailbox owned by root is never
served).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TextIO

from pymta.control import default_root
from pymta.passwdfile import WRITABLE_SCHEMES, PasswdFileError, read_passwd, set_password

__all__ = ["main"]


def _read_password(stdin: TextIO) -> str | None:
    if stdin.isatty():
        first = getpass.getpass("New password: ")
        second = getpass.getpass("Retype new password: ")
        if first != second:
            sys.stderr.write("pymta passwd: passwords do not match\n")
            return None
        return first
    line = stdin.readline()
    return line.rstrip("\r\n") if line else ""


def _default_owner(root: str) -> tuple[int, int]:
    """The invoking uid/gid; as root the queue owner's, since POP3 refuses root's mailboxes."""
    if os.getuid() == 0:
        from pymta.privileges import PrivilegeError, mail_account

        try:
            return mail_account(root)
        except PrivilegeError:
            pass
    return os.getuid(), os.getgid()


def _new_file_owner(root: str) -> tuple[int, int] | None:
    """As root: root and the mail gid (as C{pymta init} makes it), so the daemons can read a new users/passwd."""
    if os.getuid() != 0:
        return None
    from pymta.privileges import PrivilegeError, mail_account

    try:
        return 0, mail_account(root)[1]
    except PrivilegeError:
        return None


def main(argv: list[str], stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pymta passwd", description="set a POP3/AUTH password in users/passwd")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    parser.add_argument("--scheme", default="ARGON2ID", type=str.upper, choices=WRITABLE_SCHEMES,
                        help="password scheme (PLAIN is needed for APOP)")
    parser.add_argument("--uid", type=int, default=None, help="uid owning the mailbox")
    parser.add_argument("--gid", type=int, default=None, help="gid of the mailbox")
    parser.add_argument("--home", default=None, help="home directory (mailbox = HOME/Maildir/)")
    parser.add_argument("user")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 100 if e.code else 0
    root = args.root or default_root()
    path = os.path.join(root, "users", "passwd")
    try:
        existing = read_passwd(path, strict=False).get(args.user)
    except OSError as e:
        sys.stderr.write(f"pymta passwd: cannot read {path}: {e.strerror}\n")
        return 111
    default_uid, default_gid = _default_owner(root)
    uid = args.uid if args.uid is not None else (existing.uid if existing and existing.uid is not None else default_uid)
    gid = args.gid if args.gid is not None else (existing.gid if existing and existing.gid is not None else default_gid)
    home = args.home or (existing.home if existing and existing.home else os.path.join(os.path.abspath(root), "home", args.user))
    password = _read_password(stdin if stdin is not None else sys.stdin)
    if password is None:
        return 100
    if password == "":
        sys.stderr.write("pymta passwd: empty password refused\n")
        return 100
    try:
        set_password(path, args.user, password, uid, gid, home, scheme=args.scheme, new_owner=_new_file_owner(root))
    except PasswdFileError as e:
        sys.stderr.write(f"pymta passwd: {e}\n")
        return 100
    except OSError as e:
        sys.stderr.write(f"pymta passwd: cannot write {path}: {e.strerror}\n")
        return 111
    sys.stdout.write(f"password for {args.user} set in {path}\n")
    return 0
