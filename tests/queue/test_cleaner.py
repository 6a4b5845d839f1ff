"""Tests for pymta.queue.cleaner: removal of crash leftovers."""

import os
import time

from twisted.trial import unittest

from pymta.queue import cleaner
from pymta.queue.cleaner import clean_queue
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.store import Queue
from tests.queue.test_store import files_under

LATER = time.time() + 3600


class CleanerTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = QueueLayout(os.path.join(self.mktemp(), "queue"))
        self.layout.create()
        self.queue = Queue(QueueDisk.plain(self.layout))

    def leftover_mess(self, with_intd: bool = False) -> int:
        """A message whose writer died before the commit (states S2/S3)."""
        m = self.queue.begin("by uid 0", 0, 1)
        m.write(b"data\n")
        mid = m.message_id
        m._file.close()
        m._unlock()
        if with_intd:
            with open(self.layout.intd(mid), "wb") as f:
                f.write(b"u0\0p1\0Fa@b\0")
        return mid

    def test_empty_queue(self) -> None:
        self.assertEqual(clean_queue(self.layout), [])

    def test_dead_pid_file_removed(self) -> None:
        path = os.path.join(self.layout.dir("pid"), "999999.1.1")
        open(path, "wb").close()
        self.assertEqual(clean_queue(self.layout, now=LATER), [path])
        self.assertFalse(os.path.exists(path))

    def test_mess_without_todo_removed(self) -> None:
        mid = self.leftover_mess()
        self.assertEqual(clean_queue(self.layout, now=LATER), [self.layout.mess(mid)])
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_mess_and_intd_removed(self) -> None:
        mid = self.leftover_mess(with_intd=True)
        removed = clean_queue(self.layout, now=LATER)
        self.assertEqual(sorted(removed), sorted([self.layout.mess(mid), self.layout.intd(mid)]))
        self.assertEqual(files_under(self.layout, "intd"), [])

    def test_intd_without_mess_removed(self) -> None:
        path = self.layout.intd(12345)
        open(path, "wb").close()
        self.assertEqual(clean_queue(self.layout, now=LATER), [path])

    def test_young_files_kept(self) -> None:
        self.leftover_mess(with_intd=True)
        open(os.path.join(self.layout.dir("pid"), "999999.1.1"), "wb").close()
        self.assertEqual(clean_queue(self.layout), [])
        self.assertEqual(len(files_under(self.layout, "mess")), 1)

    def test_message_being_written_kept(self) -> None:
        m = self.queue.begin("by uid 0", 0, 1)
        m.write(b"data\n")
        self.assertEqual(clean_queue(self.layout, now=LATER), [])
        m.commit("a@b", ["c@d"])
        self.assertEqual(clean_queue(self.layout, now=LATER), [])
        self.assertTrue(os.path.exists(self.layout.todo(m.message_id)))

    def test_committed_and_processed_kept(self) -> None:
        r1 = self.queue.begin("by uid 0", 0, 1).commit("a@b", ["c@d"])
        r2 = self.queue.begin("by uid 0", 0, 1).commit("a@b", ["c@d"])
        # r2 as the scheduler leaves it after preprocessing: info, no todo/intd
        with open(self.layout.info(r2.message_id), "wb") as f:
            f.write(b"Fa@b\0")
        os.unlink(self.layout.todo(r2.message_id))
        os.unlink(self.layout.intd(r2.message_id))
        self.assertEqual(clean_queue(self.layout, now=LATER), [])
        self.assertTrue(os.path.exists(self.layout.mess(r1.message_id)))
        self.assertTrue(os.path.exists(self.layout.intd(r1.message_id)))
        self.assertTrue(os.path.exists(self.layout.mess(r2.message_id)))

    def test_missing_directories_tolerated(self) -> None:
        layout = QueueLayout(self.mktemp(), split=23)
        self.assertEqual(clean_queue(layout), [])


class ReasonLeftovers(unittest.TestCase):
    """A reason file never outlives its message: it is written only while info/ID exists."""

    def test_an_interrupted_delete_leaves_no_reason_file(self) -> None:
        from pymta.queue.reasons import Reason, append_reasons
        from tests.queue.test_scheduler import disk_for, make_root, queue_message
        root, layout = make_root(self)
        mid = queue_message(layout, "a@mail.example", ["r@dead.example"])
        old = time.time() - 3600
        os.utime(layout.mess(mid), (old, old))
        os.unlink(layout.todo(mid))  # ctl delete's commit point: neither todo/ nor info/
        append_reasons(disk_for(layout), mid, [Reason("remote", "r@dead.example", int(time.time()), "dead\n")])
        clean_queue(layout)
        self.assertEqual([p for p in (layout.mess(mid), layout.reason(mid)) if os.path.exists(p)], [])

    def test_a_young_reason_file_without_info_goes(self) -> None:
        from pymta.queue.reasons import Reason, append_reasons
        from tests.queue.test_scheduler import disk_for, make_root
        root, layout = make_root(self)
        append_reasons(disk_for(layout), 4242, [Reason("remote", "r@x.example", int(time.time()), "dead\n")])
        self.assertIn(layout.reason(4242), clean_queue(layout))


class WithoutFlock(unittest.SynchronousTestCase):
    """On a filesystem without flock a held write in flight is told by its young hold/ID."""

    def setUp(self) -> None:
        self.layout = QueueLayout(os.path.join(self.mktemp(), "queue"))
        self.layout.create()
        self.queue = Queue(QueueDisk.plain(self.layout))

        def unlockable(path: str) -> int | None:
            raise cleaner._Unlockable("flock not supported")

        self.patch(cleaner, "_try_lock", unlockable)

    def held_write_before_todo(self) -> int:
        """A writer queuing a message held, between its hold/ID and its todo/ID."""
        m = self.queue.begin("by uid 0", 0, 1)
        m.write(b"data\n")
        old = time.time() - 3600  # a slow writer: its message file is old
        os.utime(self.layout.mess(m.message_id), (old, old))
        with open(self.layout.hold(m.message_id), "wb") as f:
            f.write(b"quarantined\n")
        return m.message_id

    def test_a_young_hold_file_is_kept(self) -> None:
        mid = self.held_write_before_todo()
        self.assertEqual(clean_queue(self.layout), [])
        self.assertTrue(os.path.exists(self.layout.hold(mid)))
        self.assertTrue(os.path.exists(self.layout.mess(mid)))

    def test_an_old_hold_file_without_todo_goes(self) -> None:
        mid = self.held_write_before_todo()
        later = time.time() + cleaner.GRACE + 1
        self.assertIn(self.layout.hold(mid), clean_queue(self.layout, now=later))
        self.assertFalse(os.path.exists(self.layout.hold(mid)))
