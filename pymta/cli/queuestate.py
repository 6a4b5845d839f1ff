# -*- test-case-name: tests.cli.test_qshape -*-
"""
Which state a message on disk is in, for the read-only queue commands
(C{pymta qshape --queue ...}).

- C{todo}: committed, not yet preprocessed (only C{todo/ID}: pymta-send has
  not taken it in yet - Postfix's I{incoming});
- C{deferred}: preprocessed (C{info/N/ID}) and waiting for its next attempt
  or in delivery right now: pymta has no separate I{active} queue;
- C{held}: set aside by C{pymta ctl hold} until released.

This is the one place that tells them apart from the files; the selections
of C{--queue} are in L{QUEUES}.  A held message has C{hold/ID} beside its
files (L{pymta.queue.ctldisk}).
"""

from __future__ import annotations

import os

from pymta.queue.layout import QueueLayout

__all__ = ["TODO", "DEFERRED", "HELD", "QUEUES", "state_of"]

TODO = "todo"
DEFERRED = "deferred"
HELD = "held"

#: what each C{--queue} name selects
QUEUES: dict[str, frozenset[str]] = {
    "deferred": frozenset({DEFERRED}),
    "held": frozenset({HELD}),
    "all": frozenset({TODO, DEFERRED, HELD}),
}


def state_of(layout: QueueLayout, message_id: int) -> str:
    """The state of preprocessed message C{message_id} (one listed in C{info/})."""
    return HELD if os.path.exists(layout.hold(message_id)) else DEFERRED
