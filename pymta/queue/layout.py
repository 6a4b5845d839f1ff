# -*- test-case-name: tests.queue.test_layout -*-
"""
The queue's directory layout, as qmail has it (see docs/internals.md, 'Queue layout').

::

    ROOT/queue/split        the subdirectory split chosen at init (default 23)
    ROOT/queue/pid/         temporary files while a writer obtains its inode number
    ROOT/queue/mess/N/ID    message bodies (ID = inode number, N = ID % split)
    ROOT/queue/intd/ID      envelopes being written
    ROOT/queue/todo/ID      committed envelopes (link of intd/ID)
    ROOT/queue/info/N/ID    F<sender>\\0; its mtime is the message's birth
    ROOT/queue/local/N/ID   T<rcpt>\\0 / D<rcpt>\\0 records, local channel
    ROOT/queue/remote/N/ID  same for the remote channel
    ROOT/queue/bounce/ID    accumulated permanent-failure text
    ROOT/queue/reason/N/ID  the last error of each waiting recipient (pymta's own)
    ROOT/queue/hold/ID      empty: the message is held (pymta ctl hold)
    ROOT/queue/quarantine/  queue files that could not be parsed
    ROOT/queue/lock/        sendmutex, trigger (FIFO), tcpto
"""

from __future__ import annotations

import os
import stat

__all__ = ["QueueLayout", "DEFAULT_SPLIT"]

DEFAULT_SPLIT = 23
SPLIT_DIRS = ("mess", "info", "local", "remote", "reason")
FLAT_DIRS = ("pid", "intd", "todo", "bounce", "quarantine", "lock", "hold")


class QueueLayout:
    """Paths inside C{ROOT/queue}; C{split} is read from C{queue/split}."""

    def __init__(self, queuedir: str, split: int | None = None) -> None:
        self.queuedir = queuedir
        if split is None:
            split = self._read_split()
        self.split = split
        # each message's paths are a fixed prefix and its id: joined once here, not per message
        #: C{"mess": ("ROOT/queue/mess/0/", ...), ...}: one prefix per subdirectory of a split directory
        self._split_prefixes = {name: tuple(os.path.join(queuedir, name, str(n), "") for n in range(split))
                                for name in SPLIT_DIRS}
        self._mess, self._info = self._split_prefixes["mess"], self._split_prefixes["info"]
        self._intd, self._todo = os.path.join(queuedir, "intd", ""), os.path.join(queuedir, "todo", "")

    @classmethod
    def for_root(cls, root: str) -> "QueueLayout":
        return cls(os.path.join(root, "queue"))

    def _read_split(self) -> int:
        try:
            with open(os.path.join(self.queuedir, "split"), "rb") as f:
                value = f.read().strip()
        except FileNotFoundError:
            return DEFAULT_SPLIT
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{self.queuedir}/split: expected a positive number, found {value!r}")
        return int(value)

    def create(self, uid: int = -1, gid: int = -1) -> None:
        """Make every directory (and the trigger FIFO); existing ones are left alone."""
        os.makedirs(self.queuedir, mode=0o750, exist_ok=True)
        splitfile = os.path.join(self.queuedir, "split")
        if not os.path.exists(splitfile):
            with open(splitfile, "w") as f:
                f.write(f"{self.split}\n")
        for name in FLAT_DIRS:
            self._mkdir(os.path.join(self.queuedir, name), uid, gid)
        for name in SPLIT_DIRS:
            top = os.path.join(self.queuedir, name)
            self._mkdir(top, uid, gid)
            for n in range(self.split):
                self._mkdir(os.path.join(top, str(n)), uid, gid)
        trigger = self.trigger_path()
        if not os.path.exists(trigger):
            os.mkfifo(trigger, 0o622)
            os.chmod(trigger, 0o622)
            if uid != -1 or gid != -1:
                os.chown(trigger, uid, gid)
        for path in (self.queuedir, splitfile):
            if uid != -1 or gid != -1:
                os.chown(path, uid, gid)

    @staticmethod
    def _mkdir(path: str, uid: int, gid: int) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise
            return
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid)

    def subdir(self, message_id: int) -> str:
        return str(message_id % self.split)

    def mess(self, message_id: int) -> str:
        return self._mess[message_id % self.split] + str(message_id)

    def info(self, message_id: int) -> str:
        return self._info[message_id % self.split] + str(message_id)

    def local(self, message_id: int) -> str:
        return self._split_prefixes["local"][message_id % self.split] + str(message_id)

    def remote(self, message_id: int) -> str:
        return self._split_prefixes["remote"][message_id % self.split] + str(message_id)

    def channel(self, name: str, message_id: int) -> str:
        """C{local} or C{remote} recipient file of a message."""
        if name not in ("local", "remote"):
            raise ValueError(name)
        return self._split_prefixes[name][message_id % self.split] + str(message_id)

    def reason(self, message_id: int) -> str:
        """Why the message's recipients wait (L{pymta.queue.reasons}); not a qmail file."""
        return self._split_prefixes["reason"][message_id % self.split] + str(message_id)

    def intd(self, message_id: int) -> str:
        return self._intd + str(message_id)

    def todo(self, message_id: int) -> str:
        return self._todo + str(message_id)

    def bounce(self, message_id: int) -> str:
        return os.path.join(self.queuedir, "bounce", str(message_id))

    def hold(self, message_id: int) -> str:
        return os.path.join(self.queuedir, "hold", str(message_id))

    def dir(self, name: str) -> str:
        """A top-level queue directory by name (C{pid}, C{todo}, C{mess}, ...)."""
        return os.path.join(self.queuedir, name)

    def trigger_path(self) -> str:
        return os.path.join(self.queuedir, "lock", "trigger")

    def lock_path(self, name: str) -> str:
        return os.path.join(self.queuedir, "lock", name)
