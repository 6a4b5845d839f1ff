# -*- test-case-name: tests.qmailhelpers.test_forward -*-
"""
C{forward address [address ...]}: queue the message (C{$DTLINE} first) to
the addresses, from C{$NEWSENDER}, as a C{.qmail} forward line does, and
print C{forward: qp N}.

Exit code: 0 once the queue has the message; 100 for a usage error, when
C{NEWSENDER} or C{DTLINE} is not set (outside a delivery) or when the
queue refuses the message for good; 111 when it refuses it for now
(L{pymta.qmailhelpers.requeue}).
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from pymta.qmailhelpers.common import OK, PERMANENT, Fatal, required, run_helper, say
from pymta.qmailhelpers.requeue import queue_root, requeue

__all__ = ["main", "USAGE"]

USAGE = "usage: forward address [ address ... ]"


def _forward(argv: list[str], environ: Mapping[str, str]) -> int:
    if not argv:
        raise Fatal(PERMANENT, USAGE)
    sender = required(environ, "NEWSENDER")
    dtline = required(environ, "DTLINE")
    qp = requeue(queue_root(environ), dtline, sender, argv)
    say("forward", f"qp {qp}")
    return OK


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return run_helper("forward", lambda: _forward(argv, env))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
