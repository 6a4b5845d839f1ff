"""Tests for pymta.remote.deadhosts: the channels' one rule for the dead-host memory."""

from __future__ import annotations

from twisted.logger import Logger, formatEvent
from twisted.trial import unittest

from pymta.interfaces import DeliveryJob
from pymta.remote.deadhosts import remember, skipped_as_dead
from pymta.remote.tcpto import DeadHostMemory

JOB = DeliveryJob(4242, "mess/1/4242", "a@example.org", ("b@example.net",), (3,))


class _Unreadable:
    def is_dead(self, address: str) -> bool:
        raise OSError("queue/lock/tcpto: Permission denied")


class DeadHostsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.events: list[dict] = []
        self.log = Logger(namespace="pymta.remote", observer=self.events.append)
        self.path = self.mktemp()
        self.memory = DeadHostMemory(self.path, clock=lambda: 1_000_000.0)

    def test_a_dead_address_is_skipped_and_logged(self) -> None:
        # dead: timeouts at least two minutes apart, the last one recent (qmail-tcpto's rule)
        DeadHostMemory(self.path, clock=lambda: 1_000_000.0 - 200).record_timeout("192.0.2.1")
        self.memory.record_timeout("192.0.2.1")
        self.assertTrue(skipped_as_dead(self.memory, self.log, JOB, "192.0.2.1"))
        self.assertEqual([formatEvent(e) for e in self.events],
                         ["msg 4242 delivery 3: 192.0.2.1 is marked dead (no answer lately); not tried"])
        self.assertEqual(self.events[0]["message_id"], 4242)

    def test_a_live_address_is_tried_quietly(self) -> None:
        self.assertFalse(skipped_as_dead(self.memory, self.log, JOB, "192.0.2.2"))
        self.assertEqual(self.events, [])

    def test_an_unreadable_table_skips_nothing(self) -> None:
        self.assertFalse(skipped_as_dead(_Unreadable(), self.log, JOB, "192.0.2.1"))  # type: ignore[arg-type]  # a stand-in memory

    def test_an_unwritable_table_is_logged_and_the_delivery_goes_on(self) -> None:
        def update(address: str) -> None:
            raise OSError(13, "Permission denied")

        remember(self.log, update, "192.0.2.1")
        self.assertEqual([formatEvent(e) for e in self.events],
                         ["cannot update the dead-host memory: [Errno 13] Permission denied"])

    def test_an_update_is_made(self) -> None:
        remember(self.log, self.memory.record_timeout, "192.0.2.1")
        self.assertEqual([e.address for e in self.memory.entries()], ["192.0.2.1"])
