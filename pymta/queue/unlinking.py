# -*- test-case-name: tests.queue.test_spares -*-
"""
Removing the last files of finished messages, many at a time and off the
reactor thread when there is a thread pool: freeing a message file's inode
and blocks is the most expensive call the queue manager would otherwise
make.  Nothing refers to these files any more (a crash leaves them to the
cleaner), and their inode numbers - message ids - cannot be reused until
they are gone.

The plain path (no spare pools, no thread pool) is qmail's: unlink each
file at once.  With spare pools (L{pymta.queue.disk.QueueDisk}) the small
files and, for messages that never bounced, the message file itself are
kept for reuse instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union, cast

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

from pymta.queue.disk import QueueDisk
from pymta.queue.sendcontext import SendContext

__all__ = ["RecyclableMessage", "SpentEnvelope", "Unlink", "unlink_all", "BatchedUnlinker", "delete_small"]


@dataclass(frozen=True)
class RecyclableMessage:
    """A finished message's file, which may become a spare (its id comes back) once C{dirs} are synced."""

    path: str
    #: the directories the message's other names were removed from
    dirs: tuple[str, ...]


@dataclass(frozen=True)
class SpentEnvelope:
    """The envelope C{intd/ID} of a message whose C{todo/ID} is already gone (into the spares when there is room)."""

    message_id: int


#: one item of an unlink batch: a plain path, a message file that may be recycled, or a spent envelope
Unlink = Union[str, RecyclableMessage, SpentEnvelope]


def unlink_all(items: list[Unlink], disk: QueueDisk) -> list[str]:
    """
    Remove C{items} (missing ones are fine), keeping what fits in C{disk}'s
    spare pools; then both pools settle.  Returns the paths that could not
    be removed.
    """
    layout, spares, mess_spares = disk.layout, disk.spares, disk.mess_spares
    failed = []
    for item in items:
        if isinstance(item, SpentEnvelope):
            intd = layout.intd(item.message_id)
            try:
                if spares is None or not spares.keep(intd, (layout.dir("todo"),)):
                    os.unlink(intd)
            except FileNotFoundError:
                pass
            except OSError:
                failed.append(intd)
            continue
        if isinstance(item, RecyclableMessage):
            try:
                if mess_spares is not None and mess_spares.keep(item.path, item.dirs):
                    continue
            except FileNotFoundError:
                continue
            path = item.path
        else:
            path = item
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            failed.append(path)
    for pool in (mess_spares, spares):
        if pool is not None:
            pool.settle()
    return failed


def delete_small(disk: QueueDisk, path: str) -> None:
    """Unlink a small queue file (not a message file): into the spares when there are some."""
    if disk.spares is None:
        os.unlink(path)
    else:
        disk.spares.remove(path)


class BatchedUnlinker:
    """
    Unlinks finished messages' files in batches: one batch at a time in
    C{threadpool} (None: at once, in this thread).  Once L{stopping} is set,
    what is left is unlinked in this thread.
    """

    def __init__(self, ctx: SendContext) -> None:
        self.disk = ctx.disk
        self.clock = ctx.clock
        self.threadpool = ctx.threadpool
        self.log = ctx.log
        self.stopping = False
        self._items: list[Unlink] = []
        self._running: defer.Deferred[list[str]] | None = None

    def later(self, *items: Unlink) -> None:
        """Unlink C{items} with the next batch."""
        self._items.extend(items)
        if self.threadpool is None:
            self._report(unlink_all(self._take(), self.disk))
        elif self._running is None:
            self._start()

    def busy(self) -> "defer.Deferred[list[str]] | None":
        """The batch being unlinked in the thread pool, if any."""
        return self._running

    def _start(self) -> None:
        assert self.threadpool is not None
        reactor = cast(IReactorFromThreads, self.clock)  # a thread pool comes with a real reactor
        d: defer.Deferred[list[str]] = threads.deferToThreadPool(
            reactor, self.threadpool, unlink_all, self._take(), self.disk)
        self._running = d

        def done(result: list[str] | Failure) -> None:
            self._running = None
            if isinstance(result, Failure):
                self.log.warning(f"unable to clean up finished messages: {result.getErrorMessage()}")
            else:
                self._report(result)
            if self._items and not self.stopping:
                self._start()
            elif self._items:
                self._report(unlink_all(self._take(), self.disk))

        d.addBoth(done)

    def _take(self) -> list[Unlink]:
        batch, self._items = self._items, []
        return batch

    def _report(self, failed: list[str]) -> None:
        for path in failed:
            self.log.warning(f"unable to clean up {os.path.relpath(path, self.disk.layout.queuedir)}")
