"""Finishing spares the looks whose answer the scheduler knows (pymta.queue.finishfacts)."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue import finishing
from pymta.queue.finishfacts import UNKNOWN, FinishFacts, KnownGone
from pymta.queue.reasons import Reason, append_reasons
from tests.queue.test_scheduler import SchedulerTestMixin, queue_message


class FinishFactsTests(unittest.SynchronousTestCase):
    def test_taken_once(self) -> None:
        facts = FinishFacts()
        facts.note(7, KnownGone(channel_files=True))
        self.assertEqual(facts.take(7), KnownGone(channel_files=True))
        self.assertEqual(facts.take(7), UNKNOWN)  # a later finish looks at the disk
        self.assertEqual(len(facts), 0)

    def test_nothing_known_keeps_nothing(self) -> None:
        facts = FinishFacts()
        facts.note(7, KnownGone(reasons=True))
        facts.note(7, UNKNOWN)
        self.assertEqual(len(facts), 0)


class FinishingWithFactsTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.removed: list[int] = []
        plain = finishing.remove_reasons

        def remove_reasons(layout, message_id):  # type: ignore[no-untyped-def]
            self.removed.append(message_id)
            plain(layout, message_id)

        self.patch(finishing, "remove_reasons", remove_reasons)

    def test_deferred_then_delivered_needs_no_unlink_of_its_reasons(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        s = self.start()
        self.assertTrue(os.path.exists(self.layout.reason(mid)))
        self.remote.answer = lambda job, rcpt: ("K", "ok\n")
        self.clock.advance(400)
        # the job's close removed the reason file; finishing knows and does not try again
        self.assertEqual(self.removed, [])
        self.assertFalse(os.path.exists(self.layout.reason(mid)))
        self.assertEqual(self.queue_files(), [])
        self.assertEqual(len(s._finisher.facts), 0)

    def test_message_found_at_start_has_its_reasons_removed(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        layout = self.layout
        s = self.start()
        s.stopService()
        self.assertTrue(os.path.exists(layout.remote(mid)))
        # a line of an earlier life of the id, of the other channel: the job's rewrite keeps it
        append_reasons(s.disk, mid, [Reason("local", "old@mail.example", 1, "old\n")])
        self.remote.answer = lambda job, rcpt: ("K", "ok\n")
        self.start()
        self.clock.advance(400)
        self.assertEqual(self.removed, [mid])
        self.assertFalse(os.path.exists(layout.reason(mid)))
        self.assertEqual(self.queue_files(), [])

    def test_message_of_two_channels_leaves_no_reasons(self) -> None:
        self.local.answer = lambda job, rcpt: ("Z", "mailbox busy\n")
        self.remote.answer = lambda job, rcpt: ("K", "ok\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "carol@other.example"])
        s = self.start()
        self.assertTrue(os.path.exists(self.layout.reason(mid)))
        self.local.answer = lambda job, rcpt: ("K", "ok\n")
        self.clock.advance(400)
        self.assertFalse(os.path.exists(self.layout.reason(mid)))
        self.assertEqual(self.queue_files(), [])
        self.assertEqual(len(s._finisher.facts), 0)

    def test_rewrite_that_removes_the_file_is_known(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start().stopService()
        self.remote.answer = lambda job, rcpt: ("K", "ok\n")
        self.start()
        self.clock.advance(400)
        self.assertEqual(self.removed, [])  # the resumed job's close rewrote the file away
        self.assertFalse(os.path.exists(self.layout.reason(mid)))
        self.assertEqual(self.queue_files(), [])

    def test_a_channel_file_found_again_keeps_the_message(self) -> None:
        # finishing without facts (a message found at start) still looks for channel files
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        s = self.start()
        self.assertEqual(s._finisher.finish(mid), finishing.Finished(finishing.Outcome.GONE))
        self.assertTrue(os.path.exists(self.layout.info(mid)))
