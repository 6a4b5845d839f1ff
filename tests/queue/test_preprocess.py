"""Preprocessing (pymta.queue.preprocess): known envelopes, the fsync lanes, syncfs mode."""

from __future__ import annotations

import os
from dataclasses import replace

from twisted.trial import unittest

from pymta.queue import preprocess, syncing
from pymta.queue.disk import QueueDisk
from pymta.queue.envelope import Envelope
from pymta.queue.preprocess import PreprocessLog, fsync_files, preprocess_batch
from pymta.queue.spares import SparePool
from pymta.queue.syncing import QueueSync
from tests.queue.test_group_commit import RecordingSync
from tests.queue.helpers import controls_from, script_syncfs
from tests.queue.test_scheduler import make_root, queue_message


class KnownEnvelopeTests(unittest.SynchronousTestCase):
    """A message the scheduler committed itself is preprocessed from the envelope it was given."""

    def setUp(self) -> None:
        self.root, self.layout = make_root(self)
        self.controls = controls_from(self, me="mail.example\n")

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def test_known_envelope_is_used_and_todo_not_read(self) -> None:
        # todo/ID holds garbage: read back, it would be quarantined as corrupt
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"], todo=b"garbage")
        known = {mid: (Envelope(1000, 4242, "a@mail.example", ("bob@mail.example", "carol@far.example")), 1234)}
        result = preprocess_batch(QueueDisk.plain(self.layout), [mid], self.controls, known=known)
        self.assertEqual(result.corrupt, [])
        [done] = result.done
        self.assertEqual((done.size, done.channels), (1234, {"local": 1, "remote": 1}))
        self.assertEqual(self.read(self.layout.info(mid)), b"Fa@mail.example\0")
        self.assertEqual(self.read(self.layout.local(mid)), b"Tbob@mail.example\0")
        self.assertEqual(self.read(self.layout.remote(mid)), b"Tcarol@far.example\0")
        self.assertFalse(os.path.exists(self.layout.todo(mid)))
        # the same garbage, not known: read back and found corrupt
        other = queue_message(self.layout, "a@mail.example", ["bob@mail.example"], todo=b"garbage")
        self.assertEqual([i for i, _ in preprocess_batch(QueueDisk.plain(self.layout), [other], self.controls).corrupt], [other])

    def test_log_told_of_each_message_before_it_is_done(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        lines: list = []

        def info(message_id: int, envelope: object, size: int) -> None:
            self.assertTrue(os.path.exists(self.layout.todo(message_id)))  # logged before the commit
            lines.append(("info", message_id, size))

        log = PreprocessLog(lambda message_id: lines.append(("new", message_id)), info)
        result = preprocess_batch(QueueDisk.plain(self.layout), [mid], self.controls, log=log)
        self.assertEqual([p.message_id for p in result.done], [mid])
        self.assertEqual(lines, [("new", mid), ("info", mid, os.stat(self.layout.mess(mid)).st_size)])

    def test_unknown_message_is_read_from_disk_and_leftovers_removed(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        other = queue_message(self.layout, "z@mail.example", ["zed@mail.example"])
        # an interrupted earlier preprocessing left a remote file the recipients no longer need
        with open(self.layout.remote(mid), "wb") as f:
            f.write(b"Tstale@far.example\0")
        known = {other: (Envelope(1000, 4242, "z@mail.example", ("zed@mail.example",)), 10)}
        result = preprocess_batch(QueueDisk.plain(self.layout), [mid, other], self.controls, known=known)
        self.assertEqual(sorted(p.message_id for p in result.done), sorted([mid, other]))
        by_id = {p.message_id: p for p in result.done}
        self.assertEqual(by_id[mid].envelope.sender, "a@mail.example")
        self.assertEqual(by_id[mid].size, os.stat(self.layout.mess(mid)).st_size)
        self.assertFalse(os.path.exists(self.layout.remote(mid)))
        self.assertEqual(self.read(self.layout.local(mid)), b"Tbob@mail.example\0")

    def test_known_and_read_give_the_same_files(self) -> None:
        a = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "x@far.example"])
        b = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "x@far.example"])
        size = os.stat(self.layout.mess(b)).st_size
        known = {b: (Envelope(1000, 4242, "a@mail.example", ("bob@mail.example", "x@far.example")), size)}
        result = preprocess_batch(QueueDisk.plain(self.layout), [a, b], self.controls, known=known, now=1795000000)
        first, second = sorted(result.done, key=lambda p: p.message_id != a)
        self.assertEqual((first.envelope, first.size, first.channels), (second.envelope, second.size, second.channels))
        for path in (self.layout.info, self.layout.local, self.layout.remote):
            self.assertEqual(self.read(path(a)), self.read(path(b)))
            self.assertEqual(os.stat(path(a)).st_mtime, os.stat(path(b)).st_mtime)


class FsyncLaneTests(unittest.SynchronousTestCase):
    """fsync_files: every group synced and closed, errors per group, a few hand-offs per batch."""

    def open_files(self, n: int) -> list[int]:
        base = self.mktemp()
        os.makedirs(base)
        return [os.open(os.path.join(base, str(i)), os.O_WRONLY | os.O_CREAT, 0o600) for i in range(n)]

    def test_every_descriptor_synced_and_closed(self) -> None:
        fds = self.open_files(30)
        groups = [fds[i:i + 2] for i in range(0, 30, 2)]
        synced: list[int] = []
        real = os.fsync
        self.patch(preprocess.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
        lanes: list[int] = []
        real_parallel = preprocess.run_parallel
        self.patch(preprocess, "run_parallel", lambda f, items: (lanes.append(len(items)), real_parallel(f, items))[1])
        self.assertEqual(fsync_files(groups), [None] * 15)
        self.assertEqual(sorted(synced), sorted(fds))
        self.assertEqual(lanes, [syncing.SYNC_THREADS + 1])
        for fd in fds:
            with self.assertRaises(OSError):
                os.fstat(fd)

    def test_error_belongs_to_its_group_only(self) -> None:
        fds = self.open_files(12)
        groups = [fds[i:i + 2] for i in range(0, 12, 2)]
        bad = groups[3][1]
        real = os.fsync

        def fsync(fd: int) -> None:
            if fd == bad:
                raise OSError(5, "Input/output error")
            real(fd)

        self.patch(preprocess.os, "fsync", fsync)
        errors = fsync_files(groups)
        self.assertEqual([e is not None for e in errors], [False, False, False, True, False, False])
        self.assertEqual(errors[3].errno, 5)
        for fd in fds:
            with self.assertRaises(OSError):
                os.fstat(fd)

    def test_no_groups(self) -> None:
        self.assertEqual(fsync_files([]), [])


class WholeFileSystemSyncTests(unittest.SynchronousTestCase):
    """control/queuesync syncfs: a preprocessing batch is made durable by syncfs calls, not fsyncs."""

    def setUp(self) -> None:
        self.root, self.layout = make_root(self)
        self.controls = controls_from(self, me="mail.example\n")
        self.fsyncs: list = []
        self.patch(preprocess.os, "fsync", lambda fd: self.fsyncs.append(fd))
        self.patch(syncing, "_sync", lambda target: self.fsyncs.append(target))

    def test_batch_synced_by_syncfs(self) -> None:
        sync = RecordingSync(self.layout.queuedir)
        ids = [queue_message(self.layout, "a@mail.example", ["bob@mail.example", "x@far.example"]) for _ in range(3)]
        result = preprocess_batch(replace(QueueDisk.plain(self.layout), sync=sync), ids, self.controls)
        self.assertEqual(sorted(p.message_id for p in result.done), sorted(ids))
        self.assertEqual(self.fsyncs, [])
        self.assertEqual(sync.calls, 2)  # the new files, then the removal from todo/
        for mid in ids:
            self.assertTrue(os.path.exists(self.layout.remote(mid)))
            self.assertFalse(os.path.exists(self.layout.todo(mid)))

    def test_failing_syncfs_keeps_todo_and_closes_everything(self) -> None:
        sync = RecordingSync(self.layout.queuedir, fail=lambda n: True)
        ids = [queue_message(self.layout, "a@mail.example", ["bob@mail.example"]) for _ in range(2)]
        open_before = len(os.listdir("/proc/self/fd"))
        result = preprocess_batch(replace(QueueDisk.plain(self.layout), sync=sync), ids, self.controls)
        self.assertEqual(len(os.listdir("/proc/self/fd")), open_before)
        self.assertEqual(result.done, [])
        self.assertEqual(sorted(i for i, _ in result.trouble), sorted(ids))
        self.assertIn("syncfs: Input/output error", result.trouble[0][1])
        for mid in ids:
            self.assertTrue(os.path.exists(self.layout.todo(mid)))

    def test_spares_settle_with_syncfs(self) -> None:
        sync = RecordingSync(self.layout.queuedir)
        pool = SparePool(self.layout, sync=sync)
        path = os.path.join(self.layout.queuedir, "bounce", "1")
        with open(path, "wb") as f:
            f.write(b"old")
        self.assertTrue(pool.keep(path))
        pool.settle(force=True)
        self.assertEqual((pool.usable, sync.calls, self.fsyncs), (1, 1, []))
        # a failing syncfs: the spare is deleted, never handed out
        failing = SparePool(self.layout, sync=RecordingSync(self.layout.queuedir, fail=lambda n: True))
        with open(path, "wb") as f:
            f.write(b"old")
        self.assertTrue(failing.keep(path))
        failing.settle(force=True)
        self.assertEqual((failing.usable, len(failing)), (0, 0))


class FsyncLaneCloseErrorTests(unittest.SynchronousTestCase):
    def test_a_failing_close_is_its_groups_error_and_the_lane_goes_on(self) -> None:
        base = self.mktemp()
        os.makedirs(base)
        groups = [[os.open(os.path.join(base, f"{g}.{i}"), os.O_WRONLY | os.O_CREAT, 0o600) for i in range(2)]
                  for g in range(12)]
        bad = groups[0][0]
        synced: set[int] = set()
        closed: set[int] = set()
        real_fsync, real_close = os.fsync, os.close

        def fsync(fd: int) -> None:
            synced.add(fd)
            real_fsync(fd)

        def close(fd: int) -> None:
            real_close(fd)
            closed.add(fd)
            if fd == bad:
                raise OSError(5, "Input/output error")

        self.patch(preprocess.os, "fsync", fsync)
        self.patch(preprocess.os, "close", close)
        errors = fsync_files(groups)
        self.assertEqual([e is not None for e in errors], [True] + [False] * 11)
        every = {fd for g in groups for fd in g}
        self.assertEqual((synced, closed), (every, every))


class KnownButGoneTests(unittest.SynchronousTestCase):
    def test_a_known_message_whose_todo_is_gone_is_skipped(self) -> None:
        root, layout = make_root(self)
        controls = controls_from(self, me="mail.example\n")
        mid = queue_message(layout, "a@mail.example", ["bob@mail.example"])
        os.unlink(layout.todo(mid))  # finished meanwhile
        known = {mid: (Envelope(1000, 4242, "a@mail.example", ("bob@mail.example",)), 10)}
        result = preprocess_batch(QueueDisk.plain(layout), [mid], controls, known=known)
        self.assertEqual((result.done, result.trouble, result.corrupt), ([], [], []))
        self.assertFalse(os.path.exists(layout.info(mid)))
        self.assertFalse(os.path.exists(layout.local(mid)))

    def test_no_spare_is_reused_after_a_write_back_error(self) -> None:
        script_syncfs(self, [0, 1, 0, 0, 0])
        _, layout = make_root(self)
        sync = QueueSync(layout.queuedir, "syncfs")
        self.addCleanup(sync.close)
        pool = SparePool(layout, sync=sync)
        path = os.path.join(layout.queuedir, "bounce", "1")

        def keep_and_settle(p: SparePool) -> int:
            with open(path, "wb") as f:
                f.write(b"old")
            self.assertTrue(p.keep(path))
            p.settle(force=True)
            return p.usable

        self.assertEqual(keep_and_settle(pool), 1)
        self.assertRaises(OSError, sync.sync)  # an error, reported to another caller
        # a spare may depend on removals made long before (a message file on its todo/):
        # from now on nothing is recycled, every spare is deleted
        self.assertEqual(keep_and_settle(pool), 1)  # the earlier one is still usable, the new one was deleted
        self.assertEqual(len(pool), 1)
        self.assertEqual(keep_and_settle(SparePool(layout, sync=sync)), 1)  # a new pool (restart) starts afresh
