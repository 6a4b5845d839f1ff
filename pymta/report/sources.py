# -*- test-case-name: tests.report.test_sources -*-
"""
The log files C{pymta report} reads, oldest line first.

A file named on the command line brings its rotated predecessors along:
twistd's rotation renames C{send.log} to C{send.log.1} (and the older ones
one number up), logrotate may compress them (C{send.log.2.gz}).  So
C{send.log} means C{send.log.N}, ..., C{send.log.1}, C{send.log}, in that
order; a rotated file named on its own is read alone.  Each file is read
once, however it was named.  Bytes that are not UTF-8 are replaced, not
fatal: such a line is garbage to the parser, nothing more; so is a line
longer than L{MAX_LINE}, which is skipped without being held whole.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from typing import IO, Iterable, Iterator

__all__ = ["with_rotated", "read_lines", "bounded_lines", "MAX_LINE"]

#: a longer line is skipped whole (qmail-send's lines are far shorter): memory stays bounded
MAX_LINE = 64 * 1024

_ROTATED = re.compile(r"\.(\d{1,6})(\.gz)?\Z")


def _rotated(path: str) -> list[tuple[int, str]]:
    """C{path}'s rotated predecessors that exist, with their numbers."""
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found: list[tuple[int, str]] = []
    for name in names:
        m = _ROTATED.fullmatch(name[len(base):]) if name.startswith(base + ".") else None
        if m:
            found.append((int(m[1]), os.path.join(os.path.dirname(path), name)))
    return found


def with_rotated(paths: Iterable[str]) -> list[str]:
    """
    Every file to read for the names given, each once: the files of one
    log (a name and its rotated ones) oldest first, the logs in the order
    first named.
    """
    groups: dict[str, dict[str, int]] = {}  # base name -> {path: rotation number, 0 for the live file}
    for path in paths:
        m = _ROTATED.search(path)
        if m:
            groups.setdefault(path[: m.start()], {}).setdefault(path, int(m[1]))
        else:
            group = groups.setdefault(path, {})
            group.setdefault(path, 0)
            for number, rotated in _rotated(path):
                group.setdefault(rotated, number)
    result: list[str] = []
    seen: set[str] = set()
    for group in groups.values():
        for p, _ in sorted(group.items(), key=lambda item: (-item[1], item[0])):
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                result.append(p)
    return result


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def bounded_lines(f: IO[str], limit: int = MAX_LINE) -> Iterator[str]:
    """The lines of C{f}, without the ones longer than C{limit} characters (never held whole)."""
    skipping = False
    while line := f.readline(limit):
        whole = line.endswith("\n") or len(line) < limit
        if not skipping and whole:
            yield line
        skipping = not whole and line != ""


def read_lines(paths: list[str]) -> Iterator[str]:
    """The lines of C{paths} in order, one at a time (OSError naming the file for one that cannot be read)."""
    for path in paths:
        try:
            with _open(path) as f:
                yield from bounded_lines(f)
        except OSError as e:
            if e.filename is not None:
                raise
            raise OSError(e.errno, e.strerror or str(e), path) from e  # gzip's errors name no file
        except EOFError as e:  # a compressed file cut short
            raise OSError(None, str(e), path) from e
