# -*- test-case-name: tests.configcheck.test_problem -*-
"""
What a configuration check reports: L{Problem} records, and the context
every checker gets (L{CheckContext}).

A problem names a file and, when it is about one line, that line
(C{line} 0 means the whole file).  Its text form is
C{PATH:LINE: SEVERITY: text}, or C{PATH: SEVERITY: text} for a whole
file, as compilers write theirs.

L{every_error} finds every bad line of a file with a parser that stops at
the first one: it blanks the reported line and parses again, so the
parsers the daemons use report all their complaints without being changed.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence, TypeVar

from pymta.control import Controls
from pymta.privileges import PrivilegeError, mail_account

__all__ = [
    "ERROR",
    "WARNING",
    "Problem",
    "CheckContext",
    "Checker",
    "problem_from_message",
    "every_error",
    "service_account",
]

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding: C{path}, C{line} (0 = the whole file), C{severity} (L{ERROR} or L{WARNING}), C{text}."""

    path: str
    line: int
    severity: str
    text: str

    @property
    def where(self) -> str:
        """C{PATH:LINE}, or C{PATH} for a whole file."""
        return f"{self.path}:{self.line}" if self.line > 0 else self.path

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.text}"


_LOCATED = re.compile(r"^(?P<path>/[^\n]*?):(?P<line>\d+): (?P<text>.*)$", re.S)


def problem_from_message(message: str, path: str, severity: str = ERROR) -> Problem:
    """
    A problem from an exception text that starts with C{path:LINE: } or
    C{path: } (the form pymta's parsers use); other texts are about
    C{path} as a whole.
    """
    m = _LOCATED.match(message)
    if m is not None and m.group("path") == path:
        return Problem(path, int(m.group("line")), severity, m.group("text"))
    prefix = path + ": "
    if message.startswith(prefix):
        return Problem(path, 0, severity, message[len(prefix):])
    return Problem(path, 0, severity, message)


E = TypeVar("E", bound=Exception)


def every_error(
    lines: Sequence[str],
    parse: Callable[[list[str]], object],
    errors: tuple[type[E], ...],
    line_of: Callable[[E], int],
) -> list[E]:
    """
    Every error C{parse} finds in C{lines}: after each one the line it
    names (C{line_of}, 1-based; 0 when it names none) is blanked and the
    parse is repeated.  The parsers skip blank lines, so each round moves
    on; an error that names no line ends the search, and one that names a
    line already blanked ends it without being counted again.
    """
    work = list(lines)
    found: list[E] = []
    for _ in range(len(work) + 1):
        try:
            parse(work)
            return found
        except errors as e:  # type: ignore[misc]
            lineno = line_of(e)
            if 0 < lineno <= len(work) and not work[lineno - 1].strip():
                return found  # the parser blames a line it should now skip: nothing new
            found.append(e)
            if not 0 < lineno <= len(work):
                return found
            work[lineno - 1] = "\n" if work[lineno - 1].endswith("\n") else ""
    return found


def service_account(root: str) -> tuple[int, int] | None:
    """
    The uid and gid the daemons of C{root} run as: the account they become
    when started as root (L{pymta.privileges.mail_account}: the owner of
    C{ROOT/queue}, or of C{ROOT/run} without a queue).  Without such an
    account: this process's own, or None for root.
    """
    try:
        return mail_account(root)
    except PrivilegeError:
        return None if os.geteuid() == 0 else (os.geteuid(), os.getegid())


@dataclass
class CheckContext:
    """
    What every checker gets: the root, the time to judge expiry against,
    the account the daemons run as (L{service_account}), and the control
    files as the daemons read them (C{controls}, None when C{control/}
    cannot be read at all) with the problems found reading them.
    """

    root: str
    now: datetime.datetime
    account: tuple[int, int] | None
    controls: Controls | None = None
    control_problems: list[Problem] = field(default_factory=list)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)


#: a checker: a function of the context yielding problems
Checker = Callable[[CheckContext], Iterable[Problem]]
