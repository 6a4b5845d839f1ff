# -*- test-case-name: tests.local.test_envelope -*-
"""
The lines qmail-local adds to a delivered message, and reading the queued
message from an open file descriptor.

- DTLINE: C{Delivered-To: local@domain} (newlines in the address become C{_});
- RPLINE: C{Return-Path: <sender>} with the local part quoted as RFC 5321 needs;
- UFLINE: the mbox C{From } separator line, C{From sender Www Mmm DD HH:MM:SS YYYY}
  in GMT, the sender with blanks turned into C{-}, C{MAILER-DAEMON} for C{<>}.

All three are C{bytes} ending in C{\\n}; the message is read with C{os.pread}
so several readers of one descriptor never disturb each other's offsets.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

from pymta.address import quote_address

__all__ = [
    "dtline",
    "rpline",
    "ufline",
    "encode",
    "read_chunks",
    "read_lines",
    "has_delivered_to",
]

CHUNK = 65536

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def encode(text: str) -> bytes:
    """Text as it goes to disk: UTF-8, undecodable bytes kept as they came."""
    return text.encode("utf-8", "surrogateescape")


def dtline(local: str, domain: str) -> bytes:
    """C{Delivered-To: local@domain\\n}, newlines in the address replaced by C{_}."""
    address = f"{local}@{domain}".replace("\n", "_")
    return encode(f"Delivered-To: {address}\n")


def rpline(sender: str) -> bytes:
    """C{Return-Path: <sender>\\n} with the sender's local part quoted when needed."""
    return encode(f"Return-Path: <{quote_address(sender)}>\n")


def ufline(sender: str, when: float | None = None) -> bytes:
    """The mbox separator line C{From sender Www Mmm DD HH:MM:SS YYYY\\n} (GMT)."""
    if sender:
        name = sender.replace(" ", "-").replace("\t", "-").replace("\n", "-")
    else:
        name = "MAILER-DAEMON"
    t = time.gmtime(time.time() if when is None else when)
    date = (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}"
    )
    return encode(f"From {name} {date}\n")


def read_chunks(fd: int, size: int = CHUNK) -> Iterator[bytes]:
    """The whole file behind C{fd} from offset 0, in chunks (C{OSError} propagates)."""
    offset = 0
    while True:
        data = os.pread(fd, size, offset)
        if not data:
            return
        offset += len(data)
        yield data


def read_lines(fd: int) -> Iterator[bytes]:
    """The file's lines, each with its C{\\n} except perhaps the last."""
    pending = b""
    for chunk in read_chunks(fd):
        pending += chunk
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end == -1:
                break
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending


def has_delivered_to(fd: int, line: bytes) -> bool:
    """True when the message header (up to the first empty line) holds C{line} exactly."""
    for header in read_lines(fd):
        if header == b"\n" or header == b"\r\n":
            return False
        if header == line:
            return True
    return False
