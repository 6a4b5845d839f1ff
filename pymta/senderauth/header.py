# -*- test-case-name: tests.senderauth.test_header -*-
"""
The C{Authentication-Results:} header field (RFC 8601) and which earlier
ones are ours.

pymta writes the field itself, one result a line.  Every text that comes
from outside (property values, reasons, comments: HELO names, addresses,
DNS data, dkimpy's error texts) loses its control characters (CR and LF
above all) and is written so that it cannot end the value it is in: a
value that is not an RFC 2045 token is a quoted-string (C{\\} and C{"}
escaped; such values come last in their result), a reason is always
one, a comment has its parentheses escaped.
So a reader (C{authres}, a later hop) parses back exactly the results we
meant.

The authserv-id is C{control/me}.  A field that arrives with our
authserv-id was not written by us (we write ours after the message has
arrived): it is a forgery and is removed (RFC 8601 section 5); so is one
whose authserv-id cannot be read (L{pymta.senderauth.authservid}).
Fields of other authserv-ids are kept.
"""

from __future__ import annotations

import re
from typing import Sequence

from pymta.senderauth.authservid import TSPECIALS, authserv_id_of
from pymta.senderauth.verdict import Verdict

__all__ = ["FIELD_NAME", "authentication_results", "authserv_id_of", "is_ours", "clean", "value_text"]

FIELD_NAME = b"authentication-results"
#: the longest text (after cleaning) written in a reason or comment
MAX_TEXT = 200
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
_KEYWORD = re.compile(r"[^A-Za-z0-9_-]")


def clean(text: str) -> str:
    """C{text} with each run of control characters (CR, LF, TAB, NUL ...) made one space, at most L{MAX_TEXT} long."""
    return _CONTROLS.sub(" ", text).strip()[:MAX_TEXT]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def value_text(text: str) -> str:
    """An RFC 2045 value: C{text} as it is when it is a token, else a quoted-string."""
    text = clean(text)
    if text and all(c > " " and c < "\x7f" and c not in TSPECIALS for c in text):
        return text
    return _quoted(text)


def _comment(text: str) -> str:
    return "(" + re.sub(r"([()\\])", r"\\\1", clean(text)) + ")"


def _keyword(text: str) -> str:
    return _KEYWORD.sub("", text) or "none"


def _result(verdict: Verdict) -> str:
    words = [f"{_keyword(verdict.method)}={_keyword(verdict.result)}"]
    if verdict.comment:
        words.append(_comment(verdict.comment))
    if verdict.reason:
        words.append("reason=" + _quoted(clean(verdict.reason)))
    props = [(f"{_keyword(name.partition('.')[0])}.{_keyword(name.partition('.')[2])}", value_text(value))
             for name, value in verdict.properties]
    # quoted values last: some readers (authres) take a quoted pvalue only at the end of a result
    props.sort(key=lambda prop: prop[1].startswith('"'))
    words.extend(f"{name}={value}" for name, value in props)
    return " ".join(words)


def authentication_results(authserv_id: str, verdicts: Sequence[Verdict]) -> bytes:
    """
    The whole header field, LF line ends, one result a line:
    C{Authentication-Results: mx.example.net;\\n\\tspf=pass smtp.mailfrom=...}.
    No verdicts: C{... mx.example.net; none}.
    """
    serv = value_text(authserv_id)
    if not verdicts:
        text = f"Authentication-Results: {serv}; none"
    else:
        text = f"Authentication-Results: {serv};" + ";".join("\n\t" + _result(v) for v in verdicts)
    return (text + "\n").encode("utf-8", "replace")


def is_ours(name: bytes, value: bytes, authserv_id: str) -> bool:
    """
    True for an C{Authentication-Results} field whose authserv-id is
    C{authserv_id} (compared without case or a final dot), or cannot be read.
    """
    if name.strip().lower() != FIELD_NAME:
        return False
    found = authserv_id_of(value)
    return found is None or found == authserv_id.rstrip(".").lower()
