# -*- test-case-name: tests.cli.test_init -*-
"""
C{pymta init ROOT [--me HOST] [--mail-uid UID:GID] [--user NAME[:PASSWORD]]...}:
create a pymta root directory (docs/install.md, 'Creating the root').

What it makes, each only when absent (running it again changes nothing
that exists, so it is safe to re-run with more C{--user}s):

- C{control/}: C{me}, C{locals} and C{rcpthosts} (both C{me}, so the new
  server is never an open relay), C{defaultdelivery} (C{./Maildir/}) and
  C{servercert.pem} (key + self-signed certificate for C{me}, mode 0600);
  in a new root (no C{control/me} yet) also the safe settings of
  L{pymta.cli.initcontrols}: C{rcptcheck}, C{databytes}, C{timeoutsmtpd};
- C{alias/}: C{.qmail-postmaster}, C{.qmail-mailer-daemon},
  C{.qmail-root}, C{.qmail-abuse} forwarding to the first C{--user}
  (C{&NAME@ME}); without a user they deliver to C{alias/Maildir/};
- per C{--user NAME}: C{home/NAME/Maildir/}, C{users/assign} lines
  C{=NAME:NAME:UID:GID:HOME:::} and, for the extension addresses
  C{NAME-EXT} (delivered by C{HOME/.qmail-EXT}), C{+NAME-:NAME:UID:GID:HOME:-::},
  and with a password a C{users/passwd} entry (Dovecot format, ARGON2ID);
- the queue tree, C{run/}, and C{etc/tcp.smtp} with example rules.

The mail uid/gid own the homes, Maildirs, alias directory, queue and
C{run/}.  Not as root they are the invoking account's; as root they come
from C{--mail-uid} (required; uid 0 is refused, mail is never delivered as
root).  Control files and C{users/} stay owned by the invoking account.

A root that could not work is refused before anything is made
(L{check_root_location}): one the mail account cannot reach (a directory
on the way it may not enter, such as C{/root}).
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import socket
import stat
import sys
from dataclasses import dataclass, field
from typing import TextIO

from pymta.certs import write_self_signed
from pymta.cli.initcontrols import NEW_ROOT_CONTROLS
from pymta.cli.maildirmake import maildirmake
from pymta.fsaccess import Account, blocking_directory, describe
from pymta.fsutil import replace_file, write_new_file
from pymta.queue.layout import QueueLayout

__all__ = [
    "main", "init_root", "check_root_location", "InitError", "InitReport", "parse_mail_uid", "parse_user", "ALIAS_NAMES",
]

ALIAS_NAMES = ("postmaster", "mailer-daemon", "root", "abuse")

TCP_SMTP_EXAMPLE = """\
# SMTP access rules (tcprules text format), first matching key wins by
# specificity: exact IP, then shorter prefixes, then the default ":".
# RELAYCLIENT="" lets a client relay (send to any domain).
127.:allow,RELAYCLIENT=""
::1:allow,RELAYCLIENT=""
:allow
"""

_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\Z")
_HOST_NAME = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}))\Z")


class InitError(Exception):
    """A problem that stops C{pymta init}; C{status} is the exit code (100 usage, 111 system)."""

    def __init__(self, text: str, status: int = 111) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


@dataclass
class InitReport:
    """What one run made and what it found already there."""

    root: str
    me: str
    uid: int
    gid: int
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_user(spec: str) -> tuple[str, str | None]:
    """C{NAME} or C{NAME:PASSWORD} -> C{(name, password or None)}."""
    name, colon, password = spec.partition(":")
    if not _USER_NAME.match(name):
        raise InitError(
            f"bad user name {name!r}: use letters, digits, '.', '_', '-' (not first), at most 64", 100
        )
    if colon and not password:
        raise InitError(f"empty password for user {name!r} (leave out ':' for no password)", 100)
    if password and ("\n" in password or "\r" in password or "\0" in password):
        raise InitError(f"the password for {name!r} contains a line break or NUL", 100)
    return name, (password if colon else None)


def _lookup_id(text: str, kind: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        if kind == "uid":
            return pwd.getpwnam(text).pw_uid
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise InitError(f"--mail-uid: no such {'user' if kind == 'uid' else 'group'} {text!r}", 100) from None


def parse_mail_uid(text: str) -> tuple[int, int]:
    """C{UID:GID} (numbers, or user and group names) -> C{(uid, gid)}."""
    uid_text, colon, gid_text = text.partition(":")
    if not colon or not uid_text or not gid_text:
        raise InitError(f"--mail-uid wants UID:GID, got {text!r}", 100)
    return _lookup_id(uid_text, "uid"), _lookup_id(gid_text, "gid")


def _default_me() -> str:
    return socket.gethostname().strip().lower() or "localhost"


class _Builder:
    """Creates the pieces of a root, recording what was made and what was kept."""

    def __init__(self, root: str, report: InitReport, is_root: bool) -> None:
        self.root = root
        self.report = report
        self.is_root = is_root

    def rel(self, path: str) -> str:
        if path == self.root:
            return self.root
        return os.path.relpath(path, self.root)

    def chown(self, path: str, uid: int, gid: int) -> None:
        if self.is_root:
            os.lchown(path, uid, gid)

    def mkdir(self, path: str, mode: int, uid: int = -1, gid: int = -1) -> None:
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(path).st_mode):
                raise InitError(f"{path} exists and is not a directory") from None
            return
        os.chmod(path, mode)
        self.chown(path, uid, gid)
        self.report.made.append(self.rel(path) + "/")

    def file(self, path: str, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> bool:
        """Create C{path} with C{data} unless it exists; complete or absent, never half-written."""
        if os.path.lexists(path):
            self.report.kept.append(self.rel(path))
            return False
        write_new_file(path, data, mode, uid if self.is_root else -1, gid if self.is_root else -1)
        self.report.made.append(self.rel(path))
        return True


def _replace_keeping_mode(path: str, data: bytes, mode: int) -> None:
    """
    Replace C{path} atomically with C{data}, keeping its mode (and, as root,
    its owner); C{mode} is for a file that does not exist yet.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        replace_file(path, data, mode)
        return
    replace_file(path, data, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid) if os.getuid() == 0 else None)


def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            line = f.readline().rstrip(" \t\r\n")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise InitError(f"unable to read {path}: {e.strerror}") from None
    return line or None


def assign_line(name: str, uid: int, gid: int, home: str) -> str:
    """The users/assign entry of a mailbox user: C{=name:name:uid:gid:home:::}."""
    return f"={name.lower()}:{name}:{uid}:{gid}:{home}:::"


def assign_wildcard_line(name: str, uid: int, gid: int, home: str) -> str:
    """
    The entry for the user's extension addresses (as qmail-pw2u writes it):
    C{+name-:name:uid:gid:home:-::}, so C{name-ext} reads C{home/.qmail-ext}.
    """
    return f"+{name.lower()}-:{name}:{uid}:{gid}:{home}:-::"


def _assign_key(line: str) -> str | None:
    """C{=local} or C{+prefix} of an assign line (lowercased), None for other lines."""
    if line[:1] in ("=", "+") and ":" in line:
        return line[0] + line[1 : line.index(":")].lower()
    return None


def _assign_keys(lines: list[str]) -> set[str]:
    keys = set()
    for line in lines:
        if line.startswith("."):
            break
        key = _assign_key(line)
        if key is not None:
            keys.add(key)
    return keys


def _update_assign(builder: _Builder, path: str, entries: list[tuple[str, str]]) -> bool:
    """Add the C{(name, line)} entries whose key is missing from users/assign; True if the file changed."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    if text is None:
        if not entries:
            return False
        data = "".join(line + "\n" for _, line in entries) + ".\n"
        builder.file(path, data.encode("utf-8"), 0o644)
        return True
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    present = _assign_keys(lines)
    missing = [line for _, line in entries if _assign_key(line) not in present]
    if not missing:
        builder.report.kept.append(builder.rel(path))
        return False
    end = next((i for i, line in enumerate(lines) if line.startswith(".")), None)
    if end is None:
        lines.extend(missing)
        lines.append(".")
    else:
        lines[end:end] = missing
    _replace_keeping_mode(path, ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"), 0o644)
    builder.report.made.append(f"{builder.rel(path)} (+{len(missing)} entr{'y' if len(missing) == 1 else 'ies'})")
    return True


def _passwd_users(path: str) -> set[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return set()
    return {line.split(":", 1)[0] for line in lines if line and not line.startswith("#") and ":" in line}


def _rebuild_assign_index(root: str, report: InitReport) -> None:
    """Rebuild the users/assign index (C{pymta newu}) after assign changed."""
    from pymta.cli.newu import build_index
    from pymta.local.assign import AssignError

    try:
        build_index(root)
    except (AssignError, OSError) as e:
        # assign itself is written; the index only speeds up lookups
        report.warnings.append(f"users/assign index not rebuilt ({e}); run: pymta newu --root {root}")
        return
    report.made.append("users/assign index (pymta newu)")


def check_root_location(root: str, uid: int, gid: int) -> None:
    """
    L{InitError} (one line, with the fix) for a root the mail account
    cannot reach: every daemon, delivery child and mailbox child runs as
    that account or a mailbox user, so a directory on the way that does not
    let it through (such as C{/root}) makes a root that cannot work.
    """
    blocked = blocking_directory(root, Account(uid, gid))
    if blocked is not None:
        directory, st = blocked
        raise InitError(
            f"uid {uid} gid {gid} (the mail account) cannot reach {root}: {describe(directory, st)} does not "
            f"let it through; choose a root it can reach (such as /var/pymta) or open the way "
            f"(chmod o+x {directory})", 100
        )


def init_root(
    root: str,
    me: str | None = None,
    users: list[tuple[str, str | None]] | None = None,
    mail_ids: tuple[int, int] | None = None,
) -> InitReport:
    """
    Create or complete the pymta root C{root}; see the module docstring.
    Raises L{InitError} for bad arguments and for system errors.
    """
    users = list(users or [])
    is_root = os.getuid() == 0
    if is_root:
        if mail_ids is None:
            raise InitError(
                "running as root: give --mail-uid UID:GID, the unprivileged account that owns "
                "the queue and the mailboxes (it must not be root)", 100
            )
        if mail_ids[0] == 0:
            raise InitError("--mail-uid: uid 0 refused; mail is never delivered as root", 100)
        uid, gid = mail_ids
    else:
        uid, gid = os.getuid(), os.getgid()
        if mail_ids is not None and mail_ids != (uid, gid):
            raise InitError(
                f"--mail-uid {mail_ids[0]}:{mail_ids[1]} needs root; not as root the mail ids "
                f"are your own ({uid}:{gid})", 100
            )
    seen: set[str] = set()
    for name, _ in users:
        if name.lower() in seen:
            raise InitError(f"user {name!r} given twice", 100)
        seen.add(name.lower())
    if me is not None and (not _HOST_NAME.match(me) or ".." in me):
        raise InitError(f"--me: {me!r} is not a host name", 100)

    root = os.path.abspath(root)
    check_root_location(root, uid, gid)
    existing_me = _read_first_line(os.path.join(root, "control", "me"))
    effective_me = existing_me or (me.lower() if me else _default_me())
    report = InitReport(root=root, me=effective_me, uid=uid, gid=gid)
    if existing_me and me and me.lower() != existing_me.lower():
        report.warnings.append(f"control/me already says {existing_me!r}; kept (edit it by hand to change)")
    builder = _Builder(root, report, is_root)
    try:
        _build(builder, root, effective_me, users, uid, gid, new_root=existing_me is None)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise InitError(f"unable to set up{where}: {e.strerror or e}") from None
    return report


def _build(
    b: _Builder, root: str, me: str, users: list[tuple[str, str | None]], uid: int, gid: int, new_root: bool
) -> None:
    try:
        os.makedirs(os.path.dirname(root), exist_ok=True)
    except OSError:
        pass  # the mkdir of root below reports the real problem
    b.mkdir(root, 0o755)
    if not os.access(root, os.W_OK | os.X_OK):
        raise InitError(f"{root} is not writable")

    control = os.path.join(root, "control")
    b.mkdir(control, 0o755)
    line = (me + "\n").encode("utf-8")
    b.file(os.path.join(control, "me"), line, 0o644)
    b.file(os.path.join(control, "locals"), line, 0o644)
    b.file(os.path.join(control, "rcpthosts"), line, 0o644)
    b.file(os.path.join(control, "defaultdelivery"), b"./Maildir/\n", 0o644)
    if new_root:  # an existing root, or a qmail control/ copied in, keeps its behaviour
        for setting in NEW_ROOT_CONTROLS:
            b.file(os.path.join(control, setting.name), setting.data, 0o644)
    cert = os.path.join(control, "servercert.pem")
    if write_self_signed(cert, me, uid if b.is_root else -1, gid if b.is_root else -1):
        b.report.made.append(b.rel(cert) + f" (self-signed for {me})")
    else:
        b.report.kept.append(b.rel(cert))

    queuedir = os.path.join(root, "queue")
    queue_existed = os.path.exists(os.path.join(queuedir, "split"))
    layout = QueueLayout(queuedir)
    layout.create(uid if b.is_root else -1, gid if b.is_root else -1)
    if queue_existed:
        b.report.kept.append(b.rel(queuedir))
    else:
        b.report.made.append(f"{b.rel(queuedir)}/ (split {layout.split})")
    b.mkdir(os.path.join(root, "run"), 0o755, uid, gid)
    b.mkdir(os.path.join(root, "etc"), 0o755)
    b.file(os.path.join(root, "etc", "tcp.smtp"), TCP_SMTP_EXAMPLE.encode(), 0o644)

    home = os.path.join(root, "home")
    b.mkdir(home, 0o755)
    entries = []
    for name, _ in users:
        user_home = os.path.join(home, name)
        b.mkdir(user_home, 0o700, uid, gid)
        for made in maildirmake(os.path.join(user_home, "Maildir"), uid if b.is_root else -1,
                                gid if b.is_root else -1, exist_ok=True):
            b.report.made.append(b.rel(made) + "/")
        entries.append((name, assign_line(name, uid, gid, user_home)))
        entries.append((name, assign_wildcard_line(name, uid, gid, user_home)))

    alias = os.path.join(root, "alias")
    b.mkdir(alias, 0o755, uid, gid)
    if users:
        target = f"&{users[0][0]}@{me}\n"
    else:
        for made in maildirmake(os.path.join(alias, "Maildir"), uid if b.is_root else -1,
                                gid if b.is_root else -1, exist_ok=True):
            b.report.made.append(b.rel(made) + "/")
        target = "./Maildir/\n"
    for name in ALIAS_NAMES:
        b.file(os.path.join(alias, f".qmail-{name}"), target.encode("utf-8"), 0o644, uid, gid)

    usersdir = os.path.join(root, "users")
    b.mkdir(usersdir, 0o755)
    if _update_assign(b, os.path.join(usersdir, "assign"), entries):
        _rebuild_assign_index(root, b.report)
    passwd = os.path.join(usersdir, "passwd")
    with_password = [(name, password) for name, password in users if password is not None]
    if with_password:
        try:
            from pymta.passwdfile import set_password
        except ImportError:
            b.report.warnings.append("passwords not stored: pymta.passwdfile is not available")
            return
        have = _passwd_users(passwd)
        created = not os.path.exists(passwd)
        for name, password in with_password:
            if name in have:
                b.report.kept.append(f"{b.rel(passwd)} entry for {name}")
                continue
            set_password(passwd, name, password, uid, gid, os.path.join(home, name))
            b.report.made.append(f"{b.rel(passwd)} entry for {name}")
        if created and b.is_root:
            # readable by the services (mail gid), writable only by root
            os.chown(passwd, 0, gid)
            os.chmod(passwd, 0o640)


def _hints(report: InitReport, users: list[tuple[str, str | None]]) -> str:
    root, me = report.root, report.me
    lines = [
        "",
        f"pymta root {root} is ready: me = {me}, mail uid {report.uid} gid {report.gid}.",
        "Start everything in one process (foreground):",
        f"  twistd -n pymta --root {root} --smtp tcp:25 --submission tcp:587 --pop3 tcp:110",
        "SMTP: mail to " + (f"{users[0][0]}@{me}" if users else f"postmaster@{me}") + " is accepted on the smtp port;",
        f"  relaying is allowed for clients matched by {root}/etc/tcp.smtp (127.* in the example)",
        "  and for clients that AUTH on the submission port with a users/passwd account.",
    ]
    if os.path.exists(os.path.join(root, "control", "rcptcheck")):
        lines.append("  Mail to unknown local users is refused at RCPT (control/rcptcheck; remove it to bounce later).")
    if "." in me:  # pymta inject completes a host without a dot with defaultdomain
        lines.append(f"Local mail: echo 'Subject: hi' | pymta inject --root {root} "
                     + (users[0][0] if users else "postmaster"))
    pop_users = [name for name, password in users if password is not None]
    if pop_users:
        lines.append(f"POP3: log in as {', '.join(pop_users)} with the password given (STLS first; "
                     f"control/servercert.pem is self-signed).")
    elif users:
        lines.append(f"POP3: set a password first: pymta passwd --root {root} {users[0][0]}")
    lines.append(f"Check the settings: pymta showctl --root {root}")
    return "\n".join(lines) + "\n"


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = argparse.ArgumentParser(prog="pymta init", description="create a pymta root directory")
    parser.add_argument("root", help="the root directory to create (e.g. /var/pymta)")
    parser.add_argument("--me", default=None, help="this host's mail name (default: the host name)")
    parser.add_argument("--mail-uid", default=None, metavar="UID:GID",
                        help="as root: the account owning queue, homes and Maildirs (not 0)")
    parser.add_argument("--user", action="append", default=[], metavar="NAME[:PASSWORD]",
                        help="a mailbox user (repeatable); with a password also a POP3 account")
    parser.add_argument("--null-client", nargs="+", default=None, metavar="SERVER",
                        help="make ROOT only a null client of these QMQP servers (IP or IP:PORT); see docs/qmqp.md")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 100 if e.code else 0
    if args.null_client is not None:  # pymta.cli.initnullclient does the work
        from pymta.cli.initnullclient import run

        return run(args.root, args.me or _default_me(), args.null_client, bool(args.user or args.mail_uid), out, err)
    try:
        users = [parse_user(spec) for spec in args.user]
        mail_ids = parse_mail_uid(args.mail_uid) if args.mail_uid is not None else None
        report = init_root(args.root, args.me, users, mail_ids)
    except InitError as e:
        err.write(f"pymta init: fatal: {e.text}\n")
        return e.status
    for item in report.made:
        out.write(f"made {item}\n")
    if report.kept:
        out.write(f"kept {len(report.kept)} existing item{'s' if len(report.kept) != 1 else ''} unchanged\n")
    for warning in report.warnings:
        err.write(f"pymta init: warning: {warning}\n")
    out.write(_hints(report, users))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
