"""Tests for pymta.queue.syncing: fsyncs run together."""

import ctypes
import errno
import os
import threading

from twisted.trial import unittest

from pymta.control import ControlError, load_controls
from pymta.queue import syncing
from pymta.queue.syncing import QueueSync, fsync_all, parse_queuesync, queuesync_mode, run_parallel
from tests.queue.helpers import script_syncfs


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
        queuedir = self.mktemp()
        os.makedirs(os.path.join(queuedir, "mess", "0"))
        sync, warning = QueueSync.from_control(queuedir, None)
        self.assertEqual((sync.mode, sync.whole_fs, warning), ("fsync", False, None))
        sync, warning = QueueSync.from_control(queuedir, ["  SyncFS "])
        self.addCleanup(sync.close)
        if QueueSync.available(queuedir) is None:
            self.assertEqual((sync.mode, sync.whole_fs, warning), ("syncfs", True, None))
        else:
            self.assertEqual(sync.mode, "fsync")
            self.assertIn("syncfs unavailable", warning)
        error = self.assertRaises(ControlError, QueueSync.from_control, "/q", ["fdatasync"])
        self.assertEqual(str(error), "queuesync:1: unknown mode 'fdatasync' (expected fsync or syncfs)")
        self.assertRaises(ValueError, QueueSync, "/q", "sometimes")

    def test_parse_queuesync(self) -> None:
        self.assertEqual(parse_queuesync(None), "fsync")
        self.assertEqual(parse_queuesync([]), "fsync")
        self.assertEqual(parse_queuesync([" SyncFS"]), "syncfs")
        error = self.assertRaises(ControlError, parse_queuesync, ["fsync", "syncfs"])
        self.assertEqual(str(error), "queuesync:2: only one mode is read: this line would be ignored: 'syncfs'")
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        path = os.path.join(root, "control", "queuesync")
        with open(path, "w") as f:
            f.write("# durability\nsync fs\n")
        error = self.assertRaises(ControlError, queuesync_mode, load_controls(root))
        self.assertEqual(str(error), f"{path}:2: unknown mode 'sync fs' (expected fsync or syncfs)")

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


class SyncfsErrorReportingTests(unittest.SynchronousTestCase):
    """syncfs reports an error once: every batch that began before it must still fail."""

    def setUp(self) -> None:
        self.queuedir = self.mktemp()
        os.makedirs(self.queuedir)
        self.results: list[int] = script_syncfs(self, [])

    def test_an_error_reported_to_one_call_fails_every_batch_that_began_before(self) -> None:
        sync = QueueSync(self.queuedir, "syncfs")
        self.addCleanup(sync.close)
        batch_a = batch_b = sync.generation  # both began writing
        self.results[:] = [1, 0, 0]
        self.assertRaises(OSError, sync.sync, batch_a)  # the error, reported to batch A's call
        with self.assertRaises(OSError) as caught:
            sync.sync(batch_b)  # syncfs itself says 0 now: batch B must fail all the same
        self.assertEqual(caught.exception.errno, errno.EIO)
        batch_c = sync.generation  # began after the error
        sync.sync(batch_c)
        self.assertEqual(self.results, [])

    def test_one_descriptor_opened_at_start(self) -> None:
        sync = QueueSync(self.queuedir, "syncfs")
        self.addCleanup(sync.close)
        opened = sync._fd
        self.assertGreaterEqual(opened, 0)
        self.results[:] = [0, 0]
        sync.sync()
        sync.sync(0)
        self.assertEqual(sync._fd, opened)
        self.assertEqual(QueueSync(self.queuedir)._fd, -1)  # fsync mode keeps nothing open


class SyncfsAvailabilityTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        if QueueSync.available() is not None:
            raise unittest.SkipTest(QueueSync.available())
        self.queuedir = self.mktemp()
        os.makedirs(os.path.join(self.queuedir, "mess", "0"))

    def test_a_local_file_system_is_accepted(self) -> None:
        self.assertEqual(QueueSync.available(self.queuedir), None)

    def test_other_file_system_types_are_refused(self) -> None:
        self.patch(syncing, "filesystem_type", lambda path: "fuse.sshfs")
        self.assertIn("type fuse.sshfs", QueueSync.available(self.queuedir))
        sync, warning = QueueSync.from_control(self.queuedir, ["syncfs"])
        self.assertEqual(sync.mode, "fsync")
        self.assertIn("syncfs unavailable", warning)

    def test_a_queue_directory_on_another_file_system_is_refused(self) -> None:
        elsewhere = "/dev/shm" if os.path.isdir("/dev/shm") else "/proc"
        if os.stat(elsewhere).st_dev == os.stat(self.queuedir).st_dev:
            raise unittest.SkipTest(f"{elsewhere} is on the same file system")
        os.symlink(elsewhere, os.path.join(self.queuedir, "mess", "1"))
        self.assertIn("is on another file system", QueueSync.available(self.queuedir))


class LateDescriptorTests(unittest.SynchronousTestCase):
    def test_a_descriptor_opened_late_counts_as_an_error(self) -> None:
        if QueueSync.available() is not None:
            raise unittest.SkipTest(QueueSync.available())
        queuedir = self.mktemp()
        sync = QueueSync(queuedir, "syncfs")  # nothing to open yet
        self.addCleanup(sync.close)
        before = sync.generation
        os.makedirs(queuedir)
        # errors reported before the open would never reach this descriptor: batches begun before fail
        self.assertRaises(OSError, sync.sync, before)
        sync.sync(sync.generation)

    def test_from_control_falls_back_when_the_queue_cannot_be_opened(self) -> None:
        self.patch(QueueSync, "available", staticmethod(lambda queuedir=None: None))
        sync, warning = QueueSync.from_control(self.mktemp(), ["syncfs"])
        self.assertEqual(sync.mode, "fsync")
        self.assertIn("cannot open", warning)
