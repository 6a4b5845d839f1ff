"""Tests for pymta.queue.reasonbook: the reason C{pymta ctl queue} shows for a job."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.ctlrequest import CtlRequest
from pymta.queue.ctlserver import answer
from pymta.queue.reasons import Reason, append_reasons, remove_reasons
from tests.queue.helpers import disk_for
from tests.queue.test_scheduler import SchedulerTestMixin, queue_message


class StaleReasonInCtlQueue(SchedulerTestMixin, unittest.SynchronousTestCase):
    """A reason older than the message (an earlier life of its id) is not shown, as in qread."""

    def test_ctl_queue_ignores_reasons_older_than_the_message(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "new life: connect failed\n")
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        s = self.start()
        s.stopService()
        birth = int(os.stat(self.layout.info(mid)).st_mtime)
        remove_reasons(self.layout, mid)
        append_reasons(disk_for(self.layout), mid,
                       [Reason("remote", "r@dead.example", birth - 3600, "OLD LIFE: 550 for someone else\n")])
        s2 = self.start()
        queue = "\n".join(answer(s2, CtlRequest("queue")))
        self.assertIn(f"msg {mid} remote", queue)
        self.assertNotIn("OLD LIFE", queue)

    def test_ctl_queue_shows_a_reason_of_this_life_after_a_restart(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "connect to 127.0.0.9 failed\n")
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        self.start().stopService()
        queue = "\n".join(answer(self.start(), CtlRequest("queue")))
        self.assertIn("connect to 127.0.0.9 failed", queue)
