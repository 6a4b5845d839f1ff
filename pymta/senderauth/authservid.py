# -*- test-case-name: tests.senderauth.test_authservid -*-
"""
The authserv-id of an incoming C{Authentication-Results} field, read as
RFC 8601 section 2.2 writes it: C{[CFWS] authserv-id [CFWS authres-version]
[CFWS] ";"}, where the authserv-id is an RFC 2045 value (a token or a
quoted-string) and CFWS is white space and comments, which nest and may
hold quoted-pairs (RFC 5322 section 3.2.2).

L{authserv_id_of} gives None for a value that does not read this way (an
unterminated comment or quoted-string, no C{;} after the id, a value
longer than L{MAX_VALUE_BYTES}): the caller treats such a field as ours,
since a later reader may well take it for one.
"""

from __future__ import annotations

__all__ = ["authserv_id_of", "MAX_VALUE_BYTES", "TSPECIALS"]

#: a longer field value is not read (and is treated as ours)
MAX_VALUE_BYTES = 16 * 1024
#: RFC 2045's tspecials: what ends a token
TSPECIALS = frozenset('()<>@,;:\\"/[]?=')


class _Unreadable(Exception):
    pass


def _skip_cfws(text: str, i: int) -> int:
    """The index after the white space and (nested) comments at C{i}."""
    while i < len(text):
        if text[i] in " \t\r\n":
            i += 1
        elif text[i] == "(":
            depth = 0
            while True:
                if i >= len(text):
                    raise _Unreadable("unterminated comment")
                c = text[i]
                if c == "\\":
                    i += 2
                    continue
                i += 1
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
        else:
            break
    return i


def _value(text: str, i: int) -> tuple[str, int]:
    """The token or quoted-string at C{i} (unquoted) and the index after it."""
    if i < len(text) and text[i] == '"':
        out = []
        i += 1
        while True:
            if i >= len(text):
                raise _Unreadable("unterminated quoted-string")
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
            elif c == '"':
                return "".join(out), i + 1
            else:
                out.append(c)
                i += 1
    start = i
    while i < len(text) and text[i] not in TSPECIALS and text[i] > " " and text[i] != "\x7f":
        i += 1
    return text[start:i], i


def _read(text: str) -> str:
    i = _skip_cfws(text, 0)
    value, i = _value(text, i)
    if not value:
        raise _Unreadable("no authserv-id")
    i = _skip_cfws(text, i)
    if i < len(text) and text[i].isdigit():  # authres-version
        while i < len(text) and text[i].isdigit():
            i += 1
        i = _skip_cfws(text, i)
    if i >= len(text) or text[i] != ";":
        raise _Unreadable("no ';' after the authserv-id")
    return value


def authserv_id_of(value: bytes) -> str | None:
    """The authserv-id of a field's value (lowercase, without a final dot), or None when it cannot be read."""
    if len(value) > MAX_VALUE_BYTES:
        return None
    try:
        found = _read(value.decode("utf-8", "replace"))
    except _Unreadable:
        return None
    return found.strip().rstrip(".").lower()
