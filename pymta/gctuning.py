# -*- test-case-name: tests.test_gctuning -*-
"""
The cyclic garbage collector in a long-running daemon: the start-up heap
frozen once the daemon has started.

CPython frees most objects by reference counting; its cyclic collector is
there for reference cycles (in pymta, for instance, a Failure whose
traceback's frames refer back to it, or a protocol and its transport).  It
works by generations: a generation-0 collection whenever the container
objects allocated minus those freed exceed the first threshold, a
generation-1 collection every so many generation-0 ones, and a full
collection, which walks every tracked object of the process, once the
objects promoted since the last full collection reach a quarter of those
that survived it.

A daemon's heap is mostly start-up: modules, Twisted, the control
snapshots, the listeners.  None of that becomes garbage while it runs, yet
every full collection walks all of it again, a pause of the whole daemon
(every session waits) that grows with the heap.  L{tune_daemon}, called
once when a daemon has built its services and listens, collects once and
then freezes what is left (C{gc.freeze}): the start-up heap moves to the
permanent generation, which no collection walks, and a full collection
walks only what the daemon made since.  Reference counting still frees a
frozen object; only a cycle made of frozen objects alone, dropped later
(an old control snapshot after a reload, if it held one), is never freed:
at most part of the start-up heap, once, since nothing made afterwards is
ever frozen.

The thresholds stay Python's.  A higher generation-0 threshold makes the
young collections rarer, but every garbage cycle then waits longer before
it is freed, for a saving measured at a fraction of a percent of a
daemon's CPU (benchmarks/README.md): not worth the memory it may hold.
"""

from __future__ import annotations

import gc

__all__ = ["tune_daemon"]

_tuned = False


def tune_daemon() -> bool:
    """
    Collect, then freeze the start-up heap (see the module docstring); once
    per process.  Returns True when it did, False when an earlier call had.
    """
    global _tuned
    if _tuned:
        return False
    _tuned = True
    gc.collect()
    gc.freeze()
    return True
