"""Tests for pymta.remote.tcpto (dead-host memory)."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.remote import tcpto


class DeadHostMemoryTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "queue", "lock"))
        self.now = 1_000_000.0
        self.memory = tcpto.DeadHostMemory(tcpto.tcpto_path(self.root), clock=lambda: self.now, pid=0)

    def test_two_spaced_timeouts_make_a_host_dead(self) -> None:
        self.memory.record_timeout("192.0.2.1")
        self.assertFalse(self.memory.is_dead("192.0.2.1"))
        self.now += 60
        self.memory.record_timeout("192.0.2.1")  # within 120 s: not counted
        self.assertFalse(self.memory.is_dead("192.0.2.1"))
        self.now += 120
        self.memory.record_timeout("192.0.2.1")
        self.assertTrue(self.memory.is_dead("192.0.2.1"))
        self.assertFalse(self.memory.is_dead("192.0.2.2"))
        self.now += 60 * 64 - 1
        self.assertTrue(self.memory.is_dead("192.0.2.1"))
        self.now += 1
        self.assertFalse(self.memory.is_dead("192.0.2.1"))

    def test_ipv6_and_success(self) -> None:
        for _ in range(2):
            self.memory.record_timeout("2001:db8::1")
            self.now += 200
        self.assertTrue(self.memory.is_dead("2001:db8::1"))
        self.assertEqual([(e.address, e.count) for e in self.memory.entries()], [("2001:db8::1", 2)])
        self.memory.record_success("2001:db8::1")
        self.assertFalse(self.memory.is_dead("2001:db8::1"))
        self.assertEqual(self.memory.entries(), [])

    def test_file_format(self) -> None:
        self.memory.record_timeout("192.0.2.7")
        with open(tcpto.tcpto_path(self.root), "rb") as f:
            data = f.read()
        self.assertEqual(len(data), 2048)
        self.assertEqual(data[:16], b"\0" * 10 + b"\xff\xff" + bytes([192, 0, 2, 7]))
        self.assertEqual(data[16:20], b"\x01\0\0\0")
        self.assertEqual(int.from_bytes(data[20:28], "little"), 1_000_000)

    def test_full_table_reuses_oldest(self) -> None:
        for i in range(64):
            self.memory.record_timeout(f"10.0.0.{i}")
            self.now += 1
        self.memory.record_timeout("10.0.1.1")
        addresses = {e.address for e in self.memory.entries()}
        self.assertEqual(len(addresses), 64)
        self.assertIn("10.0.1.1", addresses)
        self.assertNotIn("10.0.0.0", addresses)

    def test_clear(self) -> None:
        for _ in range(2):
            self.memory.record_timeout("192.0.2.1")
            self.now += 200
        tcpto.clear(self.root)
        self.assertFalse(self.memory.is_dead("192.0.2.1"))
        self.assertEqual(self.memory.entries(), [])

    def test_file_made_by_root_belongs_to_the_queue_owner(self) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        lock = os.path.dirname(tcpto.tcpto_path(self.root))
        os.chown(lock, 4242, 4243)
        tcpto.clear(self.root)
        st = os.stat(tcpto.tcpto_path(self.root))
        self.assertEqual((st.st_uid, st.st_gid), (4242, 4243))

    def test_clear_without_queue_is_harmless(self) -> None:
        tcpto.clear(os.path.abspath(self.mktemp()))

    def test_corrupt_file_is_empty(self) -> None:
        with open(tcpto.tcpto_path(self.root), "wb") as f:
            f.write(b"junk")
        self.assertFalse(self.memory.is_dead("192.0.2.1"))
        self.memory.record_timeout("192.0.2.1")
        self.assertEqual(os.path.getsize(tcpto.tcpto_path(self.root)), 2048)


class DeadHostViewTests(unittest.SynchronousTestCase):
    """is_dead keeps the dead addresses in memory while the file is unchanged, for at most reread_after seconds."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "queue", "lock"))
        self.path = tcpto.tcpto_path(self.root)
        self.now = 1_000_000.0
        self.tick = 0.0
        self.memory = tcpto.DeadHostMemory(self.path, clock=lambda: self.now, pid=0, monotonic=lambda: self.tick)
        self.other = tcpto.DeadHostMemory(self.path, clock=lambda: self.now, pid=0)  # another process
        for _ in range(2):
            self.other.record_timeout("192.0.2.1")
            self.now += 200

    def test_unchanged_file_is_not_read_again(self) -> None:
        self.assertTrue(self.memory.is_dead("192.0.2.1"))
        reads = []
        real_read = self.memory._read
        self.memory._read = lambda fd=None: reads.append(fd) or real_read(fd)  # type: ignore[method-assign]  # counting
        for _ in range(5):
            self.assertTrue(self.memory.is_dead("192.0.2.1"))
            self.assertFalse(self.memory.is_dead("192.0.2.2"))
        self.assertEqual(reads, [])
        self.tick += 1.0  # the copy is a second old: read again
        self.assertTrue(self.memory.is_dead("192.0.2.1"))
        self.assertEqual(reads, [None])

    def test_another_process_clearing_is_seen(self) -> None:
        self.assertTrue(self.memory.is_dead("192.0.2.1"))
        self.other.clear()
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # as a later tick of the clock would
        self.assertFalse(self.memory.is_dead("192.0.2.1"))

    def test_a_change_within_one_timestamp_is_seen_within_reread_after(self) -> None:
        self.assertTrue(self.memory.is_dead("192.0.2.1"))
        st = os.stat(self.path)
        self.other.clear()
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the ctime may differ
        self.tick += 1.0
        self.assertFalse(self.memory.is_dead("192.0.2.1"))

    def test_own_update_is_seen_at_once(self) -> None:
        self.assertFalse(self.memory.is_dead("192.0.2.9"))
        for _ in range(2):
            self.memory.record_timeout("192.0.2.9")
            self.now += 200
        self.assertTrue(self.memory.is_dead("192.0.2.9"))
        self.memory.record_success("192.0.2.9")
        self.assertFalse(self.memory.is_dead("192.0.2.9"))

    def test_reread_after_zero_reads_every_time(self) -> None:
        plain = tcpto.DeadHostMemory(self.path, clock=lambda: self.now, pid=0, reread_after=0)
        self.assertTrue(plain.is_dead("192.0.2.1"))
        self.other.clear()
        self.assertFalse(plain.is_dead("192.0.2.1"))
