# -*- test-case-name: tests.forwarding.test_database -*-
"""
The compiled aliases that C{fastforward} reads: C{pymta newaliases} writes
them, C{fastforward -d FILE} looks recipients up in them.

The file is one line of JSON (the same choice as C{users/assign.idx})
starting with C{{"format":"pymta-aliases 1"}}, so a cdb made by
fastforward's own newaliases is recognised and refused with a clear text
instead of being misread.  It is written by
L{pymta.fsutil.replace_file} (temporary file, fsync, rename, fsync of the
directory): a delivery reads the old or the new database, never half of
one.  It is world-readable, like fastforward's aliases.cdb.

L{AliasDatabase.lookup} tries the incoming address the way fastforward
does: C{user@host}, then C{@host}, then C{user@}, without regard to case.
L{AliasDatabase.exact} is the lookup of a target address met while
expanding, where the wildcards do not apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from pymta.forwarding.aliasfile import Alias
from pymta.forwarding.entries import ADDRESS, INCLUDE, PROGRAM, Entry
from pymta.fsutil import replace_file

__all__ = ["FORMAT", "Target", "AliasDatabase", "DatabaseError", "write_database", "read_database", "encode"]

FORMAT = "pymta-aliases 1"
_KINDS = frozenset({ADDRESS, PROGRAM, INCLUDE})


class DatabaseError(Exception):
    """The compiled aliases cannot be read."""


@dataclass(frozen=True)
class Target:
    """What one key says: its targets and the envelope sender for them (None: keep the sender)."""

    targets: tuple[Entry, ...]
    owner: str | None


class AliasDatabase:
    """Keys (C{user@host}, C{@host}, C{user@}) to L{Target}s."""

    def __init__(self, targets: dict[str, Target]) -> None:
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def exact(self, address: str) -> Target | None:
        return self.targets.get(address.lower())

    def lookup(self, recipient: str) -> tuple[str, Target] | None:
        """The key and target for an incoming C{recipient}, or None."""
        address = recipient.lower()
        local, at, host = address.rpartition("@")
        if not at:
            local, host = address, ""
        for key in (f"{local}@{host}", f"@{host}", f"{local}@"):
            found = self.targets.get(key)
            if found is not None:
                return key, found
        return None


def encode(aliases: Sequence[Alias], source: str) -> bytes:
    """The database text of C{aliases} (compiled from C{source})."""
    document = {
        "format": FORMAT,
        "source": source,
        "targets": {
            a.key: {"owner": a.owner, "targets": [[e.kind, e.value] for e in a.targets]} for a in aliases
        },
    }
    return (json.dumps(document, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n").encode("utf-8")


def write_database(path: str, aliases: Sequence[Alias], source: str) -> None:
    """Replace C{path} with the compiled C{aliases}, atomically and durably, mode 0644."""
    replace_file(path, encode(aliases, source), 0o644)


def _target(value: object) -> Target:
    if not isinstance(value, dict):
        raise ValueError("entry is not an object")
    owner = value.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise ValueError("owner is not a string")
    targets = []
    for item in value["targets"]:
        kind, text = item
        if kind not in _KINDS or not isinstance(text, str):
            raise ValueError(f"bad target {item!r}")
        targets.append(Entry(kind, text))
    return Target(tuple(targets), owner)


def read_database(path: str) -> AliasDatabase:
    """The database in C{path}; C{OSError} when it cannot be read, L{DatabaseError} when it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        document = json.loads(data.decode("utf-8"))
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("no format line")
        return AliasDatabase({str(key): _target(value) for key, value in document["targets"].items()})
    except (ValueError, KeyError, TypeError) as e:
        raise DatabaseError(f"{path} is not an alias database of pymta newaliases ({e}); "
                            "if it is fastforward's aliases.cdb, run pymta newaliases") from None
