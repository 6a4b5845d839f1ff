# -*- test-case-name: tests.pop3d.test_rootauth -*-
"""
The root mailbox spawner's own decision: whose mailbox, where.

pop3d runs as the mail uid and may be compromised, so the spawner never
takes a uid, gid or path from it.  For each request
(L{pymta.pop3d.spawnrequest.LoginRequest}) a mailbox child of the spawner,
still root:

  1. checks the login itself - L{PasswdFileSource} against
     C{ROOT/users/passwd} (L{pymta.passwdfile.verify_password}; APOP only
     for PLAIN/CLEARTEXT entries), or L{CheckpasswordSource}, which runs the
     checkpassword program as pop3d would and reads the account it reports;
  2. takes uid, gid and home from that answer only, and refuses uid 0,
     gid 0, no uid/gid, a relative home, and a home that is not a directory
     owned by that uid (L{check_home});
  3. drops to the user, and only then resolves C{home/Maildir} and refuses
     it if it leaves the home (a symlink pointing elsewhere,
     L{confined_maildir}).

No Twisted reactor here: this runs in a forked child that may block.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import select
import signal
import stat
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from pymta.passwdfile import read_passwd, verify_password
from pymta.pop3d.checkpassword import MAX_REPORT, REPORTER_ARGV
from pymta.pop3d.spawnrequest import LoginRequest
from pymta.privsep import fork_child, kill_and_reap, wait_child

__all__ = [
    "SystemAccount",
    "LoginDenied",
    "LoginUnavailable",
    "PasswdFileSource",
    "CheckpasswordSource",
    "check_home",
    "confined_maildir",
]


@dataclass(frozen=True)
class SystemAccount:
    uid: int | None
    gid: int | None
    home: str


class LoginDenied(Exception):
    """The login is wrong, or its account may not be served by the spawner."""


class LoginUnavailable(Exception):
    """The login could not be checked (checkpassword trouble)."""


class AccountSource(Protocol):
    def authenticate(self, login: LoginRequest) -> SystemAccount: ...


def apop_matches(secret: bytes, timestamp: bytes, digest: bytes) -> bool:
    expected = hashlib.md5(timestamp + secret).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, digest.lower())


class PasswdFileSource:
    """Accounts of a users/passwd file, read afresh for every login."""

    def __init__(self, path: str) -> None:
        self.path = path

    def authenticate(self, login: LoginRequest) -> SystemAccount:
        try:
            entries = read_passwd(self.path, strict=False)
        except OSError as e:
            raise LoginUnavailable(f"cannot read users/passwd: {e.strerror}") from None
        entry = entries.get(login.user.decode("utf-8", "surrogateescape"))
        if entry is None:
            raise LoginDenied("authorization failed")
        if login.kind == "PASS":
            ok = verify_password(entry.password, login.secret)
        else:
            secret = entry.plaintext_secret()
            ok = secret is not None and apop_matches(secret, login.timestamp, login.secret)
        if not ok:
            raise LoginDenied("authorization failed")
        return SystemAccount(entry.uid, entry.gid, entry.home)


def _above(fd: int, floor: int = 10) -> int:
    """A copy of C{fd} numbered at least C{floor} (so dup2 onto 0..3 cannot clobber it)."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD, floor)


class CheckpasswordSource:
    """
    The checkpassword program, run as pop3d runs it (L{pymta.pop3d.checkpassword}):
    C{user\\0secret\\0timestamp\\0} on fd 3, the fixed reporter as the rest of
    its arguments, C{uid\\0gid\\0home\\0} back on stdout; the program is
    killed when it has not ended within C{timeout} seconds.
    """

    def __init__(
        self, program: Sequence[str], timeout: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not program or not os.path.isabs(program[0]):
            raise ValueError("checkpassword program must be an absolute path")
        self.program = list(program)
        self.timeout = timeout
        self.clock = clock

    def authenticate(self, login: LoginRequest) -> SystemAccount:
        payload = login.user + b"\0" + login.secret + b"\0" + login.timestamp + b"\0"
        if len(payload) > 512:
            raise LoginDenied("authorization failed")
        code, report = self._run(payload)
        if code in (1, 2):
            raise LoginDenied("authorization failed")
        if code != 0:
            raise LoginUnavailable("temporary authentication failure")
        fields = report.split(b"\0")
        if len(fields) != 4 or fields[3] or not fields[0].isdigit() or not fields[1].isdigit():
            raise LoginUnavailable("checkpassword gave no account")
        return SystemAccount(int(fields[0]), int(fields[1]), os.fsdecode(fields[2]))

    def _run(self, payload: bytes) -> tuple[int | None, bytes]:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the spawner ignores it; we wait for ours
        auth_r, auth_w = os.pipe()
        out_r, out_w = os.pipe()

        def run_program() -> int:
            high_auth, high_out = _above(auth_r), _above(out_w)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(high_out, 1)
            os.dup2(high_auth, 3)
            os.closerange(4, 1 << 16)
            os.execve(self.program[0], self.program + REPORTER_ARGV, {"PATH": "/usr/bin:/bin"})

        pid = fork_child(run_program, status_on_error=111)
        os.close(auth_r)
        os.close(out_w)
        deadline = self.clock() + self.timeout
        try:
            try:
                os.write(auth_w, payload)
            except BrokenPipeError:
                pass
            os.close(auth_w)
            report = b""
            while True:
                left = deadline - self.clock()
                if left <= 0 or not select.select([out_r], [], [], left)[0]:
                    kill_and_reap(pid)
                    return None, b""
                data = os.read(out_r, 4096)
                if not data:
                    break
                if len(report) < MAX_REPORT:
                    report += data
        finally:
            os.close(out_r)
        status = wait_child(pid, max(0.0, deadline - self.clock()), self.clock)
        if status is None:  # closed its output but goes on running past the deadline
            kill_and_reap(pid)
            return None, b""
        return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else None), report


def check_home(account: SystemAccount) -> str:
    """The real path of the account's home, checked as root; L{LoginDenied} if it may not be served."""
    if account.uid is None or account.gid is None:
        raise LoginDenied("account has no uid/gid")
    if account.uid == 0 or account.gid == 0:
        raise LoginDenied("refusing uid 0 / gid 0")
    if not os.path.isabs(account.home):
        raise LoginDenied("home is not an absolute path")
    home = os.path.realpath(account.home)
    try:
        st = os.stat(home)
    except OSError:
        raise LoginDenied("home does not exist") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != account.uid:
        raise LoginDenied("home is not a directory owned by the account's uid")
    return home


def confined_maildir(home: str) -> str:
    """C{home/Maildir/} resolved (call as the user); L{LoginDenied} if it leaves C{home}."""
    maildir = os.path.realpath(os.path.join(home, "Maildir"))
    if maildir == home or os.path.commonpath([home, maildir]) != home:
        raise LoginDenied("Maildir leaves the home directory")
    return os.path.join(maildir, "")
