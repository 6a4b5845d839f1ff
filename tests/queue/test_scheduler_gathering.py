"""
Tests for pymta.queue.scheduler with a thread pool: messages whose first
attempt delivered nothing gather (pymta.queue.gathering) and are
preprocessed in one batch; any other waiting message starts a batch at once.
"""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.queue.gathering import GATHER_SECONDS
from pymta.queue.messagestate import Stage
from pymta.queue.qmaillog import QmailLog
from pymta.queue.retry import next_retry
from pymta.queue.scheduler import Scheduler
from pymta.queue.sendfiles import read_channel_file

from tests.queue.helpers import disk_for
from tests.queue.test_queuecontrol_pending import Ctl
from tests.queue.test_scheduler import CollectingSink, RecordingChannel, make_root, queue_message
from tests.queue.test_scheduler_first import commit
from tests.queue.test_spares import HeldPool, ThreadedClock


class GatheringScheduler(unittest.SynchronousTestCase):
    """A scheduler with a held thread pool whose local deliveries all defer."""

    def setUp(self) -> None:
        root, self.layout = make_root(self)
        self.clock = ThreadedClock()
        self.clock.advance(1795000000)
        self.pool = HeldPool()
        self.local = RecordingChannel(answer=lambda job, r: ("Z", "mailbox busy\n"))
        self.events: list[dict] = []
        self.root = root
        self.sink = CollectingSink()
        self.s = self.scheduler()
        self.s.startService()
        self.addCleanup(self.s.stopService)
        self.settle()

    def scheduler(self) -> Scheduler:
        return Scheduler(disk_for(self.layout), ControlReader(self.root),
                         {"local": self.local, "remote": RecordingChannel()}, self.sink, self.clock,
                         log=QmailLog(Logger(observer=self.events.append)), threadpool=self.pool)

    def settle(self) -> None:
        for _ in range(3):
            self.clock.advance(0)
            self.pool.run_all()
        self.clock.advance(0)

    def deferred_first_attempt(self) -> int:
        mid, envelope, size = commit(self.layout, "a@mail.example", ["bob@mail.example"])
        self.s.notify(mid, envelope, size)
        self.settle()
        return mid


class GatheredPreprocessingTests(GatheringScheduler):
    def test_deferred_first_attempts_are_preprocessed_together_on_the_retry_schedule(self) -> None:
        born = int(self.clock.seconds())
        first = self.deferred_first_attempt()
        self.clock.advance(GATHER_SECONDS / 2)
        second = self.deferred_first_attempt()
        self.assertEqual(len(self.local.jobs), 2, "both were tried at once")
        for mid in (first, second):
            self.assertEqual(self.s.messages.stage(mid), Stage.WAITING)
            self.assertTrue(os.path.exists(self.layout.todo(mid)), "todo/ID keeps it meanwhile")
            self.assertFalse(os.path.exists(self.layout.info(mid)))
        self.clock.advance(GATHER_SECONDS / 2)
        self.assertEqual(len(self.pool.calls), 1, "one batch for both")
        self.settle()
        now = born + GATHER_SECONDS
        for mid in (first, second):
            self.assertEqual(self.s.messages.stage(mid), Stage.SCHEDULED)
            self.assertFalse(os.path.exists(self.layout.todo(mid)))
            records = read_channel_file(self.layout.local(mid))
            self.assertEqual([(r.address, r.done) for r in records], [("bob@mail.example", False)])
        self.assertEqual({v.due for v in self.s.jobs()}, {next_retry(now, now, "local")})
        lines = [e["qmail_line"] for e in self.events if "qmail_line" in e]
        self.assertEqual(lines.count("delivery 1: deferral: mailbox_busy/"), 1)

    def test_a_message_found_in_todo_is_preprocessed_at_once_with_the_gathered_ones(self) -> None:
        deferred = self.deferred_first_attempt()
        self.assertEqual(self.s.messages.stage(deferred), Stage.WAITING)
        other = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "carol@mail.example"])
        self.s.scan_todo()
        self.settle()
        for mid in (deferred, other):
            self.assertEqual(self.s.messages.stage(mid), Stage.SCHEDULED, mid)
            self.assertTrue(os.path.exists(self.layout.local(mid)))


class AlarmWhileGatheredTests(GatheringScheduler):
    """
    SIGALRM / C{pymta ctl doqueue} makes every waiting job due now: a
    message still waiting for preprocessing (gathered, or in a batch) when
    it comes is due now once preprocessed, as if preprocessed before it.
    """

    def test_an_alarm_releases_the_gathering_and_the_message_is_tried_at_once(self) -> None:
        mid = self.deferred_first_attempt()
        self.assertEqual(self.s.messages.stage(mid), Stage.WAITING)
        self.s.run_all_now()
        self.settle()
        self.assertFalse(os.path.exists(self.layout.todo(mid)), "preprocessed without waiting for the gathering")
        self.assertEqual(len(self.local.jobs), 2, "the first attempt, then the retry the alarm asked for")
        self.assertEqual(self.s.messages.stage(mid), Stage.SCHEDULED)
        records = read_channel_file(self.layout.local(mid))
        self.assertEqual([(r.address, r.done) for r in records], [("bob@mail.example", False)])
        now = int(self.clock.seconds())
        self.assertEqual([v.due for v in self.s.jobs()], [next_retry(now, now, "local")],
                         "after the retry: on its schedule again")

    def test_a_message_in_a_batch_when_the_alarm_comes_is_tried_once_preprocessed(self) -> None:
        mid = self.deferred_first_attempt()
        self.clock.advance(GATHER_SECONDS)
        self.assertEqual(self.s.messages.stage(mid), Stage.PREPROCESSING)
        self.s.run_all_now()
        self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 1, "nothing to retry before preprocessing")
        self.settle()
        self.assertEqual(len(self.local.jobs), 2)

    def test_without_an_alarm_the_gathered_message_waits_for_its_retry(self) -> None:
        mid = self.deferred_first_attempt()
        self.clock.advance(GATHER_SECONDS)
        self.settle()
        self.assertEqual(self.s.messages.stage(mid), Stage.SCHEDULED)
        self.assertEqual(len(self.local.jobs), 1)

    def test_an_alarm_before_the_first_attempt_came_back_changes_nothing_after(self) -> None:
        self.local.hold = True
        mid, envelope, size = commit(self.layout, "a@mail.example", ["bob@mail.example"])
        self.s.notify(mid, envelope, size)
        self.settle()
        self.assertEqual(self.s.messages.stage(mid), Stage.FIRST_RUNNING)
        self.s.run_all_now()
        self.settle()
        self.local.release("Z", "mailbox busy\n")
        self.settle()
        self.assertEqual(self.s.messages.stage(mid), Stage.WAITING, "gathered: the alarm came before")
        self.clock.advance(GATHER_SECONDS)
        self.settle()
        self.assertEqual(self.s.messages.stage(mid), Stage.SCHEDULED)
        self.assertEqual(len(self.local.jobs), 1, "its attempt was running when the alarm came")


class GatheredMessageStrandsNothing(Ctl, GatheringScheduler):
    """A stop, a kill or a C{pymta ctl} action while a message is gathered."""

    def restarted(self) -> Scheduler:
        """A new scheduler on this queue."""
        s = self.scheduler()
        s.startService()
        self.addCleanup(s.stopService)
        self.settle()
        return s

    def test_a_clean_stop_records_the_gathered_first_attempt(self) -> None:
        mid = self.deferred_first_attempt()
        self.successResultOf(self.s.stopService())
        self.assertFalse(os.path.exists(self.layout.todo(mid)))
        records = read_channel_file(self.layout.local(mid))
        self.assertEqual([(r.address, r.done) for r in records], [("bob@mail.example", False)])
        s = self.restarted()
        self.assertEqual(len(self.local.jobs), 1, "the next start waits for its retry")
        s.run_all_now()
        self.settle()
        self.assertEqual(len(self.local.jobs), 2)

    def test_after_a_kill_the_next_start_preprocesses_todo_and_tries_again(self) -> None:
        mid = self.deferred_first_attempt()
        self.s.exiting = True  # SIGKILL: this scheduler never runs again
        self.assertTrue(os.path.exists(self.layout.todo(mid)), "todo/ID kept it")
        s = self.restarted()
        self.assertEqual(s.messages.stage(mid), Stage.SCHEDULED)
        self.assertFalse(os.path.exists(self.layout.todo(mid)))
        self.assertEqual(len(self.local.jobs), 2, "the attempt that delivered nothing is repeated")

    def test_a_deleted_gathered_message_holds_back_nothing(self) -> None:
        kept = self.deferred_first_attempt()
        deleted = self.deferred_first_attempt()
        self.assertEqual(self.ctl(self.s, "delete", str(deleted))[1], f"msg {deleted}: deleted")
        other = queue_message(self.layout, "a@mail.example", ["carol@mail.example"])
        self.s.scan_todo()
        self.settle()
        for mid in (kept, other):
            self.assertEqual(self.s.messages.stage(mid), Stage.SCHEDULED, mid)
        if other != deleted:  # a message id is an inode number: the new message may have taken it
            self.assertNotIn(deleted, self.s.messages)
        self.assertEqual(len(self.local.jobs), 3, "both first attempts, then the new message")

    def test_a_gathered_message_held_by_ctl_is_held_once_preprocessed_even_after_an_alarm(self) -> None:
        mid = self.deferred_first_attempt()
        self.assertIn("busy; will be held once preprocessed", self.ctl(self.s, "hold", str(mid))[1])
        self.s.run_all_now()
        self.settle()
        self.assertEqual(self.s.messages.stage(mid), Stage.HELD)
        self.assertEqual(len(self.local.jobs), 1, "never attempted while held")
        self.ctl(self.s, "release", str(mid))
        self.settle()
        self.assertEqual(len(self.local.jobs), 2, "released: due now")

    def test_a_gathered_message_bounced_by_ctl_is_bounced_once_preprocessed(self) -> None:
        mid = self.deferred_first_attempt()
        self.assertIn("busy; will be bounced once preprocessed", self.ctl(self.s, "bounce", str(mid))[1])
        self.clock.advance(GATHER_SECONDS)
        self.settle()
        self.assertNotIn(mid, self.s.messages)
        [(_, recipients, _, data)] = self.sink.messages
        self.assertEqual(recipients, ["a@mail.example"])
        self.assertIn(b"<bob@mail.example>:", data)
        self.assertEqual(len(self.local.jobs), 1)
