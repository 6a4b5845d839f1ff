# -*- test-case-name: tests.inject.test_rewrite -*-
"""
qmail-inject's address completion (docs/internals.md, 'qmail-inject'), on address tokens.

In this order: C{<>} and C{x@[]} are left alone; a source route
(C{@a,@b:user@host}) is dropped; a trailing C{.} and then a trailing C{@}
are dropped; an address without C{@} gets C{@defaulthost}; a host ending in
C{+} loses the C{+} and gets C{.plusdomain}; a host without a dot (and not
a C{[literal]}) gets C{.defaultdomain}.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymta.inject.tokens import ATOM, LITERAL, Token, TokenError, quote2, tokenize, unquote

__all__ = ["Rewriter", "RewriteConfigError"]


class RewriteConfigError(ValueError):
    """A defaulthost/defaultdomain/plusdomain value that is not a host name."""


def _host_tokens(prefix: str, value: str) -> tuple[Token, ...]:
    try:
        return tuple(tokenize(prefix + value))
    except TokenError as e:
        raise RewriteConfigError(f"cannot use {value!r}: {e}") from None


@dataclass(frozen=True)
class Rewriter:
    """Completes addresses with the configured default host and domains."""

    defaulthost: str
    defaultdomain: str
    plusdomain: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_at_host", _host_tokens("@", self.defaulthost))
        object.__setattr__(self, "_dot_domain", _host_tokens(".", self.defaultdomain))
        object.__setattr__(self, "_dot_plus", _host_tokens(".", self.plusdomain))

    def tokens(self, address: list[Token]) -> list[Token]:
        """Rewrite address tokens (left to right, no comments)."""
        if not address:
            return address
        if len(address) >= 2 and address[-2].kind == "@" and address[-1].kind == LITERAL and not address[-1].text:
            return address  # x@[] stays
        if address[0].kind == "@":  # source route: drop everything up to the first ':'
            colon = next((i for i, t in enumerate(address) if t.kind == ":"), None)
            address = [] if colon is None else address[colon + 1 :]
            if not address:
                return address
        if address[-1].kind == ".":
            address = address[:-1]
            if not address:
                return address
        if address[-1].kind == "@":
            address = address[:-1]
            if not address:
                return address
        if not any(t.kind == "@" for t in address):
            address = address + list(self._at_host)  # type: ignore[attr-defined]
        last = address[-1]
        if last.kind == ATOM and last.text.endswith("+"):
            address = address[:-1] + [Token(ATOM, last.text[:-1])] + list(self._dot_plus)  # type: ignore[attr-defined]
        for token in reversed(address):
            if token.kind in (".", LITERAL):
                return address
            if token.kind == "@":
                break
        return address + list(self._dot_domain)  # type: ignore[attr-defined]

    def envelope(self, address: str) -> str:
        """
        Rewrite an envelope address given as text (a command-line recipient
        or C{-f}): its local part is quoted as needed, then it is read as
        tokens.  Raises L{TokenError} when it cannot be read.
        """
        return unquote(self.tokens(tokenize(quote2(address))))
