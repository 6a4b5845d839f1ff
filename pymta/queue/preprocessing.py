# -*- test-case-name: tests.queue.test_scheduler -*-
"""
Running L{preprocess_batch} for pymta-send: in the reactor thread, or in the
thread pool so that a batch's fsyncs do not stall the reactor.  Either way
C{new msg} and C{info msg} are logged once per message (not again for one
whose first attempt logged them already), and the DSN data of each message
done goes into the L{pymta.queue.dsnbook.DsnBook}, before the scheduler
applies the batch's result.
"""

from __future__ import annotations

from typing import Collection, Mapping, cast

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorFromThreads

from pymta.queue import preprocess
from pymta.queue.envelope import Envelope
from pymta.queue.preprocess import BatchResult
from pymta.queue.sendfiles import TodoEnvelope
from pymta.queue.sendcontext import SendContext

__all__ = ["Preprocessor"]


class Preprocessor:
    """Preprocesses batches of the queue on C{disk} (see the module docstring)."""

    def __init__(self, ctx: SendContext) -> None:
        self.disk = ctx.disk
        self.controls = ctx.controls
        self.clock = ctx.clock
        self.threadpool = ctx.threadpool
        self.log = ctx.log
        self.dsn = ctx.dsn

    def here(self, batch: list[int], known: Mapping[int, tuple[Envelope, int]], logged: Collection[int]) -> BatchResult:
        """Preprocess C{batch} now, in this thread (C{known}: envelopes not to read back; C{logged}: ids not to log)."""

        def on_new(message_id: int) -> None:
            if message_id not in logged:
                self.log.new_msg(message_id)

        def on_info(message_id: int, envelope: TodoEnvelope, size: int) -> None:
            if message_id not in logged:
                self.log.info_msg(message_id, envelope, size)

        return self._noted(preprocess.preprocess_batch(
            self.disk, batch, self.controls.current, log=preprocess.PreprocessLog(on_new, on_info),
            now=int(self.clock.seconds()), known=known,
        ))

    def _noted(self, result: BatchResult) -> BatchResult:
        """The book learns the DSN data of the messages done (in this, the reactor's, thread)."""
        for item in result.done:
            self.dsn.preprocessed(item.message_id, item.dsn)
        return result

    def in_pool(self, batch: list[int], known: Mapping[int, tuple[Envelope, int]],
                logged: Collection[int]) -> "defer.Deferred[BatchResult]":
        """Preprocess C{batch} in the thread pool; the log lines are written in this thread once it is done."""
        assert self.threadpool is not None
        reactor = cast(IReactorFromThreads, self.clock)  # a thread pool comes with a real reactor
        d: defer.Deferred[BatchResult] = threads.deferToThreadPool(
            reactor, self.threadpool, preprocess.preprocess_batch, self.disk, batch, self.controls.current,
            now=int(self.clock.seconds()), known=known,
        )

        def log_lines(result: BatchResult) -> BatchResult:
            for item in result.done:
                if item.message_id not in logged:
                    self.log.new_msg(item.message_id)
                    self.log.info_msg(item.message_id, item.envelope, item.size)
            return self._noted(result)

        return d.addCallback(log_lines)
