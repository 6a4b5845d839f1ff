"""pymta.queue.entrysync: the early path's two fsyncs, in the sync pool, owning what they touch."""

import os

from twisted.trial import unittest

from pymta.queue import syncing
from pymta.queue.entrysync import EntrySync


class EntrySyncTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def open_file(self) -> int:
        return os.open(os.path.join(self.dir, "envelope"), os.O_WRONLY | os.O_CREAT, 0o644)

    def test_both_fsynced_and_the_descriptor_closed(self) -> None:
        synced: list = []
        real_sync = syncing._sync
        self.patch(syncing, "_sync", lambda target: (synced.append(target), real_sync(target)))
        fd = self.open_file()
        self.assertEqual(EntrySync(fd, self.dir).wait(), (None, None))
        self.assertEqual(sorted(synced, key=str), sorted([fd, self.dir], key=str))
        self.assertRaises(OSError, os.fstat, fd)  # closed by its fsync's thread (and not reused meanwhile here)

    def test_errors_reported_per_target(self) -> None:
        fd = self.open_file()
        missing = os.path.join(self.dir, "gone")
        intd_error, dir_error = EntrySync(fd, missing).wait()
        self.assertIsNone(intd_error)
        self.assertIsInstance(dir_error, FileNotFoundError)

    def test_a_pool_that_takes_no_work_closes_the_descriptor(self) -> None:
        def refuse(*args: object) -> None:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

        self.patch(syncing, "submit", refuse)
        from pymta.queue import entrysync
        self.patch(entrysync, "submit", refuse)
        fd = self.open_file()
        self.assertRaises(RuntimeError, EntrySync, fd, self.dir)
        self.assertRaises(OSError, os.fstat, fd)
