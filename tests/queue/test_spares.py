"""Tests for pymta.queue.spares: queue inodes kept for reuse instead of deleted."""

import os
import stat
import time
from dataclasses import replace

from twisted.internet import task
from twisted.logger import Logger
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.queue.cleaner import clean_queue
from pymta.queue.preprocess import preprocess_batch
from pymta.queue.qmaillog import QmailLog
from pymta.queue.scheduler import Scheduler
from tests.queue.helpers import disk_for
from pymta.queue import spares as spares_module
from pymta.queue import syncing
from pymta.queue.spares import SPARE_PREFIX, SparePool, create_file, fill_file
from pymta.queue.disk import QueueDisk
from pymta.queue.store import Queue
from tests.queue.helpers import controls_from
from tests.queue.test_scheduler import CollectingSink, RecordingChannel, make_root, queue_message
from tests.queue.test_store import files_under, make_layout


def write_file(path: str, data: bytes, mode: int = 0o600) -> int:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return os.stat(path).st_ino


class SettleAtOnce:
    """These tests follow single spares: a settle makes even one waiting spare usable."""

    def setUp(self) -> None:
        self.patch(spares_module, "SETTLE_MIN", 1)


class SparePoolTests(SettleAtOnce, unittest.SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.layout = make_layout(self)
        self.pool = SparePool(self.layout, limit=3)
        self.scratch = os.path.join(self.layout.queuedir, "bounce")

    def test_kept_file_is_reused_with_its_new_mode_and_content(self) -> None:
        old = os.path.join(self.scratch, "1")
        ino = write_file(old, b"old content that must not survive", 0o600)
        self.assertTrue(self.pool.keep(old))
        self.assertFalse(os.path.exists(old))
        self.assertEqual(len(self.pool), 1)
        [spare] = os.listdir(self.layout.dir("pid"))
        self.assertTrue(spare.startswith(SPARE_PREFIX))

        new = os.path.join(self.scratch, "2")
        # not usable before its removal is durable
        self.assertEqual(self.pool.usable, 0)
        self.assertIsNone(self.pool.take(new, 0o644))
        self.pool.settle()
        self.assertEqual(self.pool.usable, 1)
        fd = self.pool.take(new, 0o644)
        self.assertIsNotNone(fd)
        fill_file(fd, b"new")
        os.close(fd)
        st = os.stat(new)
        self.assertEqual(st.st_ino, ino)
        self.assertEqual(st.st_nlink, 1)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        with open(new, "rb") as f:
            self.assertEqual(f.read(), b"new")
        self.assertEqual(os.listdir(self.layout.dir("pid")), [])
        self.assertEqual((self.pool.kept, self.pool.reused), (1, 1))

    def test_empty_pool_creates(self) -> None:
        path = os.path.join(self.scratch, "3")
        self.assertIsNone(self.pool.take(path, 0o600))
        self.assertFalse(os.path.exists(path))
        fd = create_file(path, 0o640, self.pool)
        os.close(fd)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        fd = create_file(os.path.join(self.scratch, "4"), 0o600, None)
        os.close(fd)

    def test_existing_name_is_refused_and_spare_stays(self) -> None:
        old = os.path.join(self.scratch, "1")
        write_file(old, b"x")
        self.pool.keep(old)
        self.pool.settle()
        taken = os.path.join(self.scratch, "5")
        write_file(taken, b"keep me")
        self.assertRaises(FileExistsError, self.pool.take, taken, 0o600)
        self.assertRaises(FileExistsError, create_file, taken, 0o600, self.pool)
        with open(taken, "rb") as f:
            self.assertEqual(f.read(), b"keep me")
        self.assertEqual(len(self.pool), 1)

    def test_spare_with_another_name_is_never_reused(self) -> None:
        old = os.path.join(self.scratch, "1")
        ino = write_file(old, b"still linked")
        other = os.path.join(self.scratch, "other")
        os.link(old, other)
        self.assertTrue(self.pool.keep(old))
        self.pool.settle()
        new = os.path.join(self.scratch, "6")
        self.assertIsNone(self.pool.take(new, 0o600))
        with open(other, "rb") as f:
            self.assertEqual(f.read(), b"still linked")
        self.assertEqual(os.stat(other).st_nlink, 1)  # the spare name went away, the file did not
        fd = create_file(new, 0o600, self.pool)
        os.close(fd)
        self.assertNotEqual(os.stat(new).st_ino, ino)

    def test_spare_removed_by_the_cleaner_is_skipped(self) -> None:
        old = os.path.join(self.scratch, "1")
        write_file(old, b"x")
        self.pool.keep(old)
        self.pool.settle()
        removed = clean_queue(self.layout, now=time.time() + 60)
        self.assertEqual(len(removed), 1)
        self.assertIsNone(self.pool.take(os.path.join(self.scratch, "7"), 0o600))

    def test_two_pools_never_share_a_name(self) -> None:
        # regression: each pool numbered its spares from 1, so the second rename() replaced the
        # first pool's spare and both pools handed out one inode (a message file used as an envelope)
        other = SparePool(self.layout)
        inodes = []
        for pool, name in ((self.pool, "a"), (other, "b")):
            path = os.path.join(self.scratch, name)
            inodes.append(write_file(path, name.encode()))
            pool.keep(path)
            pool.settle()
        names = os.listdir(self.layout.dir("pid"))
        self.assertEqual(len(names), 2)
        self.assertEqual(sorted(os.stat(os.path.join(self.layout.dir("pid"), n)).st_ino for n in names), sorted(inodes))
        first = self.pool.take(os.path.join(self.scratch, "c"), 0o600)
        second = other.take(os.path.join(self.scratch, "d"), 0o600)
        self.addCleanup(os.close, first)
        self.addCleanup(os.close, second)
        self.assertNotEqual(os.fstat(first).st_ino, os.fstat(second).st_ino)

    def test_settle_fsyncs_the_directories_first(self) -> None:
        synced = []

        def fsync_each(dirs):
            synced.extend(os.path.basename(d) for d in dirs)
            return [OSError(5, "EIO") if d.endswith("bad") else None for d in dirs]

        self.patch(syncing, "fsync_each", fsync_each)
        good = os.path.join(self.scratch, "1")
        write_file(good, b"x")
        bad_dir = os.path.join(self.layout.queuedir, "bad")
        os.mkdir(bad_dir)
        write_file(os.path.join(bad_dir, "2"), b"y")
        self.pool.keep(good, (self.layout.dir("todo"),))
        self.pool.keep(os.path.join(bad_dir, "2"))
        self.pool.settle()
        self.assertEqual(sorted(synced), ["bad", "bounce", "todo"])
        # the spare whose old name may still come back is deleted, the other one is usable
        self.assertEqual(self.pool.usable, 1)
        self.assertEqual(len(os.listdir(self.layout.dir("pid"))), 1)

    def test_message_files_are_handed_out_one_directory_at_a_time(self) -> None:
        """Consecutive takes share a mess/N (one directory fsync for a batch): the current one until empty, then the largest."""
        pool = SparePool(self.layout, same_name=True)
        self.addCleanup(pool.clear)
        directory_of: dict[int, str] = {}
        for name, count in (("3", 1), ("5", 3), ("7", 2)):
            directory = os.path.join(self.layout.queuedir, "mess", name)
            for i in range(count):
                path = os.path.join(directory, f"{name}0{i}")
                directory_of[write_file(path, b"x")] = name
                self.assertTrue(pool.keep(path))
        pool.settle(force=True)
        self.assertEqual(pool.usable, 6)
        taken = []
        for _ in range(3):
            fd, spare = pool.take_open()
            taken.append(directory_of[os.fstat(fd).st_ino])
            os.close(fd)
            os.unlink(spare)
        # one comes back to mess/5 while it is being used: it is still the current directory
        back = os.path.join(self.layout.queuedir, "mess", "5", "509")
        directory_of[write_file(back, b"x")] = "5"
        self.assertTrue(pool.keep(back))
        pool.settle(force=True)
        while pool.usable:
            fd, spare = pool.take_open()
            taken.append(directory_of[os.fstat(fd).st_ino])
            os.close(fd)
            os.unlink(spare)
        self.assertEqual(taken, ["5", "5", "5", "5", "7", "7", "3"])

    def test_a_pool_of_same_name_files_skips_their_own_directory(self) -> None:
        synced = []

        def fsync_each(dirs):
            synced.extend(os.path.basename(d) for d in dirs)
            return [None for _ in dirs]

        self.patch(syncing, "fsync_each", fsync_each)
        pool = SparePool(self.layout, same_name=True)
        kept = os.path.join(self.scratch, "1")
        write_file(kept, b"x")
        self.assertTrue(pool.keep(kept, (self.layout.dir("todo"),)))
        pool.settle()
        self.assertEqual(synced, ["todo"])
        self.assertEqual(pool.usable, 1)
        pool.clear()

    def test_settling_waits_for_a_batch_while_enough_spares_are_usable(self) -> None:
        self.patch(spares_module, "SETTLE_MIN", 2)
        self.patch(spares_module, "SETTLE_LOW_WATER", 2)
        self.patch(spares_module, "SETTLE_BATCH", 3)
        pool = SparePool(self.layout, limit=10)
        self.addCleanup(pool.clear)

        def keep(n: int) -> None:
            for i in range(n):
                path = os.path.join(self.scratch, f"k{time.monotonic_ns()}")
                write_file(path, b"x")
                pool.keep(path)

        keep(1)
        pool.settle()
        self.assertEqual(pool.usable, 0)  # below the low water mark, but a single spare waits: later
        keep(1)
        pool.settle()
        self.assertEqual(pool.usable, 2)  # below the low water mark and a few wait: settled
        keep(2)
        pool.settle()
        self.assertEqual(pool.usable, 2)  # enough usable, too few waiting: later
        keep(1)
        pool.settle()
        self.assertEqual(pool.usable, 5)  # a batch is waiting
        keep(1)
        pool.settle(force=True)
        self.assertEqual(pool.usable, 6)

    def test_limit(self) -> None:
        for n in range(4):
            write_file(os.path.join(self.scratch, str(n)), b"x")
        self.assertEqual([self.pool.keep(os.path.join(self.scratch, str(n))) for n in range(4)], [True, True, True, False])
        self.assertTrue(os.path.exists(os.path.join(self.scratch, "3")))
        self.pool.remove(os.path.join(self.scratch, "3"))
        self.assertFalse(os.path.exists(os.path.join(self.scratch, "3")))
        self.assertRaises(FileNotFoundError, self.pool.remove, os.path.join(self.scratch, "3"))
        self.pool.clear()
        self.assertEqual(len(self.pool), 0)
        self.assertEqual(os.listdir(self.layout.dir("pid")), [])


class RecyclingTests(SettleAtOnce, unittest.SynchronousTestCase):
    """The queue writer, preprocessing and the scheduler share the spares."""

    def test_preprocessing_reuses_and_returns_inodes(self) -> None:
        root, layout = make_root(self)
        pool = SparePool(layout)
        for n in range(2):
            write_file(os.path.join(layout.queuedir, "bounce", str(n)), b"stale")
            pool.keep(os.path.join(layout.queuedir, "bounce", str(n)))
        pool.settle()
        spare_inodes = {os.stat(os.path.join(layout.dir("pid"), n)).st_ino for n in os.listdir(layout.dir("pid"))}
        disk = replace(QueueDisk.plain(layout), spares=pool)
        m = Queue(disk).begin("by uid 1", 1, 1)
        m.write(b"Subject: x\n\nbody\n")
        mid = m.commit("a@mail.example", ["bob@mail.example"]).message_id
        intd_inode = os.stat(layout.intd(mid)).st_ino
        self.assertIn(intd_inode, spare_inodes)
        controls = controls_from(self, me="mail.example\n")
        result = preprocess_batch(disk, [mid], controls)
        self.assertEqual([p.message_id for p in result.done], [mid])
        self.assertFalse(os.path.exists(layout.todo(mid)))
        self.assertFalse(os.path.exists(layout.intd(mid)))
        self.assertEqual(os.stat(layout.info(mid)).st_ino in spare_inodes, True)
        with open(layout.info(mid), "rb") as f:
            self.assertEqual(f.read(), b"Fa@mail.example\0")
        with open(layout.local(mid), "rb") as f:
            self.assertEqual(f.read(), b"Tbob@mail.example\0")
        # the envelope's inode went back to the pool, usable (preprocessing settled it)
        self.assertEqual(pool.usable, 1)
        self.assertEqual(pool.kept, 3)

    def test_scheduler_keeps_finished_files_and_clears_at_stop(self) -> None:
        root, layout = make_root(self)
        pool = SparePool(layout)
        clock = task.Clock()
        clock.advance(1795000000)
        events = []
        s = Scheduler(disk_for(layout, spares=pool), ControlReader(root),
                      {"local": RecordingChannel(), "remote": RecordingChannel()},
                      CollectingSink(), clock, log=QmailLog(Logger(observer=events.append)))
        mid = queue_message(layout, "a@mail.example", ["bob@mail.example", "carol@other.example"])
        s.startService()
        clock.advance(0)
        self.assertFalse(os.path.exists(layout.mess(mid)))
        self.assertEqual(files_under(layout, "info") + files_under(layout, "local") + files_under(layout, "remote"), [])
        # info, local and remote were kept; the message file itself never is
        self.assertEqual(len(pool), 3)
        self.successResultOf(s.stopService())
        self.assertEqual(len(pool), 0)
        self.assertEqual(os.listdir(layout.dir("pid")), [])


class ThreadedClock(task.Clock):
    def callFromThread(self, f, *args, **kwargs):  # noqa: N802 - Twisted's name
        f(*args, **kwargs)


class HeldPool:
    """A thread pool whose work waits for run_all()."""

    started = False

    def __init__(self) -> None:
        self.calls = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):  # noqa: N802 - Twisted's name
        self.calls.append((onResult, f, args, kwargs))

    def run_all(self) -> None:
        while self.calls:
            onResult, f, args, kwargs = self.calls.pop(0)
            onResult(True, f(*args, **kwargs))


class BackgroundUnlinkTests(unittest.SynchronousTestCase):
    def test_message_files_are_unlinked_in_the_pool(self) -> None:
        root, layout = make_root(self)
        clock = ThreadedClock()
        clock.advance(1795000000)
        pool = HeldPool()
        s = Scheduler(disk_for(layout), ControlReader(root), {"local": RecordingChannel(), "remote": RecordingChannel()},
                      CollectingSink(), clock, log=QmailLog(Logger(observer=lambda e: None)), threadpool=pool)
        mid = queue_message(layout, "a@mail.example", ["bob@mail.example"])
        s.startService()
        for _ in range(5):
            clock.advance(0)
            if s.stats["messages_done"]:
                break
            pool.run_all()
        self.assertEqual(s.stats["messages_done"], 1)
        # ended (info gone), its message file waits for the pool
        self.assertFalse(os.path.exists(layout.info(mid)))
        self.assertTrue(os.path.exists(layout.mess(mid)))
        pool.run_all()
        self.assertFalse(os.path.exists(layout.mess(mid)))
        self.assertEqual(files_under(layout, "info") + files_under(layout, "local") + files_under(layout, "todo"), [])
        self.successResultOf(s.stopService())


class MessageRecyclingTests(SettleAtOnce, unittest.SynchronousTestCase):
    """A finished message's file becomes the next message's, its id with it; bounced ones never."""

    def setUp(self) -> None:
        super().setUp()
        self.root, self.layout = make_root(self)
        self.spares = SparePool(self.layout)
        self.mess_spares = SparePool(self.layout)
        self.queue = Queue(replace(QueueDisk.plain(self.layout), spares=self.spares, mess_spares=self.mess_spares))
        self.clock = task.Clock()
        self.clock.advance(1795000000)
        self.local = RecordingChannel(answer=lambda job, rcpt: ("D", "no such user\n") if "nobody" in rcpt else ("K", "ok\n"))
        self.scheduler = Scheduler(disk_for(self.layout, self.spares, self.mess_spares), ControlReader(self.root),
                                   {"local": self.local, "remote": RecordingChannel()},
                                   CollectingSink(), self.clock, log=QmailLog(Logger(observer=lambda e: None)))
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)

    def send(self, body: bytes, rcpt: str = "bob@mail.example") -> int:
        m = self.queue.begin("by uid 1", 1, 1)
        m.write(body)
        mid = m.commit("a@mail.example", [rcpt]).message_id
        self.scheduler.notify(mid)
        self.clock.advance(0)
        return mid

    def test_message_id_comes_back_with_fresh_content(self) -> None:
        first = self.send(b"Subject: first\n\n" + b"long old body\n" * 100)
        self.assertEqual(self.mess_spares.usable, 1)
        second = self.send(b"Subject: second\n\nshort\n")
        self.assertEqual(second, first)
        self.assertEqual(self.mess_spares.reused, 1)
        self.assertEqual([job.message_id for job in self.local.jobs], [first, second])
        # both finished; the file waits in the pool again
        self.assertFalse(os.path.exists(self.layout.mess(second)))
        self.assertEqual(self.mess_spares.usable, 1)

    def test_content_is_the_new_message(self) -> None:
        self.send(b"Subject: first\n\n" + b"long old body\n" * 100)
        m = self.queue.begin("by uid 1", 1, 1)
        m.write(b"Subject: second\n\nshort\n")
        m.prepare("a@mail.example", ["bob@mail.example"])
        with open(m.mess_path, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\nSubject: second\n\nshort\n"), data[-200:])
        self.assertNotIn(b"long old body", data)
        m.abort()

    def test_bounced_message_file_is_not_reused(self) -> None:
        self.send(b"Subject: x\n\nbody\n", rcpt="nobody@mail.example")
        self.assertEqual(self.scheduler.stats["bounces"], 1)
        self.assertEqual(self.mess_spares.usable, 0)


class ReaderLockTests(SettleAtOnce, unittest.SynchronousTestCase):
    def test_file_still_read_is_never_reused(self) -> None:
        import fcntl

        layout = make_layout(self)
        pool = SparePool(layout)
        path = os.path.join(layout.queuedir, "bounce", "1")
        write_file(path, b"a message a delivery still reads")
        reader = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, reader)
        fcntl.flock(reader, fcntl.LOCK_SH)  # the spawner's lock on a message it delivers
        pool.keep(path)
        pool.settle()
        self.assertIsNone(pool.take_open())
        self.assertEqual(os.listdir(layout.dir("pid")), [])  # the spare name is gone, the reader keeps the file
        self.assertEqual(os.pread(reader, 9, 0), b"a message")
