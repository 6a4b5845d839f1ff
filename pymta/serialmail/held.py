# -*- test-case-name: tests.serialmail.test_held -*-
"""
The mail a Maildir holds for a site that connects now and then.

Local delivery writes every message into a Maildir with C{Return-Path:
<SENDER>} and C{Delivered-To: ADDRESS} as its first two lines.  A message
is held for handing over when its C{Delivered-To} address starts with the
run's prefix: its envelope recipient is that address without the prefix,
its envelope sender the C{Return-Path} address, and what is handed over is
the rest of the file (those two lines are not sent: the receiving server
writes its own).  Any other file (another prefix, no such lines) is left
alone.

L{scan} lists C{new/} and C{cur/} (names starting with C{.} skipped),
oldest first by modification time, as qmail-pop3d orders a Maildir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["HeldMessage", "read_held", "scan", "unquote_address", "MAX_HEAD"]

#: longest first two lines read (each an address with its field name)
MAX_HEAD = 2 * 1024

_RETURN_PATH = b"Return-Path: <"
_DELIVERED_TO = b"Delivered-To: "


@dataclass(frozen=True)
class HeldMessage:
    """
    One held message: C{path} its file, C{name} that path relative to the
    Maildir (C{new/...} or C{cur/...}), the envelope C{sender} and
    C{recipient}, C{body_offset} where the handed-over bytes start, C{mtime}
    the file's modification time (how long it has been held).
    """

    path: str
    name: str
    sender: str
    recipient: str
    delivered_to: str
    body_offset: int
    mtime: float


def unquote_address(address: str) -> str:
    """C{"a b"@host} (as local delivery quotes a Return-Path) back to C{a b@host}; others unchanged."""
    if not address.startswith('"'):
        return address
    at = address.rfind("@")
    local = address[:at] if at != -1 else address
    if len(local) < 2 or not local.endswith('"'):
        return address
    inner, out, escaped = local[1:-1], [], False
    for c in inner:
        if escaped:
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        else:
            out.append(c)
    return "".join(out) + (address[at:] if at != -1 else "")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def read_held(path: str, name: str, prefix: str) -> HeldMessage | None:
    """The held message in C{path}, or None when it is not one for C{prefix} (or not a file)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        first = f.readline(MAX_HEAD)
        second = f.readline(MAX_HEAD)
    if not (first.startswith(_RETURN_PATH) and first.endswith(b">\n")):
        return None
    if not (second.startswith(_DELIVERED_TO) and second.endswith(b"\n")):
        return None
    sender = unquote_address(_decode(first[len(_RETURN_PATH):-2]))
    delivered_to = _decode(second[len(_DELIVERED_TO):-1])
    if not delivered_to.startswith(prefix) or delivered_to == prefix:
        return None
    if any(c in sender + delivered_to for c in "\r\n\0"):
        return None
    return HeldMessage(path, name, sender, delivered_to[len(prefix):], delivered_to,
                       len(first) + len(second), st.st_mtime)


def scan(maildir: str, prefix: str) -> list[HeldMessage]:
    """Every message held for C{prefix} in C{maildir}'s new/ and cur/, oldest first."""
    held: list[HeldMessage] = []
    for sub in ("new", "cur"):
        directory = os.path.join(maildir, sub)
        for entry in os.listdir(directory):
            if entry.startswith("."):
                continue
            try:
                message = read_held(os.path.join(directory, entry), f"{sub}/{entry}", prefix)
            except (FileNotFoundError, IsADirectoryError):
                continue  # taken meanwhile (a POP3 session), or not a message
            if message is not None:
                held.append(message)
    held.sort(key=lambda m: (m.mtime, m.name))
    return held
