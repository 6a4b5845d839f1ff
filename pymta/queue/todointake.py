# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The scheduler's intake of todo/: one batch of waiting messages preprocessed
(in the thread pool when there is one, else in the reactor's thread), and
what the batch produced applied to the message states - quarantined, tried
again later, finished, held, or scheduled on its channels with a first
attempt's verdicts recorded.  L{pymta.queue.scheduler} decides when a batch
runs (L{pymta.queue.gathering} when it is worth one);
L{pymta.queue.preprocessing} does the disk work.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

from pymta.queue.messagestate import Later, MessageState, MessageStates, Stage
from pymta.queue.passes import ChannelPasses
from pymta.queue.preprocess import BatchResult
from pymta.queue.preprocessing import Preprocessor
from pymta.queue.qmaillog import guard
from pymta.queue.queuecontrol import QueueControl
from pymta.queue.sendcontext import SendContext

__all__ = ["TodoIntake"]


class TodoIntake:
    """
    Preprocessing batches of todo/ and their results, for the scheduler.

    @param batch_size: how many todo/ entries one batch takes at most.
    @param in_flight: the scheduler's work under way: a batch in the pool is in it while it runs.
    @param retry_later: C{(message_id, Later)}: a failure of the moment, tried again later.
    @param kick: run the scheduler's loop soon.
    @ivar running: a batch is being preprocessed in the thread pool.
    """

    def __init__(
        self,
        ctx: SendContext,
        messages: MessageStates,
        passes: ChannelPasses,
        queue_control: QueueControl,
        batch_size: int,
        in_flight: set[defer.Deferred],
        retry_later: Callable[[int, Later], None],
        kick: Callable[[], None],
    ) -> None:
        self.log = ctx.log
        self.now = ctx.now
        self.threadpool = ctx.threadpool
        self.messages = messages
        self.passes = passes
        self.queue_control = queue_control
        self.batch_size = batch_size
        self.in_flight = in_flight
        self.retry_later = retry_later
        self.kick = kick
        self.preprocessor = Preprocessor(ctx)
        self.running = False
        #: messages waiting for preprocessing when SIGALRM came: due now once preprocessed (L{alarm})
        self._alarmed: dict[int, MessageState] = {}

    def alarm(self) -> None:
        """
        SIGALRM / C{pymta ctl doqueue}: every message still waiting for
        preprocessing (or in a batch) has its jobs due now once preprocessed,
        as if it had been preprocessed before - its first attempt's retry
        is not waited for.  One whose first attempt is running is not among
        them, as a delivery in flight is no waiting job.
        """
        self._alarmed = {i: s for i, s in self._alarmed.items() if self.messages.get(i) is s}
        for state in self.messages.in_stage(Stage.WAITING, Stage.PREPROCESSING):
            self._alarmed[state.message_id] = state
        for state in self.messages.in_stage(Stage.LATER):
            if state.later is Later.PREPROCESS:
                self._alarmed[state.message_id] = state

    def preprocess(self) -> None:
        """Preprocess one batch of todo/ - here, or in the thread pool when there is one."""
        if self.running:
            return
        batch = sorted(s.message_id for s in self.messages.start_preprocessing(self.batch_size))
        if not batch:
            return
        if self.threadpool is None:
            self._batch_here(batch)
            return
        try:
            d = self.preprocessor.in_pool(batch, *self.messages.take_known(batch))
        except Exception:
            self._settle_batch(batch, None)
            raise
        self.running = True
        self.in_flight.add(d)

        def done(result: BatchResult | Failure) -> None:
            self.in_flight.discard(d)
            self.running = False
            if isinstance(result, Failure):
                self.log.alert(f"preprocessing failed: {result.getErrorMessage()}; will try again later")
                for message_id in batch:
                    self.retry_later(message_id, Later.PREPROCESS)
                self._settle_batch(batch, None)
            else:
                guard(self.log, "preprocessing results", self._apply_batch, result)
                self._settle_batch(batch, result)
            self.kick()

        d.addBoth(done)

    def here(self, message_ids: list[int]) -> None:
        """Preprocess these waiting messages in this (the reactor's) thread, now."""
        for message_id in message_ids:
            self.messages.move(message_id, Stage.PREPROCESSING)
        self._batch_here(message_ids)

    def _batch_here(self, batch: list[int]) -> None:
        try:
            result = self.preprocessor.here(batch, *self.messages.take_known(batch))
        except Exception:
            self._settle_batch(batch, None)
            raise
        try:
            self._apply_batch(result)
        finally:
            self._settle_batch(batch, result)

    def _apply_batch(self, result: BatchResult) -> None:
        """Quarantine, retry or schedule what a preprocessing batch produced."""
        for message_id, reason in result.corrupt:
            self.passes.quarantine(message_id, reason)
        for message_id, reason in result.trouble:
            self.log.warning(f"trouble with todo/{message_id}: {reason}; will try again later")
            self.retry_later(message_id, Later.PREPROCESS)
        now = self.now()
        for item in result.done:
            state = self.messages.get(item.message_id)
            first = state.first if state is not None else None
            alarmed = state is not None and self._alarmed.pop(item.message_id, None) is state
            if not item.channels:
                self.messages.move(item.message_id, Stage.FINISH_QUEUED)
                continue
            if item.held and self.queue_control.resumed(item.message_id, dict.fromkeys(item.channels, now)):
                continue  # queued held (a filter's quarantine): waits for pymta ctl release
            state = self.messages.move(item.message_id, Stage.SCHEDULED)
            state.birth = now  # preprocessing gave the info file the scheduler's time, a moment ago
            attempted = first.channel if first is not None and first.channel in item.channels else None
            # every other channel's job first: recording the attempt may close its own job, and the
            # message is finished only when that was the last
            for channel in item.channels:
                if channel != attempted:
                    self.passes.add_job(state, channel, now)
            if first is not None and attempted is not None:
                recorded = guard(self.log, f"recording the first attempt of msg {item.message_id}",
                                 self.passes.record_first, state, first, now)
                if not recorded and state.stage is Stage.SCHEDULED and attempted not in state.jobs:
                    self.passes.add_job(state, attempted, now)
            if alarmed and state.stage is Stage.SCHEDULED:
                self.passes.due_now(state, now)
            self.queue_control.settle(state)

    def _settle_batch(self, batch: list[int], result: BatchResult | None) -> None:
        """
        What a batch did not move on: a message whose todo/ID was gone is forgotten with its first
        attempt (its id can come back); after an internal error (C{result} None: in preprocessing,
        else in applying it) the rest is tried again later, keeping a first attempt's verdicts (a
        success is recorded, never repeated), a preprocessed one resumed from its channel files.
        """
        found = set() if result is None else result.found()
        done = set() if result is None else {item.message_id for item in result.done}
        for message_id in batch:
            if self.messages.stage(message_id) is not Stage.PREPROCESSING:
                continue
            if result is not None and message_id not in found:
                self.messages.drop(message_id)
            else:
                self.retry_later(message_id, Later.RESUME if message_id in done else Later.PREPROCESS)
