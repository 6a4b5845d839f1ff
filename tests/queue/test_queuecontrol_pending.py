"""
Tests for pymta.queue.queuecontrol and pymta.queue.passes: a pending
pymta ctl action (asked for while a delivery is in flight) stops further
deliveries of its message, can be cancelled, and says what it did.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.ctlrequest import CtlRequest
from pymta.queue.ctlserver import answer
from pymta.queue.messagestate import Stage
from pymta.queue.scheduler import Scheduler
from pymta.queue.sendfiles import read_channel_file
from tests.queue.test_scheduler import SchedulerTestMixin, queue_message

THREE = ["r@one.example", "r@two.example", "r@three.example"]


class Ctl:
    def ctl(self, s: Scheduler, command: str, *args: str) -> list[str]:
        return answer(s, CtlRequest(command, args))


class PendingActionLetsThePassRun(Ctl, SchedulerTestMixin, unittest.SynchronousTestCase):
    """A pending action ends the open pass once its deliveries in flight return."""

    controls = {"concurrencyremote": "1\n"}

    def test_pending_hold_stops_further_batches(self) -> None:
        self.remote.hold = True
        mid = queue_message(self.layout, "a@mail.example", THREE)
        s = self.start()
        self.assertEqual(len(self.remote.held), 1)  # one domain in flight, two batches not dispatched
        self.assertIn("busy", self.ctl(s, "hold", str(mid))[1])
        self.remote.release("Z", "still dead\n")
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 1, [j.recipients for j in self.remote.jobs])
        self.assertEqual(s.messages.stage(mid), Stage.HELD)
        # the untried recipients are still to be delivered
        self.assertEqual(sum(1 for r in read_channel_file(self.layout.remote(mid)) if not r.done), 3)
        self.remote.hold = False
        self.remote.answer = lambda job, r: ("Z", "still dead\n")
        self.ctl(s, "release", str(mid))
        self.clock.advance(0)
        tried = sorted(r for j in self.remote.jobs for r in j.recipients)
        self.assertEqual(tried, sorted(THREE + ["r@one.example"]))

    def test_pending_delete_stops_further_batches(self) -> None:
        self.remote.hold = True
        mid = queue_message(self.layout, "a@mail.example", THREE)
        s = self.start()
        self.assertIn("busy", self.ctl(s, "delete", str(mid))[1])
        self.remote.release("K", "ok\n")
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 1, [j.recipients for j in self.remote.jobs])
        self.assertNotIn(mid, s.messages)
        self.assertFalse(os.path.exists(self.layout.mess(mid)))


class PendingActionOtherChannel(Ctl, SchedulerTestMixin, unittest.SynchronousTestCase):
    """No new pass of any channel opens for a message with a pending action."""

    def test_other_channel_opens_no_pass_while_hold_pending(self) -> None:
        self.remote.hold = True
        self.local.answer = lambda job, r: ("Z", "mailbox busy\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "r@dead.example"])
        s = self.start()
        self.assertEqual(len(self.local.jobs), 1)
        self.assertIn("busy", self.ctl(s, "hold", str(mid))[1])
        s.run_all_now()
        self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 1)
        self.remote.release("Z", "still dead\n")
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.HELD)
        self.assertEqual(self.ctl(s, "queue"), ["ok", f"msg {mid} local held", f"msg {mid} remote held"])
        self.assertEqual(len(self.local.jobs), 1)


class Killed(BaseException):
    """Stands for a SIGKILL at this instant: nothing after it runs."""


class HeldBounceInterrupted(Ctl, SchedulerTestMixin, unittest.SynchronousTestCase):
    """The bounce of a held message removes its hold/ID marker last."""

    def test_killed_bounce_of_a_held_message_leaves_it_held(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "connect to 127.0.0.9 failed\n")
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        s = self.start()
        self.assertEqual(self.ctl(s, "hold", str(mid))[1], f"msg {mid}: held")

        def kill(*args: object, **kwargs: object) -> bool:
            raise Killed()

        s.queue_control._checkpoint.record = kill  # type: ignore[method-assign]  # dies before marking anything
        with self.assertRaises(Killed):
            self.ctl(s, "bounce", str(mid))
        self.assertTrue(os.path.exists(self.layout.hold(mid)))
        s2 = self.start()  # the next start, on the same queue
        self.assertEqual(s2.messages.stage(mid), Stage.HELD)

    def test_bounce_of_a_held_message_removes_the_marker(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "connect to 127.0.0.9 failed\n")
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        s = self.start()
        self.ctl(s, "hold", str(mid))
        self.assertEqual(self.ctl(s, "bounce", str(mid))[1], f"msg {mid}: bounced")
        self.clock.advance(0)
        self.assertFalse(os.path.exists(self.layout.hold(mid)))
        self.assertEqual(len(self.sink.messages), 1)


class PendingActionChanges(Ctl, SchedulerTestMixin, unittest.SynchronousTestCase):
    """Release cancels a pending hold; a later action replaces an earlier one; failures are logged."""

    def busy(self) -> tuple[Scheduler, int]:
        self.remote.hold = True
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        return self.start(), mid

    def test_release_cancels_a_pending_hold(self) -> None:
        s, mid = self.busy()
        self.assertIn("busy", self.ctl(s, "hold", str(mid))[1])
        self.assertEqual(self.ctl(s, "release", str(mid))[1:],
                         [f"msg {mid}: released (its pending hold cancelled)",
                          "1 matched: 1 released, 0 after work in flight, 0 left alone"])
        self.assertIn(f"release msg {mid}: pending hold cancelled", self.lines())
        self.remote.release("Z", "still dead\n")
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.SCHEDULED)
        self.assertFalse(os.path.exists(self.layout.hold(mid)))

    def test_a_later_action_replaces_a_pending_one(self) -> None:
        s, mid = self.busy()
        self.ctl(s, "hold", str(mid))
        self.assertEqual(self.ctl(s, "delete", str(mid))[1],
                         f"msg {mid}: busy; will be deleted when its deliveries in flight end (instead of held)")
        self.assertEqual(self.ctl(s, "delete", str(mid))[1],
                         f"msg {mid}: busy; will be deleted when its deliveries in flight end")
        self.remote.release("Z", "still dead\n")
        self.assertNotIn(mid, s.messages)
        self.assertFalse(os.path.exists(self.layout.hold(mid)))

    def test_a_pending_action_that_fails_is_logged_and_the_message_goes_on(self) -> None:
        from pymta.queue import queuecontrol
        s, mid = self.busy()
        self.ctl(s, "hold", str(mid))
        self.patch(queuecontrol, "write_holds", lambda disk, ids: {i: OSError(28, "No space left on device")
                                                                   for i in ids})
        self.remote.release("Z", "still dead\n")
        self.assertIn(f"warning: pending hold: msg {mid}: unable to hold: No space left on device", self.lines())
        self.assertEqual(s.messages.stage(mid), Stage.SCHEDULED)
        self.remote.hold = False
        self.remote.answer = lambda job, r: ("K", "ok\n")
        s.run_all_now()
        self.clock.advance(0)
        self.assertNotIn(mid, s.messages)  # delivered: its job waited again


class HeldIsTheStageAndTheMarker(Ctl, SchedulerTestMixin, unittest.SynchronousTestCase):
    """Whether a message is held is its stage, and on disk its hold/ID marker: nothing else."""

    def test_a_held_message_whose_bounce_stays_partial_stays_held(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "connect to 127.0.0.9 failed\n")
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        s = self.start()
        self.ctl(s, "hold", str(mid))
        s.queue_control._checkpoint.record = lambda *args: False  # type: ignore[method-assign]  # cannot mark
        self.assertIn("bounced in part", self.ctl(s, "bounce", str(mid))[1])
        self.assertEqual(s.messages.stage(mid), Stage.HELD)  # the marker on disk says so
        self.assertTrue(os.path.exists(self.layout.hold(mid)))
