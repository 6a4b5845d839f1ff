# -*- test-case-name: tests.cli.test_check -*-
"""
C{pymta check [--root DIR]}: the daemons' own configuration checks, run
over a root (L{pymta.configcheck}).

One line per problem, errors first, then warnings, each sorted by file and line::

    /var/pymta/control/smtproutes:3: error: bad port in smtproutes: '99999'
    /var/pymta/control/servercert.pem: warning: the certificate expires on ...

C{PATH:LINE:} names a line; C{PATH:} alone a whole file or directory.
Then a summary line on standard error.

Exit codes: 0 nothing found, 1 warnings only (the daemons start and log
them), 2 errors (the daemons refuse to start, and a reload keeps the old
configuration), 100 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from pymta.configcheck import Problem, run_checks
from pymta.control import default_root

__all__ = ["main", "EXIT_CLEAN", "EXIT_WARNINGS", "EXIT_ERRORS", "EXIT_USAGE"]

EXIT_CLEAN = 0
EXIT_WARNINGS = 1
EXIT_ERRORS = 2
EXIT_USAGE = 100


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def report(problems: list[Problem], out: TextIO, err: TextIO) -> int:
    """Print C{problems}, errors first; the exit code they mean."""
    in_order = sorted(problems, key=lambda p: (p.path, p.line))
    errors = [p for p in in_order if p.is_error]
    warnings = [p for p in in_order if not p.is_error]
    for problem in errors + warnings:
        out.write(_printable(str(problem)) + "\n")
    out.flush()  # the lines before the summary, also when both go to one pipe
    if errors:
        err.write(f"pymta check: {len(errors)} error{'s' if len(errors) != 1 else ''}, "
                  f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}: the daemons would refuse to start\n")
        return EXIT_ERRORS
    if warnings:
        err.write(f"pymta check: {len(warnings)} warning{'s' if len(warnings) != 1 else ''}, no errors\n")
        return EXIT_WARNINGS
    return EXIT_CLEAN


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pymta check",
        description="check a pymta root with the daemons' own parsers: control files, etc/tcp.smtp, "
                    "users/assign and its index, users/passwd, the certificate, owners and modes",
        epilog="exit status: 0 clean, 1 warnings only, 2 errors (the daemons would refuse to start), 100 usage",
    )
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT, else /var/pymta)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_CLEAN
    root = os.path.abspath(args.root or default_root())
    return report(run_checks(root), stdout or sys.stdout, stderr or sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
