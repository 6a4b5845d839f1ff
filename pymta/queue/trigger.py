# -*- test-case-name: tests.queue.test_service -*-
"""
The C{lock/trigger} FIFO (reference §1.5): queue writers in other processes
write one byte into it after each commit; pymta-send watches it with the
reactor and scans C{todo/} when it becomes readable.

The FIFO is opened for reading with C{O_NONBLOCK}, and once more for
writing by ourselves, so the read side never sees end-of-file (which would
make it readable forever) while no writer is around.
"""

from __future__ import annotations

import errno
import os
from typing import Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["TriggerListener"]

log = Logger(namespace="pymta.send")


@implementer(IReadDescriptor)
class _FifoReader:
    def __init__(self, read_fd: int, on_pull: Callable[[], None]) -> None:
        self.read_fd = read_fd
        self.on_pull = on_pull

    def fileno(self) -> int:
        return self.read_fd

    def logPrefix(self) -> str:
        return "pymta-trigger"

    def doRead(self) -> None:
        pulled = False
        while True:
            try:
                data = os.read(self.read_fd, 4096)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if not data:
                break
            pulled = True
            if len(data) < 4096:
                break
        if pulled:
            self.on_pull()

    def connectionLost(self, reason: Failure) -> None:
        pass


class TriggerListener(Service):
    """Calls C{on_pull()} whenever someone writes into the trigger FIFO at C{path}."""

    def __init__(self, path: str, on_pull: Callable[[], None], reactor) -> None:
        self.path = path
        self.on_pull = on_pull
        self.reactor = reactor
        self._reader: _FifoReader | None = None
        self._write_fd: int | None = None

    def startService(self) -> None:
        super().startService()
        try:
            read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            log.warn("{qmail_line}", qmail_line=f"warning: unable to open trigger {self.path}: {e.strerror}")
            return
        try:
            self._write_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            self._write_fd = None
        self._reader = _FifoReader(read_fd, self.on_pull)
        self.reactor.addReader(self._reader)

    def stopService(self) -> None:
        super().stopService()
        if self._reader is not None:
            self.reactor.removeReader(self._reader)
            os.close(self._reader.read_fd)
            self._reader = None
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
