"""Tests for pymta.queue.disk: the queue on disk as one object."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.disk import QueueDisk, queue_owner
from pymta.queue.layout import QueueLayout


class QueueDiskTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.layout = QueueLayout.for_root(self.root)
        self.layout.create()

    def test_plain_is_qmails_path(self) -> None:
        """The plain disk fsyncs every file and keeps no spare files."""
        disk = QueueDisk.plain(self.layout)
        self.assertEqual(disk.sync.mode, "fsync")
        self.assertIsNone(disk.spares)
        self.assertIsNone(disk.mess_spares)
        self.assertEqual(disk.owner, queue_owner(self.layout))

    def test_queue_manager_disk_has_two_pools(self) -> None:
        """pymta-send's disk shares spare files; message files come back under their own name."""
        disk, warning = QueueDisk.for_queue_manager(self.layout, None)
        self.assertIsNone(warning)
        self.assertEqual(disk.sync.mode, "fsync")
        assert disk.spares is not None and disk.mess_spares is not None
        self.assertFalse(disk.spares.same_name)
        self.assertTrue(disk.mess_spares.same_name)
        self.assertIs(disk.spares.sync, disk.sync)
        self.assertIs(disk.mess_spares.sync, disk.sync)

    def test_queuesync_control_lines(self) -> None:
        """control/queuesync's mode reaches the disk (syncfs where the system has it)."""
        disk, warning = QueueDisk.for_queue_manager(self.layout, ["syncfs"])
        if warning is None:
            self.assertEqual(disk.sync.mode, "syncfs")
        else:
            self.assertIn("control/queuesync", warning)
            self.assertEqual(disk.sync.mode, "fsync")

    def test_owner_only_for_root_with_a_mail_owned_queue(self) -> None:
        """As a non-root process, or with a root-owned queue, no owner is imposed."""
        if os.geteuid() != 0:
            self.assertIsNone(queue_owner(self.layout))
            return
        os.chown(self.layout.queuedir, 0, 0)
        self.assertIsNone(queue_owner(self.layout))
        os.chown(self.layout.queuedir, 12345, 23456)
        self.assertEqual(queue_owner(self.layout), (12345, 23456))
