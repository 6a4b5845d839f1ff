# -*- test-case-name: tests.qmailcompat.test_install -*-
"""
C{pymta qmail-compat install|remove [--root DIR] [--target DIR]...}: qmail's
program paths for qmail's add-ons (L{pymta.qmailcompat.install}).

C{install} writes C{bin/qmail-queue}, C{bin/qmail-inject}, C{bin/sendmail},
C{bin/preline} and the rest under each target (default C{/var/qmail} and
C{/var/lib/qmail}) for the pymta root C{--root} (default C{$PYMTA_ROOT},
else C{/var/pymta}); C{remove} deletes what it made.  Each path made,
removed or left alone is printed.  Exit 0 when done, 100 when a target
holds a real qmail (nothing written) or for a usage error, 111 for a
file-system error.
"""

from __future__ import annotations

import argparse
import sys

from pymta.control import default_root
from pymta.qmailcompat.install import DEFAULT_TARGETS, CompatRefused, CompatReport, install, remove

__all__ = ["main"]


def _print(report: CompatReport, verb: str) -> None:
    for path in report.done:
        sys.stdout.write(f"{verb} {path}\n")
    for path in report.kept:
        sys.stdout.write(f"left alone {path}\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta qmail-compat",
                                     description="qmail's program paths (/var/qmail/bin, /var/lib/qmail/bin) for qmail's add-ons")
    parser.add_argument("action", choices=("install", "remove"))
    parser.add_argument("--root", default=None, help="pymta root directory (default $PYMTA_ROOT or /var/pymta)")
    parser.add_argument("--target", action="append", default=None, metavar="DIR",
                        help=f"qmail's home to provide (repeatable; default {' and '.join(DEFAULT_TARGETS)})")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 100
    targets = args.target or list(DEFAULT_TARGETS)
    try:
        if args.action == "install":
            _print(install(args.root or default_root(), targets), "made")
        else:
            _print(remove(targets), "removed")
    except CompatRefused as e:
        sys.stderr.write(f"pymta qmail-compat: {e}\n")
        return 100
    except OSError as e:
        sys.stderr.write(f"pymta qmail-compat: {e.filename or ''}: {e.strerror or e}\n")
        return 111
    return 0
