"""Tests for pymta.queue.syncing: fsyncs run together."""

import ctypes
import errno
import os
import threading

from twisted.trial import unittest

from pymta.queue import syncing
from pymta.queue.syncing import QueueSync, fsync_all, run_parallel


class RunParallelTests(unittest.SynchronousTestCase):
    def test_results_in_order_with_errors(self) -> None:
        def f(n: int) -> None:
            if n % 2:
                raise OSError(n, "odd")

        results = run_parallel(f, list(range(6)))
        self.assertEqual([None if r is None else r.errno for r in results], [None, 1, None, 3, None, 5])
        self.assertEqual(run_parallel(f, []), [])
        self.assertEqual(run_parallel(f, [2]), [None])

    def test_items_run_at_the_same_time(self) -> None:
        barrier = threading.Barrier(3, timeout=10)
        self.assertEqual(run_parallel(lambda _: barrier.wait(), [1, 2, 3]), [None, None, None])

    def test_other_exceptions_propagate(self) -> None:
        def f(n: int) -> None:
            raise ValueError(n)

        self.assertRaises(ValueError, run_parallel, f, [1, 2])


class FsyncAllTests(unittest.SynchronousTestCase):
    def test_descriptors_and_directories(self) -> None:
        d = self.mktemp()
        os.makedirs(d)
        fd = os.open(os.path.join(d, "f"), os.O_WRONLY | os.O_CREAT, 0o600)
        self.addCleanup(os.close, fd)
        os.write(fd, b"data")
        results = fsync_all([fd, d, os.path.join(d, "missing")])
        self.assertEqual(results[:2], [None, None])
        self.assertIsInstance(results[2], FileNotFoundError)


class QueueSyncTests(unittest.SynchronousTestCase):
    """control/queuesync: an fsync per file and directory, or one syncfs(2) of the queue's file system."""

    def test_modes_from_the_control_file(self) -> None:
        sync, warning = QueueSync.from_control("/q", None)
        self.assertEqual((sync.mode, sync.whole_fs, warning), ("fsync", False, None))
        sync, warning = QueueSync.from_control("/q", ["  SyncFS "])
        if QueueSync.available() is None:
            self.assertEqual((sync.mode, sync.whole_fs, warning), ("syncfs", True, None))
        else:
            self.assertEqual(sync.mode, "fsync")
            self.assertIn("syncfs unavailable", warning)
        sync, warning = QueueSync.from_control("/q", ["fdatasync"])
        self.assertEqual(sync.mode, "fsync")
        self.assertEqual(warning, "control/queuesync: unknown mode 'fdatasync'; using fsync")
        self.assertRaises(ValueError, QueueSync, "/q", "sometimes")

    def test_old_kernels_and_other_systems_are_refused(self) -> None:
        self.patch(syncing.os, "uname", lambda: os.uname_result(("Linux", "h", "5.4.0-1", "#1", "x86_64")))
        self.assertIn("before 5.8", QueueSync.available())
        sync, warning = QueueSync.from_control("/q", ["syncfs"])
        self.assertEqual(sync.mode, "fsync")
        self.assertIn("before 5.8", warning)
        self.patch(syncing.sys, "platform", "freebsd14")
        self.assertIn("Linux only", QueueSync.available())

    def test_sync_writes_back_the_file_system(self) -> None:
        if QueueSync.available() is not None:
            raise unittest.SkipTest(QueueSync.available())
        base = self.mktemp()
        os.makedirs(base)
        QueueSync(base, "syncfs").sync()  # no error on a healthy file system
        self.assertRaises(OSError, QueueSync(os.path.join(base, "missing"), "syncfs").sync)

    def test_syncfs_errors_become_oserror(self) -> None:
        class FailingLibc:
            @staticmethod
            def syncfs(fd: int) -> int:
                ctypes.set_errno(errno.EIO)
                return -1

        self.patch(syncing, "_libc", FailingLibc())
        base = self.mktemp()
        os.makedirs(base)
        with self.assertRaises(OSError) as caught:
            QueueSync(base, "syncfs").sync()
        self.assertEqual(caught.exception.errno, errno.EIO)
