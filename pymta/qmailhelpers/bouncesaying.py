# -*- test-case-name: tests.qmailhelpers.test_conditional -*-
"""
C{bouncesaying error [program [arg ...]]}: bounce the message with the
text C{error}, always, or only when C{program} (run with the message on
stdin) exits 0.

Exit code: 100 (C{error} printed) to bounce; with a program, 111 when it
exits 111 (or is killed, or cannot start for a reason that may pass), 0
when it exits with anything else, so delivery goes on with the next line.
A usage error is 100.
"""

from __future__ import annotations

import sys

from pymta.qmailhelpers.common import OK, PERMANENT, TEMPORARY, Fatal, run_helper, run_program

__all__ = ["main", "USAGE"]

USAGE = "usage: bouncesaying error [ program [ arg ... ] ]"


def _bouncesaying(argv: list[str]) -> int:
    if not argv:
        raise Fatal(PERMANENT, USAGE)
    if len(argv) > 1:
        code = run_program(argv[1:])
        if code == TEMPORARY:
            raise Fatal(TEMPORARY, "temporary child error")
        if code != 0:
            return OK
    sys.stderr.write(argv[0] + "\n")
    sys.stderr.flush()
    return PERMANENT


def main(argv: list[str]) -> int:
    return run_helper("bouncesaying", lambda: _bouncesaying(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
