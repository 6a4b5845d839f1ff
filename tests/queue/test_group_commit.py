"""
Group commit (pymta.queue.groupcommit): messages prepared meanwhile share one
directory fsync, and no receipt fires before that fsync is done.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue import sink as sink_module, store, syncing
from pymta.queue.cleaner import clean_queue
from pymta.queue.client import enqueue_socket
from pymta.queue.errors import QueueFailure
from pymta.queue.framing import inject_socket_path
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.groupcommit import commit_prepared
from pymta.queue.sink import QueueSink
from pymta.queue.store import PAUSE_ENV, WriteState, Queue
from pymta.queue.syncing import QueueSync
from tests.queue.helpers import script_syncfs
from tests.queue.test_store import ImmediateReactor, files_under, make_layout


class ManualThreadPool:
    """Thread-pool work held until the test runs it."""

    def __init__(self) -> None:
        self.calls = []

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):  # noqa: N802 - Twisted's name
        self.calls.append((onResult, f, args, kwargs))

    def run_one(self) -> None:
        onResult, f, args, kwargs = self.calls.pop(0)
        try:
            result = f(*args, **kwargs)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)

    def run_all(self) -> None:
        while self.calls:
            self.run_one()


class FsyncRecorder:
    """Replaces fsync_dir in pymta.queue.syncing (every directory fsync goes there); optionally fails for one."""

    def __init__(self, testcase, fail_for: str | None = None) -> None:
        self.dirs: list[str] = []
        self.fail_for = fail_for
        real = syncing.fsync_dir

        def fsync_dir(path: str) -> None:
            self.dirs.append(os.path.basename(path))
            if self.fail_for is not None and os.path.basename(path) == self.fail_for:
                raise OSError(5, "Input/output error", path)
            real(path)

        testcase.patch(syncing, "fsync_dir", fsync_dir)


def prepared(layout: QueueLayout, n: int) -> list:
    queue = Queue(QueueDisk.plain(layout))
    out = []
    for i in range(n):
        m = queue.begin("by uid 1", 1, 1)
        m.write(b"Subject: %d\n\nbody\n" % i)
        m.prepare("a@b.example", [f"r{i}@c.example"])
        out.append(m)
    return out


class CommitPreparedTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = make_layout(self)

    def test_one_todo_fsync_for_the_batch(self) -> None:
        fsyncs = FsyncRecorder(self)
        messages = prepared(self.layout, 5)
        messages.append(Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1))
        self.addCleanup(messages[-1].abort)
        # a sixth message in the same mess/N directory as the first
        first_dir = os.path.dirname(messages[0].mess_path)
        if os.path.dirname(messages[-1].mess_path) != first_dir:
            os.link(messages[-1].mess_path, os.path.join(first_dir, str(messages[-1].message_id)))
            os.unlink(messages[-1].mess_path)
            messages[-1].mess_path = os.path.join(first_dir, str(messages[-1].message_id))
        messages[-1].prepare("a@b.example", ["c@d.example"])
        self.assertEqual(files_under(self.layout, "todo"), [])  # prepared is not visible
        self.assertEqual(fsyncs.dirs, [])  # preparing flushes the files only
        outcomes = commit_prepared(messages)
        self.assertTrue(all(isinstance(o, QueueReceipt) for o in outcomes))
        self.assertEqual([o.message_id for o in outcomes], [m.message_id for m in messages])
        self.assertEqual(len(files_under(self.layout, "todo")), 6)
        # every mess/N directory of the batch once, then todo/ once
        mess_dirs = list(dict.fromkeys(os.path.basename(os.path.dirname(m.mess_path)) for m in messages))
        self.assertLess(len(mess_dirs), len(messages))
        self.assertEqual(sorted(fsyncs.dirs[:-1]), sorted(mess_dirs))  # fsynced in parallel
        self.assertEqual(fsyncs.dirs[-1], "todo")
        # committing twice is refused, not repeated
        again = commit_prepared(messages[:1])
        self.assertIsInstance(again[0], QueueFailure)

    def test_failing_todo_fsync_acknowledges_nothing(self) -> None:
        FsyncRecorder(self, fail_for="todo")
        messages = prepared(self.layout, 3)
        outcomes = commit_prepared(messages)
        self.assertTrue(all(isinstance(o, QueueFailure) and not o.permanent for o in outcomes))
        # visible but maybe not durable: left in place (a possible duplicate, never a loss)
        self.assertEqual(len(files_under(self.layout, "todo")), 3)

    def test_failing_mess_fsync_removes_the_message(self) -> None:
        FsyncRecorder(self, fail_for="mess-dir-to-fail")
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        os.rename(os.path.dirname(m.mess_path), os.path.join(self.layout.dir("mess"), "mess-dir-to-fail"))
        os.symlink("mess-dir-to-fail", os.path.dirname(m.mess_path))
        m.mess_path = os.path.join(self.layout.dir("mess"), "mess-dir-to-fail", str(m.message_id))
        m.prepare("a@b.example", ["c@d.example"])
        [e] = commit_prepared([m])
        self.assertIsInstance(e, QueueFailure)
        self.assertFalse(e.permanent)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.assertEqual(files_under(self.layout, "mess"), [])
        self.assertEqual(files_under(self.layout, "intd"), [])

    def test_staged_message_whose_fsync_fails_is_removed(self) -> None:
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        m.write(b"Subject: x\n\nbody\n")
        m.stage("a@b.example", ["c@d.example"])
        self.assertEqual(len(files_under(self.layout, "intd")), 1)

        def failing_sync(target) -> None:
            raise OSError(5, "Input/output error")

        self.patch(syncing, "_sync", failing_sync)
        with self.assertRaises(QueueFailure) as caught:
            m.make_durable()
        self.assertFalse(caught.exception.permanent)
        self.assertEqual((files_under(self.layout, "mess"), files_under(self.layout, "intd")), ([], []))
        [outcome] = commit_prepared([m])
        self.assertIsInstance(outcome, QueueFailure)

    def test_staged_message_is_fsynced_before_its_directories(self) -> None:
        order: list[str] = []
        real = syncing._sync

        def recording_sync(target) -> None:
            order.append("file" if isinstance(target, int) else os.path.relpath(target, self.layout.queuedir))
            real(target)

        self.patch(syncing, "_sync", recording_sync)
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        m.write(b"Subject: x\n\nbody\n")
        m.stage("a@b.example", ["c@d.example"])
        [receipt] = commit_prepared([m])
        self.assertEqual(receipt, QueueReceipt(m.message_id, m.qp))
        # data and envelope, then the mess/N entry, then (after the link) todo/
        self.assertEqual(order, ["file", "file", os.path.relpath(m.mess_dir, self.layout.queuedir), "todo"])
        self.assertEqual(len(files_under(self.layout, "todo")), 1)

    def test_staged_message_failing_its_fsync_in_a_batch_is_removed_alone(self) -> None:
        [good] = prepared(self.layout, 1)
        bad = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        bad.write(b"Subject: x\n\nbody\n")
        bad.stage("a@b.example", ["c@d.example"])
        real = syncing._sync

        def failing_file_sync(target) -> None:
            if isinstance(target, int):
                raise OSError(5, "Input/output error")
            real(target)

        self.patch(syncing, "_sync", failing_file_sync)
        outcome_bad, outcome_good = commit_prepared([bad, good])
        self.assertIsInstance(outcome_bad, QueueFailure)
        self.assertFalse(outcome_bad.permanent)
        self.assertEqual(outcome_good, QueueReceipt(good.message_id, good.qp))
        self.assertEqual([os.path.basename(f) for f in files_under(self.layout, "todo")], [str(good.message_id)])
        self.assertEqual(len(files_under(self.layout, "mess")), 1)

    def test_stage_and_make_durable_only_in_order_and_once(self) -> None:
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        self.addCleanup(m.abort)
        with self.assertRaises(QueueFailure):
            m.make_durable()  # nothing staged
        m.stage("a@b.example", ["c@d.example"])
        with self.assertRaises(QueueFailure):
            m.stage("a@b.example", ["c@d.example"])
        m.make_durable()
        with self.assertRaises(QueueFailure):
            m.make_durable()
        [outcome] = commit_prepared([m])
        self.assertIsInstance(outcome, QueueReceipt)

    def test_each_step_moves_the_state_on(self) -> None:
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        self.assertIs(m.state, WriteState.WRITING)
        m.stage("a@b.example", ["c@d.example"])
        self.assertIs(m.state, WriteState.STAGED)
        m.make_durable()
        self.assertIs(m.state, WriteState.DURABLE)
        self.assertEqual(files_under(self.layout, "todo"), [])
        m.link_todo()
        self.assertIs(m.state, WriteState.LINKED)
        self.assertEqual(len(files_under(self.layout, "todo")), 1)
        self.assertEqual(m.committed(), QueueReceipt(m.message_id, m.qp))
        self.assertIs(m.state, WriteState.COMMITTED)
        m.abort()  # committed: nothing to drop
        self.assertEqual(len(files_under(self.layout, "todo")), 1)

    def test_moves_out_of_order_are_refused_and_change_nothing(self) -> None:
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        self.addCleanup(m.abort)
        for step in (m.link_todo, m.committed, m.fail_visible):
            self.assertRaises(QueueFailure, step)
            self.assertIs(m.state, WriteState.WRITING)
        m.prepare("a@b.example", ["c@d.example"])
        self.assertRaises(QueueFailure, m.committed)
        self.assertIs(m.state, WriteState.DURABLE)
        self.assertEqual(len(files_under(self.layout, "intd")), 1)

    def test_a_linked_message_that_fails_stays_visible(self) -> None:
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        m.prepare("a@b.example", ["c@d.example"])
        m.link_todo()
        self.assertRaises(QueueFailure, m.fail)  # visible: never removed
        m.fail_visible()
        m.abort()
        self.assertIs(m.state, WriteState.FAILED)
        self.assertEqual(len(files_under(self.layout, "todo")), 1)
        self.assertEqual(len(files_under(self.layout, "mess")), 1)

    def test_abort_after_stage_closes_and_removes_everything(self) -> None:
        queue = Queue(QueueDisk.plain(self.layout))
        open_before = len(os.listdir("/proc/self/fd"))
        m = queue.begin("by uid 1", 1, 1)
        m.stage("a@b.example", ["c@d.example"])
        m.abort()
        self.assertIs(m.state, WriteState.ABORTED)
        self.assertEqual(len(os.listdir("/proc/self/fd")), open_before)
        self.assertEqual((files_under(self.layout, "mess"), files_under(self.layout, "intd")), ([], []))

    def test_empty_batch_commits_nothing(self) -> None:
        fsyncs = FsyncRecorder(self)
        self.assertEqual(commit_prepared([]), [])
        self.assertEqual(fsyncs.dirs, [])
        self.assertEqual(files_under(self.layout, "todo"), [])

    def test_unprepared_message_is_refused(self) -> None:
        m = Queue(QueueDisk.plain(self.layout)).begin("by uid 1", 1, 1)
        [outcome] = commit_prepared([m])
        self.assertIsInstance(outcome, QueueFailure)
        m.abort()
        self.assertEqual(files_under(self.layout, "mess"), [])


class QueueSinkGroupingTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.pool = ManualThreadPool()
        self.committed = []
        self.sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), self.pool, lambda message_id, *_: self.committed.append(message_id))

    def finish(self, n: int) -> list:
        results = []
        for i in range(n):
            w = self.sink.open_message("a@b.example", [f"r{i}@c.example"], origin="from network")
            w.write(b"Subject: x\n\nbody\n")
            d = w.finish()
            d.addBoth(results.append)
        return results

    def test_messages_prepared_during_a_commit_share_the_next_one(self) -> None:
        fsyncs = FsyncRecorder(self)
        results = self.finish(4)
        # message 1 found the committer idle: its commit (alone, its fsyncs included) is queued;
        # 2-4 are prepared in the pool meanwhile
        self.assertEqual(len(self.pool.calls), 4)
        self.pool.run_one()  # commits message 1
        self.assertEqual(len(results), 1)
        self.pool.run_all()  # prepares 2 (the committer is idle again: alone), 3-4 wait for it; then 3-4 together
        self.assertEqual(len(results), 4)
        self.assertTrue(all(isinstance(r, QueueReceipt) for r in results), results)
        self.assertEqual(self.committed, [r.message_id for r in results])
        self.assertEqual(fsyncs.dirs.count("todo"), 3)
        self.assertEqual((self.sink.committer.batches, self.sink.committer.messages), (3, 4))

    def test_a_lone_message_takes_one_trip_to_the_pool(self) -> None:
        fsyncs = FsyncRecorder(self)
        [result] = [None] + self.finish(1)  # nothing yet
        self.assertIsNone(result)
        self.assertEqual(len(self.pool.calls), 1)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.pool.run_one()
        self.assertEqual(self.pool.calls, [])
        self.assertEqual(len(self.committed), 1)
        self.assertEqual(len(files_under(self.layout, "todo")), 1)
        self.assertEqual(fsyncs.dirs.count("todo"), 1)

    def test_no_receipt_before_the_directory_fsync(self) -> None:
        results = self.finish(3)
        self.pool.run_one()  # message 1, alone
        self.pool.run_one()
        self.pool.run_one()
        # 2 and 3 prepared (files fsynced), their batch commits not run yet: not acknowledged, not visible
        self.assertEqual(len(results), 1)
        self.assertEqual(self.committed, [results[0].message_id])
        self.assertEqual(len(files_under(self.layout, "todo")), 1)
        self.pool.run_all()
        self.assertEqual(len(results), 3)

    def test_in_process_commits_do_not_pull_the_trigger(self) -> None:
        fd = os.open(self.layout.trigger_path(), os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        self.finish(1)
        self.pool.run_all()
        self.assertEqual(os.read(fd, 10), b"")  # no writer ever came: nothing to read
        sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), self.pool)
        w = sink.open_message("a@b.example", ["c@d.example"], origin="from network")
        w.finish()
        self.pool.run_all()
        self.assertEqual(os.read(fd, 10), b"\0")

    def test_failed_batch_fails_every_message(self) -> None:
        FsyncRecorder(self, fail_for="todo")
        results = self.finish(2)
        self.pool.run_all()
        self.assertEqual(len(results), 2)
        for r in results:
            self.assertIsInstance(r, Failure)
            self.assertIsInstance(r.value, QueueRefused)
        self.assertEqual(self.committed, [])


SERVER = """
import os, sys
from twisted.internet import reactor
from pymta.queue.injectserver import InjectServerFactory, listen_inject
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue
root = sys.argv[1]
sink = QueueSink(Queue(QueueDisk.plain(QueueLayout(os.path.join(root, "queue")))), reactor, on_commit=lambda message_id, envelope, size: None)
listen_inject(reactor, root, InjectServerFactory(sink)).addCallback(lambda p: print("listening", flush=True))
reactor.run()
"""


class GroupCommitCrashTests(unittest.TestCase):
    """A server killed between a batch's file fsyncs and its todo/ fsync acknowledged nothing."""

    def test_killed_before_the_batch_directory_fsync(self):
        root = tempfile.mkdtemp(prefix="pymta-gc-")
        self.addCleanup(shutil.rmtree, root, True)
        layout = QueueLayout(os.path.join(root, "queue"))
        layout.create()
        proc = subprocess.Popen([sys.executable, "-c", SERVER, root], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(os.environ, **{PAUSE_ENV: "fsync_todo"}))

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()

        self.addCleanup(stop)
        self.assertEqual(proc.stdout.readline(), b"listening\n")
        sends = [
            threads.deferToThread(enqueue_socket, inject_socket_path(root), b"line\n" * 100, "a@b.example", [f"r{i}@c.example"])
            for i in range(3)
        ]

        def kill() -> None:
            self.assertEqual(proc.stderr.readline(), b"paused fsync_todo\n")
            time.sleep(0.2)  # let the other clients' messages reach the server too
            proc.send_signal(signal.SIGKILL)

        killed = threads.deferToThread(kill)
        results = defer.DeferredList(sends, consumeErrors=True)

        def check(outcomes) -> None:
            for ok, value in outcomes:
                self.assertFalse(ok, "a message was acknowledged before its batch's directory fsync")
                self.assertIsInstance(value.value, QueueRefused)
                self.assertFalse(value.value.permanent)
            # what is visible is whole; everything else is a leftover the cleaner removes
            clean_queue(layout, now=time.time() + 60)
            todo = files_under(layout, "todo")
            self.assertLessEqual(len(todo), 3)
            for path in todo:
                self.assertTrue(os.path.exists(layout.mess(int(os.path.basename(path)))))
            self.assertEqual(len(files_under(layout, "mess")), len(todo))

        return killed.addCallback(lambda _: results).addCallback(check)


class SpillTests(unittest.SynchronousTestCase):
    """A small message's file is created at finish(), its fsyncs left to the pool; a large one's at once."""

    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.pool = ManualThreadPool()
        self.sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), self.pool)

    def test_small_message_file_created_at_finish(self) -> None:
        w = self.sink.open_message("a@b.example", ["c@d.example"], origin="from network")
        w.write(b"Subject: small\n\n")
        w.write(b"body\n")
        self.assertEqual(files_under(self.layout, "mess"), [])
        results = []
        synced: list = []
        real_sync = syncing._sync
        self.patch(syncing, "_sync", lambda target: (synced.append(target), real_sync(target)))
        w.finish().addBoth(results.append)
        # staged in the calling thread: data and envelope written, nothing fsynced, visible or acknowledged
        self.assertEqual(len(files_under(self.layout, "mess")), 1)
        self.assertEqual(len(files_under(self.layout, "intd")), 1)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.assertEqual((synced, results), ([], []))
        self.pool.run_all()
        self.assertGreaterEqual(len(synced), 2)
        [receipt] = results
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            lines = f.read().split(b"\n", 1)
        self.assertIn(b"invoked from network", lines[0])
        self.assertEqual(lines[1], b"Subject: small\n\nbody\n")

    def test_unexpected_error_while_staging_fails_the_deferred(self) -> None:
        def dup(fd: int) -> int:
            raise OSError(24, "Too many open files")

        self.patch(store.os, "dup", dup)
        w = self.sink.open_message("a@b.example", ["c@d.example"], origin="from network")
        w.write(b"Subject: x\n\nbody\n")
        results: list = []
        w.finish().addBoth(results.append)  # does not raise
        [failure] = results
        self.assertIsInstance(failure, Failure)
        self.assertIsInstance(failure.value, QueueFailure)
        self.assertFalse(failure.value.permanent)

    def test_large_message_streams_to_its_file(self) -> None:
        w = self.sink.open_message("a@b.example", ["c@d.example"], origin="from network")
        chunk = b"x" * 1000 + b"\n"
        for _ in range(sink_module.SPILL_BYTES // len(chunk) + 2):
            w.write(chunk)
        self.assertEqual(len(files_under(self.layout, "mess")), 1)
        w.abort()
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_abort_before_the_file_exists(self) -> None:
        w = self.sink.open_message("a@b.example", ["c@d.example"], origin="from network")
        w.write(b"data")
        w.abort()
        self.assertEqual(self.pool.calls, [])
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_queue_refusing_a_large_message(self) -> None:
        sink = QueueSink(Queue(QueueDisk.plain(QueueLayout(self.mktemp()))), ImmediateReactor(), self.pool)
        w = sink.open_message("a@b.example", ["c@d.example"], origin="from network")
        w.write(b"y" * (sink_module.SPILL_BYTES + 1))
        w.write(b"more")
        results = []
        w.finish().addBoth(results.append)
        [failure] = results
        self.assertIsInstance(failure.value, QueueRefused)
        self.assertFalse(failure.value.permanent)


class RecordingSync(QueueSync):
    """A syncfs-mode QueueSync that counts its calls; C{fail(n)} says whether the n-th (1-based) fails."""

    def __init__(self, queuedir: str, fail=lambda n: False) -> None:  # type: ignore[no-untyped-def]
        super().__init__(queuedir, "syncfs")
        self.calls = 0
        self.fail = fail

    def sync(self, since: int | None = None) -> None:
        self.calls += 1
        if self.fail(self.calls):
            raise OSError(5, "Input/output error")
        os.sync()


class WholeFileSystemCommitTests(unittest.SynchronousTestCase):
    """control/queuesync syncfs: a batch of staged messages committed with two syncfs calls, no fsyncs."""

    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.fsyncs: list = []
        self.patch(syncing, "_sync", lambda target: self.fsyncs.append(target))

    def sink(self, sync: RecordingSync) -> tuple[QueueSink, ManualThreadPool]:
        pool = ManualThreadPool()
        return QueueSink(Queue(replace(QueueDisk.plain(self.layout), sync=sync)), ImmediateReactor(), pool), pool

    def finish(self, sink: QueueSink, n: int) -> list:
        results: list = []
        for i in range(n):
            w = sink.open_message("a@b.example", [f"r{i}@c.example"], origin="from network")
            w.write(b"Subject: x\n\nbody\n")
            w.finish().addBoth(results.append)
        return results

    def test_a_batch_costs_two_syncfs_and_no_fsync(self) -> None:
        sync = RecordingSync(self.layout.queuedir)
        sink, pool = self.sink(sync)
        results = self.finish(sink, 3)
        self.assertEqual((results, files_under(self.layout, "todo")), ([], []))
        pool.run_all()
        self.assertEqual(len(results), 3)
        self.assertTrue(all(isinstance(r, QueueReceipt) for r in results), results)
        self.assertEqual(len(files_under(self.layout, "todo")), 3)
        self.assertEqual((self.fsyncs, sync.calls), ([], 2 * sink.committer.batches))
        for r in results:
            with open(self.layout.mess(r.message_id), "rb") as f:
                self.assertTrue(f.read().endswith(b"Subject: x\n\nbody\n"))

    def test_failing_syncfs_before_the_links_removes_the_messages(self) -> None:
        sink, pool = self.sink(RecordingSync(self.layout.queuedir, fail=lambda n: True))
        results = self.finish(sink, 2)
        pool.run_all()
        self.assertEqual(len(results), 2)
        for r in results:
            self.assertIsInstance(r, Failure)
            self.assertFalse(r.value.permanent)
        for where in ("mess", "intd", "todo"):
            self.assertEqual(files_under(self.layout, where), [])

    def test_failing_second_syncfs_of_each_batch_acknowledges_nothing_and_keeps_the_links(self) -> None:
        sink, pool = self.sink(RecordingSync(self.layout.queuedir, fail=lambda n: n % 2 == 0))
        results = self.finish(sink, 2)
        pool.run_all()
        self.assertTrue(all(isinstance(r, Failure) for r in results), results)
        # visible but maybe not durable: left in place (a possible duplicate, never a loss)
        self.assertEqual(len(files_under(self.layout, "todo")), 2)

    def test_prepared_messages_still_commit(self) -> None:
        sync = RecordingSync(self.layout.queuedir)
        m = Queue(replace(QueueDisk.plain(self.layout), sync=sync)).begin("by uid 1", 1, 1)
        m.write(b"Subject: x\n\nbody\n")
        m.commit("a@b.example", ["c@d.example"])  # prepare() fsyncs the files itself
        self.assertEqual(len(files_under(self.layout, "todo")), 1)
        self.assertEqual(sync.calls, 2)

    def test_an_error_reported_to_another_call_fails_the_batch(self) -> None:
        script_syncfs(self, [0, 1, 0, 0, 0, 0])  # the 2nd syncfs call reports a write-back error, once
        sync = QueueSync(self.layout.queuedir, "syncfs")
        self.addCleanup(sync.close)
        sink, pool = self.sink(sync)  # type: ignore[arg-type]
        sync.sync()  # someone else's call, before our message: no error
        results = self.finish(sink, 1)  # staged: written, not yet synced
        self.assertRaises(OSError, sync.sync)  # another batch's call gets the error our data may have hit
        pool.run_all()  # our batch's syncfs now says 0, but the error count moved since the message began
        [failure] = results
        self.assertIsInstance(failure, Failure)
        self.assertFalse(failure.value.permanent)
        for where in ("mess", "intd", "todo"):
            self.assertEqual(files_under(self.layout, where), [])
        later = self.finish(sink, 1)  # a message begun after the error commits normally
        pool.run_all()
        self.assertIsInstance(later[0], QueueReceipt)
