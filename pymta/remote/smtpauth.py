# -*- test-case-name: tests.remote.test_smtpauth -*-
"""
The client side of SMTP AUTH (RFC 4954) for routes that log in to their
relay: which mechanism to use, and the commands of the exchange.

L{AuthExchange.start} picks a mechanism from the server's EHLO reply:
PLAIN (RFC 4616, sent with the AUTH command as its initial response) when
offered, else LOGIN (user name and password each after a C{334}
challenge); None when the server offers neither (or no AUTH at all).
The caller sends L{AuthExchange.first} and passes each C{334} reply to
L{AuthExchange.answer}; C{235} means logged in, anything else is the
server's refusal.  The caller only does so inside TLS.

The password crosses the wire base64-encoded; L{AuthExchange.scrub}
removes what was sent from a reply's text before it goes into a report,
should a server echo a command it did not like.
"""

from __future__ import annotations

import base64

from pymta.remote.reply import Reply
from pymta.remote.smarthostauth import Credentials

__all__ = ["PLAIN", "LOGIN", "offered_mechanisms", "AuthExchange"]

PLAIN = "PLAIN"
LOGIN = "LOGIN"
#: what pymta can do, most preferred first
_PREFERENCE = (PLAIN, LOGIN)


def offered_mechanisms(ehlo: Reply | None) -> frozenset[str]:
    """The SASL mechanisms of C{AUTH} (or the old C{AUTH=}) lines of an EHLO reply, upper case."""
    found: set[str] = set()
    for line in (ehlo.lines[1:] if ehlo is not None else ()):
        words = line[4:].decode("ascii", "replace").upper().replace("=", " ", 1).split()
        if words and words[0] == "AUTH":
            found.update(words[1:])
    return frozenset(found)


def _b64(text: str) -> bytes:
    return base64.b64encode(text.encode("utf-8"))


class AuthExchange:
    """One login with C{credentials} by C{mechanism}."""

    def __init__(self, credentials: Credentials, mechanism: str) -> None:
        self.credentials = credentials
        self.mechanism = mechanism
        if mechanism == PLAIN:
            self._responses = [_b64(f"\0{credentials.login}\0{credentials.password}")]
        else:
            self._responses = [_b64(credentials.login), _b64(credentials.password)]
        self._secrets = [r.decode("ascii") for r in self._responses]

    @classmethod
    def start(cls, credentials: Credentials, ehlo: Reply | None) -> "AuthExchange | None":
        """The exchange for the best mechanism the server offers, or None."""
        offered = offered_mechanisms(ehlo)
        for mechanism in _PREFERENCE:
            if mechanism in offered:
                return cls(credentials, mechanism)
        return None

    def first(self) -> bytes:
        """The AUTH command (PLAIN with its initial response)."""
        if self.mechanism == PLAIN:
            return b"AUTH PLAIN " + self._responses.pop(0)
        return b"AUTH LOGIN"

    def answer(self, challenge: Reply) -> bytes:
        """The line that answers a C{334} challenge; C{*} (cancel) when the exchange has nothing more to say."""
        return self._responses.pop(0) if self._responses else b"*"

    def scrub(self, text: str) -> str:
        """C{text} with anything this exchange sent about the password replaced."""
        for secret in self._secrets:
            if len(secret) >= 8:  # shorter ones would blot out ordinary words
                text = text.replace(secret, "[credentials]")
        return text
