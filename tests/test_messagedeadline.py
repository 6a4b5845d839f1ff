"""MessageDeadline on a task.Clock: timeoutsmtpd whatever the size, then mindatarate; stopped for good."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from pymta.messagedeadline import MessageDeadline


class Deadline(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.expired: list[float] = []

    def deadline(self, seconds: float = 10, min_rate: int = 100) -> MessageDeadline:
        return MessageDeadline(self.clock, seconds, min_rate, lambda: self.expired.append(self.clock.seconds()))

    def test_nothing_before_start(self) -> None:
        d = self.deadline()
        self.clock.advance(1000)
        self.assertEqual((d.due(), self.expired), (None, []))

    def test_seconds_whatever_the_size(self) -> None:
        d = self.deadline()
        self.clock.advance(5)
        d.start()
        d.start()  # once
        self.assertEqual(d.due(), 15)
        self.clock.advance(9.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [15])
        self.clock.advance(100)
        self.assertEqual(self.expired, [15])  # called once

    def test_bytes_at_the_rate_buy_time(self) -> None:
        d = self.deadline()
        d.start()
        for _ in range(15):  # 150 bytes a second for 15 seconds: 2,250 bytes allow 22.5 seconds
            d.received(150)
            self.clock.advance(1)
        self.assertEqual((d.due(), self.expired), (22.5, []))
        self.clock.advance(7.4)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual((d.due(), self.expired), (None, [22.5]))

    def test_no_rate_means_seconds_in_all(self) -> None:
        d = self.deadline(min_rate=0)
        d.start()
        d.received(10**9)
        self.clock.advance(10)
        self.assertEqual(self.expired, [10])

    def test_stopped_for_good(self) -> None:
        d = self.deadline()
        d.start()
        d.stop()
        d.start()
        self.clock.advance(100)
        self.assertEqual((d.due(), self.expired, self.clock.getDelayedCalls()), (None, [], []))
