"""
What C{make run} does: initialise an embedded root when it is absent, print
how to use it, then run C{twistd -n pymta} on it in the foreground.

Started as root, the daemon drops to the mail uid (the invoking user's
C{SUDO_UID}, else 65534), which must reach the root: a clone in a directory
only root may enter (C{/root}, a 0700 home) cannot hold it.  Then the root
is made in L{RELOCATED_ROOTS} instead, and the requested path
(C{./var/pymta}) becomes a symbolic link to it, so every command given the
usual path still finds it (L{reachable_root}).  The code itself may stay in
such a directory: the daemon keeps the directories of C{sys.path} open
from before the drop (L{pymta.heldimports}).

What it prints is the README's quick start (L{quick_start_lines}) for the
endpoints in use: read the account it made, send that account a message
over SMTP, read it back over POP3, each line working as printed from the
checkout, with the virtual environment's Python.

Not a C{pymta} subcommand: it is the README's first command, kept in Python
so the Makefile stays small.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import pwd
import re
import secrets
import sys

from pymta.cli import init as init_command
from pymta.fsaccess import Account, blocking_directory, describe
from pymta.ownfile import UnsafeFile, open_no_follow, require_sole_regular

__all__ = ["main", "reachable_root", "RELOCATED_ROOTS", "quick_start_lines", "hints", "initialise"]

DEFAULT_ROOT_UID = 65534  # nobody: the embedded default never delivers as root
#: where C{make run} as root keeps a root the mail uid could not reach where it was asked for
RELOCATED_ROOTS = "/var/lib/pymta-make-run"


class RootLocationError(Exception):
    """The requested root cannot be used, nor be made somewhere else."""


def _mailbox_account() -> tuple[str, str | None]:
    """The mailbox user to create and the --mail-uid value when we are root."""
    if os.getuid() != 0:
        return getpass.getuser(), None
    sudo_uid = os.environ.get("SUDO_UID")
    sudo_gid = os.environ.get("SUDO_GID")
    if sudo_uid and sudo_gid and sudo_uid != "0":
        try:
            name = pwd.getpwuid(int(sudo_uid)).pw_name
        except KeyError:
            name = "admin"
        return name, f"{sudo_uid}:{sudo_gid}"
    return "admin", f"{DEFAULT_ROOT_UID}:{DEFAULT_ROOT_UID}"


def _mail_ids(mail_uid: str | None) -> Account | None:
    if mail_uid is None:
        return None
    uid, gid = init_command.parse_mail_uid(mail_uid)
    return Account(uid, gid)


def reachable_root(requested: str, account: Account | None, relocated_roots: str = RELOCATED_ROOTS) -> tuple[str, str | None]:
    """
    The root to use for C{requested} (absolute) when the daemons will run as
    C{account} (None: as the invoking user, nothing to check), and a note to
    print when it had to be made elsewhere.  L{RootLocationError} when the
    requested root exists where the account cannot reach it.
    """
    if account is None:
        return requested, None
    real = os.path.realpath(requested)
    blocked = blocking_directory(real, account)
    if blocked is None:
        return real, None
    if os.path.lexists(requested):
        directory, st = blocked
        raise RootLocationError(
            f"{requested} exists, but {account} (the mail uid) cannot reach it: {describe(directory, st)}; "
            f"remove it (rm -rf {requested}) and run make run again to have it made in {relocated_roots}"
        )
    name = hashlib.sha256(os.fsencode(requested)).hexdigest()[:12]
    target = os.path.join(relocated_roots, name)
    os.makedirs(relocated_roots, 0o755, exist_ok=True)
    still_blocked = blocking_directory(relocated_roots, account)
    if still_blocked is not None:
        raise RootLocationError(
            f"{account} (the mail uid) can reach neither {requested} nor {relocated_roots}: "
            f"{describe(*still_blocked)}"
        )
    os.makedirs(os.path.dirname(requested), exist_ok=True)
    os.symlink(target, requested)
    directory, st = blocked
    return target, (
        f"{requested}: {describe(directory, st)} does not let {account} (the mail uid) through; "
        f"the root is made in {target} and {requested} links to it"
    )


def _endpoint_address(endpoint: str, default_host: str = "127.0.0.1") -> tuple[str, str]:
    """
    The address and port a client on this host connects to for a
    C{tcp:PORT[:interface=IP]} endpoint (a colon inside a value escaped
    with a backslash, as Twisted writes it: C{interface=\\:\\:1}).
    """
    parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", endpoint)]
    host = next((p[len("interface="):] for p in parts[2:] if p.startswith("interface=")), "")
    if host in ("", "0.0.0.0", "::"):
        host = default_host
    return host, parts[1] if len(parts) > 1 else endpoint


def initialise(root: str) -> str | None:
    """
    Create C{root} with one mailbox user; returns the generated password
    (None if the root existed).  The user and password go to
    C{ROOT/run/first-password}, readable by whoever started C{make run}
    (through sudo: the invoking user).
    """
    if os.path.exists(os.path.join(root, "control", "me")):
        return None
    user, mail_uid = _mailbox_account()
    password = secrets.token_urlsafe(12)
    try:
        report = init_command.init_root(
            root, "localhost", [init_command.parse_user(f"{user}:{password}")],
            init_command.parse_mail_uid(mail_uid) if mail_uid else None,
        )
    except init_command.InitError as e:
        sys.stderr.write(f"make run: {e.text}\n")
        raise SystemExit(e.status) from None
    for warning in report.warnings:
        sys.stderr.write(f"make run: warning: {warning}\n")
    sys.stdout.write(f"made the root {root}: me = localhost, mailbox user {user}\n")
    path = os.path.join(root, "run", "first-password")
    try:
        _write_first_password(path, f"{user}:{password}\n", _invoking_user())
    except UnsafeFile as e:
        sys.stderr.write(f"make run: {e}\n")
        raise SystemExit(1) from None
    return password


def _write_first_password(path: str, text: str, owner: tuple[int, int] | None) -> None:
    """
    Write C{text} to C{path} in C{run/}, a directory the mail account owns:
    no link followed, never truncating before the file is known to be a
    regular file with one name (L{pymta.ownfile}), no FIFO waited for.
    """
    fd = open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o600)
    with os.fdopen(fd, "w") as f:
        require_sole_regular(fd, path)
        os.ftruncate(fd, 0)
        os.fchmod(fd, 0o600)
        f.write(text)
        if owner is not None:
            os.fchown(fd, *owner)


def _read_first_password(path: str) -> str:
    """C{path}'s text when it is a regular file with one name, read without following a link (root may read it)."""
    fd = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd) as f:
        require_sole_regular(fd, path)
        return f.read(4096)


def _invoking_user() -> tuple[int, int] | None:
    """The uid and gid of the user who ran C{sudo make run}, when we are root through sudo."""
    if os.getuid() != 0:
        return None
    try:
        uid, gid = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    except (KeyError, ValueError):
        return None
    return (uid, gid) if uid != 0 else None


def quick_start_lines(password_file: str, smtp: tuple[str, str], pop3: tuple[str, str], python: str) -> list[str]:
    """
    The README's quick start, for these addresses: read the user and
    password C{make run} wrote, send that user a message over SMTP, read
    it back over POP3 (STLS first: the certificate of C{pymta init} is
    self-signed, hence the unverified context).
    """
    return [
        f"IFS=: read -r user password < {password_file}",
        f"{python} -c \"import smtplib; smtplib.SMTP('{smtp[0]}', {smtp[1]}).sendmail("
        "'$user@localhost', ['$user@localhost'], 'Subject: hi\\n\\nhello from pymta\\n')\"",
        f"{python} -c \"import poplib, ssl; p = poplib.POP3('{pop3[0]}', {pop3[1]}); "
        "p.stls(ssl._create_unverified_context()); p.user('$user'); p.pass_('$password'); "
        "print(b'\\n'.join(p.retr(1)[1]).decode())\"",
    ]


def _shown_path(path: str) -> str:
    """C{path} relative to the current directory when it is below it (as the README writes it), else absolute."""
    relative = os.path.relpath(os.path.abspath(path))
    return os.path.abspath(path) if relative.startswith("..") else relative


def hints(root: str, shown_root: str, smtp: str, pop3: str, python: str) -> str:
    """What C{make run} prints before starting: the account, then the quick start for these endpoints."""
    account = "?"
    try:
        account = _read_first_password(os.path.join(root, "run", "first-password")).strip()
    except OSError:
        pass
    user, _, password = account.partition(":")
    password_file = os.path.join(shown_root, "run", "first-password")
    lines = quick_start_lines(password_file, _endpoint_address(smtp), _endpoint_address(pop3), python)
    quick_start = "".join(f"    {line}\n" for line in lines)
    return f"""
pymta is starting on {root}
  mailbox user: {user}   POP3 password: {password}   (kept in {password_file})
  send yourself a message and read it back, from {os.getcwd()} in another terminal:
{quick_start}  the queue: {_shown_path(os.path.join(os.path.dirname(python), "pymta"))} qread --root {shown_root}    stop: Ctrl-C
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run")
    parser.add_argument("--root", default="./var/pymta")
    parser.add_argument("--smtp", default="tcp:2525:interface=127.0.0.1")
    parser.add_argument("--submission", default="tcp:2587:interface=127.0.0.1")
    parser.add_argument("--pop3", default="tcp:1110:interface=127.0.0.1")
    args = parser.parse_args(argv)
    try:
        root, note = reachable_root(os.path.abspath(args.root), _mail_ids(_mailbox_account()[1]))
    except (RootLocationError, OSError) as e:
        sys.stderr.write(f"make run: {e}\n")
        return 1
    if note:
        sys.stdout.write(note + "\n")
    initialise(root)
    sys.stdout.write(hints(root, _shown_path(args.root), args.smtp, args.pop3, _shown_path(sys.executable)))
    sys.stdout.flush()
    # Started as root, twistd pymta drops to the owner of ROOT/queue by itself; only the
    # local delivery and POP3 mailbox spawners keep root.  The same interpreter runs
    # twistd (whatever the script's first line says), from the root, a directory the
    # mail uid may enter.
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    command = [sys.executable, twistd, "-n", "--pidfile=", "--logfile=-",
               "pymta", "--root", root, "--smtp", args.smtp,
               "--submission", args.submission, "--pop3", args.pop3]
    os.chdir(root)
    os.execv(sys.executable, command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
