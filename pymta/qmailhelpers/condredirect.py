# -*- test-case-name: tests.qmailhelpers.test_conditional -*-
"""
C{condredirect newaddress program [arg ...]}: run C{program} with the
message on stdin; when it exits 0, queue the message (C{$DTLINE} first) to
C{newaddress} from C{$SENDER} (not C{$NEWSENDER}), print
C{condredirect: qp N} and exit 99, so the rest of the C{.qmail} file is
skipped.

Exit code: 99 after forwarding; 111 when the program exits 111 (or is
killed, or cannot start for a reason that may pass); 0 when it exits
with anything else, so delivery goes on with the next line.  A forward
the queue refuses is 100 or 111 (L{pymta.qmailhelpers.requeue}); a usage
error, or C{SENDER} or C{DTLINE} not set, is 100.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from pymta.qmailhelpers.common import OK, PERMANENT, STOP, TEMPORARY, Fatal, reason, required, run_helper, run_program, say
from pymta.qmailhelpers.requeue import queue_root, requeue

__all__ = ["main", "USAGE"]

USAGE = "usage: condredirect newaddress program [ arg ... ]"


def _condredirect(argv: list[str], environ: Mapping[str, str]) -> int:
    if len(argv) < 2:
        raise Fatal(PERMANENT, USAGE)
    code = run_program(argv[1:])
    if code == TEMPORARY:
        raise Fatal(TEMPORARY, "temporary child error")
    if code != 0:
        return OK
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to rewind: {reason(e)}") from None
    sender = required(environ, "SENDER")
    dtline = required(environ, "DTLINE")
    qp = requeue(queue_root(environ), dtline, sender, [argv[0]])
    say("condredirect", f"qp {qp}")
    return STOP


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return run_helper("condredirect", lambda: _condredirect(argv, env))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
