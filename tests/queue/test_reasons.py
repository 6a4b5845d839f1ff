"""
Tests for pymta.queue.reasons (the reason file) and pymta.queue.reasonbook
(how the scheduler keeps it): what a deferral records, what success and
the end of a message remove, crash leftovers, bounds and printability.
"""

from __future__ import annotations

import io
import os
import shutil
import time

from twisted.trial import unittest

from pymta.cli import qread
from pymta.queue.cleaner import clean_queue
from pymta.queue.ctlserver import answer
from pymta.queue.disk import QueueDisk
from pymta.queue.layout import QueueLayout
from pymta.queue.reasonbook import MANGLED_TEXT
from pymta.queue.reasons import (
    READ_MAX,
    REASON_MAX,
    SHOWN_MAX,
    Reason,
    append_reasons,
    compact,
    current,
    latest,
    read_reasons,
    shown,
)
from pymta.queue.sendfiles import read_channel_file
from tests.queue.test_scheduler import SchedulerTestMixin, queue_message
from tests.queue.test_scheduler_first import FirstAttemptMixin

CONNECT = "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"


class ReasonFileTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = QueueLayout(os.path.join(self.mktemp(), "queue"), split=23)
        self.layout.create()
        self.disk = QueueDisk.plain(self.layout)

    def test_round_trip_keeps_odd_addresses(self) -> None:
        odd = "j\udcf6rg@x\ty"  # an undecodable byte and a tab, as a channel file may hold them
        reasons = [Reason("remote", odd, 100, "one\ntwo\n"), Reason("local", "", 101, "trouble")]
        append_reasons(self.disk, 7, reasons)
        self.assertEqual(read_reasons(self.layout, 7), reasons)
        with open(self.layout.reason(7), "rb") as f:
            data = f.read()
        self.assertEqual(data.count(b"\n"), 2)  # one line each, newlines inside escaped
        self.assertTrue(all(32 <= b < 127 for b in data.replace(b"\n", b"")))

    def test_latest_line_wins(self) -> None:
        append_reasons(self.disk, 7, [Reason("remote", "a@x", 100, "first")])
        append_reasons(self.disk, 7, [Reason("remote", "a@x", 200, "second"), Reason("remote", "b@x", 200, "b")])
        found = latest(read_reasons(self.layout, 7))
        self.assertEqual(found[("remote", "a@x")].text, "second")
        self.assertEqual(list(found), [("remote", "a@x"), ("remote", "b@x")])

    def test_mangled_lines_are_skipped(self) -> None:
        good = Reason("remote", "a@x", 100, "kept").encode()
        junk = [b"{not json", b"[1,2]", b'{"ch":"smtp","rcpt":"a","at":1,"text":"x"}',
                b'{"ch":"remote","rcpt":"a","at":"soon","text":"x"}', b'{"ch":"remote","rcpt":"a","at":true,"text":""}',
                b'{"ch":"remote","rcpt":"a","at":-1,"text":"x"}', b"\xff\xfe", b'{"ch":"remote"']
        with open(self.layout.reason(7), "wb") as f:
            f.write(b"\n".join(junk) + b"\n" + good + b'{"ch":"rem')  # the last line cut by a crash
        self.assertEqual(read_reasons(self.layout, 7), [Reason("remote", "a@x", 100, "kept")])

    def test_missing_file_has_no_reasons(self) -> None:
        self.assertEqual(read_reasons(self.layout, 7), [])

    def test_huge_text_is_bounded(self) -> None:
        append_reasons(self.disk, 7, [Reason("remote", "a@x", 100, "x" * (REASON_MAX * 50))])
        (reason,) = read_reasons(self.layout, 7)
        self.assertEqual(len(reason.text), REASON_MAX)
        # a hand-made line with a huge text is cut too
        with open(self.layout.reason(8), "wb") as f:
            f.write(b'{"ch":"remote","rcpt":"a","at":1,"text":"' + b"y" * (REASON_MAX + 10) + b'"}\n')
        self.assertEqual(len(read_reasons(self.layout, 8)[0].text), REASON_MAX)

    def test_huge_file_is_read_only_so_far(self) -> None:
        line = Reason("remote", "a@x", 100, "z" * 900).encode()
        with open(self.layout.reason(7), "wb") as f:
            f.write(line * (2 * READ_MAX // len(line)))
        reasons = read_reasons(self.layout, 7)
        self.assertTrue(0 < len(reasons) <= READ_MAX // len(line))

    def test_shown_is_one_printable_line(self) -> None:
        self.assertEqual(shown("Remote host said: 451 try\r\nlater\x1b[31m\u00e9%\n"),
                         "Remote host said: 451 try_/later_[31m_%")
        cut = shown("w" * (SHOWN_MAX * 3))
        self.assertEqual(cut, "w" * SHOWN_MAX + "...")

    def test_current_prefers_the_newer_and_ignores_older_messages(self) -> None:
        found = latest([Reason("remote", "", 150, "channel"), Reason("remote", "a@x", 120, "own"),
                        Reason("remote", "b@x", 90, "an earlier message with this id")])
        self.assertEqual(current(found, "remote", "a@x", 100).text, "channel")
        self.assertIsNone(current(found, "remote", "b@x", 160))
        self.assertIsNone(current(found, "local", "a@x", 0))

    def test_compact_keeps_the_latest_accepted(self) -> None:
        append_reasons(self.disk, 7, [Reason("remote", "a@x", 1, "old"), Reason("local", "b@y", 1, "b")])
        append_reasons(self.disk, 7, [Reason("remote", "a@x", 2, "new")])
        kept = compact(self.disk, 7, lambda r: r.channel == "remote")
        self.assertEqual(kept, [Reason("remote", "a@x", 2, "new")])
        self.assertEqual(read_reasons(self.layout, 7), kept)
        self.assertEqual(os.listdir(os.path.dirname(self.layout.reason(7))), ["7"])  # no temporary file left
        self.assertEqual(compact(self.disk, 7, lambda r: False), [])
        self.assertFalse(os.path.exists(self.layout.reason(7)))

    def test_queue_without_reason_directory(self) -> None:
        """A queue made before reason/ existed gets it on first use."""
        shutil.rmtree(self.layout.dir("reason"))
        append_reasons(self.disk, 7, [Reason("remote", "a@x", 1, "t")])
        self.assertEqual(len(read_reasons(self.layout, 7)), 1)


class ReasonCleanerTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = QueueLayout(os.path.join(self.mktemp(), "queue"), split=23)
        self.layout.create()
        self.later = time.time() + 3600

    def write(self, path: str) -> str:
        with open(path, "wb") as f:
            f.write(Reason("remote", "a@x", 1, "t").encode())
        return path

    def test_leftover_without_message_is_removed(self) -> None:
        path = self.write(self.layout.reason(46))
        self.assertEqual(clean_queue(self.layout, now=self.later), [path])
        self.assertFalse(os.path.exists(path))

    def test_reason_of_a_queued_message_is_kept(self) -> None:
        path = self.write(self.layout.reason(46))
        with open(self.layout.info(46), "wb") as f:
            f.write(b"Fa@b\0")
        self.assertEqual(clean_queue(self.layout, now=self.later), [])
        self.assertTrue(os.path.exists(path))

    def test_young_temporary_files_are_left_alone(self) -> None:
        # a rewrite may be under way; a young reason file without info/ goes, though (test_cleaner)
        self.write(os.path.join(os.path.dirname(self.layout.reason(46)), ".46.new"))
        self.assertEqual(clean_queue(self.layout), [])

    def test_temporary_file_of_a_rewrite_is_removed(self) -> None:
        path = self.write(os.path.join(os.path.dirname(self.layout.reason(46)), ".46.new"))
        with open(self.layout.info(46), "wb") as f:
            f.write(b"Fa@b\0")
        self.assertEqual(clean_queue(self.layout, now=self.later), [path])


class SchedulerReasonTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def reasons(self, mid: int) -> dict[tuple[str, str], Reason]:
        return latest(read_reasons(self.layout, mid))

    def listing(self) -> str:
        out = io.StringIO()
        qread.qread(QueueLayout(self.layout.queuedir), out)
        return out.getvalue()

    def test_deferral_recorded_for_exactly_its_recipients(self) -> None:
        self.remote.max_recipients = 10
        answers = {"bob@other.example": ("Z", CONNECT), "carol@other.example": ("K", "ok\n"),
                   "dave@other.example": ("D", "no such user\n")}
        self.remote.answer = lambda job, rcpt: answers[rcpt]
        mid = queue_message(self.layout, "a@mail.example", list(answers))
        self.start()
        self.assertEqual(len(self.remote.jobs), 1)  # one batch for the three
        self.assertEqual(self.reasons(mid), {("remote", "bob@other.example"):
                                             Reason("remote", "bob@other.example", int(self.clock.seconds()), CONNECT)})
        # checkpointed first: the channel file says bob waits
        records = read_channel_file(self.layout.remote(mid))
        self.assertEqual([(r.address, r.done) for r in records],
                         [("bob@other.example", False), ("carol@other.example", True), ("dave@other.example", True)])

    def test_listing_and_ctl_queue_show_the_reason(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", CONNECT)
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "carol@other.example"])
        s = self.start()
        when = time.strftime("%d %b %Y %H:%M:%S", time.gmtime(self.clock.seconds())).lstrip("0")
        lines = self.listing().splitlines()
        self.assertEqual(lines[1:], [  # bob's local file went with his delivery
            "\tremote\tcarol@other.example",
            f"\t\t{when} GMT (Sorry, I wasn't able to establish an SMTP connection. (#4.4.1))",
        ])
        reply = answer(s, "queue")
        self.assertEqual(reply[1].split(" next try ")[0], f"msg {mid} remote")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock.seconds()))
        self.assertEqual(reply[2], f"  last error {stamp} GMT (Sorry, I wasn't able to establish an SMTP connection."
                                   " (#4.4.1))")

    def test_success_removes_the_reason_and_the_file_goes_with_the_message(self) -> None:
        self.remote.max_recipients = 10
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example", "carol@other.example"])
        self.start()
        self.assertEqual(set(self.reasons(mid)), {("remote", "bob@other.example"), ("remote", "carol@other.example")})
        # next pass: carol gets through, bob does not
        self.remote.answer = lambda job, rcpt: ("K", "ok\n") if rcpt.startswith("carol") else ("Z", "still later\n")
        self.clock.advance(400)
        self.assertEqual(len(self.remote.jobs), 2)
        self.assertEqual(read_reasons(self.layout, mid), [Reason("remote", "bob@other.example",
                                                                 int(self.clock.seconds()), "still later\n")])
        self.assertNotIn("carol", self.listing().split("\tremote\tcarol@other.example\n")[-1])
        # and then bob: the message ends, its reason file with it
        self.remote.answer = lambda job, rcpt: ("K", "ok\n")
        self.clock.advance(10000)
        self.assertFalse(os.path.exists(self.layout.info(mid)))
        self.assertFalse(os.path.exists(self.layout.reason(mid)))
        self.assertEqual(self.queue_files(), [])

    def test_failure_for_good_ends_with_bounce_and_no_reason_left(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        self.assertTrue(os.path.exists(self.layout.reason(mid)))
        self.remote.answer = lambda job, rcpt: ("D", "gone\n")
        self.clock.advance(400)
        self.assertEqual(len(self.sink.messages), 1)
        self.assertEqual(self.queue_files(), [])

    def test_local_and_remote_reasons_are_kept_apart(self) -> None:
        self.local.answer = lambda job, rcpt: ("Z", "mailbox busy\n")
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "carol@other.example"])
        self.start()
        self.assertEqual({k: r.text for k, r in self.reasons(mid).items()},
                         {("local", "bob@mail.example"): "mailbox busy\n", ("remote", "carol@other.example"): "later\n"})
        # local delivers at its next pass: its channel file goes, and so do its lines
        self.local.answer = lambda job, rcpt: ("K", "ok\n")
        self.clock.advance(100)
        self.assertFalse(os.path.exists(self.layout.local(mid)))
        self.assertEqual(set(self.reasons(mid)), {("remote", "carol@other.example")})

    def test_mangled_report_is_a_reason(self) -> None:
        self.remote.answer = lambda job, rcpt: ("?", "x")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        self.assertEqual(self.reasons(mid)[("remote", "bob@other.example")].text, MANGLED_TEXT)

    def test_pass_that_cannot_open_is_the_reason_of_every_recipient(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        s = self.start()
        info = self.layout.info(mid)
        os.rename(info, info + ".saved")
        os.mkdir(info)  # unreadable as a file, even for root
        self.clock.advance(400)
        self.assertEqual(len(self.remote.jobs), 1)
        reason = self.reasons(mid)[("remote", "")]
        self.assertEqual(reason.text, f"trouble opening info/{mid % 23}/{mid}; will try again later")
        self.assertEqual(answer(s, "queue")[2].split(" (")[1], reason.text + ")")

    def test_reasons_survive_a_restart(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        s = self.start()
        s.stopService()
        s = self.start()
        (job,) = s.jobs()
        self.assertEqual(job.reason, Reason("remote", "bob@other.example", int(self.clock.seconds()), "later\n"))
        self.assertEqual(job.message_id, mid)

    def test_unwritable_reason_never_holds_up_delivery(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        directory = os.path.dirname(self.layout.reason(mid))
        os.rmdir(directory)
        open(directory, "wb").close()  # a file where the directory should be
        self.start()
        self.assertEqual(len(self.remote.jobs), 1)
        self.assertTrue(any(l.startswith(f"warning: unable to keep the reason of msg {mid}: ") for l in self.lines()))
        # the deferral itself is kept as ever: the next pass comes
        self.remote.answer = lambda job, rcpt: ("K", "ok\n")
        self.clock.advance(400)
        self.assertFalse(os.path.exists(self.layout.info(mid)))


class FirstAttemptReasonTests(FirstAttemptMixin, unittest.SynchronousTestCase):
    def test_first_attempt_deferral_is_kept(self) -> None:
        self.remote.answer = lambda job, rcpt: ("Z", "later\n")
        s = self.start()
        mid = self.notify(s, "a@mail.example", ["bob@other.example"])
        self.assertEqual(len(self.remote.jobs), 1)
        self.assertEqual(read_reasons(self.layout, mid),
                         [Reason("remote", "bob@other.example", int(self.clock.seconds()), "later\n")])

    def test_first_attempt_success_writes_nothing(self) -> None:
        s = self.start()
        self.notify(s, "a@mail.example", ["bob@other.example"])
        self.assertEqual(self.queue_files(), [])
