# -*- test-case-name: tests.test_address -*-
"""
Envelope address helpers shared by every part of pymta.

Addresses are C{str} throughout pymta; on the wire and on disk they are UTF-8
(qmail is 8-bit clean, so are we).  An address is split at its B{last} C{@}
as qmail does.
"""

from __future__ import annotations

import re
import time

__all__ = [
    "split_address",
    "quote_local",
    "quote_address",
    "safe_log",
    "qmail_date",
    "MAX_ADDRESS_BYTES",
]

# qmail-queue refuses an address (with its NUL) over 1003 bytes; smtpd's limit is 900.
MAX_ADDRESS_BYTES = 1000

_ATOM_SPECIALS = set('()<>@,;:\\".[] \t\r\n')


def split_address(address: str) -> tuple[str, str]:
    """C{(local, domain)} split at the last C{@}; domain is empty without one."""
    at = address.rfind("@")
    if at == -1:
        return address, ""
    return address[:at], address[at + 1 :]


def _needs_quoting(local: str) -> bool:
    if local == "":
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return True
    return any(c in _ATOM_SPECIALS and c != "." for c in local) or any(ord(c) < 32 for c in local)


def quote_local(local: str) -> str:
    """The local part quoted per RFC 821/5321 when it is not a dot-atom."""
    if not _needs_quoting(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_address(address: str) -> str:
    """An address with its local part quoted as needed (qmail's C{quote})."""
    if address == "":
        return ""
    local, domain = split_address(address)
    if "@" not in address:
        return quote_local(address)
    return quote_local(local) + "@" + domain


_LOG_UNSAFE = re.compile(r"[^!-$&-~]")


def _log_char(match: re.Match[str]) -> str:
    return "/" if match.group() == "\n" else "_"


def safe_log(text: str) -> str:
    """
    qmail-send's "safe" log text: newline becomes C{/}; every other character
    below 33 or above 126, and C{%}, becomes C{_}.
    """
    if _LOG_UNSAFE.search(text) is None:
        return text
    return _LOG_UNSAFE.sub(_log_char, text)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def qmail_date(when: float | None = None) -> str:
    """qmail's date: C{24 Nov 2026 21:49:08 -0000} (GMT, day not zero-padded)."""
    t = time.gmtime(time.time() if when is None else when)
    return f"{t.tm_mday} {_MONTHS[t.tm_mon - 1]} {t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} -0000"
