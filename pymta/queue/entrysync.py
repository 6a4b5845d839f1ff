# -*- test-case-name: tests.queue.test_entrysync,tests.queue.test_sink_early -*-
"""
The early path's fsyncs (docs/internals.md, "The early path"): a message's
envelope (C{intd/ID}) and its C{mess/N} directory fsynced in the shared
pool of L{pymta.queue.syncing}, both at once, while its data arrives.

L{EntrySync} owns what its fsyncs touch, so no thread shares anything with
the writer: the envelope's descriptor is handed over (and closed once
fsynced), the directory is a path.  The writer goes on writing the data;
L{EntrySync.wait}, called before the C{todo/ID} link, returns only once
both fsyncs have returned - after the writer fsynced its data in the
meantime, so that the two overlap.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future

from pymta.queue.crashpause import pause_for_crash_test
from pymta.queue.syncing import fsync_each, submit

__all__ = ["EntrySync"]


class EntrySync:
    """
    The fsyncs of C{intd_fd} (closed by them) and of the directory
    C{mess_dir}, started at once.  It owns C{intd_fd} from the call on,
    also when it raises (the pool cannot take work): then it is closed.
    """

    def __init__(self, intd_fd: int, mess_dir: str) -> None:
        self._lock = threading.Lock()
        self._left = 2
        pause_for_crash_test("fsync_entry")
        try:
            first = submit(self._run, intd_fd)
        except BaseException:  # the pool is gone (the process exits): the descriptor is still ours to close
            os.close(intd_fd)
            raise
        try:
            second = submit(self._run, mess_dir)
        except BaseException:
            first.result()  # closes the descriptor
            raise
        self._futures: list[Future[OSError | None]] = [first, second]

    def _run(self, target: int | str) -> OSError | None:
        """In a pool thread: fsync C{target} (a descriptor is closed then); the last of the two may pause."""
        try:
            [error] = fsync_each([target])
        finally:
            if isinstance(target, int):
                os.close(target)
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:  # in the pool thread, before wait() can return: a crash test stops the commit here
            pause_for_crash_test("entry_durable")
        return error

    def wait(self) -> tuple[OSError | None, OSError | None]:
        """Block until both fsyncs have returned: the envelope's error and the directory's (None when durable)."""
        intd, directory = (future.result() for future in self._futures)
        return intd, directory
