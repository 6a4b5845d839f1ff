# -*- test-case-name: tests.pop3d.test_auth -*-
"""
Who may log in to POP3, and as which account.

An authenticator turns a user name and password (USER/PASS, AUTH PLAIN) or
an APOP digest into an L{Account} (name, uid, gid, home; the mailbox is
C{home/Maildir/}) or fails with L{LoginFailed}.  Two kinds exist:

  - L{PasswdFileAuthenticator}: C{users/passwd} through
    L{pymta.passwdfile.PasswdFileChecker} (APOP only for PLAIN entries);
  - L{pymta.pop3d.checkpassword.CheckpasswordAuthenticator}: an external
    checkpassword program.

L{LoginKeepingAuthenticator} wraps either and puts what the client proved
into the L{Account} (C{login}), for the root mailbox spawner, which checks
the login again itself before it serves another uid's Maildir
(L{pymta.pop3d.rootauth}).

How many logins may be tried, and how many checked at once, is
L{pymta.authlimit}'s business (through L{pymta.pop3d.login}).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field, replace
from typing import Protocol as TypingProtocol

from twisted.cred.credentials import IUsernameHashedPassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from zope.interface import implementer

from pymta.passwdfile import PasswdFileChecker
from pymta.pop3d.spawnrequest import LoginRequest

__all__ = [
    "Account",
    "LoginFailed",
    "LoginTemporaryFailure",
    "Authenticator",
    "PasswdFileAuthenticator",
    "LoginKeepingAuthenticator",
    "APOPCredentials",
    "APOP_DIGEST",
]

APOP_DIGEST = re.compile(rb"\A[0-9a-fA-F]{32}\Z")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int | None
    gid: int | None
    home: str
    login: LoginRequest | None = field(default=None, repr=False, compare=False)

    @property
    def maildir(self) -> str:
        return os.path.join(self.home, "Maildir", "")


class LoginFailed(Exception):
    """Wrong user name, password or digest."""


class LoginTemporaryFailure(Exception):
    """The check could not be made (checker unavailable); the text is for the client."""


class Authenticator(TypingProtocol):
    def check_password(self, user: bytes, password: bytes) -> defer.Deferred: ...

    def check_apop(self, user: bytes, timestamp: bytes, digest: bytes) -> defer.Deferred: ...


@implementer(IUsernameHashedPassword)
class APOPCredentials:
    """APOP (RFC 1939): MD5(timestamp + secret) in hex, compared in constant time, as bytes."""

    def __init__(self, username: bytes, timestamp: bytes, digest: bytes) -> None:
        self.username = username
        self.timestamp = timestamp
        self.digest = digest.lower()

    def checkPassword(self, password: bytes | str) -> bool:
        if isinstance(password, str):
            password = password.encode("utf-8")
        expected = hashlib.md5(self.timestamp + password).hexdigest().encode("ascii")
        return hmac.compare_digest(expected, self.digest)


class PasswdFileAuthenticator:
    """Accounts from C{users/passwd}; the account's uid/gid/home come from its line."""

    def __init__(self, checker: PasswdFileChecker) -> None:
        self.checker = checker

    def _account(self, name: str) -> Account:
        entry = self.checker.lookup(name)
        if entry is None:  # removed between the check and now
            raise LoginFailed(name)
        return Account(entry.user, entry.uid, entry.gid, entry.home)

    def _check(self, credentials: object) -> defer.Deferred:
        d = self.checker.requestAvatarId(credentials)

        def failed(f):  # type: ignore[no-untyped-def]
            f.trap(UnauthorizedLogin)
            raise LoginFailed("authorization failed")

        d.addCallbacks(self._account, failed)
        return d

    def check_password(self, user: bytes, password: bytes) -> defer.Deferred:
        return self._check(UsernamePassword(user, password))

    def check_apop(self, user: bytes, timestamp: bytes, digest: bytes) -> defer.Deferred:
        return self._check(APOPCredentials(user, timestamp, digest))


class LoginKeepingAuthenticator:
    """Another authenticator whose accounts carry the login that opened them (C{Account.login})."""

    def __init__(self, inner: Authenticator) -> None:
        self.inner = inner

    def check_password(self, user: bytes, password: bytes) -> defer.Deferred:
        login = LoginRequest("PASS", user, password)
        return self.inner.check_password(user, password).addCallback(replace, login=login)

    def check_apop(self, user: bytes, timestamp: bytes, digest: bytes) -> defer.Deferred:
        login = LoginRequest("APOP", user, digest.lower(), timestamp)
        return self.inner.check_apop(user, timestamp, digest).addCallback(replace, login=login)
