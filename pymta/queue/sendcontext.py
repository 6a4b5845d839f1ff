# -*- test-case-name: tests.queue.test_scheduler -*-
"""
What every part of pymta-send works with, as one object: the queue on disk,
the control files, the clock, the qmail log and the thread pool that takes
blocking disk work off the reactor.  The scheduler makes one and hands it to
each collaborator (L{pymta.queue.passes}, L{pymta.queue.finishing},
L{pymta.queue.preprocessing}, L{pymta.queue.checkpoint},
L{pymta.queue.unlinking}, L{pymta.queue.queuecontrol},
L{pymta.queue.reasonbook}) instead of the same four or five parameters
each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime
from twisted.python.threadpool import ThreadPool

from pymta.control import ControlReader
from pymta.queue.disk import QueueDisk
from pymta.queue.dsnbook import DsnBook
from pymta.queue.finishfacts import FinishFacts
from pymta.queue.qmaillog import QmailLog

__all__ = ["SendContext"]


@dataclass(frozen=True)
class SendContext:
    """
    @ivar disk: the queue (layout, sync policy, owner, spare pools).
    @ivar controls: the control reader (C{current} is read at each decision).
    @ivar clock: the reactor, or a L{twisted.internet.task.Clock} in tests.
    @ivar log: qmail-send's log lines.
    @ivar threadpool: where preprocessing and unlinking run; None runs them
        in the reactor thread (tests with a Clock).
    @ivar dsn: the DSN data of the messages that have some (in memory).
    @ivar finishing: what is known to be gone of messages waiting to be finished.
    """

    disk: QueueDisk
    controls: ControlReader
    clock: IReactorTime
    log: QmailLog
    threadpool: ThreadPool | None = None
    dsn: DsnBook = field(default_factory=DsnBook)
    finishing: FinishFacts = field(default_factory=FinishFacts)

    def now(self) -> int:
        """The clock's time in whole seconds, as the queue's file times are."""
        return int(self.clock.seconds())
