"""LineDeadline with task.Clock: a period per line, not per byte; holds; the DATA rate."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from pymta.linedeadline import DATA_RATE, LINE, LineDeadline


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.expired: list[tuple[float, str]] = []
        self.deadline = LineDeadline(self.clock, 60, lambda reason: self.expired.append((self.clock.seconds(), reason)))

    def drip(self, data: bytes, every: float, limit: int) -> None:
        """Send C{data} one byte per C{every} seconds until it expires (at most C{limit} bytes)."""
        for i in range(limit):
            if self.expired:
                return
            self.deadline.received(data[i % len(data) : i % len(data) + 1])
            self.clock.advance(every)


class Lines(Base):
    def test_not_started_never_expires(self) -> None:
        self.clock.advance(10_000)
        self.assertEqual(self.expired, [])

    def test_idle_expires_after_the_period(self) -> None:
        self.deadline.restart()
        self.clock.advance(59.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [(1060, LINE)])
        self.clock.advance(1000)
        self.assertEqual(len(self.expired), 1)

    def test_one_byte_per_second_without_line_end_expires_on_time(self) -> None:
        self.deadline.restart()
        self.drip(b"MAIL FROM:<a@example.org> " + b"x" * 200, 1.0, 500)
        self.assertEqual(self.expired, [(1060, LINE)])

    def test_each_line_end_gives_a_new_period(self) -> None:
        self.deadline.restart()
        for _ in range(10):
            self.clock.advance(50)
            self.deadline.received(b"NOOP\r\n")
        self.assertEqual(self.expired, [])
        self.deadline.received(b"NOO")
        self.clock.advance(59)
        self.deadline.received(b"P")
        self.clock.advance(1)
        self.assertEqual(self.expired, [(1560, LINE)])

    def test_timer_is_not_reset_per_chunk(self) -> None:
        self.deadline.restart()
        for _ in range(100):
            self.deadline.received(b"a\n")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_hold_and_release(self) -> None:
        self.deadline.restart()
        self.clock.advance(50)
        hold = self.deadline.hold()
        self.assertTrue(self.deadline.held)
        self.clock.advance(3600)
        self.assertEqual(self.expired, [])
        self.deadline.received(b"pipelined\r\n")  # the next line arrived while the server worked
        hold.release()
        self.assertFalse(self.deadline.held)
        self.clock.advance(59)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [(1000 + 50 + 3600 + 60, LINE)])

    def test_progress_without_hold(self) -> None:
        self.deadline.restart()
        for _ in range(10):  # a long reply the client keeps reading
            self.clock.advance(40)
            self.deadline.progress()
        self.clock.advance(59)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [(1460, LINE)])

    def test_holds_are_counted(self) -> None:
        """A queue buffer draining while a commit is pending does not start the client's clock."""
        self.deadline.restart()
        commit = self.deadline.hold()
        queue_full = self.deadline.hold()
        self.clock.advance(100)
        queue_full.release()
        self.assertTrue(self.deadline.held)
        self.clock.advance(1000)  # the commit takes its time
        self.assertEqual(self.expired, [])
        commit.release()
        self.assertFalse(self.deadline.held)
        self.clock.advance(60)
        self.assertEqual(self.expired, [(1000 + 1100 + 60, LINE)])

    def test_a_hold_released_twice_counts_once(self) -> None:
        self.deadline.restart()
        first = self.deadline.hold()
        second = self.deadline.hold()
        first.release()
        first.release()
        self.assertFalse(first.active)
        self.assertTrue(self.deadline.held)
        self.clock.advance(1000)
        self.assertEqual(self.expired, [])
        second.release()
        self.clock.advance(60)
        self.assertEqual(len(self.expired), 1)

    def test_progress_while_held_changes_nothing(self) -> None:
        self.deadline.restart()
        hold = self.deadline.hold()
        self.deadline.progress()
        self.clock.advance(1000)
        self.assertEqual(self.expired, [])
        hold.release()
        self.clock.advance(60)
        self.assertEqual(self.expired, [(2060, LINE)])

    def test_stop(self) -> None:
        self.deadline.restart()
        self.deadline.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(120)
        self.assertEqual(self.expired, [])

    def test_stopped_for_good(self) -> None:
        """Work finishing after the connection is gone arms no timer (it would keep the session in memory)."""
        self.deadline.restart()
        hold = self.deadline.hold()
        self.deadline.stop()
        hold.release()
        self.deadline.restart()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_shorter_period_rescheduled(self) -> None:
        self.deadline.restart()
        self.deadline.seconds = 5
        self.deadline.restart()
        self.clock.advance(5)
        self.assertEqual(self.expired, [(1005, LINE)])


class DataRate(Base):
    def test_drip_with_line_ends_stopped_by_the_rate(self) -> None:
        self.deadline.start_data(100)
        self.drip(b"x\r\n", 1.0, 1000)  # a line every 3 s: the line period alone never ends it
        self.assertEqual(self.expired, [(1060, DATA_RATE)])

    def test_drip_without_rate_check_lives_on(self) -> None:
        self.deadline.start_data(0)
        self.drip(b"x\r\n", 1.0, 600)
        self.assertEqual(self.expired, [])

    def test_fast_data_earns_time(self) -> None:
        self.deadline.start_data(100)
        self.deadline.received(b"x" * 9999 + b"\n")  # 10,000 bytes: 100 s at 100 bytes/s
        for _ in range(9):
            self.clock.advance(10)
            self.deadline.received(b"\n")
        self.clock.advance(9.9)
        self.assertEqual(self.expired, [])
        self.deadline.received(b"\n")  # 10,010 bytes earn 100.1 s
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(len(self.expired), 1)
        self.assertEqual(self.expired[0][1], DATA_RATE)
        self.assertAlmostEqual(self.expired[0][0], 1100.1)

    def test_slow_link_at_the_rate_passes(self) -> None:
        self.deadline.start_data(100)
        for _ in range(600):  # 10 minutes of 100-byte lines at 101 bytes/s
            self.deadline.received(b"y" * 100 + b"\n")
            self.clock.advance(1)
        self.assertEqual(self.expired, [])

    def test_time_held_does_not_count(self) -> None:
        self.deadline.start_data(100)
        self.clock.advance(30)
        hold = self.deadline.hold()  # the queue cannot take more
        self.clock.advance(1000)
        hold.release()
        self.clock.advance(29)
        self.assertEqual(self.expired, [])
        self.deadline.received(b"\n")
        self.clock.advance(1)
        self.assertEqual(self.expired, [(1000 + 30 + 1000 + 30, DATA_RATE)])

    def test_end_data_returns_to_lines_only(self) -> None:
        self.deadline.start_data(100)
        self.deadline.end_data()
        self.drip(b"x\r\n", 1.0, 200)
        self.assertEqual(self.expired, [])
