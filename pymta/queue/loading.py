# -*- test-case-name: tests.queue.test_loading -*-
"""
Loading the queue at start in bounded slices: each preprocessed message
found in C{info/N/} goes back on its schedule (the scheduler's
C{resume(message_id)}), at most L{LOAD_SLICE} of them per reactor turn (and, after the
first slice, for at most L{SLICE_SECONDS}), so
that a queue of any size never stalls the process: between two slices the
reactor serves sessions (C{twistd pymta} runs smtpd in the same process)
and pymta-send's loop takes new mail and starts deliveries of what is
loaded and due.  qmail's plain path is one slice holding the whole queue
(C{slice_size} large enough); docs/internals.md ("Loading the queue at
start") says why the result is the same.

A subdirectory is listed when its turn comes; an id listed then may have
been taken by the scheduler meanwhile (a message committed during the
load and preprocessed since): C{known(message_id)} says so and it is left
alone.  Nothing is written here: loading only reads the queue.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Callable, Collection

from pymta.queue.layout import QueueLayout
from pymta.queue.looptimers import LoopTimers
from pymta.queue.qmaillog import QmailLog

__all__ = ["QueueLoader", "LOAD_SLICE", "list_info"]

#: preprocessed messages resumed per reactor turn at start (each costs a few stat calls)
LOAD_SLICE = 100

#: how long a slice after the first may run (a session's every round trip may wait for one)
SLICE_SECONDS = 0.001

#: a listed name costs this fraction of a resumed message in a slice's budget
NAMES_PER_MESSAGE = 20


def list_info(layout: QueueLayout, log: QmailLog, n: int) -> list[int]:
    """The ids in C{info/n} (a directory that cannot be read is warned about and counts as empty)."""
    try:
        names = os.listdir(os.path.join(layout.dir("info"), str(n)))
    except OSError as e:
        log.warning(f"unable to read info/{n}: {e.strerror}")
        return []
    return [int(name) for name in names if name.isdigit()]


class QueueLoader:
    """
    Resumes the preprocessed messages of C{layout} a slice at a time on
    C{timers}' clock (see the module docstring); C{after_slice()} is called
    after each slice (the scheduler's loop runs then).
    """

    def __init__(self, layout: QueueLayout, log: QmailLog, timers: LoopTimers, *,
                 resume: Callable[[int], None], known: Callable[[int], bool], after_slice: Callable[[], None],
                 slice_size: int = LOAD_SLICE, slice_seconds: float = SLICE_SECONDS,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.layout = layout
        self.log = log
        self.timers = timers
        self.resume = resume
        self.known = known
        self.after_slice = after_slice
        self.slice_size = max(1, slice_size)
        self.slice_seconds = slice_seconds
        self.timer = timer
        self._subdirs: deque[int] = deque()
        self._ids: deque[int] = deque()
        self._skip: Collection[int] = frozenset()
        #: slices run so far (for tests and the benchmark)
        self.slices = 0

    @property
    def loading(self) -> bool:
        """True until every subdirectory has been listed and every id in it resumed."""
        return bool(self._subdirs or self._ids)

    def start(self, skip: Collection[int]) -> None:
        """Load C{info/} afresh, but the ids in C{skip} (waiting in C{todo/}); the first slice runs now."""
        self._subdirs = deque(range(self.layout.split))
        self._ids = deque()
        self._skip = skip
        self.slices = 0
        self._slice(timed=False)  # a queue within one slice is loaded by the start itself

    def stop(self) -> None:
        """Load no more (the timers of a stopping scheduler are cancelled with it)."""
        self._subdirs.clear()
        self._ids.clear()

    def _slice(self, timed: bool = True) -> None:
        budget = self.slice_size * NAMES_PER_MESSAGE
        deadline = self.timer() + self.slice_seconds if timed else None
        while budget > 0 and self.loading:
            if not self._ids:
                found = list_info(self.layout, self.log, self._subdirs.popleft())
                self._ids.extend(i for i in found if i not in self._skip)
                budget -= len(found) + 1
            else:
                message_id = self._ids.popleft()
                if not self.known(message_id):
                    self.resume(message_id)
                budget -= NAMES_PER_MESSAGE
            if deadline is not None and self.timer() >= deadline:
                break
        self.slices += 1
        if self.loading:
            self.timers.later(0, self._slice)
        self.after_slice()
