# -*- test-case-name: tests.inject.test_tokens -*-
"""
RFC 822 lexical tokens of header fields, as qmail-inject sees them.

L{tokenize} splits text into atoms, quoted strings, domain literals,
comments and the specials C{. , @ < > : ;}; whitespace only separates.
Backslash escapes are resolved, so a token's C{text} is its content.  An
atom holding a character that cannot stand bare (control, non-ASCII,
C{) ] \\}) becomes a quoted string, so it is written back quoted.

L{render} writes tokens back with qmail's spacing (a space after C{:} and
C{,}, before C{<}, and between two words), and L{fold} does the same while
breaking a long field after commas: a line is joined with the next
comma-separated piece while the result stays within 78 characters (qmail's
80-column rule, counting the break it would remove), and continuation
lines start with two spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = [
    "Token",
    "TokenError",
    "ATOM",
    "QUOTE",
    "LITERAL",
    "COMMENT",
    "WORDS",
    "SPECIALS",
    "tokenize",
    "render",
    "fold",
    "unquote",
    "quote_need",
    "quote",
    "quote2",
    "LINE_LENGTH",
]

ATOM = "atom"
QUOTE = "quote"
LITERAL = "literal"
COMMENT = "comment"
WORDS = frozenset((ATOM, QUOTE, LITERAL, COMMENT))
SPECIALS = frozenset(".,@<>:;")

LINE_LENGTH = 80

_WHITESPACE = " \t\r\n"
_ATOM_STOP = set(_WHITESPACE) | set('([".,@<>:;')
_ESCAPED_ON_OUTPUT = set('"[]()\\\r\n')
_ESCAPED_IN_ATOM = _ESCAPED_ON_OUTPUT | _ATOM_STOP


class TokenError(ValueError):
    """Text that does not tokenize: an unbalanced quote, comment or literal, or a stray C{)} / C{]}."""


@dataclass(frozen=True)
class Token:
    """One token: C{kind} is a word kind (L{ATOM} ...) or the special character itself."""

    kind: str
    text: str = ""

    @property
    def is_word(self) -> bool:
        return self.kind in (ATOM, QUOTE, LITERAL)


def _bracketed(text: str, i: int, close: str, nests: str | None) -> tuple[str, int]:
    """Content of a comment/quote/literal whose opener is at C{i}; returns (content, index after closer)."""
    out = []
    level = 1
    i += 1
    n = len(text)
    while True:
        if i >= n:
            raise TokenError(f"missing {close!r}")
        ch = text[i]
        if ch == "\\":
            i += 1
            if i >= n:
                raise TokenError(f"missing {close!r}")
            out.append(text[i])
        elif nests is not None and ch == nests:
            level += 1
            out.append(ch)
        elif ch == close:
            level -= 1
            if level == 0:
                return "".join(out), i + 1
            out.append(ch)
        else:
            out.append(ch)
        i += 1


def _atom_kind(text: str) -> str:
    for ch in text:
        if ord(ch) < 32 or ord(ch) > 126 or ch in ")]\\":
            return QUOTE
    return ATOM


def tokenize(text: str) -> list[Token]:
    """Split C{text} into L{Token}s; raises L{TokenError}."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in SPECIALS:
            tokens.append(Token(ch))
            i += 1
        elif ch in ")]":
            raise TokenError(f"unexpected {ch!r}")
        elif ch == "(":
            content, i = _bracketed(text, i, ")", "(")
            tokens.append(Token(COMMENT, content))
        elif ch == '"':
            content, i = _bracketed(text, i, '"', None)
            tokens.append(Token(QUOTE, content))
        elif ch == "[":
            content, i = _bracketed(text, i, "]", None)
            tokens.append(Token(LITERAL, content))
        else:
            out = []
            while i < n:
                ch = text[i]
                if ch == "\\":
                    if i + 1 >= n:
                        i += 1
                        break
                    out.append(text[i + 1])
                    i += 2
                    continue
                if ch in _ATOM_STOP:
                    break
                out.append(ch)
                i += 1
            atom = "".join(out)
            if atom:  # a lone trailing backslash leaves nothing
                tokens.append(Token(_atom_kind(atom), atom))
    return tokens


def _escape(text: str, escaped: set[str] = _ESCAPED_ON_OUTPUT) -> str:
    return "".join("\\" + ch if ch in escaped else ch for ch in text)


def _token_text(token: Token) -> str:
    if token.kind == ATOM:
        # an atom made from backslash escapes (C{a\\,b}) keeps them, or it would split
        return _escape(token.text, _ESCAPED_IN_ATOM)
    if token.kind == QUOTE:
        return '"' + _escape(token.text) + '"'
    if token.kind == LITERAL:
        return "[" + _escape(token.text) + "]"
    if token.kind == COMMENT:
        return "(" + _escape(token.text) + ")"
    return token.kind


def _needs_space(previous: str | None, current: str) -> bool:
    if previous is None:
        return False
    if previous in (":", ","):
        return True
    if current == "<":
        return True
    return previous in WORDS and current in WORDS


def _pieces(tokens: Iterable[Token]) -> list[str]:
    """The rendered text cut after every comma (each later piece starts with its space)."""
    pieces = [""]
    previous: str | None = None
    for token in tokens:
        text = _token_text(token)
        if _needs_space(previous, token.kind):
            text = " " + text
        pieces[-1] += text
        if token.kind == ",":
            pieces.append("")
        previous = token.kind
    return pieces


def render(tokens: Iterable[Token]) -> str:
    """Tokens as one line of text (no line end)."""
    return "".join(_pieces(tokens))


def fold(tokens: Sequence[Token], width: int = LINE_LENGTH) -> str:
    """Tokens as header text folded after commas, ending with C{\\n}."""
    pieces = _pieces(tokens)
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + 2 + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(" " + piece)
    return "\n".join(lines) + "\n"


def unquote(tokens: Iterable[Token]) -> str:
    """The envelope form of address tokens: contents concatenated, literals bracketed, comments dropped."""
    out = []
    for token in tokens:
        if token.kind == COMMENT:
            continue
        if token.kind == LITERAL:
            out.append("[" + token.text + "]")
        elif token.kind in (ATOM, QUOTE):
            out.append(token.text)
        else:
            out.append(token.kind)
    return "".join(out)


_LOCAL_OK = frozenset(
    chr(c) for c in range(33, 127) if chr(c) not in '"(),:;<>@[\\]'
)


def quote_need(local: str) -> bool:
    """Whether a local part must be quoted (qmail's rule: atom characters and dots, no empty or stray dots)."""
    if not local:
        return True
    if any(ch not in _LOCAL_OK for ch in local):
        return True
    return local.startswith(".") or local.endswith(".") or ".." in local


def quote(local: str) -> str:
    """C{local} as is, or as a quoted string when L{quote_need} says so."""
    if not quote_need(local):
        return local
    return '"' + "".join("\\" + ch if ch in '\r\n"\\' else ch for ch in local) + '"'


def quote2(address: str) -> str:
    """An envelope address with its local part (up to the last C{@}) quoted as needed."""
    if not address:
        return address
    at = address.rfind("@")
    if at == -1:
        return quote(address)
    return quote(address[:at]) + address[at:]
