# -*- test-case-name: tests.queue.test_disk -*-
"""
The queue on disk, as one object: where its files are (L{QueueLayout}),
whom the files a root process creates belong to, how a batch of changes is
made durable (C{control/queuesync}, L{QueueSync}) and, optionally, the
spare files that finished messages leave for new ones (L{SparePool}).

Every writer and the queue manager take one L{QueueDisk} instead of these
four things one by one.  L{QueueDisk.plain} is qmail's plain path: every
file and directory fsynced on its own, every file created new and removed
when done.  L{QueueDisk.for_queue_manager} is what pymta-send runs with: the
sync mode from C{control/queuesync} and spare files shared by the queue
writer and the scheduler (see docs/internals.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pymta.queue.layout import QueueLayout
from pymta.queue.spares import SparePool
from pymta.queue.syncing import QueueSync

__all__ = ["QueueDisk", "queue_owner"]


def queue_owner(layout: QueueLayout) -> tuple[int, int] | None:
    """
    When running as root, the owner of the queue directory (unless root):
    files a root process creates in the queue are given to it, so the queue
    manager (running as that owner) can still use them.  None otherwise.
    """
    if os.geteuid() != 0:
        return None
    try:
        st = os.stat(layout.queuedir)
    except OSError:
        return None
    if (st.st_uid, st.st_gid) == (0, 0):
        return None
    return st.st_uid, st.st_gid


@dataclass(frozen=True)
class QueueDisk:
    """
    One queue directory as the code that writes and reads it sees it.

    @ivar layout: the queue's paths.
    @ivar sync: how a batch is made durable (an fsync per file and directory, or one syncfs).
    @ivar owner: C{(uid, gid)} given to new files when running as root, or None.
    @ivar spares: spare inodes for the small queue files (envelope, info, channel
        files); None creates and removes every one.
    @ivar mess_spares: spare message files (their inode numbers become message
        ids again); None creates and removes every one.
    """

    layout: QueueLayout
    sync: QueueSync
    owner: tuple[int, int] | None = None
    spares: SparePool | None = None
    mess_spares: SparePool | None = None

    @property
    def new_file_owner(self) -> tuple[int, int] | None:
        """
        Whom a file created now is given to: L{owner} while this process is
        root, None once it runs as the queue's owner itself (pymta-send
        after twistd dropped root), when there is nothing to give away.
        """
        return self.owner if os.geteuid() == 0 else None

    @classmethod
    def plain(cls, layout: QueueLayout) -> "QueueDisk":
        """qmail's write path: an fsync per file and directory, no spare files."""
        return cls(layout, QueueSync(layout.queuedir), queue_owner(layout))

    @classmethod
    def for_queue_manager(cls, layout: QueueLayout, queuesync: list[str] | None) -> "tuple[QueueDisk, str | None]":
        """
        The disk pymta-send uses: the sync mode named by C{control/queuesync}'s
        lines (None: no such file) and spare files for the queue writer and the scheduler to share.
        Returns the disk and a warning to log (or None), as
        L{QueueSync.from_control} does.
        """
        sync, warning = QueueSync.from_control(layout.queuedir, queuesync)
        spares = SparePool(layout, sync=sync)
        # message files come back under their own name (their inode number is the id): a pool of their own
        mess_spares = SparePool(layout, same_name=True, sync=sync)
        return cls(layout, sync, queue_owner(layout), spares, mess_spares), warning

    def clear_spares(self) -> None:
        """Delete every spare file (at start and stop: spares are never left for another process)."""
        for pool in (self.spares, self.mess_spares):
            if pool is not None:
                pool.clear()
