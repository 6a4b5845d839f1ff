# -*- test-case-name: tests.configcheck.test_startup -*-
"""
The configuration checks in the daemons: before they start, and before
each reload.

L{checked_reader} is what every twistd plugin (and so every .tac file)
calls instead of C{ControlReader(root)}: it runs L{run_checks} with the
checks of the files that daemon reads (L{pymta.configcheck.daemonchecks}:
never the queue's owner, which L{pymta.privileges} judges when it drops
root; an expired certificate and a bad users/passwd line are warnings
there), logs each
warning, and on an error raises C{SystemExit} with one line naming the
file and line (twistd prints it and exits 1, no traceback).  The reader it
returns checks again before each reload (C{SIGHUP}, C{pymta ctl reload}):
on an error the reload raises L{ConfigurationRefused} (a
L{pymta.control.ControlError}, which every reload path already reports)
and nothing is re-read, so the old configuration stays in force whole.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

from pymta.configcheck import Problem, run_checks
from pymta.configcheck.daemonchecks import checkers_of
from pymta.control import ControlError, ControlReader

__all__ = ["ConfigurationRefused", "checked_reader", "summary", "check_before_start", "reload_precheck"]

log = Logger(namespace="pymta.check")


def summary(errors: list[Problem]) -> str:
    """One line: the first error with its file and line, and how many more there are."""
    first = errors[0]
    text = f"{first.where}: {first.text}"
    more = len(errors) - 1
    if more:
        text += f" (and {more} more error{'s' if more != 1 else ''}: pymta check lists them)"
    return text


class ConfigurationRefused(ControlError):
    """The configuration check found errors; the first names the file and line."""

    def __init__(self, errors: list[Problem]) -> None:
        first = errors[0]
        super().__init__(first.path, first.line, first.text)
        self.errors = errors

    def __str__(self) -> str:
        return summary(self.errors)


def _checked(root: str, program: str) -> list[Problem]:
    """Run the checks, log every warning; the errors."""
    problems = run_checks(root, checkers=checkers_of(program))
    for problem in problems:
        if not problem.is_error:
            log.warn("{program}: {problem}", program=program, problem=str(problem))
    return sorted((p for p in problems if p.is_error), key=lambda p: (p.path, p.line))  # as pymta check lists them


def check_before_start(root: str, program: str) -> None:
    """Log the warnings; C{SystemExit} with one line on the first error."""
    errors = _checked(root, program)
    if errors:
        raise SystemExit(f"{program}: configuration error, not starting: {summary(errors)}")


def reload_precheck(root: str, program: str) -> Callable[[], None]:
    """A check for L{ControlReader.precheck}: raises L{ConfigurationRefused} on an error."""

    def precheck() -> None:
        errors = _checked(root, program)
        if errors:
            raise ConfigurationRefused(errors)

    return precheck


def checked_reader(root: str, program: str) -> ControlReader:
    """
    The L{ControlReader} of a daemon: checked before start (C{SystemExit}
    on an error) and before each reload.
    """
    check_before_start(root, program)
    try:
        reader = ControlReader(root)
    except (ControlError, OSError) as e:  # changed since the check
        raise SystemExit(f"{program}: configuration error, not starting: {e}") from None
    reader.precheck = reload_precheck(root, program)
    return reader
