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
from tests.queue.test_scheduler import CollectingSink, RecordingChannel, make_root, queue_message
from tests.queue.test_scheduler_first import commit
from tests.queue.test_spares import HeldPool, ThreadedClock


class GatheredPreprocessingTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        root, self.layout = make_root(self)
        self.clock = ThreadedClock()
        self.clock.advance(1795000000)
        self.pool = HeldPool()
        self.local = RecordingChannel(answer=lambda job, r: ("Z", "mailbox busy\n"))
        self.events: list[dict] = []
        self.s = Scheduler(disk_for(self.layout), ControlReader(root),
                           {"local": self.local, "remote": RecordingChannel()}, CollectingSink(), self.clock,
                           log=QmailLog(Logger(observer=self.events.append)), threadpool=self.pool)
        self.s.startService()
        self.addCleanup(self.s.stopService)
        self.settle()

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
