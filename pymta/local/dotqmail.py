# -*- test-case-name: tests.local.test_dotqmail -*-
"""
Finding and reading a user's C{.qmail} file (see docs/internals.md, '.qmail files').

Lookup for C{dash} + C{ext}: the extension is made safe (ASCII letters
lowercased, C{.} turned into C{:}), then C{.qmail<dash><safeext>} is tried,
then C{.qmail<dash><prefix>default} for every prefix that ends just before a
C{-} (longest first) down to C{.qmail<dash>default}.  The C{DEFAULT} value is
the original-case part of the extension that C{default} stands for.

pymta differs from qmail in two reasoned points:

- a home directory or C{.qmail} file that is group- B{or} world-writable is
  refused (qmail's default refuses world-writable only), since on a shared
  system a group member could otherwise redirect the user's mail;
- a candidate name that would contain C{/} (an extension such as C{../x})
  is never opened: it counts as absent, so only a C{-default} file can
  take such an address, with C{DEFAULT} telling its program the raw text.

A line longer than L{MAX_LINE} bytes or a NUL byte in the file defers the
delivery with a text naming the problem.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from pymta.local.errors import DeliveryFailure

__all__ = [
    "safe_ext",
    "lookup_names",
    "FoundFile",
    "find_dotqmail",
    "Instruction",
    "parse_instructions",
    "check_home",
    "newsender",
    "MAX_LINE",
    "MAX_FILE",
]

MAX_LINE = 8192
MAX_FILE = 1 << 20
WRITABLE_BITS = stat.S_IWGRP | stat.S_IWOTH

_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def safe_ext(ext: str) -> str:
    """C{ext} as used in file names: ASCII letters lowercased, C{.} -> C{:} (same length)."""
    return ext.translate(_LOWER).replace(".", ":")


def lookup_names(dash: str, ext: str) -> list[tuple[str, str | None]]:
    """
    The file names tried, in order, each with the C{DEFAULT} value it implies
    (None for the exact name).
    """
    safe = safe_ext(ext)
    names: list[tuple[str, str | None]] = [(f".qmail{dash}{safe}", None)]
    for i in range(len(safe), -1, -1):
        if i == 0 or safe[i - 1] == "-":
            names.append((f".qmail{dash}{safe[:i]}default", ext[i:]))
    return names


def check_home(home: str) -> None:
    """qmail-local's checks of the home directory; raises L{DeliveryFailure}."""
    try:
        st = os.stat(home)
    except OSError as e:
        raise DeliveryFailure.temporary(f"Unable to switch to {home}: {e.strerror}. (#4.3.0)") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DeliveryFailure.temporary(f"Unable to switch to {home}: Not a directory. (#4.3.0)")
    if st.st_mode & WRITABLE_BITS:
        raise DeliveryFailure.temporary("Uh-oh: home directory is writable. (#4.7.0)")
    if st.st_mode & stat.S_ISVTX:
        raise DeliveryFailure.temporary("Home directory is sticky: user is editing his .qmail file. (#4.2.1)")


@dataclass(frozen=True)
class FoundFile:
    """The chosen .qmail file: its path, content, C{DEFAULT} value and whether its x bit is set."""

    path: str
    data: bytes
    default: str | None
    executable: bool


def _open_regular(path: str) -> FoundFile | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
            return None
        raise DeliveryFailure.temporary(f"Unable to open {os.path.basename(path)}: {e.strerror}. (#4.3.0)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_mode & WRITABLE_BITS:
            raise DeliveryFailure.temporary("Uh-oh: .qmail file is writable. (#4.7.0)")
        if st.st_size > MAX_FILE:
            raise DeliveryFailure.temporary(
                f"Uh-oh: {os.path.basename(path)} is larger than {MAX_FILE} bytes. (#4.7.0)"
            )
        chunks = []
        size = 0
        while size <= MAX_FILE:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
        if size > MAX_FILE:
            raise DeliveryFailure.temporary(
                f"Uh-oh: {os.path.basename(path)} is larger than {MAX_FILE} bytes. (#4.7.0)"
            )
        return FoundFile(path, b"".join(chunks), None, bool(st.st_mode & stat.S_IXUSR))
    except OSError as e:
        raise DeliveryFailure.temporary(f"Unable to read {os.path.basename(path)}: {e.strerror}. (#4.3.0)") from None
    finally:
        os.close(fd)


def find_dotqmail(home: str, dash: str, ext: str) -> FoundFile | None:
    """The first existing regular .qmail file for C{dash}+C{ext}, or None."""
    for name, default in lookup_names(dash, ext):
        if "/" in name or "\0" in name:
            continue
        found = _open_regular(os.path.join(home, name))
        if found is not None:
            return FoundFile(found.path, found.data, default, found.executable)
    return None


def newsender(home: str, dash: str, ext: str, local: str, domain: str, sender: str) -> str:
    """
    NEWSENDER (docs/internals.md, 'Forwarding and NEWSENDER'): the owner
    address when C{.qmail...-owner} exists.
    """
    if sender in ("", "#@[]"):
        return sender
    base = os.path.join(home, f".qmail{dash}{safe_ext(ext)}-owner")
    if "/" in f"{dash}{safe_ext(ext)}" or not os.path.exists(base):
        return sender
    if os.path.exists(base + "-default"):
        return f"{local}-owner-@{domain}-@[]"
    return f"{local}-owner@{domain}"


@dataclass(frozen=True)
class Instruction:
    """One delivery line: C{kind} is C{program}, C{mbox}, C{maildir}, C{forward} or C{forwardonly}."""

    kind: str
    value: str
    lineno: int


def parse_instructions(data: bytes, name: str = ".qmail") -> list[Instruction]:
    """
    The delivery instructions of a .qmail file (or of defaultdelivery).
    Comments and blank lines (except a blank first line) are dropped.
    Raises L{DeliveryFailure} for a blank first line, a NUL byte or an
    over-long line.
    """
    if b"\0" in data:
        raise DeliveryFailure.temporary(f"Uh-oh: {name} contains a NUL byte. (#4.7.0)")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    result: list[Instruction] = []
    for lineno, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:
            raise DeliveryFailure.temporary(
                f"Uh-oh: line {lineno} of {name} is longer than {MAX_LINE} bytes. (#4.7.0)"
            )
        line = raw.rstrip(b" \t").decode("utf-8", "surrogateescape")
        if not line:
            if lineno == 1:
                raise DeliveryFailure.temporary("Uh-oh: first line of .qmail file is blank. (#4.2.1)")
            continue
        first = line[0]
        if first == "#":
            continue
        if first == "|":
            result.append(Instruction("program", line[1:], lineno))
        elif first in "./":
            result.append(Instruction("maildir" if line.endswith("/") else "mbox", line, lineno))
        elif first == "&":
            result.append(Instruction("forward", line[1:], lineno))
        elif first == "+":
            if line == "+list":
                result.append(Instruction("forwardonly", "", lineno))
        else:
            result.append(Instruction("forward", line, lineno))
    return result
