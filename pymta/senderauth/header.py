# -*- test-case-name: tests.senderauth.test_header -*-
"""
The C{Authentication-Results:} header field (RFC 8601) and which earlier
ones are ours.

The text is made by C{authres} (the field's reference library); pymta
puts each result on its own continuation line.  The authserv-id is
C{control/me}.  A field that arrives with our authserv-id was not written
by us (we write ours after the message has arrived): it is a forgery and
is removed (RFC 8601 section 5); fields of other authserv-ids are kept.
"""

from __future__ import annotations

import re
from typing import Sequence

import authres

from pymta.senderauth.verdict import Verdict

__all__ = ["FIELD_NAME", "authentication_results", "authserv_id_of", "is_ours"]

FIELD_NAME = b"authentication-results"
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def _result(verdict: Verdict) -> str:
    props = []
    for name, value in verdict.properties:
        ptype, _, prop = name.partition(".")
        props.append(authres.AuthenticationResultProperty(ptype, prop, value))
    return str(authres.AuthenticationResult(
        method=verdict.method, result=verdict.result, result_comment=verdict.comment or None,
        reason=verdict.reason or None, properties=props,
    ))


def authentication_results(authserv_id: str, verdicts: Sequence[Verdict]) -> bytes:
    """
    The whole header field, LF line ends, one result a line:
    C{Authentication-Results: mx.example.net;\\n\\tspf=pass smtp.mailfrom=...}.
    No verdicts: C{... mx.example.net; none}.
    """
    if not verdicts:
        text = str(authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=[]))
    else:
        text = f"Authentication-Results: {authserv_id};" + ";".join("\n\t" + _result(v) for v in verdicts)
    return (text + "\n").encode("utf-8", "replace")


def authserv_id_of(value: bytes) -> str:
    """The authserv-id a field's value starts with (comments and folding skipped), lowercase."""
    text = value.decode("utf-8", "replace")
    while True:
        stripped = text.lstrip()
        match = _COMMENT.match(stripped)
        if match is None:
            break
        text = stripped[match.end():]
    return re.split(r"[\s;(]", text.lstrip(), maxsplit=1)[0].lower()


def is_ours(name: bytes, value: bytes, authserv_id: str) -> bool:
    """True for an C{Authentication-Results} field whose authserv-id is C{authserv_id}."""
    return name.strip().lower() == FIELD_NAME and authserv_id_of(value) == authserv_id.lower()
