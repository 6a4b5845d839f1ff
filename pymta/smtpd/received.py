# -*- test-case-name: tests.smtpd.test_received -*-
"""
The C{Received:} line qmail-smtpd writes on top of every message::

    Received: from <remotehost> (HELO <helo>) (<remoteinfo>@<remoteip>)
      by <local> with SMTP; <date>

C{(HELO ...)} is left out when no HELO/EHLO was given or its argument equals
the remote host name (case-insensitively); C{<remoteinfo>@} when there is no
ident/auth information.  Characters other than letters, digits and
C{.@%+/=:-[]} become C{?}.

pymta's additions: the protocol word stays qmail's C{SMTP} for a plain
session and follows RFC 3848 otherwise (C{ESMTPS} with TLS, C{ESMTPA} after
AUTH, C{ESMTPSA} with both), and an authenticated user is named as
C{(AUTH <user>)} after the address part.
"""

from __future__ import annotations

import re

from pymta.address import qmail_date

__all__ = ["received_line", "safe_header_text", "protocol_word"]

#: outside qmail's safe set: letters, digits and .@%+/=:-[]
_UNSAFE = re.compile(r"[^a-zA-Z0-9.@%+/=:\-\[\]]")


def safe_header_text(text: str) -> str:
    """qmail's Received-line escaping: anything outside its safe set becomes C{?}."""
    return _UNSAFE.sub("?", text)


def protocol_word(esmtp: bool, tls: bool, authenticated: bool) -> str:
    """C{SMTP} (qmail's word), or C{ESMTPS}, C{ESMTPA}, C{ESMTPSA} (RFC 3848)."""
    if not (tls or authenticated):
        return "SMTP"
    return "ESMTP" + ("S" if tls else "") + ("A" if authenticated else "")


def received_line(
    *,
    remote_host: str,
    remote_ip: str,
    local_host: str,
    helo: str | None,
    remote_info: str | None = None,
    esmtp: bool = False,
    tls: bool = False,
    auth_user: str | None = None,
    when: float | None = None,
    protocol: str | None = None,
) -> bytes:
    """The two-line Received header (LF line ends, as stored); C{protocol} (e.g. C{QMTP}) replaces the SMTP word."""
    parts = ["Received: from ", safe_header_text(remote_host)]
    if helo is not None and helo.lower() != remote_host.lower():
        parts += [" (HELO ", safe_header_text(helo), ")"]
    parts.append(" (")
    if remote_info:
        parts += [safe_header_text(remote_info), "@"]
    parts += [safe_header_text(remote_ip), ")"]
    if auth_user is not None:
        parts += [" (AUTH ", safe_header_text(auth_user), ")"]
    parts += [
        "\n  by ",
        safe_header_text(local_host),
        " with ",
        protocol or protocol_word(esmtp, tls, auth_user is not None),
        "; ",
        qmail_date(when),
        "\n",
    ]
    return "".join(parts).encode("ascii")
