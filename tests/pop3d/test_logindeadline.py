"""LoginDeadline with task.Clock: the AUTHORIZATION state's lifetime, a running check finished first."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from pymta.pop3d.logindeadline import LoginDeadline


class Lifetime(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.expired: list[float] = []
        self.deadline = LoginDeadline(self.clock, 120, lambda: self.expired.append(self.clock.seconds()))

    def test_not_started_never_expires(self) -> None:
        self.clock.advance(1000)
        self.assertEqual(self.expired, [])

    def test_expires_once_after_the_period(self) -> None:
        self.deadline.start()
        self.clock.advance(119.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [120])
        self.deadline.release()
        self.clock.advance(1000)
        self.assertEqual(self.expired, [120])

    def test_stopped_by_a_login(self) -> None:
        self.deadline.start()
        self.clock.advance(60)
        self.deadline.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.deadline.start()  # stopped for good
        self.clock.advance(1000)
        self.assertEqual(self.expired, [])

    def test_a_running_check_is_finished_first(self) -> None:
        self.deadline.start()
        self.clock.advance(100)
        self.deadline.hold()
        self.clock.advance(50)  # a slow checkpassword
        self.assertEqual(self.expired, [])
        self.deadline.release()
        self.assertEqual(self.expired, [150])

    def test_a_check_that_logs_in_stops_it(self) -> None:
        self.deadline.start()
        self.clock.advance(100)
        self.deadline.hold()
        self.clock.advance(50)
        self.deadline.stop()  # logged in
        self.deadline.release()
        self.assertEqual(self.expired, [])

    def test_hold_released_in_time_changes_nothing(self) -> None:
        self.deadline.start()
        self.deadline.hold()
        self.clock.advance(10)
        self.deadline.release()
        self.clock.advance(109)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [120])
