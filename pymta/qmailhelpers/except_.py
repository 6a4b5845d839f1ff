# -*- test-case-name: tests.qmailhelpers.test_conditional -*-
"""
C{except program [arg ...]}: run C{program} with the message on stdin and
turn its success into a bounce: exit 0 becomes 100, 111 stays 111 (also
when it is killed, or cannot start for a reason that may pass), and
anything else becomes 0 (delivery goes on with the next line).  For
example C{|except grep -q '^X-Spam-Flag: YES'} bounces what the filter
flagged.  A usage error is 100.
"""

from __future__ import annotations

import sys

from pymta.qmailhelpers.common import OK, PERMANENT, TEMPORARY, Fatal, run_helper, run_program

__all__ = ["main", "USAGE"]

USAGE = "usage: except program [ arg ... ]"


def _except(argv: list[str]) -> int:
    if not argv:
        raise Fatal(PERMANENT, USAGE)
    code = run_program(argv)
    if code == 0:
        return PERMANENT
    if code == TEMPORARY:
        raise Fatal(TEMPORARY, "temporary child error")
    return OK


def main(argv: list[str]) -> int:
    return run_helper("except", lambda: _except(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
