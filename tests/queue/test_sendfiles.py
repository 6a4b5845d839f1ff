"""Tests for pymta.queue.sendfiles.quarantine_message."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.ctldisk import write_holds
from pymta.queue.sendfiles import quarantine_message
from tests.queue.helpers import disk_for
from tests.queue.test_scheduler import make_root, queue_message


class QuarantineTests(unittest.TestCase):
    def test_a_held_message_takes_its_hold_marker_along(self) -> None:
        root, layout = make_root(self)
        mid = queue_message(layout, "a@mail.example", ["r@dead.example"])
        self.assertEqual(write_holds(disk_for(layout), [mid]), {})
        where = quarantine_message(layout, mid)
        self.assertEqual(sorted(os.listdir(where)), ["hold", "mess", "todo"])
        self.assertFalse(os.path.exists(layout.hold(mid)))  # no marker left for a later life of the id
