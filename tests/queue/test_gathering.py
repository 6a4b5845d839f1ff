"""
Tests for pymta.queue.gathering: messages whose first attempt delivered
nothing gather for one preprocessing batch; anything else starts one at once.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import task
from twisted.trial import unittest

from pymta.queue.gathering import GATHER_SECONDS, PreprocessGathering
from pymta.queue.messagestate import MessageStates, Stage


class GatheringTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.woken = 0
        self.states = MessageStates(("local", "remote"))
        self.gathering = self.make(batch=3)

    def make(self, batch: int, seconds: float = GATHER_SECONDS) -> PreprocessGathering:
        def later(delay: float, f: Callable[[], None]) -> None:
            self.clock.callLater(delay, f)

        return PreprocessGathering(self.clock.seconds, later, self.wake, batch, seconds)

    def wake(self) -> None:
        self.woken += 1

    def deferred(self, message_id: int, gathering: PreprocessGathering | None = None) -> None:
        """C{message_id}'s first attempt came back with nothing delivered: it waits, gathering."""
        (gathering or self.gathering).hold(self.states.add(message_id, Stage.WAITING))

    def test_nothing_waiting_is_not_ready(self) -> None:
        self.assertFalse(self.gathering.ready(self.states))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_deferred_first_attempt_waits_until_due(self) -> None:
        self.deferred(1)
        self.assertFalse(self.gathering.ready(self.states))
        self.clock.advance(GATHER_SECONDS / 2)
        self.deferred(2)
        self.assertFalse(self.gathering.ready(self.states))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1, "one wake-up, at the oldest's time")
        self.clock.advance(GATHER_SECONDS / 2)
        self.assertEqual(self.woken, 1)
        self.assertTrue(self.gathering.ready(self.states))

    def test_a_cancelled_wake_up_is_set_again(self) -> None:
        """The scheduler's stop cancels every timer and disarms the gathering: a later hold-back sets a new wake-up."""
        self.deferred(1)
        self.assertFalse(self.gathering.ready(self.states))
        for call in self.clock.getDelayedCalls():
            call.cancel()
        self.gathering.disarm()
        self.assertFalse(self.gathering.ready(self.states))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(GATHER_SECONDS)
        self.assertEqual(self.woken, 1)

    def test_a_full_batch_starts_at_once(self) -> None:
        for message_id in (1, 2):
            self.deferred(message_id)
        self.assertFalse(self.gathering.ready(self.states))
        self.deferred(3)
        self.assertTrue(self.gathering.ready(self.states))

    def test_another_waiting_message_starts_a_batch_at_once(self) -> None:
        self.deferred(1)
        self.assertFalse(self.gathering.ready(self.states))
        self.states.add(2, Stage.WAITING)  # committed by another process, found by a scan, ...
        self.assertTrue(self.gathering.ready(self.states))

    def test_messages_a_batch_took_no_longer_count(self) -> None:
        self.deferred(1)
        self.deferred(2)
        self.clock.advance(GATHER_SECONDS)
        self.assertTrue(self.gathering.ready(self.states))
        self.assertEqual([s.message_id for s in self.states.start_preprocessing(256)], [1, 2])
        self.assertFalse(self.gathering.ready(self.states))
        self.assertEqual(len(self.gathering), 0)
        self.deferred(3)
        self.assertFalse(self.gathering.ready(self.states), "the new one waits its own time")
        self.clock.advance(GATHER_SECONDS)
        self.assertTrue(self.gathering.ready(self.states))

    def test_no_gathering_on_the_plain_path(self) -> None:
        plain = self.make(batch=256, seconds=0)
        self.deferred(1, plain)
        self.assertTrue(plain.ready(self.states))
        self.assertEqual(len(plain), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
