# -*- test-case-name: tests.queue.test_scheduler_first -*-
"""
The scheduler's first attempts from memory, run: one is planned when new
mail is announced (L{pymta.queue.firstattempt} decides whether it gets
one), started when its channel has a slot, and its verdicts recorded when it
is back - a success that was all finishes the message at once; anything
else waits for preprocessing (L{pymta.queue.todointake}) like any message in
todo/.  L{pymta.queue.scheduler} decides when each step happens.
"""

from __future__ import annotations

from typing import Any, Callable

from pymta.queue.envelope import Envelope
from pymta.queue.finishing import Finisher
from pymta.queue.firstattempt import FirstAttempt, plan_first_attempt
from pymta.queue.gathering import PreprocessGathering
from pymta.queue.messagestate import MessageState, MessageStates, Stage
from pymta.queue.passes import ChannelPasses
from pymta.queue.qmaillog import guard
from pymta.queue.retry import is_dying
from pymta.queue.sendcontext import SendContext
from pymta.queue.todointake import TodoIntake

__all__ = ["FirstAttemptRunner"]


class FirstAttemptRunner:
    """
    Plans, starts and records the first attempts from memory, for the scheduler.

    @param stats: the scheduler's counters (C{first_attempts}, C{messages_done}).
    @param intake: where a first attempt that delivered some is preprocessed at once.
    @param gathering: where one that delivered nothing waits to gather for preprocessing.
    @param finisher: removes the message whose first attempt succeeded.
    @param exiting: whether the scheduler is stopping.
    """

    def __init__(
        self,
        ctx: SendContext,
        messages: MessageStates,
        passes: ChannelPasses,
        stats: dict[str, int],
        intake: TodoIntake,
        gathering: PreprocessGathering,
        finisher: Finisher,
        exiting: Callable[[], bool],
    ) -> None:
        self.log = ctx.log
        self.now = ctx.now
        self.controls = ctx.controls
        self.threadpool = ctx.threadpool
        self.messages = messages
        self.passes = passes
        self.stats = stats
        self.intake = intake
        self.gathering = gathering
        self.finisher = finisher
        self.exiting = exiting

    def plan(self, message_id: int, envelope: Envelope, backlog: int) -> FirstAttempt | None:
        """
        A first attempt for this newly committed message, or None (preprocessed as usual): also
        when C{backlog} first attempts wait or run already.
        """
        if self.messages.count(Stage.FIRST_WAITING, Stage.FIRST_RUNNING) >= backlog:
            return None
        planned: list[FirstAttempt | None] = []
        guard(self.log, f"first attempt of msg {message_id}", lambda: planned.append(plan_first_attempt(
            message_id, envelope, self.controls.current, self.now(), self.passes.batch_size, self.passes.capacity)))
        return planned[0] if planned else None

    def start(self, state: MessageState) -> None:
        """Start the first attempt C{state} waits for (its channel has a slot)."""
        first = state.first
        assert first is not None
        self.messages.move(state.message_id, Stage.FIRST_RUNNING)

        def record(numbers: list[int], results: list[Any]) -> None:
            guard(self.log, f"first attempt of msg {first.message_id}", self._done, state, numbers, results)

        def settled() -> None:
            if self.messages.get(first.message_id) is state and state.stage is Stage.FIRST_RUNNING:
                # it succeeded (or met an internal error: then todo/ID is left to the next scan)
                self.messages.drop(first.message_id)
                if first.succeeded:
                    guard(self.log, f"finishing msg {first.message_id}", self._remove, first.message_id)

        self.passes.launch(first.channel, first.message_id, first.sender, list(first.recipients), record, settled)

    def _done(self, state: MessageState, numbers: list[int], results: list[Any]) -> None:
        first = state.first
        assert first is not None
        self.stats["first_attempts"] += 1
        dying = is_dying(first.since, self.now(), self.controls.current.queuelifetime)
        first.record([self.passes.judged(number, result, dying) for number, result in zip(numbers, results)])
        if first.succeeded:
            return
        self.messages.move(first.message_id, Stage.WAITING)
        if first.delivered_some or self.exiting():
            # a success beside other results goes on disk now, as a pass's checkpoint would (also at a stop)
            self.intake.here([first.message_id])
        elif self.threadpool is not None:  # preprocessed off this thread, gathered (gathering.py)
            self.gathering.hold(state)

    def _remove(self, message_id: int) -> None:
        if self.finisher.remove_first(message_id):
            self.stats["messages_done"] += 1
