# -*- test-case-name: tests.forwarding.test_aliasfile -*-
"""
C{/etc/aliases} in sendmail's format, read as fastforward's newaliases
reads it (docs/dotqmail.md, 'Aliases: fastforward').

- C{name: target, target, ...}; a line that starts with a space or a tab,
  or is empty, continues the previous one;
- a line starting with C{#} is a comment (continued the same way);
- C{name} is C{user} (that user at every host: key C{user@}),
  C{user@host} (key C{user@host}) or C{@host} (every user at that host),
  compared without regard to case; the first instruction for a name wins;
- targets are read by L{pymta.forwarding.entries}: addresses (completed
  with defaulthost, plusdomain and defaultdomain), C{|program} and
  C{:include:/path}.  A C{/file} target is refused, as fastforward's
  newaliases refuses it: use a C{.qmail} file in the alias home instead;
- when C{owner-NAME} has an instruction too, mail forwarded through NAME
  gets C{owner-NAME} (completed like an address) as its envelope sender.

L{AliasFileError} names the line of the first problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from pymta.forwarding.entries import ADDRESS, FILE, Entry, EntryError, parse_list, qualify
from pymta.inject.rewrite import Rewriter

__all__ = ["Alias", "AliasFileError", "logical_lines", "alias_key", "parse_aliases"]


class AliasFileError(ValueError):
    """C{/etc/aliases} cannot be compiled; the text names the line."""


@dataclass(frozen=True)
class Alias:
    """One instruction: its key, its targets (addresses completed), the owner address or None."""

    key: str
    targets: tuple[Entry, ...]
    owner: str | None
    lineno: int


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of every instruction and comment, continuation lines joined."""
    start = 0
    pending: list[str] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if pending and (not line or line[0] in " \t"):
            pending.append(line)
            continue
        if pending:
            yield start, " ".join(pending).rstrip()
        start, pending = lineno, [line] if line else []
    if pending:
        yield start, " ".join(pending).rstrip()


def alias_key(name: str) -> str:
    """The lookup key of an alias name: C{user@}, C{user@host} or C{@host}, lowercased."""
    name = name.strip().lower()
    if not name or any(c in name for c in " \t,\"<>()"):
        raise ValueError(f"bad alias name {name!r}")
    return name if "@" in name else name + "@"


def parse_aliases(text: str, rewriter: Rewriter, path: str = "aliases") -> list[Alias]:
    """The instructions of an aliases file, in file order, the first of each key only."""
    found: dict[str, tuple[int, tuple[Entry, ...]]] = {}
    for lineno, line in logical_lines(text):
        if line.startswith("#"):
            continue
        if "\0" in line:
            raise AliasFileError(f"{path}:{lineno}: NUL byte")
        name, colon, rest = line.partition(":")
        where = f"{path}:{lineno}"
        if not colon:
            raise AliasFileError(f"{where}: expected 'name: target, ...'")
        try:
            key = alias_key(name)
            entries = parse_list(rest)
        except ValueError as e:
            raise AliasFileError(f"{where}: {e}") from None
        if not entries:
            raise AliasFileError(f"{where}: {name.strip()} has no targets")
        targets: list[Entry] = []
        for entry in entries:
            if entry.kind == FILE:
                raise AliasFileError(f"{where}: file deliveries are not supported ({entry.value}); "
                                     "use a .qmail file in the alias home")
            if entry.kind == ADDRESS:
                try:
                    entry = Entry(ADDRESS, qualify(entry.value, rewriter))
                except EntryError as e:
                    raise AliasFileError(f"{where}: {e}") from None
            targets.append(entry)
        found.setdefault(key, (lineno, tuple(targets)))
    aliases = []
    for key, (lineno, compiled) in found.items():
        local, _, host = key.partition("@")
        owner = None
        if local and f"owner-{key}" in found:
            owner = qualify(f"owner-{local}@{host}" if host else f"owner-{local}", rewriter)
        aliases.append(Alias(key, compiled, owner, lineno))
    return aliases
