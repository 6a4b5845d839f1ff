# -*- test-case-name: tests.test_passwdfile -*-
"""
C{users/passwd}: mailbox passwords in Dovecot's passwd-file format.

One account per line::

    user:{SCHEME}hash:uid:gid:gecos:home:shell:extra

(Dovecot's field order; pymta writes C{user:{SCHEME}hash:uid:gid::home::}).
Blank lines and lines starting with C{#} are ignored.  Supported schemes:

  - C{ARGON2ID} and C{ARGON2I} (argon2-cffi, PHC string C{$argon2id$...}),
    C{ARGON2ID} is the default for new passwords;
  - C{BLF-CRYPT} (bcrypt, C{$2y$}/C{$2b$}; passwords over 72 bytes refused);
  - C{PLAIN} / C{CLEARTEXT}: the password itself.  Only these allow APOP,
    whose MD5 digest needs the shared secret; an operator who wants APOP for
    an account stores it with C{pymta passwd --scheme PLAIN} and protects the
    file accordingly.

L{PasswdFileChecker} is a C{twisted.cred} checker for
L{IUsernamePassword} (SMTP AUTH, POP3 USER/PASS, AUTH PLAIN) and
L{IUsernameHashedPassword} (APOP: accepted only for PLAIN/CLEARTEXT
entries).  It re-reads the file whenever its inode, size or mtime change, so
C{pymta passwd} takes effect without a restart.  The avatar id it returns is
the account name as C{str}; L{PasswdFileChecker.lookup} gives the entry
(uid, gid, home) for a realm.

L{set_password} rewrites the file atomically (write, fsync, rename, fsync
of the directory) under an advisory lock, keeping every other line.
"""

from __future__ import annotations

import fcntl
import hmac
import os
import stat
from dataclasses import dataclass
from typing import Callable, cast

import argon2
import bcrypt
from twisted.cred import error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.fsutil import replace_file

__all__ = [
    "PasswdEntry",
    "PasswdFileError",
    "PasswdFileChecker",
    "SCHEMES",
    "WRITABLE_SCHEMES",
    "parse_line",
    "parse_passwd",
    "read_passwd",
    "format_entry",
    "hash_password",
    "verify_password",
    "set_password",
]

log = Logger()

SCHEMES = ("ARGON2ID", "ARGON2I", "BLF-CRYPT", "PLAIN", "CLEARTEXT")
WRITABLE_SCHEMES = ("ARGON2ID", "BLF-CRYPT", "PLAIN")
_PLAINTEXT_SCHEMES = ("PLAIN", "CLEARTEXT")
BCRYPT_MAX_PASSWORD_BYTES = 72

_argon2id = argon2.PasswordHasher(type=argon2.Type.ID)
_dummy_hash: str | None = None


def _timing_dummy_hash() -> str:
    """A hash to verify for unknown users, so "no such user" costs what "wrong password" does."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = "{ARGON2ID}" + _argon2id.hash("pymta-timing-equaliser")
    return _dummy_hash


class PasswdFileError(ValueError):
    """A malformed users/passwd line or an unusable value to store."""

    def __init__(self, reason: str, path: str | None = None, lineno: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{lineno}: " if lineno is not None else f"{path}: "
        super().__init__(f"{where}{reason}")
        self.reason = reason
        self.path = path
        self.lineno = lineno


@dataclass(frozen=True)
class PasswdEntry:
    """One account of users/passwd."""

    user: str
    password: str  # "{SCHEME}data" as stored
    uid: int | None
    gid: int | None
    home: str
    gecos: str = ""
    shell: str = ""
    extra: str = ""

    @property
    def scheme(self) -> str:
        scheme, _ = split_scheme(self.password)
        return scheme

    @property
    def maildir(self) -> str:
        """The account's mailbox: C{home/Maildir/}."""
        return os.path.join(self.home, "Maildir", "")

    def plaintext_secret(self) -> bytes | None:
        """The stored password when its scheme keeps it in clear (APOP), else None."""
        scheme, data = split_scheme(self.password)
        if scheme in _PLAINTEXT_SCHEMES:
            return data.encode("utf-8")
        return None


def split_scheme(stored: str) -> tuple[str, str]:
    """C{"{ARGON2ID}$argon2id..."} -> C{("ARGON2ID", "$argon2id...")}; no prefix = CRYPT."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 1:
            return stored[1:end].upper(), stored[end + 1 :]
    return "CRYPT", stored


def _check_user(user: str) -> None:
    if not user or any(c in user for c in ":\n\r\0") or user.startswith("#") or user != user.strip():
        raise PasswdFileError(f"invalid user name {user!r}")


def _parse_id(text: str, what: str) -> int | None:
    if text == "":
        return None
    if not text.isdigit():
        raise PasswdFileError(f"{what} {text!r} is not a number")
    return int(text)


def parse_line(line: str) -> PasswdEntry | None:
    """One line -> entry; None for blank/comment lines; L{PasswdFileError} when malformed."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    fields = line.split(":", 7)
    if len(fields) < 2:
        raise PasswdFileError("expected user:password[:uid:gid:gecos:home:shell:extra]")
    fields += [""] * (8 - len(fields))
    user, password, uid, gid, gecos, home, shell, extra = fields
    _check_user(user)
    return PasswdEntry(
        user=user,
        password=password,
        uid=_parse_id(uid, "uid"),
        gid=_parse_id(gid, "gid"),
        gecos=gecos,
        home=home,
        shell=shell,
        extra=extra,
    )


def parse_passwd(text: str, path: str | None = None, strict: bool = True) -> dict[str, PasswdEntry]:
    """
    Parse a whole file.  C{strict}: a malformed line raises; otherwise it is
    logged and skipped (the daemon keeps serving the other accounts).  The
    first line of a user wins, as in Dovecot.
    """
    entries: dict[str, PasswdEntry] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        try:
            entry = parse_line(line)
        except PasswdFileError as e:
            e = PasswdFileError(e.reason, path, lineno)
            if strict:
                raise e from None
            log.warn("users/passwd: skipping malformed line: {error}", error=str(e))
            continue
        if entry is not None and entry.user not in entries:
            entries[entry.user] = entry
    return entries


def read_passwd(path: str, strict: bool = True) -> dict[str, PasswdEntry]:
    """Read C{path}; an absent file is an empty table."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    return parse_passwd(text, path, strict)


def format_entry(entry: PasswdEntry) -> str:
    """The line (without newline) for C{entry}."""
    _check_user(entry.user)
    for name in ("password", "home", "gecos", "shell"):
        value = getattr(entry, name)
        if any(c in value for c in ":\n\r\0"):
            raise PasswdFileError(f"{name} must not contain ':' or a line break")
    if any(c in entry.extra for c in "\n\r\0"):
        raise PasswdFileError("extra fields must not contain a line break")
    uid = "" if entry.uid is None else str(entry.uid)
    gid = "" if entry.gid is None else str(entry.gid)
    line = f"{entry.user}:{entry.password}:{uid}:{gid}:{entry.gecos}:{entry.home}:{entry.shell}:{entry.extra}"
    return line


def hash_password(password: str | bytes, scheme: str = "ARGON2ID") -> str:
    """The stored form C{"{SCHEME}..."} of C{password}."""
    scheme = scheme.upper()
    raw = password.encode("utf-8") if isinstance(password, str) else password
    if scheme == "ARGON2ID":
        return "{ARGON2ID}" + _argon2id.hash(raw)
    if scheme == "BLF-CRYPT":
        if len(raw) > BCRYPT_MAX_PASSWORD_BYTES:
            raise PasswdFileError(f"BLF-CRYPT cannot store passwords over {BCRYPT_MAX_PASSWORD_BYTES} bytes")
        if b"\0" in raw:
            raise PasswdFileError("BLF-CRYPT cannot store a password containing NUL")
        return "{BLF-CRYPT}" + bcrypt.hashpw(raw, bcrypt.gensalt(rounds=10)).decode("ascii")
    if scheme in _PLAINTEXT_SCHEMES:
        text = raw.decode("utf-8")
        if any(c in text for c in ":\n\r\0"):
            raise PasswdFileError("a PLAIN password must not contain ':', NUL or a line break")
        return "{PLAIN}" + text
    raise PasswdFileError(f"unsupported scheme {scheme!r} (use one of {', '.join(WRITABLE_SCHEMES)})")


def verify_password(stored: str, password: str | bytes) -> bool:
    """True if C{password} matches the stored C{"{SCHEME}..."} value; unknown schemes never match."""
    raw = password.encode("utf-8") if isinstance(password, str) else password
    scheme, data = split_scheme(stored)
    if scheme in ("ARGON2ID", "ARGON2I"):
        try:
            return argon2.PasswordHasher().verify(data, raw)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
    if scheme == "BLF-CRYPT":
        if len(raw) > BCRYPT_MAX_PASSWORD_BYTES or b"\0" in raw:
            return False
        try:
            return bcrypt.checkpw(raw, data.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return False
    if scheme in _PLAINTEXT_SCHEMES:
        return hmac.compare_digest(data.encode("utf-8"), raw)
    log.warn("users/passwd: unsupported password scheme {scheme}", scheme=scheme)
    return False


class _FileCache:
    """Re-reads a passwd file when its (inode, size, mtime) change."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._entries: dict[str, PasswdEntry] = {}

    def entries(self) -> dict[str, PasswdEntry]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key, self._entries = None, {}
            return self._entries
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._key:
            try:
                self._entries = read_passwd(self.path, strict=False)
            except OSError as e:
                log.error("users/passwd: cannot read {path}: {error}", path=self.path, error=str(e))
                return self._entries
            self._key = key
        return self._entries


def _as_str(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _until_thread_done(work: defer.Deferred) -> defer.Deferred:
    """
    The result of C{work} (a check running in a thread), cancellable: a
    thread cannot be stopped, so a cancelled check fails with
    C{CancelledError} only once its thread is done.  Whoever bounds the
    checks running at once (L{pymta.checkgate}) counts it until then, and
    its result is dropped.
    """

    def cancel(result: defer.Deferred) -> None:
        result.pause()
        work.addBoth(lambda _: result.unpause())

    result: defer.Deferred = defer.Deferred(cancel)

    def forward(outcome: object) -> None:
        if result.called:
            return None  # cancelled: nobody waits for it
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)
        return None

    work.addBoth(forward)
    return result


@implementer(ICredentialsChecker)
class PasswdFileChecker:
    """
    A C{twisted.cred} checker over a users/passwd file.

    Password hashes are verified in the reactor's thread pool
    (C{verify_in_thread=True}, the default) so a slow ARGON2ID check never
    stalls other sessions; tests pass C{False} to verify synchronously.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    def __init__(self, path: str, verify_in_thread: bool = True, reactor: IReactorThreads | None = None) -> None:
        self.path = path
        self._cache = _FileCache(path)
        self._verify_in_thread = verify_in_thread
        self._reactor = reactor

    def lookup(self, user: str | bytes) -> PasswdEntry | None:
        """The current entry of C{user} (file re-read if it changed), or None."""
        return self._cache.entries().get(_as_str(user))

    def _run(self, f: Callable[..., bool], *args: object) -> defer.Deferred:
        if not self._verify_in_thread:
            return defer.maybeDeferred(f, *args)
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            # Twisted types the global reactor without IReactorThreads, which every reactor provides
            reactor = cast(IReactorThreads, global_reactor)
        work = threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        return _until_thread_done(work)

    def requestAvatarId(self, credentials: object) -> defer.Deferred:
        name = _as_str(credentials.username)  # type: ignore[attr-defined]
        entry = self.lookup(name)
        if IUsernamePassword.providedBy(credentials):
            stored = entry.password if entry is not None else _timing_dummy_hash()
            d = self._run(verify_password, stored, credentials.password)  # type: ignore[attr-defined]

            def decided(ok: bool) -> str:
                if ok and entry is not None:
                    return name
                raise error.UnauthorizedLogin("authorization failed")

            return d.addCallback(decided)
        if IUsernameHashedPassword.providedBy(credentials):
            secret = entry.plaintext_secret() if entry is not None else None
            if secret is None:
                return defer.fail(error.UnauthorizedLogin("authorization failed"))
            if credentials.checkPassword(secret):  # type: ignore[attr-defined]
                return defer.succeed(name)
            return defer.fail(error.UnauthorizedLogin("authorization failed"))
        return defer.fail(error.UnhandledCredentials("unsupported credentials"))


def set_password(
    path: str,
    user: str,
    password: str,
    uid: int,
    gid: int,
    home: str,
    scheme: str = "ARGON2ID",
    new_owner: tuple[int, int] | None = None,
) -> None:
    """
    Set C{user}'s password (and uid, gid, home) in the passwd file at C{path},
    creating it (mode 0640, owned by C{new_owner} when given and running as
    root) if absent.  Every other line is kept verbatim, as
    are the user's gecos/shell/extra fields.  Atomic: a temporary file is
    written and fsynced, renamed over C{path}, and the directory fsynced;
    concurrent writers serialise on C{path + ".lock"}.
    """
    _check_user(user)
    stored = hash_password(password, scheme)
    new_entry = PasswdEntry(user=user, password=stored, uid=uid, gid=gid, home=home)
    format_entry(new_entry)  # validate before touching anything
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    lock_fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        owner: tuple[int, int] | None
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                lines = f.read().split("\n")
            st = os.stat(path)
            mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
        except FileNotFoundError:
            lines, mode, owner = [], 0o640, new_owner
        if lines and lines[-1] == "":
            lines.pop()
        out: list[str] = []
        replaced = False
        for line in lines:
            try:
                old = parse_line(line)
            except PasswdFileError:
                old = None
            if old is not None and old.user == user:
                if not replaced:
                    entry = PasswdEntry(
                        user=user, password=stored, uid=uid, gid=gid, home=home,
                        gecos=old.gecos, shell=old.shell, extra=old.extra,
                    )
                    out.append(format_entry(entry))
                    replaced = True
                continue  # drop later duplicates: they were dead lines anyway
            out.append(line)
        if not replaced:
            out.append(format_entry(new_entry))
        data = ("\n".join(out) + "\n").encode("utf-8", "surrogateescape")
        replace_file(path, data, mode, owner if os.getuid() == 0 else None)
    finally:
        os.close(lock_fd)
