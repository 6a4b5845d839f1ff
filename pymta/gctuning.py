# -*- test-case-name: tests.test_gctuning -*-
"""
The cyclic garbage collector in a long-running daemon, tuned once it has started.

CPython frees most objects by reference counting; its cyclic collector only
exists for reference cycles (in pymta mostly a L{Failure} holding a traceback
whose frames hold the Failure).  It runs by generations: a generation-0
collection every time the container objects allocated minus those freed
exceed the first threshold, a generation-1 collection every so many
generation-0 ones, and a full collection, which walks every tracked object
the process has, when the objects promoted since the last full collection
reach a quarter of those that survived it.

A daemon's heap is mostly start-up: modules, Twisted, the control
snapshots, the listeners.  None of that becomes garbage while it runs,
yet every full collection walks it again.  Per message the daemon makes
many short-lived containers (Deferreds, dicts, the session's objects); the
ones still alive at a generation-0 collection (the sessions in flight) are
walked again at each one and promoted, then walked again in generation 1.

L{tune_daemon}, called once when a daemon has built its services and
listens, therefore:

 - collects once, then freezes what is left (C{gc.freeze}): the start-up
   heap moves to the permanent generation, which no collection walks.
   Reference counting still frees a frozen object; only a cycle made of
   frozen objects alone, dropped later (say an old control snapshot after
   a reload, if it held one), is never freed: at most the start-up heap,
   once, since nothing created afterwards is ever frozen;
 - raises the generation-0 threshold (L{GENERATION0}), so a collection comes
   after a hundred messages or more instead of some tens: the sessions in
   flight are walked less often.  The garbage cycles waiting for a
   collection are bounded by the threshold (a few megabytes at most, a
   Failure with its traceback being the largest), and the generation-1 and
   full-collection thresholds stay Python's, so nothing grows without bound.

Reference counting frees everything else at once, as before: a big message
is streamed in buffers no cycle holds, so its memory is unchanged.
"""

from __future__ import annotations

import gc

__all__ = ["GENERATION0", "tune_daemon"]

#: the generation-0 threshold of a started daemon (Python's default is 700)
GENERATION0 = 3000

_tuned = False


def tune_daemon() -> bool:
    """
    Freeze the start-up heap and raise the generation-0 threshold (see the
    module docstring); once per process.  Returns True when it did, False
    when an earlier call had.
    """
    global _tuned
    if _tuned:
        return False
    _tuned = True
    gc.collect()
    gc.freeze()
    generation0, generation1, generation2 = gc.get_threshold()
    gc.set_threshold(max(GENERATION0, generation0), generation1, generation2)
    return True
