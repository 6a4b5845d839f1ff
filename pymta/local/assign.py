# -*- test-case-name: tests.local.test_assign -*-
"""
C{ROOT/users/assign} (qmail-users) and its index C{ROOT/users/assign.idx}.

assign lines::

    =local:user:uid:gid:homedir:dash:ext:     the address local exactly
    +loc:user:uid:gid:homedir:dash:pre:       every address starting with loc;
                                              ext = pre + the rest of the address
    .                                         end of the file (required)

Keys are matched case-insensitively; an exact (C{=}) entry beats any
wildcard, a longer wildcard beats a shorter one, and of two lines with the
same key the first wins.  Blank lines and lines starting with C{#} are
skipped (pymta's addition); any other line is a format error that names the
line.

The index is a JSON file written by C{pymta newu} (temporary file, fsync,
rename, fsync of the directory) and records the size and mtime of the
assign file it was built from.  L{AssignCache} checks that record on every
use: when assign has changed since (or the index is missing) it reads assign
directly and reports the staleness through its C{warn} callback, so a
forgotten C{pymta newu} never means a wrong delivery.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Iterable

from pymta.fsutil import replace_file

__all__ = [
    "AssignEntry",
    "AssignError",
    "AssignTable",
    "parse_assign",
    "read_assign",
    "write_index",
    "read_index",
    "AssignCache",
    "INDEX_NAME",
]

INDEX_NAME = "assign.idx"
INDEX_FORMAT = 1


class AssignError(Exception):
    """users/assign (or its index) cannot be used; the text names file and line."""


@dataclass(frozen=True)
class AssignEntry:
    """The six fields of one assign line."""

    user: str
    uid: int
    gid: int
    home: str
    dash: str
    ext: str

    def as_list(self) -> list[object]:
        return [self.user, self.uid, self.gid, self.home, self.dash, self.ext]

    @classmethod
    def from_list(cls, fields: list[object]) -> "AssignEntry":
        user, uid, gid, home, dash, ext = fields
        if not (isinstance(uid, int) and isinstance(gid, int)):
            raise AssignError("index entry has a non-numeric uid or gid")
        return cls(str(user), uid, gid, str(home), str(dash), str(ext))


@dataclass(frozen=True)
class AssignMatch:
    """Result of a lookup: the entry and the extension to use for this address."""

    entry: AssignEntry
    ext: str


class AssignTable:
    """Exact and wildcard entries with qmail's precedence."""

    def __init__(self, simple: dict[str, AssignEntry], wildcard: dict[str, AssignEntry]) -> None:
        self.simple = simple
        self.wildcard = wildcard
        self._lengths = sorted({len(k) for k in wildcard}, reverse=True)

    def lookup(self, local: str) -> AssignMatch | None:
        key = local.lower()
        entry = self.simple.get(key)
        if entry is not None:
            return AssignMatch(entry, entry.ext)
        for length in self._lengths:
            if length > len(key):
                continue
            entry = self.wildcard.get(key[:length])
            if entry is not None:
                return AssignMatch(entry, entry.ext + local[length:])
        return None

    def __len__(self) -> int:
        return len(self.simple) + len(self.wildcard)


def parse_assign(lines: Iterable[str], path: str = "users/assign") -> AssignTable:
    """Parse assign lines; raises L{AssignError} naming the line on bad input."""
    simple: dict[str, AssignEntry] = {}
    wildcard: dict[str, AssignEntry] = {}
    ended = False
    for lineno, line in enumerate(lines, 1):
        if line.endswith("\n"):
            line = line[:-1]
        if line.startswith("."):
            ended = True
            break
        if not line.strip() or line.startswith("#"):
            continue
        if "\0" in line:
            raise AssignError(f"{path}:{lineno}: NUL byte")
        kind = line[0]
        if kind not in "=+":
            raise AssignError(f"{path}:{lineno}: line must start with '=', '+' or '.'")
        fields = line[1:].split(":")
        if len(fields) != 8 or fields[7] != "":
            raise AssignError(f"{path}:{lineno}: expected 7 fields each ended by ':'")
        key, user, uid, gid, home, dash, ext, _ = fields
        if not (uid.isascii() and uid.isdigit() and gid.isascii() and gid.isdigit()):
            raise AssignError(f"{path}:{lineno}: uid and gid must be decimal numbers")
        if not home.startswith("/"):
            raise AssignError(f"{path}:{lineno}: home directory must be an absolute path")
        entry = AssignEntry(user, int(uid), int(gid), home, dash, ext)
        table = simple if kind == "=" else wildcard
        table.setdefault(key.lower(), entry)
    if not ended:
        raise AssignError(f"{path}: no final '.' line (file truncated?)")
    return AssignTable(simple, wildcard)


def read_assign(path: str) -> AssignTable:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AssignError(f"{path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AssignError(f"{path}: not valid UTF-8") from None
    return parse_assign(text.splitlines(keepends=True), path)


def write_index(assign_path: str, index_path: str) -> AssignTable:
    """Build the index of C{assign_path} into C{index_path}, durably."""
    st = os.stat(assign_path)
    table = read_assign(assign_path)
    document = {
        "format": INDEX_FORMAT,
        "assign_size": st.st_size,
        "assign_mtime_ns": st.st_mtime_ns,
        "simple": {k: e.as_list() for k, e in table.simple.items()},
        "wildcard": {k: e.as_list() for k, e in table.wildcard.items()},
    }
    replace_file(index_path, json.dumps(document, separators=(",", ":")).encode("utf-8"), 0o644)
    return table


def read_index(index_path: str) -> tuple[AssignTable, int, int]:
    """The table in an index plus the (size, mtime_ns) of the assign file it was made from."""
    try:
        with open(index_path, "rb") as f:
            document = json.loads(f.read().decode("utf-8"))
        if document.get("format") != INDEX_FORMAT:
            raise AssignError(f"{index_path}: unknown index format")
        simple = {k: AssignEntry.from_list(v) for k, v in document["simple"].items()}
        wildcard = {k: AssignEntry.from_list(v) for k, v in document["wildcard"].items()}
        return AssignTable(simple, wildcard), int(document["assign_size"]), int(document["assign_mtime_ns"])
    except AssignError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AssignError(f"{index_path}: unreadable index ({e})") from None


def _stat_key(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class AssignCache:
    """
    The current assign table of a root, re-read only when assign or the index
    changes.  C{table()} returns None when there is no users/assign at all,
    and raises L{AssignError} when it exists but cannot be read.
    """

    def __init__(self, root: str, warn: Callable[[str], None] = lambda text: None) -> None:
        self.assign_path = os.path.join(root, "users", "assign")
        self.index_path = os.path.join(root, "users", INDEX_NAME)
        self.warn = warn
        self._key: object = object()
        self._table: AssignTable | None = None

    def table(self) -> AssignTable | None:
        key = (_stat_key(self.assign_path), _stat_key(self.index_path))
        if key == self._key:
            return self._table
        assign_key, index_key = key
        table: AssignTable | None
        if assign_key is None:
            table = None
        elif index_key is None:
            self.warn(f"{self.index_path} is missing; reading {self.assign_path} directly (run pymta newu)")
            table = read_assign(self.assign_path)
        else:
            indexed, size, mtime_ns = read_index(self.index_path)
            if (size, mtime_ns) != (assign_key[1], assign_key[2]):
                self.warn(f"{self.assign_path} changed after {self.index_path} was built; reading it directly (run pymta newu)")
                table = read_assign(self.assign_path)
            else:
                table = indexed
        self._key = key
        self._table = table
        return table
