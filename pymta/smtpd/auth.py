# -*- test-case-name: tests.smtpd.test_auth -*-
"""
SMTP AUTH (RFC 4954) on twisted.cred: the SASL exchanges PLAIN, LOGIN and
CRAM-MD5 turn client lines into credentials; a L{Portal} with the checkers
passed in decides.

CRAM-MD5 is offered only when every checker of the portal can check hashed
passwords (C{IUsernameHashedPassword}) - a store of one-way hashes cannot.
Malformed base64, a malformed PLAIN message or a user name with a NUL
(PLAIN's separator: never a valid name) is an L{AuthSyntaxError} (the
protocol answers 501), never an exception out of the protocol.
"""

from __future__ import annotations

import base64
import binascii
from typing import Iterable, Sequence

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import (
    CramMD5Credentials, ICredentials, IUsernameHashedPassword, IUsernamePassword, UsernamePassword,
)
from twisted.cred.portal import IRealm, Portal
from zope.interface import Interface, implementer

__all__ = [
    "ISubmitter",
    "SubmitterRealm",
    "build_portal",
    "offered_mechanisms",
    "AuthSyntaxError",
    "SASLExchange",
    "start_exchange",
]


class ISubmitter(Interface):
    """The avatar of an authenticated SMTP client: its avatar id is the user name."""


@implementer(IRealm)
class SubmitterRealm:
    """Every authenticated user gets the same kind of avatar: its name."""

    def requestAvatar(self, avatarId, mind, *interfaces):  # type: ignore[no-untyped-def]
        if ISubmitter in interfaces:
            return ISubmitter, avatarId, lambda: None
        raise NotImplementedError("only ISubmitter avatars")


def build_portal(checkers: Iterable[ICredentialsChecker]) -> Portal:
    """A portal over C{checkers} for L{ISubmitter} avatars."""
    return Portal(SubmitterRealm(), list(checkers))


def offered_mechanisms(portal: Portal) -> list[str]:
    """The SASL mechanisms this portal can check, in the order advertised."""
    interfaces = set(portal.listCredentialsInterfaces())
    mechs: list[str] = []
    if IUsernamePassword in interfaces:
        mechs += ["PLAIN", "LOGIN"]
    checkers = list(portal.checkers.values())
    if IUsernameHashedPassword in interfaces and all(
        IUsernameHashedPassword in getattr(c, "credentialInterfaces", ()) for c in set(checkers)
    ):
        mechs.append("CRAM-MD5")
    return mechs


class AuthSyntaxError(Exception):
    """The client's SASL input is not valid (bad base64, wrong PLAIN layout)."""


def _b64decode(line: bytes) -> bytes:
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise AuthSyntaxError("malformed base64") from None


class SASLExchange:
    """
    One AUTH exchange.  L{challenge} is the next challenge to send (raw
    bytes, base64-encoded by the protocol) or None when L{credentials} is
    ready.
    """

    def __init__(self) -> None:
        self.challenge: bytes | None = None
        self.credentials: ICredentials | None = None
        self.username: str | None = None

    def respond(self, line: bytes) -> None:
        """Take the client's base64 line answering the current challenge."""
        raise NotImplementedError


class _Plain(SASLExchange):
    def __init__(self, initial: bytes | None) -> None:
        super().__init__()
        if initial is None:
            self.challenge = b""
        else:
            self.respond(initial)

    def respond(self, line: bytes) -> None:
        parts = _b64decode(line).split(b"\0")
        if len(parts) != 3 or not parts[1]:
            raise AuthSyntaxError("malformed PLAIN message")
        authzid, authcid, password = parts
        if authzid and authzid != authcid:
            raise AuthSyntaxError("authorization identity differs")
        self.username = authcid.decode("utf-8", "surrogateescape")
        self.credentials = UsernamePassword(authcid, password)
        self.challenge = None


class _Login(SASLExchange):
    def __init__(self, initial: bytes | None) -> None:
        super().__init__()
        self._user: bytes | None = None
        self.challenge = b"Username:"
        if initial is not None:
            self.respond(initial)

    def respond(self, line: bytes) -> None:
        value = _b64decode(line)
        if self._user is None:
            if not value or b"\0" in value:
                raise AuthSyntaxError("empty user name or a NUL in it")
            self._user = value
            self.username = value.decode("utf-8", "surrogateescape")
            self.challenge = b"Password:"
        else:
            self.credentials = UsernamePassword(self._user, value)
            self.challenge = None


class _CramMD5(SASLExchange):
    def __init__(self, initial: bytes | None, host: bytes) -> None:
        super().__init__()
        if initial is not None:
            raise AuthSyntaxError("CRAM-MD5 takes no initial response")
        self._creds = CramMD5Credentials(host)
        self.challenge = self._creds.getChallenge()

    def respond(self, line: bytes) -> None:
        value = _b64decode(line)
        user, sep, digest = value.rpartition(b" ")
        if not sep or not user or b"\0" in user or len(digest) != 32:
            raise AuthSyntaxError("malformed CRAM-MD5 response")
        self._creds.setResponse(value)
        self.username = user.decode("utf-8", "surrogateescape")
        self.credentials = self._creds
        self.challenge = None


def start_exchange(mechanism: str, initial: bytes | None, offered: Sequence[str], host: bytes) -> SASLExchange | None:
    """An exchange for C{mechanism} (None when it is not offered)."""
    mechanism = mechanism.upper()
    if mechanism not in offered:
        return None
    if mechanism == "PLAIN":
        return _Plain(initial)
    if mechanism == "LOGIN":
        return _Login(initial)
    if mechanism == "CRAM-MD5":
        return _CramMD5(initial, host)
    return None
