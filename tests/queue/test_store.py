"""Tests for pymta.queue.store (the crash-safe queue writer) and pymta.queue.sink (the in-process sink)."""

import os
import resource
import signal
import stat

from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.envelope import Envelope, parse_todo
from pymta.queue.errors import QueueFailure, qq_text
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.sink import CommitFeed, QueueSink
from pymta.queue.store import WriteState, Queue, pull_trigger, received_line


def make_layout(testcase) -> QueueLayout:
    layout = QueueLayout(os.path.join(testcase.mktemp(), "queue"))
    layout.create()
    return layout


def files_under(layout: QueueLayout, name: str) -> list[str]:
    out = []
    for dirpath, _, filenames in os.walk(layout.dir(name)):
        out += [os.path.join(dirpath, f) for f in filenames]
    return sorted(out)


class ImmediateThreadPool:
    """Runs 'thread' work at once, in the calling thread."""

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)


class ImmediateReactor:
    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class QueueWriterTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.queue = Queue(QueueDisk.plain(self.layout), clock=lambda: 1795643348.0)

    def test_commit_writes_qmail_files(self) -> None:
        m = self.queue.begin("by uid 1000", 1000, 4242)
        m.write(b"Subject: hi\n\nbody\n")
        receipt = m.commit("me@test.example", ["a@x.example", "b@y.example"])
        mid = receipt.message_id
        self.assertEqual(receipt, QueueReceipt(mid, mid))
        mess = self.layout.mess(mid)
        self.assertEqual(os.stat(mess).st_ino, mid)
        self.assertEqual(os.path.basename(os.path.dirname(mess)), str(mid % 23))
        with open(mess, "rb") as f:
            self.assertEqual(
                f.read(),
                b"Received: (pymta %d invoked by uid 1000); 25 Nov 2026 21:49:08 -0000\nSubject: hi\n\nbody\n" % mid,
            )
        with open(self.layout.todo(mid), "rb") as f:
            todo = f.read()
        self.assertEqual(todo, b"u1000\0p%d\0Fme@test.example\0Ta@x.example\0Tb@y.example\0" % mid)
        self.assertEqual(os.stat(self.layout.todo(mid)).st_ino, os.stat(self.layout.intd(mid)).st_ino)
        self.assertEqual(files_under(self.layout, "pid"), [])
        self.assertEqual(stat.S_IMODE(os.stat(mess).st_mode), 0o644)
        self.assertEqual(parse_todo(todo).recipients, ("a@x.example", "b@y.example"))

    def test_empty_and_binary_message(self) -> None:
        m = self.queue.begin("from network", 0, 1)
        m.write(b"")
        m.write(b"\x00\xff\x80 no separator")
        mid = m.commit("", [])
        with open(self.layout.mess(mid.message_id), "rb") as f:
            self.assertTrue(f.read().endswith(b"\n\x00\xff\x80 no separator"))

    def test_large_message(self) -> None:
        m = self.queue.begin("by uid 5", 5, 1)
        chunk = bytes(range(256)) * 256
        for _ in range(20):
            m.write(chunk)
        r = m.commit("a@b", ["c@d"])
        self.assertEqual(os.path.getsize(self.layout.mess(r.message_id)), len(received_line(r.qp, "by uid 5", 1795643348.0)) + 20 * len(chunk))

    def test_ids_distinct(self) -> None:
        ids = set()
        for _ in range(5):
            m = self.queue.begin("by uid 0", 0, 1)
            ids.add(m.commit("a@b", ["c@d"]).message_id)
        self.assertEqual(len(ids), 5)
        self.assertEqual(len(files_under(self.layout, "todo")), 5)

    def test_abort_leaves_nothing(self) -> None:
        m = self.queue.begin("by uid 0", 0, 1)
        m.write(b"data\n")
        self.assertTrue(os.path.exists(m.mess_path))
        m.abort()
        for d in ("mess", "intd", "todo", "pid"):
            self.assertEqual(files_under(self.layout, d), [], d)

    def test_bad_address_leaves_nothing(self) -> None:
        m = self.queue.begin("by uid 0", 0, 1)
        m.write(b"data\n")
        e = self.assertRaises(QueueFailure, m.commit, "a@b", ["bad\n@x"])
        self.assertTrue(e.permanent)
        for d in ("mess", "intd", "todo", "pid"):
            self.assertEqual(files_under(self.layout, d), [], d)

    def test_commit_twice_refused(self) -> None:
        m = self.queue.begin("by uid 0", 0, 1)
        m.commit("a@b", [])
        self.assertRaises(QueueFailure, m.commit, "a@b", [])

    def test_write_error_reported_at_commit(self) -> None:
        m = self.queue.begin("by uid 0", 0, 1)
        # a file size limit makes the writes fail as a full disk does (EFBIG instead of ENOSPC)
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limits[1]))
        try:
            m.write(b"x" * 200_000)  # does not raise
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, handler)
        m.write(b"more")
        e = self.assertRaises(QueueFailure, m.commit, "a@b", ["c@d"])
        self.assertEqual(e.text, "qq write error or disk full (#4.3.0)")
        self.assertFalse(e.permanent)
        for d in ("mess", "intd", "todo"):
            self.assertEqual(files_under(self.layout, d), [], d)

    def test_missing_queue(self) -> None:
        queue = Queue(QueueDisk.plain(QueueLayout(self.mktemp())))
        e = self.assertRaises(QueueFailure, queue.begin, "by uid 0", 0, 1)
        self.assertEqual(e.text, "qq trouble creating files in queue (#4.3.0)")
        self.assertEqual(e.exit_code, 63)

    def test_stale_intd_replaced(self) -> None:
        m = self.queue.begin("by uid 0", 0, 1)
        with open(self.layout.intd(m.message_id), "wb") as f:
            f.write(b"stale")
        r = m.commit("a@b", ["c@d"])
        with open(self.layout.todo(r.message_id), "rb") as f:
            self.assertTrue(f.read().startswith(b"u0\0"))

    def test_origin_newline_neutralised(self) -> None:
        self.assertEqual(received_line(7, "by\nuid", 0), b"Received: (pymta 7 invoked by uid); 1 Jan 1970 00:00:00 -0000\n")

    def test_trigger_pulled(self) -> None:
        fd = os.open(self.layout.trigger_path(), os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        self.queue.begin("by uid 0", 0, 1).commit("a@b", [])
        self.assertEqual(os.read(fd, 10), b"\0")

    def test_trigger_without_reader_or_fifo(self) -> None:
        pull_trigger(self.layout)
        os.unlink(self.layout.trigger_path())
        pull_trigger(self.layout)


class ExitTextTests(unittest.SynchronousTestCase):
    def test_table(self) -> None:
        self.assertEqual(qq_text(53), ("qq write error or disk full (#4.3.0)", False))
        self.assertEqual(qq_text(11), ("envelope address too long for qq (#5.1.3)", True))
        self.assertEqual(qq_text(35), ("qq permanent problem (#5.3.0)", True))
        self.assertEqual(qq_text(99), ("qq temporary problem (#4.3.0)", False))
        self.assertRaises(ValueError, qq_text, 0)


class QueueSinkTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.committed = []
        self.sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), ImmediateThreadPool(),
                              lambda *args: self.committed.append(args))

    def test_finish_fires_with_receipt(self) -> None:
        w = self.sink.open_message("a@b", ["c@d"], origin="from network", uid=99)
        w.write(b"Subject: x\n\nbody\n")
        receipt = self.successResultOf(w.finish())
        size = os.stat(self.layout.mess(receipt.message_id)).st_size
        self.assertEqual(self.committed, [(receipt.message_id, Envelope(99, receipt.qp, "a@b", ("c@d",)), size)])
        with open(self.layout.todo(receipt.message_id), "rb") as f:
            self.assertTrue(f.read().startswith(b"u99\0p%d\0" % receipt.qp))
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            self.assertIn(b"invoked from network", f.readline())

    def test_bad_envelope_fails_finish(self) -> None:
        w = self.sink.open_message("a@b", ["x" * 2000], origin="from network")
        w.write(b"data")
        f = self.failureResultOf(w.finish(), QueueRefused)
        self.assertTrue(f.value.permanent)
        self.assertEqual(files_under(self.layout, "mess"), [])
        self.assertEqual(self.committed, [])

    def test_abort(self) -> None:
        w = self.sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(b"data")
        w.abort()
        self.assertEqual(files_under(self.layout, "mess"), [])
        self.failureResultOf(w.finish(), QueueRefused)

    def test_finish_twice(self) -> None:
        w = self.sink.open_message("a@b", ["c@d"], origin="from network")
        self.successResultOf(w.finish())
        self.failureResultOf(w.finish(), QueueRefused)

    def test_hook_error_does_not_lose_receipt(self) -> None:
        def broken(message_id, envelope, size):
            raise RuntimeError("scheduler bug")

        sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), ImmediateThreadPool(), broken)
        w = sink.open_message("a@b", ["c@d"], origin="from network")
        self.successResultOf(w.finish())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_queue_unavailable(self) -> None:
        sink = QueueSink(Queue(QueueDisk.plain(QueueLayout(self.mktemp()))), ImmediateReactor(), ImmediateThreadPool())
        w = sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(b"x")
        f = self.failureResultOf(w.finish(), QueueRefused)
        self.assertFalse(f.value.permanent)


class CommitFeedTests(unittest.SynchronousTestCase):
    def test_every_subscriber_hears_of_every_commit_in_order(self) -> None:
        feed = CommitFeed()
        heard: list = []
        feed.publish(1, Envelope(0, 1, "a@b", ("c@d",)), 10)  # nobody listening yet: nothing to tell
        feed.subscribe(lambda *args: heard.append(("first",) + args))
        feed.subscribe(lambda *args: heard.append(("second",) + args))
        envelope = Envelope(0, 2, "a@b", ("c@d",))
        feed.publish(2, envelope, 20)
        self.assertEqual(heard, [("first", 2, envelope, 20), ("second", 2, envelope, 20)])

    def test_a_sink_publishing_to_a_feed(self) -> None:
        layout = make_layout(self)
        feed = CommitFeed()
        sink = QueueSink(Queue(QueueDisk.plain(layout)), ImmediateReactor(), ImmediateThreadPool(), feed.publish)
        heard: list = []
        feed.subscribe(lambda message_id, envelope, size: heard.append(message_id))
        w = sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(b"Subject: x\n\nbody\n")
        receipt = self.successResultOf(w.finish())
        self.assertEqual(heard, [receipt.message_id])
