# -*- test-case-name: tests.remote.test_client -*-
"""
What goes into the texts of pymta's SMTP client reports: a server's reply
as the client keeps it (L{Reply}), the C{Remote host said:} lines
(L{said}), and why a TLS handshake failed (L{tls_failure_reason}).
"""

from __future__ import annotations

from dataclasses import dataclass

from OpenSSL import SSL
from twisted.python.failure import Failure

__all__ = ["MAX_TEXT", "Reply", "said", "tls_failure_reason"]

MAX_TEXT = 5000


@dataclass(frozen=True)
class Reply:
    """A complete server reply: the code of its last line and all its lines."""

    code: int
    lines: tuple[bytes, ...]

    @property
    def kind(self) -> int:
        """2, 3, 4 or 5; garbage (code 0) counts as 4, a temporary failure."""
        first = self.code // 100
        return first if first in (2, 3, 4, 5) else 4

    def text(self) -> str:
        """The reply as qmail keeps it: lines joined by LF, CRs dropped, NUL as ?, at most 5000 bytes."""
        raw = b"\n".join(self.lines).replace(b"\r", b"").replace(b"\0", b"?")[:MAX_TEXT]
        return raw.decode("utf-8", "replace")


def said(reply: Reply | None) -> str:
    """C{Remote host said: ...} lines for a report (empty without a reply)."""
    if reply is None:
        return ""
    return f"Remote host said: {reply.text()}\n"


def tls_failure_reason(reason: Failure | None) -> str:
    """One line, at most 200 characters: what OpenSSL (or the connection) said."""
    if reason is None:
        return "connection closed"
    if reason.check(SSL.Error):
        details = [part for entry in (reason.value.args[0] if reason.value.args else []) for part in entry[-1:]]
        text = ", ".join(str(d) for d in details if d) or "handshake error"
        return text.replace("\n", " ")[:200]
    return reason.getErrorMessage().replace("\n", " ")[:200]
