"""
Tests for pymta.queue.scheduler: a first attempt's verdicts and the message
itself survive the unusual paths between the attempt and its preprocessing
(a reload that reroutes, an internal error), and the state map's indexes
stay bounded.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial import unittest

from pymta.interfaces import DeliveryResult
from pymta.queue import preprocess as preprocess_module
from pymta.queue.messagestate import Stage
from pymta.queue.preprocessing import Preprocessor
from pymta.queue.sendfiles import read_channel_file

from tests.queue.test_scheduler import RecordingChannel, write_control
from tests.queue.test_scheduler_first import FirstAttemptMixin, commit


class RerouteBeforePreprocessing(FirstAttemptMixin, unittest.SynchronousTestCase):
    def test_bounce_is_sent_when_routing_changed_before_preprocessing(self) -> None:
        """
        Two remote recipients fail in a first attempt; before its preprocessing
        a reload routes one of them to a local user: the recorded failure and
        the new local delivery both happen, and the message is finished with
        its bounce (recording the attempt closes its channel's job while the
        other channel's job still runs).
        """
        self.remote = RecordingChannel(max_recipients=10, hold=True)
        s = self.start()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["a@far.example", "b@far.example"])
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        [(_, d)] = self.remote.held
        self.remote.held = []
        d.callback([DeliveryResult("D", "no such user a\n"), DeliveryResult("D", "no such user b\n")])
        self.assertEqual(s.messages.stage(mid), Stage.WAITING)
        write_control(self.root, "virtualdomains", "a@far.example:alice\n")
        self.assertTrue(s.reload())
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(self.local.recipients(), ["alice-a@far.example"])
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(len(self.sink.messages), 1)
        self.assertNotIn(mid, s.messages)
        self.assertFalse([line for line in self.lines() if "internal error" in line])


class InternalErrorWhileRecordingAPartialSuccess(FirstAttemptMixin, unittest.SynchronousTestCase):
    expect_internal_errors = True

    def test_a_success_is_not_repeated_after_an_internal_error(self) -> None:
        """
        A first attempt with a success beside a deferral is preprocessed at
        once; when that preprocessing meets an internal error, the verdicts
        stay with the message, and the next try records the success instead
        of delivering it again.
        """
        real = preprocess_module.preprocess_batch
        calls: list[list[int]] = []

        def flaky(disk: Any, ids: Any, controls: Any, **kw: Any) -> Any:
            calls.append(list(ids))
            if len(calls) == 1:
                raise ValueError("a bug, once")
            return real(disk, ids, controls, **kw)

        self.patch(preprocess_module, "preprocess_batch", flaky)
        self.remote = RecordingChannel(max_recipients=10, hold=True)
        s = self.start()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["u1@far.example", "u2@far.example"])
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        [(_, d)] = self.remote.held
        self.remote.held = []
        d.callback([DeliveryResult("K", "accepted u1\n"), DeliveryResult("Z", "try later\n")])
        self.assertTrue(any("internal error" in line for line in self.lines()))
        self.assertEqual(s.messages.stage(mid), Stage.LATER)
        self.remote.hold = False
        self.clock.advance(130)  # past SYSFAIL_DELAY: preprocessed again, the verdicts recorded
        self.clock.advance(0)
        records = read_channel_file(self.layout.remote(mid)) if os.path.exists(self.layout.remote(mid)) else []
        self.assertEqual([(r.address, r.done) for r in records], [("u1@far.example", True), ("u2@far.example", False)])
        delivered = [r for job in self.remote.jobs for r in job.recipients]
        self.assertEqual(delivered.count("u1@far.example"), 1, delivered)

    def test_a_pool_batch_that_cannot_start_is_tried_again(self) -> None:
        """A batch whose thread-pool run cannot even start is not left in preprocessing for ever."""
        s = self.start()

        def broken(*args: Any) -> Any:
            raise RuntimeError("no pool")

        self.patch(Preprocessor, "in_pool", broken)
        s._intake.threadpool = object()  # type: ignore[assignment]  # only its presence is read before in_pool
        mid, _, _ = commit(self.layout, "a@mail.example", ["u1@far.example", "u2@mail.example"])
        s.notify(mid)
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.LATER)
        self.assertTrue(any("internal error in preprocessing" in line for line in self.lines()))


class IndexesStayBounded(FirstAttemptMixin, unittest.SynchronousTestCase):
    def test_partial_successes_leave_a_bounded_index(self) -> None:
        """Messages leaving the waiting stage outside its FIFO do not make the FIFO grow without bound."""
        self.remote = RecordingChannel(max_recipients=10)
        self.remote.answer = lambda job, r: ("K", "ok\n") if r.startswith("u1") else ("Z", "later\n")
        s = self.start()
        for _ in range(400):
            mid, envelope, size = commit(self.layout, "a@mail.example", ["u1@far.example", "u2@far.example"])
            s.notify(mid, envelope, size)
            self.clock.advance(0)
        self.assertEqual(s.messages.count(Stage.WAITING), 0)
        self.assertLessEqual(s.messages.index_length(), 2 * len(s.messages) + 64 + 1)
