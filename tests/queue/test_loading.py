"""
Tests for pymta.queue.loading: at start the preprocessed messages are
resumed a slice per clock turn; new mail is taken and delivered while a
big queue loads, and every deferred message whose time has come is tried.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.ctlrequest import CtlRequest
from pymta.queue.ctlserver import answer
from pymta.queue.layout import QueueLayout
from pymta.queue.messagestate import Stage
from pymta.queue.scheduler import Scheduler
from tests.queue.test_scheduler import START, SchedulerTestMixin, queue_message
from tests.queue.test_scheduler_first import commit


def write_deferred(layout: QueueLayout, count: int, due: int) -> list[int]:
    """C{count} preprocessed messages, each with one remote recipient whose next attempt is C{due}."""
    ids = []
    for n in range(count):
        message_id = queue_message(layout, "a@mail.example", [])
        os.unlink(layout.todo(message_id))
        with open(layout.info(message_id), "wb") as f:
            f.write(b"Fa@mail.example\0")
        os.utime(layout.info(message_id), (START - 600, START - 600))
        with open(layout.remote(message_id), "wb") as f:
            f.write(b"Tr%d@other.example\0" % n)
        os.utime(layout.remote(message_id), (due, due))
        ids.append(message_id)
    return ids


class LoadingTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"concurrencyremote": "3\n"}

    def starting(self, slice_size: int) -> Scheduler:
        """A scheduler started with loads of C{slice_size} messages; the clock is not turned yet."""
        s = self.make_scheduler()
        s.loader.slice_size = slice_size
        s.startService()
        self.addCleanup(s.stopService)
        return s

    def test_small_queue_loads_at_once(self) -> None:
        """A queue within one slice is loaded by startService itself, as before slices."""
        ids = write_deferred(self.layout, 3, START + 3600)
        s = self.starting(slice_size=100)
        self.assertFalse(s.loader.loading)
        self.assertEqual(s.loader.slices, 1)
        self.assertEqual(sorted(j.message_id for j in s.jobs()), sorted(ids))

    def test_new_mail_is_delivered_while_the_queue_loads(self) -> None:
        write_deferred(self.layout, 60, START + 3600)
        s = self.starting(slice_size=4)
        self.assertTrue(s.loader.loading)
        self.assertLess(len(s.messages), 60)
        loading_at_delivery = []
        answer = self.remote.answer

        def noting(job, rcpt):
            loading_at_delivery.append((rcpt, s.loader.loading))
            return answer(job, rcpt)

        self.remote.answer = noting
        new = queue_message(self.layout, "a@mail.example", ["new@other.example"])
        s.notify(new)
        self.clock.advance(0)
        self.assertEqual(loading_at_delivery, [("new@other.example", True)])
        self.assertFalse(s.loader.loading)
        self.assertGreater(s.loader.slices, 10)
        # the deferred ones wait for their time, each loaded once; the new one is gone
        self.assertEqual(len(s.jobs()), 60)
        self.assertNotIn(new, s.messages)
        self.assertIn(f"end msg {new}", self.lines())

    def test_every_due_message_is_tried(self) -> None:
        """Deferred messages whose time has passed are all tried as they are loaded: none is starved."""
        ids = write_deferred(self.layout, 40, START - 10)
        self.remote.answer = lambda job, rcpt: ("Z", "try later\n")
        s = self.starting(slice_size=7)
        self.clock.advance(0)
        self.assertFalse(s.loader.loading)
        self.assertEqual(sorted(job.message_id for job in self.remote.jobs), sorted(ids))
        # and each waits for its next retry, none tried twice
        self.assertEqual(len(self.remote.jobs), 40)
        self.assertTrue(all(v.due > START for v in s.jobs()))
        # deferred again, each rests as a compact record until its next retry
        self.assertEqual(s.messages.resting(), 40)

    def test_a_stop_writes_resting_messages_retry_times(self) -> None:
        ids = write_deferred(self.layout, 6, START - 10)
        self.remote.answer = lambda job, rcpt: ("Z", "try later\n")
        s = self.starting(slice_size=4)
        self.clock.advance(0)
        self.assertEqual(s.messages.resting(), 6)
        due = {v.message_id: v.due for v in s.jobs()}
        self.assertTrue(all(d > START for d in due.values()))
        self.successResultOf(s.stopService())
        self.assertEqual({i: int(os.stat(self.layout.remote(i)).st_mtime) for i in ids}, due)
        self.assertEqual(s.messages.resting(), 6)  # read, not woken

    def test_slices_after_the_first_are_bounded_in_time(self) -> None:
        write_deferred(self.layout, 30, START + 3600)
        ticks = iter(range(10**6))
        s = self.make_scheduler()
        s.loader.slice_size = 10
        s.loader.slice_seconds = 3.0
        s.loader.timer = lambda: float(next(ticks))  # a second passes at each look at the time
        s.startService()
        self.addCleanup(s.stopService)
        first = len(s.messages)
        self.assertLessEqual(first, 10)  # the first slice: bounded by its size only
        self.clock.advance(0)
        self.assertFalse(s.loader.loading)
        self.assertEqual(len(s.messages), 30)
        # each later slice stops after three steps (a listing or a resumed message): 53 steps in all,
        # where slices bounded by their size alone would be 4
        self.assertGreater(s.loader.slices, 10)

    def test_a_stop_ends_the_load(self) -> None:
        write_deferred(self.layout, 30, START + 3600)
        s = self.starting(slice_size=4)
        loaded = len(s.messages)
        self.successResultOf(s.stopService())
        self.clock.advance(0)
        self.assertFalse(s.loader.loading)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(s.messages), loaded)

    def test_a_resting_message_is_tried_at_its_time(self) -> None:
        [mid] = write_deferred(self.layout, 1, START + 100)
        s = self.starting(slice_size=10)
        self.clock.advance(0)
        self.assertEqual((s.messages.resting(), self.remote.jobs), (1, []))
        self.assertEqual([(v.message_id, v.due) for v in s.jobs()], [(mid, START + 100)])
        self.assertEqual(s.messages.resting(), 1)  # pymta ctl queue does not wake it
        self.clock.advance(99)
        self.assertEqual(self.remote.jobs, [])
        self.clock.advance(1)
        self.assertEqual([job.message_id for job in self.remote.jobs], [mid])
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual((len(s.messages), self.queue_files()), (0, []))

    def test_a_ctl_selection_wakes_only_what_it_acts_on(self) -> None:
        ids = write_deferred(self.layout, 5, START + 3600)
        s = self.starting(slice_size=100)
        self.assertEqual(s.messages.resting(), 5)
        self.assertEqual(answer(s, CtlRequest("hold", ("--recipient", "r3@other.example")))[1],
                         f"msg {ids[3]}: held")
        self.assertEqual((s.messages.stage(ids[3]), s.messages.resting()), (Stage.HELD, 4))
        self.assertEqual(answer(s, CtlRequest("release", (str(ids[3]),)))[1], f"msg {ids[3]}: released")
        self.assertEqual(s.messages.stage(ids[3]), Stage.SCHEDULED)


class NewMailFirstTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"concurrencyremote": "1\n"}

    def test_new_mail_takes_turns_with_a_backlog_of_due_retries(self) -> None:
        """One slot, 20 deferred messages due: a new message's first attempt is the second delivery, not the 21st."""
        write_deferred(self.layout, 20, START - 10)
        self.remote.hold = True
        s = self.start()
        self.addCleanup(s.stopService)
        self.assertEqual(len(self.remote.held), 1)
        mid, envelope, size = commit(self.layout, "a@mail.example", ["new@other.example"])
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        order = []
        while self.remote.held:
            order += [r for job, _ in self.remote.held for r in job.recipients]
            self.remote.release("Z", "later\n")
            self.clock.advance(0)
        self.assertEqual(len(order), 21)
        self.assertEqual(order.index("new@other.example"), 1)
