# -*- test-case-name: tests.queue.test_service -*-
"""
The C{lock/trigger} FIFO (see docs/internals.md, 'The trigger'): queue writers in other processes
write one byte into it after each commit; pymta-send watches it with the
reactor and scans C{todo/} when it becomes readable.

The FIFO is opened for reading with C{O_NONBLOCK}, and once more for
writing by ourselves, so the read side never sees end-of-file (which would
make it readable forever) while no writer is around.  Should that second
open fail, end-of-file makes the listener close and reopen the FIFO.
"""

from __future__ import annotations

import errno
import os
from typing import Callable

from twisted.application.service import Service
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.main import CONNECTION_DONE
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["TriggerListener"]

log = Logger(namespace="pymta.send")


@implementer(IReadDescriptor)
class _FifoReader:
    def __init__(self, read_fd: int, on_pull: Callable[[], None], on_eof: Callable[[], None]) -> None:
        self.read_fd = read_fd
        self.on_pull = on_pull
        self.on_eof = on_eof

    def fileno(self) -> int:
        return self.read_fd

    def logPrefix(self) -> str:
        return "pymta-trigger"

    # the reactor takes the exception itself, as from Twisted's own tcp doRead; IReadDescriptor names only Failure
    def doRead(self) -> ConnectionDone | None:  # type: ignore[override]
        pulled = False
        eof = False
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
                eof = True
                break
            pulled = True
            if len(data) < 4096:
                break
        if pulled:
            self.on_pull()
        if eof:
            # every writer is gone (possible only if we hold no write end): the reactor drops us
            return CONNECTION_DONE
        return None

    def connectionLost(self, reason: Failure) -> None:
        os.close(self.read_fd)
        self.on_eof()


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
        self._open()

    def _open(self) -> None:
        try:
            read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            log.warn("{qmail_line}", qmail_line=f"warning: unable to open trigger {self.path}: {e.strerror}")
            return
        if self._write_fd is None:
            try:
                self._write_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                self._write_fd = None
        self._reader = _FifoReader(read_fd, self.on_pull, self._reopen)
        self.reactor.addReader(self._reader)

    def _reopen(self) -> None:
        """After end-of-file: open the FIFO again (qmail reopens it before each scan)."""
        self._reader = None
        if self.running:
            self.reactor.callLater(0.1, self._reopen_if_running)

    def _reopen_if_running(self) -> None:
        if self.running and self._reader is None:
            self._open()

    def stopService(self) -> None:
        super().stopService()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            self.reactor.removeReader(reader)
            os.close(reader.read_fd)
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
