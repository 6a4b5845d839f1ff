# -*- test-case-name: tests.queue.test_syncing -*-
"""
fsyncs in parallel, and the queue's sync policy (C{control/queuesync}).

A disk takes several flushes at once far faster than one after the other,
and each C{os.fsync} waits for the disk with the GIL released
(docs/internals.md, "The queue on disk"; the figures are in
benchmarks/README.md).

L{run_parallel} runs a function over a list in a shared pool of
L{SYNC_THREADS} threads and reports each item's OSError; L{fsync_all}
fsyncs descriptors and directories together.  The queue writer uses it for
a message's data file, envelope and directory, preprocessing for a batch's
new files and directories.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

from pymta.control import Controls, entry_error
from pymta.fsutil import fsync_dir

__all__ = [
    "SYNC_THREADS", "run_parallel", "fsync_all", "fsync_each", "submit", "QueueSync", "SYNC_MODES", "syncfs", "filesystem_type",
    "parse_queuesync", "queuesync_mode",
]

#: threads of the shared pool (each mostly waits for the disk)
SYNC_THREADS = 4

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="pymta-fsync")
        return _executor


def run_parallel(f: Callable[[Any], None], items: Sequence[Any]) -> list[OSError | None]:
    """
    C{f(item)} for every item, the first one in the calling thread and the
    others in the shared pool at the same time; the OSError each raised, or
    None, in order.
    """

    def one(item: Any) -> OSError | None:
        try:
            f(item)
        except OSError as e:
            return e
        return None

    if len(items) <= 1:
        return [one(item) for item in items]
    futures = [_pool().submit(one, item) for item in items[1:]]
    first = one(items[0])
    return [first] + [future.result() for future in futures]


def submit(f: Callable[..., Any], *args: Any) -> "Future[Any]":
    """C{f(*args)} in the shared pool, started now; its future.  C{f} must not wait for the pool itself."""
    return _pool().submit(f, *args)


def _sync(target: int | str) -> None:
    if isinstance(target, int):
        os.fsync(target)
    else:
        fsync_dir(target)


def fsync_each(targets: Sequence[int | str]) -> list[OSError | None]:
    """fsync each open descriptor (int) and directory (path) of C{targets}, one after the other."""
    out: list[OSError | None] = []
    for target in targets:
        try:
            _sync(target)
        except OSError as e:
            out.append(e)
        else:
            out.append(None)
    return out


def fsync_all(targets: Sequence[int | str]) -> list[OSError | None]:
    """fsync each open descriptor (int) and directory (path) of C{targets}, all at once."""
    return run_parallel(_sync, targets)


#: the values of control/queuesync
SYNC_MODES = ("fsync", "syncfs")

_libc: Any = None


def syncfs(fd: int) -> None:
    """
    syncfs(2) on the file system holding C{fd}: every dirty file and
    directory written back and the disk's cache flushed, in one call (the
    GIL released meanwhile).  Raises OSError as it reports a write-back
    error (Linux 5.8 and later report them; see L{QueueSync.available}).
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.syncfs(fd) != 0:
        errno_ = ctypes.get_errno()
        raise OSError(errno_, os.strerror(errno_))


#: file systems whose syncfs(2) writes everything back to the disk (others may return
#: without doing so: FUSE before Linux 5.15, overlayfs mounted "volatile", NFS)
SYNCFS_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "tmpfs"})


def filesystem_type(path: str) -> str | None:
    """The type of the file system holding C{path} (from /proc/self/mountinfo), or None when unknown."""
    try:
        st = os.stat(path)
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    found = None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[2] == device and " - " in line:
            found = line.split(" - ", 1)[1].split()[0]  # the last mount of the device wins
    return found


def parse_queuesync(lines: list[str] | None) -> str:
    """
    The mode of control/queuesync's entries (None when the file is absent:
    C{fsync}): C{fsync} or C{syncfs}, on one line.  Anything else is a
    L{ControlError} naming the line (the file's line when C{lines} is the
    L{pymta.control.ControlLines} that L{queuesync_mode} reads).
    """
    if not lines:
        return "fsync"
    wanted = lines[0].strip().lower()
    if wanted not in SYNC_MODES:
        raise entry_error(lines, 0, f"unknown mode {lines[0]!r} (expected {' or '.join(SYNC_MODES)})", "queuesync")
    if len(lines) > 1:
        raise entry_error(lines, 1, f"only one mode is read: this line would be ignored: {lines[1]!r}", "queuesync")
    return wanted


def queuesync_mode(controls: Controls) -> str:
    """The mode C{controls}' control/queuesync asks for; L{ControlError} when it names none."""
    return parse_queuesync(controls.extra_lines("queuesync"))


class QueueSync:
    """
    How the queue makes a batch of changes durable (C{control/queuesync}).

    C{fsync} (the default): every new file, and every directory whose
    entries changed, is fsynced on its own - the fsyncs of a batch in
    parallel.  C{syncfs}: one syncfs(2) of the queue's file system covers
    the whole batch, files and directories alike, at the cost of one flush
    instead of one per file and directory.  It also writes back whatever
    else is dirty on that file system, so it is meant for a queue on a file
    system of its own (or one nothing else writes much to): there a batch
    of a hundred messages costs one flush instead of several hundred.

    syncfs(2) reports a write-back error once, to the first call that
    checks after it happened, on a descriptor opened before it happened -
    whichever batch that call serves.  So every call goes through one
    descriptor opened at start, one at a time, and counts the errors
    reported (L{generation}); a batch samples the count before its first
    write and its L{sync} fails when the count moved since, even if the
    error was reported to another batch's call.
    """

    def __init__(self, queuedir: str, mode: str = "fsync") -> None:
        if mode not in SYNC_MODES:
            raise ValueError(f"unknown queue sync mode {mode!r} (one of {', '.join(SYNC_MODES)})")
        self.queuedir = queuedir
        self.mode = mode
        #: write-back errors syncfs has reported so far
        self.generation = 0
        self._lock = threading.Lock()
        self._fd = -1
        if self.whole_fs:
            try:
                self._fd = os.open(queuedir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                pass  # opened by the first sync, which then counts as an error (see _descriptor)

    @property
    def whole_fs(self) -> bool:
        """True when one L{sync} makes every change on the queue's file system durable."""
        return self.mode == "syncfs"

    def _descriptor(self) -> int:
        """The descriptor syncfs goes through (call with the lock held)."""
        if self._fd < 0:
            self._fd = os.open(self.queuedir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            # opened late: an error reported before now (to anyone) will not be reported to it,
            # so every batch that began before fails, as if that error had been reported here
            self.generation += 1
        return self._fd

    def sync(self, since: int | None = None) -> None:
        """
        syncfs(2) of the queue's file system (C{syncfs} mode only); OSError
        when it fails, or when a write-back error was reported (to any
        call) after the L{generation} C{since} that the caller sampled
        before its first write.
        """
        with self._lock:
            try:
                syncfs(self._descriptor())
            except OSError:
                self.generation += 1
                raise
            if since is not None and since != self.generation:
                raise OSError(errno.EIO, "a write-back error was reported on the queue's file system since this batch began")

    def directories(self, dirs: list[str], since: int | None = None, parallel: bool = True) -> list[OSError | None]:
        """
        Make the entries of C{dirs} durable; the OSError of each, or None.
        C{fsync} mode: every directory fsynced, at once (or one after the
        other unless C{parallel}).  C{syncfs} mode: one L{sync} (C{since}
        as there), which also covers every file written before; its error,
        if any, is every directory's.
        """
        if not dirs:
            return []
        if not self.whole_fs:
            return (fsync_all if parallel else fsync_each)(dirs)
        try:
            self.sync(since)
        except OSError as e:
            return [e] * len(dirs)
        return [None] * len(dirs)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    @staticmethod
    def available(queuedir: str | None = None) -> str | None:
        """None when syncfs(2) can be trusted for C{queuedir} (or on this system at all), else why not."""
        if not sys.platform.startswith("linux"):
            return "syncfs(2) is Linux only"
        try:
            major, minor = (int(x) for x in os.uname().release.split(".")[:2])
        except ValueError:
            return f"unrecognised kernel release {os.uname().release!r}"
        if (major, minor) < (5, 8):
            return "kernels before 5.8 do not report syncfs(2) write-back errors"
        if queuedir is None:
            return None
        kind = filesystem_type(queuedir)
        if kind not in SYNCFS_FILE_SYSTEMS:
            return f"{queuedir} is on a file system of type {kind or 'unknown'}, not one of {', '.join(sorted(SYNCFS_FILE_SYSTEMS))}"
        try:
            device = os.stat(queuedir).st_dev
            for entry in os.scandir(queuedir):
                if entry.is_dir(follow_symlinks=True):
                    paths = [entry.path] + [e.path for e in os.scandir(entry.path) if e.is_dir(follow_symlinks=True)]
                    for path in paths:
                        if os.stat(path).st_dev != device:
                            return f"{path} is on another file system than {queuedir}"
        except OSError as e:
            return f"cannot look at {queuedir}: {e.strerror}"
        return None

    @classmethod
    def from_control(cls, queuedir: str, lines: list[str] | None) -> tuple["QueueSync", str | None]:
        """
        The mode control/queuesync (its lines, None when absent) asks for,
        and a warning when it cannot be had (then C{fsync} is used).  A file
        that names no mode is a L{ControlError} (L{parse_queuesync}).
        """
        wanted = parse_queuesync(lines)
        if wanted == "syncfs":
            why_not = cls.available(queuedir)
            if why_not is not None:
                return cls(queuedir), f"control/queuesync: syncfs unavailable ({why_not}); using fsync"
            sync = cls(queuedir, wanted)
            if sync._fd < 0:
                return cls(queuedir), f"control/queuesync: cannot open {queuedir} for syncfs; using fsync"
            return sync, None
        return cls(queuedir, wanted), None
