# -*- test-case-name: tests.pop3d.test_checkpassword -*-
"""
Authentication through an external checkpassword program (the interface of
checkpassword 0.90 that qmail-popup uses).

The program is started with C{spawnProcess} (environment: only
C{PATH}; cwd C{/}) and reads C{user\\0password\\0timestamp\\0}
from fd 3.  Exit 1 or 2 = wrong login; 111 = temporary trouble; killed =
C{aack, child crashed}.  On success a checkpassword program switches to the
account's uid/gid, sets C{$HOME}, and executes the rest of its arguments.

How pymta learns the account: the "rest of the arguments" is a tiny fixed
reporter, C{/bin/sh -c 'printf ... "$(id -u)" "$(id -g)" "$HOME"'} (no
user data is ever put into the script), that writes C{uid\\0gid\\0home\\0} to
its stdout (fd 1, a pipe to pop3d) and exits 0.  A shell is used rather than
Python because the account may not be able to run pop3d's interpreter.  The mailbox is then
C{$HOME/Maildir/} of that account, read in-process or through a mailbox
child according to the uid (L{pymta.pop3d.opener}).

APOP passes the digest as the password and the banner timestamp; USER/PASS
and AUTH PLAIN pass an empty timestamp, so an APOP-capable program can tell
a digest from a password.  Cancelling a check's Deferred (the client has
gone) kills the program; the Deferred fails once the program has ended.  A program that exits 0 without running its
arguments (so no account report) is a temporary failure, not a login.
"""

from __future__ import annotations

import os
from typing import Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.pop3d.auth import Account, LoginFailed, LoginTemporaryFailure

__all__ = ["CheckpasswordAuthenticator", "REPORTER_ARGV"]

log = Logger(namespace="pymta.pop3d")

REPORTER_ARGV = ["/bin/sh", "-c", 'printf "%s\\0%s\\0%s\\0" "$(id -u)" "$(id -g)" "${HOME:-$(pwd)}"']
MAX_REPORT = 8192


class _CheckpasswordProcess(ProcessProtocol):
    transport: IProcessTransport  # spawned, so connected before any method runs

    def __init__(self, payload: bytes, user: str) -> None:
        self.payload = payload
        self.user = user
        self.report = b""
        self.stderr = b""
        self.done: defer.Deferred = defer.Deferred(self._abandon)
        self.timer = None

    def _abandon(self, done: defer.Deferred) -> None:
        """The client has gone: kill the child; C{done} fails with CancelledError once it has ended."""
        done.pause()
        self.kill()

    def kill(self) -> None:
        try:
            self.transport.signalProcess("KILL")  # type: ignore[union-attr]
        except Exception:  # not started, or already gone
            pass

    def connectionMade(self) -> None:
        self.transport.writeToChild(3, self.payload)
        self.transport.closeChildFD(3)
        self.transport.closeStdin()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 1 and len(self.report) < MAX_REPORT:
            self.report += data
        elif fd == 2:
            self.stderr = (self.stderr + data)[-1024:]

    def processEnded(self, reason: Failure) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if self.stderr:
            log.info("checkpassword: {stderr}", stderr=self.stderr.decode("utf-8", "replace").strip())
        if self.done.called:  # abandoned (L{_abandon}): its result is CancelledError
            self.done.unpause()
            return
        code = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        if signal is not None or code is None:
            self.done.errback(LoginTemporaryFailure("aack, child crashed"))
        elif code == 0:
            try:
                self.done.callback(self._account())
            except ValueError as e:
                log.error("checkpassword succeeded without an account report: {error}", error=str(e))
                self.done.errback(LoginTemporaryFailure("checkpassword gave no account"))
        elif code in (1, 2):
            self.done.errback(LoginFailed("authorization failed"))
        else:
            self.done.errback(LoginTemporaryFailure("temporary authentication failure"))

    def _account(self) -> Account:
        fields = self.report.split(b"\0")
        if len(fields) != 4 or fields[3] != b"" or not fields[0].isdigit() or not fields[1].isdigit():
            raise ValueError(repr(self.report[:100]))
        home = os.fsdecode(fields[2])
        if not os.path.isabs(home):
            raise ValueError(f"home {home!r} is not absolute")
        return Account(self.user, int(fields[0]), int(fields[1]), home)


class CheckpasswordAuthenticator:
    """Runs C{program} (an argv list) for each login attempt."""

    def __init__(
        self,
        reactor: object,
        program: Sequence[str],
        timeout: float = 30.0,
    ) -> None:
        if not program:
            raise ValueError("checkpassword program missing")
        if not os.path.isabs(program[0]) or not os.access(program[0], os.X_OK):
            raise ValueError(f"checkpassword program {program[0]!r} is not an executable absolute path")
        self.reactor = reactor
        self.program = list(program)
        self.timeout = timeout

    def _run(self, user: bytes, secret: bytes, timestamp: bytes) -> defer.Deferred:
        if b"\0" in user or b"\0" in secret or not user:
            return defer.fail(LoginFailed("authorization failed"))
        payload = user + b"\0" + secret + b"\0" + timestamp + b"\0"
        if len(payload) > 512:  # checkpassword reads at most 512 bytes
            return defer.fail(LoginFailed("authorization failed"))
        proto = _CheckpasswordProcess(payload, user.decode("utf-8", "surrogateescape"))
        argv = self.program + REPORTER_ARGV
        env = {"PATH": "/usr/bin:/bin"}
        try:
            self.reactor.spawnProcess(  # type: ignore[attr-defined]
                proto, self.program[0], argv, env=env, path="/",
                childFDs={0: "w", 1: "r", 2: "r", 3: "w"},
            )
        except OSError as e:
            log.error("cannot run checkpassword {program}: {error}", program=self.program[0], error=str(e))
            return defer.fail(LoginTemporaryFailure("unable to fork"))

        proto.timer = self.reactor.callLater(self.timeout, proto.kill)  # type: ignore[attr-defined]
        return proto.done

    def check_password(self, user: bytes, password: bytes) -> defer.Deferred:
        return self._run(user, password, b"")

    def check_apop(self, user: bytes, timestamp: bytes, digest: bytes) -> defer.Deferred:
        return self._run(user, digest, timestamp)
