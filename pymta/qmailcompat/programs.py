# -*- test-case-name: tests.qmailcompat.test_programs -*-
"""
C{python -m pymta.qmailcompat NAME [ARG...]}: run pymta's program for
qmail's C{NAME} (one of L{pymta.qmailcompat.PROGRAMS}) with qmail's
arguments, so a file at qmail's path can be a two-line script.

C{qmail-queue} takes no arguments (C{QMAILQUEUE} names one program); it is
C{pymta queue}, which records the caller's real uid in the queue and in the
C{Received:} line.  The root is C{$PYMTA_ROOT}, else C{/var/pymta}, as for
every command-line tool.
"""

from __future__ import annotations

import sys
from typing import Callable

from pymta.qmailcompat import PROGRAMS

__all__ = ["main", "runner"]


def _queue(args: list[str]) -> int:
    from pymta.cli import queue

    return queue.main([])


def _inject(args: list[str]) -> int:
    from pymta.cli import inject

    return inject.main(args)


def _sendmail(args: list[str]) -> int:
    from pymta.cli import sendmail

    return sendmail.main(args, progname="sendmail")


def _helper(name: str) -> Callable[[list[str]], int]:
    def run(args: list[str]) -> int:
        from pymta.qmailhelpers.__main__ import main as helpers_main

        return helpers_main([name, *args])

    return run


def _command(module_name: str) -> Callable[[list[str]], int]:
    def run(args: list[str]) -> int:
        import importlib

        code: int = importlib.import_module(module_name).main(args)
        return code

    return run


_RUNNERS: dict[str, Callable[[list[str]], int]] = {
    "qmail-queue": _queue,
    "qmail-inject": _inject,
    "sendmail": _sendmail,
    "preline": _helper("preline"),
    "forward": _helper("forward"),
    "condredirect": _helper("condredirect"),
    "bouncesaying": _helper("bouncesaying"),
    "except": _helper("except"),
    "qmail-qstat": _command("pymta.cli.qstat"),
    "qmail-qread": _command("pymta.cli.qread"),
    "qmail-showctl": _command("pymta.cli.showctl"),
    "maildirmake": _command("pymta.cli.maildirmake"),
}
assert set(_RUNNERS) == set(PROGRAMS)


def runner(name: str) -> Callable[[list[str]], int] | None:
    """What runs qmail's C{name}, or None when pymta has no such program."""
    return _RUNNERS.get(name)


def main(argv: list[str]) -> int:
    run = runner(argv[0]) if argv else None
    if run is None:
        sys.stderr.write(f"usage: python -m pymta.qmailcompat {{{'|'.join(PROGRAMS)}}} [ARG...]\n")
        return 100
    from pymta.cli.pipes import run_printing

    return run_printing(lambda: run(argv[1:]))
