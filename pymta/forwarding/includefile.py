# -*- test-case-name: tests.forwarding.test_includefile -*-
"""
Reading an C{:include:} file at delivery time, as fastforward does (so
the administrator need not run newaliases when a list changes).

Each line holds addresses or further C{:include:} files (the syntax of
L{pymta.forwarding.entries}); lines starting with C{#} and blank lines are
skipped; addresses are completed like those of C{/etc/aliases}.  Programs
and files are refused, as fastforward's newinclude refuses them.  A file
that is missing or unreadable, group- or world-writable (the rule of
C{.qmail} files), larger than L{MAX_FILE}, or holds a line that cannot be
read, raises L{IncludeError}: the delivery is deferred, never dropped.

pymta reads the text file itself, where fastforward reads a C{FILE.bin}
compiled by newinclude: replace a list by writing a new file and renaming
it over the old one (C{mv}), never by editing it in place.
"""

from __future__ import annotations

from pymta.forwarding.entries import ADDRESS, INCLUDE, Entry, EntryError, parse_list, qualify
from pymta.forwarding.guardedfile import NOT_REGULAR, OPEN, READ, TOO_LARGE, WRITABLE, UnusableFile, read_guarded
from pymta.inject.rewrite import Rewriter

__all__ = ["IncludeError", "read_include", "MAX_FILE"]

MAX_FILE = 1 << 22


class IncludeError(Exception):
    """An :include: file that cannot be used now."""


def read_include(path: str, rewriter: Rewriter) -> list[Entry]:
    """The targets listed in C{path}; L{IncludeError} when it cannot be used."""
    try:
        data = read_guarded(path, MAX_FILE)
    except UnusableFile as e:
        strerror = e.error.strerror if e.error is not None else ""
        raise IncludeError({
            OPEN: f"unable to open {path}: {strerror}",
            NOT_REGULAR: f"{path} is not a regular file",
            WRITABLE: f"{path} is group- or world-writable",
            READ: f"unable to read {path}: {strerror}",
            TOO_LARGE: f"{path} is larger than {MAX_FILE} bytes",
        }[e.kind]) from None
    text = data.decode("utf-8", "surrogateescape")
    entries: list[Entry] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            for entry in parse_list(line):
                if entry.kind == ADDRESS:
                    entries.append(Entry(ADDRESS, qualify(entry.value, rewriter)))
                elif entry.kind == INCLUDE:
                    entries.append(entry)
                else:
                    raise EntryError(f"{entry.kind} deliveries are not supported in :include: files")
        except EntryError as e:
            raise IncludeError(f"{path}:{lineno}: {e}") from None
    return entries
