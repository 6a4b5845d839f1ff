"""Tests for pymta.queue.syncing: fsyncs run together."""

import os
import threading

from twisted.trial import unittest

from pymta.queue.syncing import fsync_all, run_parallel


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
