"""Tests for pymta.queue.spares: queue inodes kept for reuse instead of deleted."""

import os
import stat
import time

from twisted.internet import task
from twisted.logger import Logger
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.queue.cleaner import clean_queue
from pymta.queue.preprocess import preprocess_batch
from pymta.queue.scheduler import QmailLog, Scheduler
from pymta.queue.spares import SPARE_PREFIX, SparePool, create_file
from pymta.queue.store import Queue
from tests.queue.helpers import controls_from
from tests.queue.test_scheduler import CollectingSink, RecordingChannel, make_root, queue_message
from tests.queue.test_store import files_under, make_layout


def write_file(path: str, data: bytes, mode: int = 0o600) -> int:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return os.stat(path).st_ino


class SparePoolTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.pool = SparePool(self.layout, limit=3)
        self.scratch = os.path.join(self.layout.queuedir, "bounce")

    def test_kept_file_is_reused_empty_with_its_new_mode(self) -> None:
        old = os.path.join(self.scratch, "1")
        ino = write_file(old, b"old content that must not survive", 0o600)
        self.assertTrue(self.pool.keep(old))
        self.assertFalse(os.path.exists(old))
        self.assertEqual(len(self.pool), 1)
        [spare] = os.listdir(self.layout.dir("pid"))
        self.assertTrue(spare.startswith(SPARE_PREFIX))

        new = os.path.join(self.scratch, "2")
        fd = self.pool.take(new, 0o644)
        self.assertIsNotNone(fd)
        os.write(fd, b"new")
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
        removed = clean_queue(self.layout, now=time.time() + 60)
        self.assertEqual(len(removed), 1)
        self.assertIsNone(self.pool.take(os.path.join(self.scratch, "7"), 0o600))

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


class RecyclingTests(unittest.SynchronousTestCase):
    """The queue writer, preprocessing and the scheduler share the spares."""

    def test_preprocessing_reuses_and_returns_inodes(self) -> None:
        root, layout = make_root(self)
        pool = SparePool(layout)
        for n in range(2):
            write_file(os.path.join(layout.queuedir, "bounce", str(n)), b"stale")
            pool.keep(os.path.join(layout.queuedir, "bounce", str(n)))
        spare_inodes = {os.stat(os.path.join(layout.dir("pid"), n)).st_ino for n in os.listdir(layout.dir("pid"))}
        m = Queue(layout, spares=pool).begin("by uid 1", 1, 1)
        m.write(b"Subject: x\n\nbody\n")
        mid = m.commit("a@mail.example", ["bob@mail.example"]).message_id
        intd_inode = os.stat(layout.intd(mid)).st_ino
        self.assertIn(intd_inode, spare_inodes)
        controls = controls_from(self, me="mail.example\n")
        result = preprocess_batch(layout, [mid], controls, spares=pool)
        self.assertEqual([p.message_id for p in result.done], [mid])
        self.assertFalse(os.path.exists(layout.todo(mid)))
        self.assertFalse(os.path.exists(layout.intd(mid)))
        self.assertEqual(os.stat(layout.info(mid)).st_ino in spare_inodes, True)
        with open(layout.info(mid), "rb") as f:
            self.assertEqual(f.read(), b"Fa@mail.example\0")
        with open(layout.local(mid), "rb") as f:
            self.assertEqual(f.read(), b"Tbob@mail.example\0")
        # the envelope's inode went back to the pool
        self.assertEqual(len(pool), 1)
        self.assertEqual(pool.kept, 3)

    def test_scheduler_keeps_finished_files_and_clears_at_stop(self) -> None:
        root, layout = make_root(self)
        pool = SparePool(layout)
        clock = task.Clock()
        clock.advance(1795000000)
        events = []
        s = Scheduler(layout, ControlReader(root), {"local": RecordingChannel(), "remote": RecordingChannel()},
                      CollectingSink(), clock, log=QmailLog(Logger(observer=events.append)), spares=pool)
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
        s = Scheduler(layout, ControlReader(root), {"local": RecordingChannel(), "remote": RecordingChannel()},
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
