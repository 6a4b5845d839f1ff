"""tests.waiting: the condition waits the other tests use, on a task.Clock where they can be."""

from __future__ import annotations

import subprocess
import sys

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from tests.waiting import eventually, process_ended, wait_until


class EventuallyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ready = False

    def test_fires_at_once_when_already_true(self) -> None:
        self.ready = True
        self.assertIsNone(self.successResultOf(eventually(lambda: self.ready, clock=self.clock)))

    def test_fires_at_the_first_look_after_the_condition_holds(self) -> None:
        d = eventually(lambda: self.ready, timeout=5, clock=self.clock, interval=0.1)
        self.clock.advance(1)
        self.assertNoResult(d)
        self.ready = True
        self.assertNoResult(d)  # not looked at yet
        self.clock.advance(0.1)
        self.successResultOf(d)

    def test_fails_after_the_timeout_naming_what_was_awaited(self) -> None:
        d = eventually(lambda: self.ready, timeout=2, what="the door to open", clock=self.clock, interval=0.5)
        self.clock.pump([0.5] * 3)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        failure = self.failureResultOf(d, AssertionError)
        self.assertEqual(str(failure.value), "timed out after 2 s waiting for the door to open")


class WaitUntilTests(SynchronousTestCase):
    def test_true_once_the_condition_holds(self) -> None:
        calls = []
        self.assertTrue(wait_until(lambda: calls.append(1) or len(calls) == 3, timeout=5, interval=0.001))
        self.assertEqual(len(calls), 3)

    def test_false_after_the_timeout(self) -> None:
        calls = []
        self.assertFalse(wait_until(lambda: calls.append(1), timeout=0.05, interval=0.01))
        self.assertGreater(len(calls), 1)  # looked more than once, and at the deadline


class ProcessEndedTests(SynchronousTestCase):
    def test_running_zombie_and_reaped(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        self.addCleanup(lambda: child.poll() is None and child.kill())
        self.assertFalse(process_ended(child.pid))
        assert child.stdin is not None
        child.stdin.close()  # the child ends; not reaped yet, it is a zombie
        self.assertTrue(wait_until(lambda: process_ended(child.pid), timeout=30))
        child.wait(30)
        self.assertTrue(process_ended(child.pid))
