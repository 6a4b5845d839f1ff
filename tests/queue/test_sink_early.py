"""
The early path of the queue writer (pymta.queue.store's
PendingMessage.start_entry, pymta.queue.sink's early_entry): the fsyncs of
the envelope and of the mess/N entry run while the data arrives; after it,
the message file is fsynced (while they may still run), and the todo/ link
waits for all three.
"""

import os
import threading
import time

from twisted.internet import task
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.dsn.params import MessageDsn
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue import store, syncing
from pymta.queue.cleaner import clean_queue
from pymta.queue.disk import QueueDisk
from pymta.queue.entrysync import EntrySync
from pymta.queue.envelope import parse_todo
from pymta.queue.errors import EXIT_BUG, QueueFailure
from pymta.queue.groupcommit import commit_prepared
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue, WriteState
from pymta.queue.syncing import QueueSync
from tests.queue.test_group_commit import FsyncRecorder, ManualThreadPool
from tests.queue.test_store import files_under, make_layout
from tests.waiting import wait_until

SENDER = "a@b.example"
RECIPIENTS = ["c@d.example", "e@f.example"]


def wait_for_entry_syncs(testcase) -> None:
    """Every EntrySync the test starts is waited for at its end: none runs on into the next test's patches."""
    started: list = []

    class Recorded(EntrySync):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            started.append(self)

    testcase.patch(store, "EntrySync", Recorded)
    testcase.addCleanup(lambda: [sync.wait() for sync in started])


class EntryDurableTests(unittest.SynchronousTestCase):
    """PendingMessage.start_entry and the steps after it."""

    def setUp(self) -> None:
        wait_for_entry_syncs(self)
        self.layout = make_layout(self)
        self.queue = Queue(QueueDisk.plain(self.layout))

    def entered(self):
        m = self.queue.begin("by uid 1", 1, 1)
        self.addCleanup(m.abort)
        m.start_entry(SENDER, RECIPIENTS)
        return m

    def test_envelope_and_mess_dir_fsynced_before_the_data(self) -> None:
        synced: list = []
        both = threading.Event()
        real_sync = syncing._sync

        def sync(target):
            real_sync(target)
            synced.append(target)
            if len(synced) == 2:
                both.set()

        self.patch(syncing, "_sync", sync)
        m = self.queue.begin("by uid 1", 1, 1)
        m.start_entry(SENDER, RECIPIENTS)
        self.assertIs(m.state, WriteState.ENTRY_WRITTEN)
        # the envelope file and the mess/N directory, in the sync pool, nothing else; nothing visible
        self.assertTrue(both.wait(30))
        self.assertEqual(len(synced), 2)
        self.assertIn(m.mess_dir, synced)
        with open(self.layout.intd(m.message_id), "rb") as f:
            self.assertEqual(parse_todo(f.read()).recipients, tuple(RECIPIENTS))
        self.assertEqual(files_under(self.layout, "todo"), [])
        m.abort()

    def test_after_the_data_only_the_message_and_todo_are_fsynced(self) -> None:
        dirs = FsyncRecorder(self)
        files: list = []
        real_sync = syncing._sync
        self.patch(syncing, "_sync", lambda target: (files.append(target), real_sync(target)))
        m = self.entered()
        m.write(b"Subject: early\n\nbody\n")
        m.stage(SENDER, RECIPIENTS)
        data_fd = m._file.fileno()
        [receipt] = commit_prepared([m])
        self.assertIsInstance(receipt, QueueReceipt)
        # mess/N once, by the entry (the commit waited for it), todo/ last; files: the envelope, the message
        self.assertEqual(sorted(dirs.dirs), sorted([os.path.basename(m.mess_dir), "todo"]))
        self.assertEqual(dirs.dirs[-1], "todo")
        self.assertEqual(len([t for t in files if isinstance(t, int)]), 2)
        self.assertIn(data_fd, files)
        with open(self.layout.mess(m.message_id), "rb") as f:
            self.assertTrue(f.read().endswith(b"\nSubject: early\n\nbody\n"))
        with open(self.layout.todo(m.message_id), "rb") as f:
            self.assertEqual(parse_todo(f.read()).sender, SENDER)

    def test_plain_commit_after_the_entry(self) -> None:
        m = self.entered()
        m.write(b"Subject: early\n\nbody\n")
        receipt = m.commit(SENDER, RECIPIENTS)
        self.assertEqual(files_under(self.layout, "todo"), [self.layout.todo(receipt.message_id)])

    def test_a_changed_envelope_is_written_again(self) -> None:
        synced: list = []
        real_sync = syncing._sync
        self.patch(syncing, "_sync", lambda target: (synced.append(target), real_sync(target)))
        m = self.entered()
        m.dsn = MessageDsn(ret="HDRS", envid="x")  # changed after the entry was written
        m.write(b"body\n")
        m.stage(SENDER, RECIPIENTS[:1])
        m.make_durable()
        # the early envelope, then the message and the new envelope (all returned: make_durable waited)
        self.assertEqual(len([t for t in synced if isinstance(t, int)]), 3)
        [receipt] = commit_prepared([m])
        with open(self.layout.todo(receipt.message_id), "rb") as f:
            envelope = parse_todo(f.read())
        self.assertEqual(envelope.recipients, (RECIPIENTS[0],))
        self.assertEqual(envelope.dsn.envid, "x")

    def test_wrong_states_are_refused(self) -> None:
        m = self.entered()
        for step in (lambda: m.start_entry(SENDER, RECIPIENTS), m.make_durable, m.link_todo, m.committed):
            e = self.assertRaises(QueueFailure, step)
            self.assertEqual(e.exit_code, EXIT_BUG)
            self.assertIs(m.state, WriteState.ENTRY_WRITTEN)
        m.stage(SENDER, RECIPIENTS)
        e = self.assertRaises(QueueFailure, m.start_entry, SENDER, RECIPIENTS)
        self.assertEqual(e.exit_code, EXIT_BUG)

    def test_abort_removes_the_entry(self) -> None:
        m = self.entered()
        m.write(b"body\n")
        m.abort()
        self.assertIs(m.state, WriteState.ABORTED)
        self.assertEqual(files_under(self.layout, "mess"), [])
        self.assertEqual(files_under(self.layout, "intd"), [])

    def test_a_failing_entry_fsync_removes_the_message_before_the_link(self) -> None:
        real_sync = syncing._sync

        def fail_for_the_directory(target):
            if isinstance(target, str) and "/mess/" in target:
                raise OSError(5, "Input/output error")
            real_sync(target)

        self.patch(syncing, "_sync", fail_for_the_directory)
        m = self.entered()
        m.write(b"body\n")
        m.stage(SENDER, RECIPIENTS)
        [e] = commit_prepared([m])
        self.assertIsInstance(e, QueueFailure)
        self.assertFalse(e.permanent)
        self.assertIn("fsync " + m.mess_dir, str(e))
        self.assertIs(m.state, WriteState.FAILED)
        self.assertEqual(files_under(self.layout, "mess") + files_under(self.layout, "intd"), [])
        self.assertEqual(files_under(self.layout, "todo"), [])

    def test_the_cleaner_leaves_a_message_still_receiving_alone(self) -> None:
        m = self.entered()
        m.write(b"Subject: slow\n\n")
        days_later = time.time() + 3 * 86400  # older than qmail's 36 hours, and locked
        self.assertEqual(clean_queue(self.layout, now=days_later), [])
        m.write(b"body\n")
        receipt = m.commit(SENDER, RECIPIENTS)
        self.assertEqual(clean_queue(self.layout, now=days_later), [])
        self.assertTrue(os.path.exists(self.layout.todo(receipt.message_id)))


class OverlapTests(unittest.SynchronousTestCase):
    """After the data, its fsync does not wait for the entry's; the link waits for all of them."""

    def setUp(self) -> None:
        wait_for_entry_syncs(self)
        self.layout = make_layout(self)
        self.queue = Queue(QueueDisk.plain(self.layout))
        self.events: list = []
        self.release = threading.Event()
        real_sync = syncing._sync

        def sync(target):
            if target == getattr(self, "slow", None):
                self.events.append("held fsync started")
                self.assertTrue(self.release.wait(30))
                real_sync(target)
                self.events.append("held fsync returned")
                return
            real_sync(target)
            self.events.append(("fsync", os.path.basename(target) if isinstance(target, str) else target))

        self.patch(syncing, "_sync", sync)
        real_link = os.link
        def link(source, name):
            if os.path.dirname(name) == self.layout.dir("todo"):
                self.events.append(("link", "todo"))
            return real_link(source, name)

        self.patch(os, "link", link)

    def test_data_fsynced_while_the_entry_is_still_fsyncing(self) -> None:
        m = self.queue.begin("by uid 1", 1, 1)
        self.addCleanup(m.abort)
        self.slow = m.mess_dir
        m.start_entry(SENDER, RECIPIENTS)
        m.write(b"Subject: overlap\n\nbody\n")
        m.stage(SENDER, RECIPIENTS)
        data_fd = m._file.fileno()
        results: list = []
        committer = threading.Thread(target=lambda: results.append(commit_prepared([m])))
        committer.start()
        self.addCleanup(committer.join, 30)
        self.addCleanup(self.release.set)
        # the data's fsync returns while the mess/N one is held; nothing is linked meanwhile
        self.assertTrue(wait_until(lambda: ("fsync", data_fd) in self.events))
        self.assertIn("held fsync started", self.events)
        self.assertNotIn("held fsync returned", self.events)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.release.set()
        committer.join(30)
        [[receipt]] = results
        self.assertIsInstance(receipt, QueueReceipt)
        self.assertEqual(self.events[-2:], [("link", "todo"), ("fsync", "todo")])
        self.assertLess(self.events.index("held fsync returned"), self.events.index(("link", "todo")))

    def test_alone_its_files_and_mess_dir_in_one_round(self) -> None:
        m = self.queue.begin("by uid 1", 1, 1)
        self.addCleanup(m.abort)
        m.write(b"Subject: alone\n\nbody\n")
        m.stage(SENDER, RECIPIENTS)
        data_fd = m._file.fileno()
        self.slow = data_fd  # held: the envelope and mess/N are fsynced meanwhile, at the same time
        results: list = []
        committer = threading.Thread(target=lambda: results.append(commit_prepared([m])))
        committer.start()
        self.addCleanup(committer.join, 30)
        self.addCleanup(self.release.set)
        self.assertTrue(wait_until(lambda: len(self.events) >= 3))
        self.assertIn(("fsync", os.path.basename(m.mess_dir)), self.events)
        self.assertNotIn("held fsync returned", self.events)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.release.set()
        committer.join(30)
        [[receipt]] = results
        self.assertIsInstance(receipt, QueueReceipt)
        self.assertEqual(self.events[-3:], ["held fsync returned", ("link", "todo"), ("fsync", "todo")])
        self.assertEqual(len(self.events), 6)  # data, envelope, mess/N once each, the link, todo/

    def test_in_a_batch_the_mess_dir_is_shared(self) -> None:
        messages = []
        for i in range(2):
            m = self.queue.begin("by uid 1", 1, 1)
            self.addCleanup(m.abort)
            m.write(b"body %d\n" % i)
            m.stage(SENDER, RECIPIENTS)
            messages.append(m)
        commit_prepared(messages)
        dirs = [e[1] for e in self.events if e[0] == "fsync" and isinstance(e[1], str)]
        self.assertEqual(sorted(dirs), sorted({os.path.basename(m.mess_dir) for m in messages} | {"todo"}))


class ClockReactor(task.Clock):
    """task.Clock with callFromThread run at once (the thread pools below run in the test's thread)."""

    def callFromThread(self, f, *args, **kwargs):  # noqa: N802 - Twisted's name
        f(*args, **kwargs)


class EarlySinkTests(unittest.SynchronousTestCase):
    """QueueSink(early_entry=True): the entry job starts on the turn after open, in the pool."""

    def setUp(self) -> None:
        wait_for_entry_syncs(self)
        self.layout = make_layout(self)
        self.pool = ManualThreadPool()
        self.reactor = ClockReactor()
        self.sink = QueueSink(Queue(QueueDisk.plain(self.layout)), self.reactor, self.pool, early_entry=True)

    def test_entry_durable_while_the_data_arrives(self) -> None:
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        w.write(b"Subject: early\n\n")
        self.assertEqual(self.pool.calls, [])  # not in the turn it was opened
        self.reactor.advance(0)
        self.assertEqual(len(self.pool.calls), 1)
        w.write(b"first line\n")  # kept in memory while the pool has the message
        self.assertEqual(files_under(self.layout, "mess"), [])
        self.pool.run_one()
        self.assertEqual(len(files_under(self.layout, "intd")), 1)
        w.write(b"second line\n")
        results: list = []
        w.finish().addBoth(results.append)
        self.assertEqual(files_under(self.layout, "todo"), [])
        self.pool.run_all()
        [receipt] = results
        self.assertIsInstance(receipt, QueueReceipt)
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            lines = f.read().split(b"\n", 1)
        self.assertIn(b"invoked from network", lines[0])
        self.assertEqual(lines[1], b"Subject: early\n\nfirst line\nsecond line\n")
        self.assertEqual(len(files_under(self.layout, "todo")), 1)

    def test_finish_waits_for_the_entry_job(self) -> None:
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        self.reactor.advance(0)
        w.write(b"body\n")
        results: list = []
        w.finish().addBoth(results.append)
        self.assertEqual(len(self.pool.calls), 1)  # the entry job alone: the commit waits for it
        self.pool.run_one()
        self.assertEqual((results, len(self.pool.calls)), ([], 1))
        self.pool.run_one()
        [receipt] = results
        with open(self.layout.mess(receipt.message_id), "rb") as f:
            self.assertTrue(f.read().endswith(b"\nbody\n"))

    def test_only_when_the_committer_is_idle_at_open(self) -> None:
        lone = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)  # idle: the entry job is planned
        lone.write(b"body\n")
        lone.finish()  # in the turn it was opened: plain order, the committer is busy with it now
        self.assertFalse(self.sink.committer.idle)
        busy = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        self.assertEqual(self.reactor.getDelayedCalls(), [])  # a batch is running: the batched order
        self.reactor.advance(0)
        busy.write(b"body\n")
        results: list = []
        busy.finish().addBoth(results.append)
        self.pool.run_all()
        self.assertIsInstance(results[0], QueueReceipt)
        self.assertEqual(len(files_under(self.layout, "todo")), 2)

    def test_finished_in_the_turn_it_was_opened_takes_the_plain_order(self) -> None:
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        w.write(b"body\n")
        results: list = []
        w.finish().addBoth(results.append)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(len(files_under(self.layout, "intd")), 1)  # staged in this turn, as before
        self.pool.run_all()
        self.assertIsInstance(results[0], QueueReceipt)

    def test_abort_while_the_entry_job_runs_removes_it_when_back(self) -> None:
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        self.reactor.advance(0)
        w.write(b"body\n")
        w.abort()
        self.pool.run_all()
        for name in ("mess", "intd", "todo", "pid"):
            self.assertEqual(files_under(self.layout, name), [], name)

    def test_abort_after_the_entry(self) -> None:
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        self.reactor.advance(0)
        self.pool.run_all()
        w.write(b"body\n")
        w.abort()
        self.assertEqual(files_under(self.layout, "mess") + files_under(self.layout, "intd"), [])

    def test_a_refused_entry_fails_finish(self) -> None:
        def refuse(*args):
            raise QueueFailure(53, "create pid/x: no room")

        self.patch(self.sink.queue, "begin", refuse)
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        self.reactor.advance(0)
        self.pool.run_all()
        w.write(b"body\n")
        results: list = []
        w.finish().addBoth(results.append)
        [failure] = results
        self.assertIsInstance(failure, Failure)
        self.assertIsInstance(failure.value, QueueRefused)
        self.assertFalse(failure.value.permanent)

    def test_a_spill_before_the_entry_job_takes_the_plain_order(self) -> None:
        w = self.sink.open_message(SENDER, RECIPIENTS, origin="from network")
        w.write(b"x" * 70000 + b"\n")
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(len(files_under(self.layout, "mess")), 1)
        self.assertEqual(files_under(self.layout, "intd"), [])
        results: list = []
        w.finish().addBoth(results.append)
        self.pool.run_all()
        self.assertIsInstance(results[0], QueueReceipt)

    def test_off_when_the_queue_syncs_its_file_system(self) -> None:
        disk = QueueDisk(self.layout, QueueSync(self.layout.queuedir, "syncfs"))
        self.addCleanup(disk.sync.close)
        sink = QueueSink(Queue(disk), self.reactor, self.pool, early_entry=True)
        self.assertFalse(sink.early_entry)
        sink.open_message(SENDER, RECIPIENTS, origin="from network").abort()
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class TurnReactor(task.Clock):
    """task.Clock whose callFromThread queue runs a turn at a time, as a reactor's does (after its poll)."""

    def __init__(self) -> None:
        super().__init__()
        self.from_thread: list = []

    def callFromThread(self, f, *args, **kwargs):  # noqa: N802 - Twisted's name
        self.from_thread.append((f, args, kwargs))

    def turn(self) -> None:
        calls, self.from_thread = self.from_thread, []
        for f, args, kwargs in calls:
            f(*args, **kwargs)


class CommitNoticeTests(unittest.SynchronousTestCase):
    """The receipt reaches the writer's caller first; the scheduler hears of the commit on the next turn."""

    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.pool = ManualThreadPool()
        self.reactor = TurnReactor()
        self.events: list = []
        self.sink = QueueSink(Queue(QueueDisk.plain(self.layout)), self.reactor, self.pool, on_commit=self.heard)

    def heard(self, message_id, envelope, size) -> None:
        self.events.append(("told", message_id, envelope.recipients if envelope else None))
        if message_id == getattr(self, "failing_id", None):
            raise RuntimeError("listener trouble")

    def send(self, n: int) -> list:
        writers = []
        for i in range(n):
            w = self.sink.open_message(SENDER, [f"r{i}@x.example"], origin="from network")
            w.write(b"body %d\n" % i)
            writers.append(w)
        return [w.finish() for w in writers]

    def replied(self, receipt):
        self.events.append(("reply", receipt.message_id))
        return receipt

    def test_reply_first_then_the_scheduler(self) -> None:
        [d] = self.send(1)
        d.addCallback(self.replied)
        self.pool.run_all()
        self.reactor.turn()  # the commit's result comes back: the receipt fires
        [(_, message_id)] = self.events
        self.reactor.turn()  # the reactor's next turn, after its poll sent the reply
        self.assertEqual(self.events, [("reply", message_id), ("told", message_id, ("r0@x.example",))])
        self.reactor.turn()
        self.assertEqual(len(self.events), 2)  # exactly once

    def test_told_in_commit_order_whatever_the_callbacks_raise(self) -> None:
        ds = self.send(3)
        results: list = []

        def raises(receipt):
            results.append(receipt)
            raise ValueError("a caller's callback fails")

        for d in ds:
            d.addCallback(raises).addErrback(lambda f: f.trap(ValueError))
        while self.pool.calls or self.reactor.from_thread:
            self.pool.run_all()
            self.reactor.turn()
        ids = [r.message_id for r in results]
        self.assertEqual(len(ids), 3)
        self.assertEqual([e[1] for e in self.events], ids)
        self.assertEqual([e[2] for e in self.events], [(f"r{i}@x.example",) for i in range(3)])

    def test_a_failing_listener_call_does_not_stop_the_others(self) -> None:
        ds = self.send(2)
        received: list = []
        for d in ds:
            d.addCallback(received.append)
        while self.pool.calls or self.reactor.from_thread:
            self.pool.run_all()
            if received and not hasattr(self, "failing_id"):
                self.failing_id = received[0].message_id
            self.reactor.turn()
        self.assertEqual([e[1] for e in self.events], [r.message_id for r in received])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
