# -*- test-case-name: tests.queue.test_spares -*-
"""
Spare queue inodes: the files of finished messages kept for reuse, an
optimisation over qmail's plain path (create every file, delete it when
done; L{pymta.queue.disk.QueueDisk.plain} has no pools).

On qmail's plain path every message creates and deletes four inodes in the
queue (mess, intd/todo, info, local or remote).  ext4's inode allocator
skips every recently deleted inode of the block group, looking each one up,
so under a steady load each creation scans many of them (docs/internals.md,
"The queue on disk").  L{SparePool} takes that churn away: instead of
unlinking C{intd/ID}, C{info/N/ID} and the channel files of a finished
message, the queue manager renames them to C{pid/spare.<pid>.<n>}; new
envelope, info and channel files are then made from a spare (truncated,
re-moded, rewritten and fsynced, then linked to their name) when there is
one, and created as on the plain path when there is none.

Message files have a pool of their own (C{same_name}): their inode number
is the message id, so a recycled one comes back as the same C{mess/N/ID}
under a new message.  It is reused only once the removal of every other
name of the old message (todo, intd, info, channel files) is durable; the
removal from C{mess/N} itself need not be, since a crash could bring back
only that same name.  Messages that had a bounce file are not recycled.
That pool hands its files out one C{mess/N} at a time (the directory of the
previous one while it has any), so the messages committed together mostly
share one C{mess/N} and the group commit fsyncs one directory instead of
one per message.

Safety:
 - a spare is taken under an exclusive C{flock} and only when it has no
   other name (C{st_nlink == 1}), so a file the cleaner removed meanwhile,
   or one that is still linked somewhere, is never used;
 - a spare's old content is cut off before anything is written, and the new
   name becomes durable only by the directory fsync that already follows
   the file's own fsync, exactly as for a new file;
 - spares live in C{pid/}, so after a crash (or when the pool is dropped)
   L{pymta.queue.cleaner.clean_queue} removes them like any unlocked pid
   file; nothing else ever looks at them.

Thread-safe: the scheduler (reactor thread), the preprocessing thread and
the commit threads share one pool.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import secrets
import threading
from collections import deque

from pymta.fsutil import write_all
from pymta.queue.layout import QueueLayout
from pymta.queue.syncing import QueueSync

__all__ = ["SparePool", "SPARE_PREFIX", "create_file", "fill_file"]

SPARE_PREFIX = "spare."

#: spare names: one sequence for every pool of the process, and a token telling this process
#: from an earlier one that had the same pid
_NAMES = itertools.count(1)
_PROCESS_TOKEN = secrets.token_hex(4)

#: spares kept at most (tiny files: a few MB of disk at most)
DEFAULT_LIMIT = 2048

#: L{SparePool.settle} fsyncs only when fewer spares than this are usable (and at least
#: L{SETTLE_MIN} wait) ...
SETTLE_LOW_WATER = 64
#: ... or this many wait: one round of directory fsyncs then serves hundreds of messages
SETTLE_BATCH = 256
#: spares waiting before a settle below the low water mark.  Under a steady load every message
#: takes one spare and gives one back, so the usable count stays where it is; settling at
#: every return would keep it below the mark at the cost of two directory fsyncs per message.
#: Waiting for a few lets new files be created meanwhile, which grows the pool past the mark.
SETTLE_MIN = 32


class SparePool:
    """Spare inodes of one queue, kept under C{pid/}; at most C{limit} of them."""

    def __init__(
        self, layout: QueueLayout, limit: int = DEFAULT_LIMIT, same_name: bool = False, sync: QueueSync | None = None
    ) -> None:
        self.layout = layout
        self.limit = limit
        #: how L{settle} makes removals durable: an fsync per directory (the default), or the queue's syncfs
        self.sync = sync if sync is not None else QueueSync(layout.queuedir)
        #: syncfs mode: the queue's sync error count when the pool began.  A spare depends on
        #: removals that may lie far back (a message file on the removal of its todo/ at
        #: preprocessing), so once any write-back error has been reported, no settle succeeds
        #: again and every spare is deleted instead of reused (until pymta-send restarts)
        self._since = self.sync.generation
        #: message files: a spare always comes back under the name it left (its inode number is the
        #: message id, hence C{mess/N/ID} again), so if a crash undid its removal, the old name would
        #: only name the new message's file; its own directory need not be fsynced before reuse
        self.same_name = same_name
        self._dir = layout.dir("pid")
        #: usable spares by the directory they came from (message files: C{mess/N}; others: one
        #: group).  Spares are handed out from one group until it is empty, so the messages
        #: committed together share a C{mess/N} directory and its fsync (see L{_pop_open})
        self._names: dict[str, deque[str]] = {}
        self._usable = 0
        self._current = ""
        #: kept, not yet usable: (spare name, directories whose removals must be durable first, group)
        self._pending: list[tuple[str, tuple[str, ...], str]] = []
        self._lock = threading.Lock()
        self.reused = 0
        self.kept = 0

    def __len__(self) -> int:
        return self._usable + len(self._pending)

    @property
    def usable(self) -> int:
        """Spares L{take} may hand out now (the others wait for L{settle})."""
        return self._usable

    def keep(self, path: str, dirs: tuple[str, ...] = ()) -> bool:
        """
        Move the file C{path} (which must have no other name) into the pool
        instead of deleting it.  Returns False, having changed nothing, when
        the pool is full or the rename fails: the caller then unlinks it.
        FileNotFoundError when C{path} does not exist.  The spare becomes
        usable after the next L{settle}, which first makes the removal of
        C{path} (and whatever else was removed from C{dirs}) durable.
        """
        spare = self.park(path)
        if spare is None:
            return False
        if self.same_name:
            self.add(spare, dirs, group=os.path.dirname(path))
        else:
            self.add(spare, (os.path.dirname(path), *dirs))
        return True

    def park(self, path: str) -> str | None:
        """
        Rename C{path} to a spare name, not yet usable (for a file that still
        has another name to remove first); L{add} then offers it.  None
        when the pool is full or the rename fails (nothing changed).
        """
        if len(self) >= self.limit:
            return None
        # names unique to this process and pool-independent: rename() would silently
        # replace an existing spare, and two pools would then share one inode
        spare = os.path.join(self._dir, f"{SPARE_PREFIX}{os.getpid()}.{_PROCESS_TOKEN}.{next(_NAMES)}")
        try:
            os.rename(path, spare)
        except FileNotFoundError:
            raise
        except OSError:
            return None
        return spare

    def add(self, spare: str, dirs: tuple[str, ...], group: str = "") -> None:
        """
        Offer a L{park}ed file for reuse once the removals from C{dirs} are
        durable (L{settle}); C{group} is the directory its reuse will put it
        in again, if that is known (message files).
        """
        with self._lock:
            self._pending.append((spare, dirs, group))
            self.kept += 1

    def settle(self, force: bool = False) -> None:
        """
        fsync the directories the pending spares were removed from, then
        make those spares usable.  Without this, a crash could bring an old
        name back (on ext4 without a journal directory changes reach the
        disk in no particular order) pointing at a file that meanwhile holds
        another message's data.  A spare whose directory cannot be fsynced
        is deleted instead.  Called from a worker thread, a batch at a time.
        Unless C{force}d, nothing is done while fewer than L{SETTLE_MIN}
        spares wait, nor while at least L{SETTLE_LOW_WATER} are usable and
        fewer than L{SETTLE_BATCH} wait, so the fsyncs are shared by many
        spares.
        """
        with self._lock:
            waiting = len(self._pending)
            if not force and (
                waiting < SETTLE_MIN or (self._usable >= SETTLE_LOW_WATER and waiting < SETTLE_BATCH)
            ):
                return
            pending, self._pending = self._pending, []
        if not pending:
            return
        dirs = sorted({d for _, ds, _ in pending for d in ds})
        errors = self.sync.directories(dirs, self._since, parallel=False)
        failed = {d for d, error in zip(dirs, errors) if error is not None}
        usable = []
        for spare, spare_dirs, group in pending:
            if failed.intersection(spare_dirs):
                _unlink_quietly(spare)
            else:
                usable.append((spare, group))
        with self._lock:
            for spare, group in usable:
                self._names.setdefault(group, deque()).append(spare)
            self._usable += len(usable)

    def remove(self, path: str) -> None:
        """Delete C{path} - into the pool when it has room; FileNotFoundError when it is gone."""
        if not self.keep(path):
            os.unlink(path)

    def take(self, path: str, mode: int) -> int | None:
        """
        Give a spare the name C{path} (which must not exist) and return a
        descriptor open for writing on it at offset 0, with C{mode}; None
        when no spare is usable (the caller creates the file).  The old
        content is still there: the caller writes with L{fill_file}, which
        cuts off what is left of it (cheaper than emptying the file first,
        which frees its blocks only for the write to allocate them again).
        Raises FileExistsError when C{path} exists (the spare stays in the
        pool).
        """
        while True:
            taken = self._pop_open()
            if taken is None:
                return None
            fd, spare, group = taken
            try:
                os.fchmod(fd, mode)
                os.link(spare, path)
            except FileExistsError:
                os.close(fd)
                with self._lock:
                    self._names.setdefault(group, deque()).appendleft(spare)
                    self._usable += 1
                raise
            except OSError:
                os.close(fd)
                _unlink_quietly(spare)
                continue
            _unlink_quietly(spare)
            self.reused += 1
            return fd

    def _pop_open(self) -> tuple[int, str, str] | None:
        """
        The next usable spare, open (L{_open}) and out of the pool:
        C{(fd, name, group)}; None when there is none.  Spares come from the
        group of the previous one while it has any, then from the largest
        group: message files taken one after another share a C{mess/N}.
        """
        while True:
            with self._lock:
                if not self._usable:
                    return None
                group = self._current
                names = self._names.get(group)
                if not names:
                    group = max(self._names, key=lambda g: len(self._names[g]))
                    names = self._names[group]
                    self._current = group
                spare = names.popleft()
                if not names:
                    del self._names[group]
                self._usable -= 1
            fd = self._open(spare)
            if fd is not None:
                return fd, spare, group

    def _open(self, spare: str) -> int | None:
        try:
            fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            # someone holds it: the cleaner removing it, or a delivery still reading a
            # message file (the spawner's shared lock); never reused, freed when closed
            os.close(fd)
            _unlink_quietly(spare)
            return None
        if os.fstat(fd).st_nlink != 1:
            # removed by the cleaner meanwhile, or still linked elsewhere: not ours to reuse
            os.close(fd)
            _unlink_quietly(spare)
            return None
        return fd

    def take_open(self) -> tuple[int, str] | None:
        """
        A usable spare for the caller to link where it wants: C{(fd, name)},
        the descriptor open for writing at offset 0 (old content still there:
        the caller truncates) and holding the spare's exclusive C{flock};
        the caller links C{name} to the file's new name and unlinks C{name}.
        None when there is no usable spare.
        """
        taken = self._pop_open()
        if taken is None:
            return None
        self.reused += 1
        fd, spare, _ = taken
        return fd, spare

    def clear(self) -> None:
        """Delete every spare (at shutdown)."""
        with self._lock:
            names = [spare for group in self._names.values() for spare in group]
            names += [spare for spare, _, _ in self._pending]
            self._names, self._usable = {}, 0
            self._pending = []
        for name in names:
            _unlink_quietly(name)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def fill_file(fd: int, data: bytes) -> None:
    """Write C{data} at the start of a file from L{create_file} and cut off anything beyond it."""
    write_all(fd, data)
    if os.fstat(fd).st_size > len(data):
        os.ftruncate(fd, len(data))


def create_file(path: str, mode: int, spares: SparePool | None, owner: tuple[int, int] | None = None) -> int:
    """
    A new file at C{path} (which must not exist; FileExistsError otherwise),
    open for writing at offset 0: a spare from C{spares} when there is one,
    else a fresh file created with C{O_EXCL} and given to C{owner}.  The
    caller writes it with L{fill_file}, fsyncs and closes it.
    """
    if spares is not None:
        fd = spares.take(path, mode)
        if fd is not None:
            return fd
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd
