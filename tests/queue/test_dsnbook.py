"""
pymta-send keeps whether a message has DSN data in memory (pymta.queue.dsnbook):
a message without any touches no dsn/N/ID path at all, the data reaches the
channels as DeliveryJob.dsn, survives a restart (one listing of dsn/N/), and
the crash-safety findings of the DSN review (a notice sent once, a torn S
record, a failed append, the cleaner and preprocessing) - on a task.Clock
with recording channels.
"""

from __future__ import annotations

import builtins
import errno
import os
from typing import Any, Callable

from twisted.trial import unittest

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.queue import dsnfile, finishing
from pymta.queue.cleaner import clean_queue
from pymta.queue.ctlrequest import CtlRequest
from pymta.queue.ctlserver import answer
from pymta.queue.dsnbook import DsnBook
from pymta.queue.dsnfile import DsnFile, dsn_path, encode_dsn_file, read_dsn_file
from pymta.queue.envelope import encode_todo
from pymta.queue.layout import QueueLayout
from tests.queue.test_scheduler import RecordingChannel, SchedulerTestMixin, queue_message

NO_MAILBOX = "Sorry, no mailbox here by that name. (#5.1.1)\n"


def write_file(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class DsnPathWatch:
    """Records every open, stat or unlink of a path under C{QUEUE/dsn/} while installed."""

    def __init__(self, case: unittest.SynchronousTestCase) -> None:
        self.touched: list[tuple[str, str]] = []
        for module, name in ((builtins, "open"), (os, "open"), (os, "stat"), (os, "lstat"), (os, "unlink")):
            case.patch(module, name, self._watch(name, getattr(module, name)))

    def _watch(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def watched(path: Any, *args: Any, **kw: Any) -> Any:
            if isinstance(path, str) and f"{os.sep}dsn{os.sep}" in path:
                self.touched.append((name, path))
            return real(path, *args, **kw)

        return watched


class PlainMessagesTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"locals": "mail.example\n"}

    def test_plain_message_touches_no_dsn_path(self) -> None:
        """Successes, failures, a deferral, the bounce and the removal: no syscall on dsn/N/ID."""
        answers = {"a@mail.example": ("K", "did 1+0+0\n"), "b@mail.example": ("D", NO_MAILBOX)}
        self.local = RecordingChannel(lambda job, r: answers[r])
        self.remote = RecordingChannel(lambda job, r: ("Z", "try later\n"))
        watch = DsnPathWatch(self)
        message_id = queue_message(self.layout, "alice@far.example", ["a@mail.example", "b@mail.example"])
        other = queue_message(self.layout, "alice@far.example", ["c@far.example"])
        s = self.start()
        self.assertEqual(len(self.sink.messages), 1)
        self.assertFalse(os.path.exists(self.layout.info(message_id)))
        self.assertEqual([job.dsn for job in self.local.jobs + self.remote.jobs], [None, None, None])
        self.assertEqual(answer(s, CtlRequest("bounce", (str(other),)))[1], f"msg {other}: bounced")
        self.clock.advance(0)
        self.assertEqual(len(self.sink.messages), 2)
        self.assertEqual(watch.touched, [])

    def test_plain_message_after_a_restart(self) -> None:
        self.local = RecordingChannel(hold=True)
        queue_message(self.layout, "alice@far.example", ["a@mail.example"])
        s = self.start()
        s.stopService()
        self.clock.advance(100)
        self.local = RecordingChannel()
        watch = DsnPathWatch(self)
        self.start()
        self.clock.advance(1000)
        self.assertEqual(self.local.recipients(), ["a@mail.example"])
        self.assertEqual(watch.touched, [])


class DsnDataInMemoryTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"locals": "mail.example\n"}

    def queue(self, dsn: MessageDsn, recipients: list[str], sender: str = "alice@far.example") -> int:
        return queue_message(self.layout, sender, recipients, todo=encode_todo(1000, 4242, sender, recipients, dsn))

    def test_channel_gets_the_data_in_the_job(self) -> None:
        self.remote = RecordingChannel(max_recipients=10)
        request = RecipientDsn(("SUCCESS", "FAILURE"), "rfc822;o@far.example")
        self.queue(MessageDsn("HDRS", "e1", (request, RecipientDsn())), ["a@far.example", "b@far.example"])
        self.start()
        [job] = self.remote.jobs
        assert job.dsn is not None
        self.assertEqual((job.dsn.ret, job.dsn.envid), ("HDRS", "e1"))
        self.assertEqual(job.dsn.request("a@far.example"), request)
        self.assertEqual(job.dsn.request("b@far.example"), RecipientDsn())

    def test_data_is_found_again_after_a_restart(self) -> None:
        """Restart: one listing of dsn/N/ finds the file; its S records and requests still count."""
        self.local = RecordingChannel(hold=True, max_recipients=10)
        self.remote = RecordingChannel(hold=True)
        message_id = self.queue(MessageDsn(recipients=(RecipientDsn(("SUCCESS",)), RecipientDsn(("NEVER",)))),
                                ["a@mail.example", "b@far.example"])
        s = self.start()
        self.local.release("K", "did 1+0+0\n")
        self.clock.advance(0)
        found = read_dsn_file(self.layout, message_id)
        assert found is not None
        self.assertEqual(found.successes, {"a@mail.example": "delivered"})
        s.stopService()
        self.clock.advance(100)
        self.remote = RecordingChannel(lambda job, r: ("D", "Sorry, no.\n"))
        self.start()
        self.clock.advance(10000)
        [job] = self.remote.jobs
        assert job.dsn is not None
        self.assertEqual(job.dsn.request("b@far.example"), RecipientDsn(("NEVER",)))
        # b's failure goes into no bounce (NOTIFY=NEVER); a's success notice goes out
        [(_, _, _, data)] = self.sink.messages
        self.assertIn(b"Action: delivered", data)
        self.assertNotIn(b"b@far.example", data)
        self.assertEqual(self.queue_files(), [])

    def test_success_notice_sent_once_when_the_dsn_file_cannot_go(self) -> None:
        """Removing dsn/N/ID fails once: only the removal is tried again, the notice is not sent twice."""
        real, calls = finishing.remove_dsn_file, []

        def flaky(layout: Any, message_id: int) -> None:
            calls.append(message_id)
            if len(calls) == 1:
                raise PermissionError(errno.EACCES, "Permission denied")
            real(layout, message_id)

        self.patch(finishing, "remove_dsn_file", flaky)
        self.queue(MessageDsn(recipients=(RecipientDsn(("SUCCESS",)),)), ["bob@mail.example"])
        self.start()
        self.clock.advance(200)
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.sink.messages), 1)
        self.assertEqual(self.queue_files(), [])

    def test_torn_success_record_spoils_nothing_else(self) -> None:
        """A torn S record (crash, short write): NOTIFY=NEVER still holds, the next notice still counts."""
        state = {}

        def answer(job: Any, rcpt: str) -> tuple[str, str]:
            if rcpt == "a@mail.example":
                with open(dsn_path(self.layout, job.message_id), "ab") as f:
                    f.write(b"Sdeliv")
                return ("K", "did 1+0+0\n")
            state["failed"] = True
            return ("D", NO_MAILBOX)

        self.local = RecordingChannel(answer)
        self.queue(MessageDsn(recipients=(RecipientDsn(("SUCCESS",)), RecipientDsn(("NEVER",)))),
                   ["a@mail.example", "b@mail.example"])
        self.start()
        self.assertTrue(state.get("failed"))
        [(_, _, _, data)] = self.sink.messages
        self.assertIn(b"Final-Recipient: rfc822; a@mail.example", data)
        self.assertNotIn(b"b@mail.example", data)


def make_layout(case: unittest.SynchronousTestCase) -> QueueLayout:
    layout = QueueLayout(os.path.join(case.mktemp(), "queue"), split=23)
    layout.create()
    return layout


class DsnFileRecordsTests(unittest.SynchronousTestCase):
    def test_malformed_success_record_is_skipped(self) -> None:
        bad: list[bytes] = []
        found = dsnfile.parse_dsn_file(b"RFULL\0Ta@x\0NSUCCESS\0SdelivSdelivered:a@x\0Srelayed:b@x\0", bad.append)
        self.assertEqual(found.successes, {"b@x": "relayed"})
        self.assertEqual(found.request("a@x"), RecipientDsn(("SUCCESS",)))
        self.assertEqual(bad, [b"SdelivSdelivered:a@x"])

    def test_failed_append_is_cut_back(self) -> None:
        """ENOSPC half way through an S record: the file is truncated to what it was."""
        layout = make_layout(self)
        write_file(dsn_path(layout, 7), b"Ta@x\0NSUCCESS\0")
        real = dsnfile.write_all

        def short(fd: int, data: bytes) -> None:
            real(fd, data[:3])
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(dsnfile, "write_all", short)
        self.assertRaises(OSError, dsnfile.append_success, layout, 7, "delivered", "a@x")
        with open(dsn_path(layout, 7), "rb") as f:
            self.assertEqual(f.read(), b"Ta@x\0NSUCCESS\0")

    def test_book_appends_to_file_and_memory(self) -> None:
        layout = make_layout(self)
        book = DsnBook()
        dsn = MessageDsn(recipients=(RecipientDsn(("SUCCESS",)),))
        write_file(dsn_path(layout, 9), encode_dsn_file(dsn, ["a@x"]))
        write_file(dsn_path(layout, 11), b"Ta@x\0Nbogus\0")
        write_file(dsn_path(layout, 12), encode_dsn_file(dsn, ["a@x"]) + b"Sdeliv")  # a crash mid-append
        warnings: list[str] = []
        book.load(layout, skip=frozenset({13}), warn=warnings.append)
        self.assertEqual(book.get(9), DsnFile(requests={"a@x": RecipientDsn(("SUCCESS",))}))
        self.assertTrue(book.has_file(11))
        self.assertIsNone(book.get(11))  # unreadable: the defaults, but its file is still removed
        self.assertEqual(len(warnings), 1)
        self.assertFalse(book.has_file(10))
        book.append_success(layout, 9, "delivered", "a@x")
        book.append_success(layout, 12, "relayed", "a@x")
        self.assertEqual(book.get(9).successes, {"a@x": "delivered"})  # type: ignore[union-attr]
        for message_id, action in ((9, "delivered"), (12, "relayed")):
            on_disk = read_dsn_file(layout, message_id)
            assert on_disk is not None
            self.assertEqual(on_disk.successes, {"a@x": action})


    def test_unlisted_directory_is_read_file_by_file(self) -> None:
        """dsn/N/ cannot be listed at the start: its messages' files are read when first asked about."""
        layout = make_layout(self)
        dsn = MessageDsn(recipients=(RecipientDsn(("SUCCESS",)),))
        write_file(dsn_path(layout, 23 + 5), encode_dsn_file(dsn, ["a@x"]))
        real = os.scandir

        def scandir(path: Any) -> Any:
            if str(path).endswith(f"{os.sep}dsn{os.sep}5"):
                raise PermissionError(errno.EACCES, "Permission denied")
            return real(path)

        self.patch(os, "scandir", scandir)
        warnings: list[str] = []
        book = DsnBook()
        book.load(layout, skip=frozenset(), warn=warnings.append)
        self.assertEqual(warnings, ["unable to read dsn/5: Permission denied; reading its files one by one"])
        self.assertFalse(book.has_file(5))
        self.assertEqual(book.get(28), DsnFile(requests={"a@x": RecipientDsn(("SUCCESS",))}))
        book.preprocessed(51, None)  # known from preprocessing: never read
        self.assertFalse(book.has_file(51))


class CleanerTests(unittest.SynchronousTestCase):
    def test_dsn_file_of_a_message_in_todo_is_kept(self) -> None:
        """Preprocessing redoing a leftover todo/ID rewrites info/ and dsn/: the cleaner leaves its dsn file alone."""
        layout = make_layout(self)
        write_file(layout.todo(21), b"u1000\0p1\0Fa@x\0")
        write_file(dsn_path(layout, 21), b"RFULL\0")
        write_file(dsn_path(layout, 22), b"RFULL\0")
        clean_queue(layout, grace=0.0)
        self.assertTrue(os.path.exists(dsn_path(layout, 21)))
        self.assertFalse(os.path.exists(dsn_path(layout, 22)))


class RecyclingTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    """A finished message's file is recycled only once its dsn file's removal is durable too."""

    controls = {"locals": "mail.example\n"}

    def finished_items(self, todo: bytes | None, recipients: list[str]) -> list[Any]:
        from pymta.control import ControlReader
        from pymta.queue.scheduler import Scheduler
        from pymta.queue.spares import SparePool
        from tests.queue.helpers import disk_for

        s = Scheduler(disk_for(self.layout, mess_spares=SparePool(self.layout)), ControlReader(self.root),
                      {"local": self.local, "remote": self.remote}, self.sink, self.clock)
        items: list[Any] = []
        self.patch(s._unlinker, "later", lambda *found: items.extend(found))
        queue_message(self.layout, "alice@far.example", recipients, todo=todo)
        s.startService()
        self.addCleanup(s.stopService)
        self.clock.advance(0)
        return items

    def test_dsn_directory_is_synced_before_the_id_comes_back(self) -> None:
        from pymta.queue.unlinking import RecyclableMessage

        dsn = MessageDsn(recipients=(RecipientDsn(("NEVER",)),))
        items = self.finished_items(encode_todo(1000, 4242, "alice@far.example", ["a@mail.example"], dsn),
                                    ["a@mail.example"])
        [message] = [item for item in items if isinstance(item, RecyclableMessage)]
        self.assertIn(os.path.join(self.layout.queuedir, "dsn", os.path.basename(os.path.dirname(message.path))),
                      message.dirs)

    def test_plain_message_needs_no_dsn_directory(self) -> None:
        from pymta.queue.unlinking import RecyclableMessage

        [message] = [item for item in self.finished_items(None, ["a@mail.example"])
                     if isinstance(item, RecyclableMessage)]
        self.assertFalse(any(f"{os.sep}dsn{os.sep}" in d for d in message.dirs))
