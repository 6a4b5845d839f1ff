"""
Tests for pymta.queue.scheduler: pickup, preprocessing, deliveries, retries,
queuelifetime, bounces, concurrency, quarantine - all on a task.Clock.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Callable, Sequence

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.interfaces import DeliveryJob, DeliveryResult, QueueReceipt, QueueRefused
from pymta.queue.layout import QueueLayout
from pymta.queue.qmaillog import QmailLog
from pymta.queue.scheduler import Scheduler
from tests.queue.helpers import disk_for

START = 1_790_000_000


# ------------------------------------------------------------------ fixtures


def make_root(testcase: unittest.SynchronousTestCase, short: bool = False, **controls: str) -> tuple[str, QueueLayout]:
    """A root with control files and a queue; C{short} puts it in /tmp (UNIX socket paths must be short)."""
    if short:
        root = tempfile.mkdtemp(prefix="pymta-send-")
        testcase.addCleanup(shutil.rmtree, root, True)
    else:
        root = os.path.abspath(testcase.mktemp())
    os.makedirs(os.path.join(root, "control"))
    controls.setdefault("me", "mail.example\n")
    for name, text in controls.items():
        write_control(root, name, text)
    layout = QueueLayout(os.path.join(root, "queue"), split=23)
    layout.create()
    return root, layout


def write_control(root: str, name: str, text: str) -> None:
    with open(os.path.join(root, "control", name), "w") as f:
        f.write(text)


def queue_message(
    layout: QueueLayout, sender: str, recipients: Sequence[str], body: bytes = b"Subject: t\n\nhello\n",
    uid: int = 1000, pid: int = 4242, todo: bytes | None = None,
) -> int:
    """Write a committed message the way the queue writer does: mess/N/ID (ID = inode) and todo/ID."""
    tmp = os.path.join(layout.dir("pid"), f"test.{time.monotonic_ns()}")
    with open(tmp, "wb") as f:
        f.write(b"Received: (pymta 1 invoked by uid 1000); 1 Nov 2026 10:00:00 -0000\n" + body)
        message_id = os.fstat(f.fileno()).st_ino
    os.link(tmp, layout.mess(message_id))
    os.unlink(tmp)
    if todo is None:
        todo = b"u%d\0p%d\0F" % (uid, pid) + sender.encode() + b"\0"
        todo += b"".join(b"T" + r.encode() + b"\0" for r in recipients)
    with open(layout.todo(message_id), "wb") as f:
        f.write(todo)
    return message_id


class RecordingChannel:
    """A channel that answers from a script: C{answer(job, recipient) -> (status, text)} or holds the job."""

    def __init__(self, answer=None, max_recipients: int = 1, hold: bool = False) -> None:
        self.answer = answer or (lambda job, rcpt: ("K", "did 1+0+0\n"))
        self.max_recipients = max_recipients
        self.hold = hold
        self.jobs: list[DeliveryJob] = []
        self.held: list[tuple[DeliveryJob, defer.Deferred]] = []
        self.stopped = False
        self.started = 0

    def start(self) -> None:
        self.started += 1

    def deliver(self, job: DeliveryJob):
        self.jobs.append(job)
        if self.hold:
            d: defer.Deferred = defer.Deferred()
            self.held.append((job, d))
            return d
        return defer.succeed([DeliveryResult(*self.answer(job, r)) for r in job.recipients])

    def release(self, status: str = "K", text: str = "ok\n") -> None:
        held, self.held = self.held, []
        for job, d in held:
            d.callback([DeliveryResult(status, text) for _ in job.recipients])

    def recipients(self) -> list[str]:
        return [r for job in self.jobs for r in job.recipients]

    def stop(self):
        self.stopped = True
        return None


class CollectingSink:
    """A MessageSink keeping injected messages in memory."""

    def __init__(self, fail: bool = False) -> None:
        self.messages: list[tuple[str, list[str], str, bytes]] = []
        self.fail = fail

    def open_message(self, sender, recipients, *, origin, uid=None, pid=None):
        sink = self

        class Writer:
            def __init__(self) -> None:
                self.data = b""

            def write(self, data: bytes) -> None:
                self.data += data

            def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
                pass  # nothing is held back: never a backlog

            def finish(self):
                if sink.fail:
                    return defer.fail(QueueRefused("qq write error or disk full (#4.3.0)"))
                sink.messages.append((sender, list(recipients), origin, self.data))
                return defer.succeed(QueueReceipt(999, 777))

            def abort(self) -> None:
                pass

        return Writer()


class SchedulerTestMixin:
    controls: dict[str, str] = {}
    #: a test that provokes an internal error on purpose sets this; any other fails on one
    expect_internal_errors = False

    def setUp(self) -> None:
        self.addCleanup(self._no_internal_errors)
        self.root, self.layout = make_root(self, **self.controls)
        self.clock = task.Clock()
        self.clock.advance(START)
        self.events: list[dict] = []
        self.local = RecordingChannel()
        self.remote = RecordingChannel()
        self.sink = CollectingSink()

    def make_scheduler(self, **kw) -> Scheduler:
        s = Scheduler(
            disk_for(self.layout),
            ControlReader(self.root),
            {"local": kw.pop("local", self.local), "remote": kw.pop("remote", self.remote)},
            kw.pop("sink", self.sink),
            self.clock,
            log=QmailLog(Logger(namespace="pymta.send", observer=self.events.append)),
            **kw,
        )
        return s

    def start(self, **kw) -> Scheduler:
        s = self.make_scheduler(**kw)
        s.startService()
        self.clock.advance(0)
        return s

    def lines(self) -> list[str]:
        return [e["qmail_line"] for e in self.events if "qmail_line" in e]

    def _no_internal_errors(self) -> None:
        """An internal error the test did not ask for is a bug, even when the behaviour checked held."""
        if not self.expect_internal_errors:
            errors = [line for line in self.lines() if "internal error" in line]
            self.assertEqual(errors, [], "unexpected internal errors in pymta-send")  # type: ignore[attr-defined]

    def delivery_lines(self) -> list[str]:
        return [l for l in self.lines() if not l.startswith("status:")]

    def queue_files(self) -> list[str]:
        found = []
        for dirpath, _, files in os.walk(self.layout.queuedir):
            rel = os.path.relpath(dirpath, self.layout.queuedir)
            if rel.startswith("lock") or rel == ".":
                continue
            found += [os.path.join(rel, f) for f in files]
        return sorted(found)

    def advance_to_age(self, birth: int, age: int) -> None:
        self.clock.advance(birth + age - self.clock.seconds())


# --------------------------------------------------------------------- tests


class DeliveryTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def test_local_and_remote_success(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "carol@other.example"])
        size = os.stat(self.layout.mess(mid)).st_size
        s = self.start()
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.assertEqual(self.remote.recipients(), ["carol@other.example"])
        self.assertEqual(self.local.jobs[0].sender, "a@mail.example")
        self.assertEqual(self.local.jobs[0].message_path, self.layout.mess(mid))
        self.assertFalse(os.path.exists(self.layout.mess(mid)))  # removed at the end
        self.assertEqual(
            self.delivery_lines(),
            [
                f"new msg {mid}",
                f"info msg {mid}: bytes {size} from <a@mail.example> qp 4242 uid 1000",
                f"starting delivery 1: msg {mid} to local bob@mail.example",
                "delivery 1: success: did_1+0+0/",
                f"starting delivery 2: msg {mid} to remote carol@other.example",
                "delivery 2: success: did_1+0+0/",
                f"end msg {mid}",
            ],
        )
        self.assertEqual(self.lines()[0], "status: local 0/10 remote 0/20")
        self.assertIn("status: local 1/10 remote 0/20", self.lines())
        self.assertEqual(self.queue_files(), [])
        self.assertEqual(self.sink.messages, [])
        s.stopService()
        self.assertEqual(self.lines()[-1], "status: exiting")

    def test_notify_picks_up_at_once(self) -> None:
        s = self.start()
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        s.notify(mid)
        self.clock.advance(0)
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.assertIn(f"end msg {mid}", self.lines())

    def test_periodic_scan_finds_todo(self) -> None:
        s = self.start()
        queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        self.clock.advance(59)
        self.assertEqual(self.local.jobs, [])
        self.clock.advance(1)
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        s.stopService()

    def test_no_recipients(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", [])
        self.start()
        self.assertEqual(self.delivery_lines()[-1], f"end msg {mid}")
        self.assertEqual(self.queue_files(), [])

    def test_safe_logging(self) -> None:
        self.local.answer = lambda job, r: ("K", "did 1%\n")
        mid = queue_message(self.layout, "a b@mail.example", ["x\x01y@mail.example"])
        size = os.stat(self.layout.mess(mid)).st_size
        self.start()
        self.assertIn(f"info msg {mid}: bytes {size} from <a_b@mail.example> qp 4242 uid 1000", self.lines())
        self.assertIn(f"starting delivery 1: msg {mid} to local x_y@mail.example", self.lines())
        self.assertIn("delivery 1: success: did_1_/", self.lines())

    def test_virtual_domain_rewritten(self) -> None:
        write_control(self.root, "virtualdomains", "virt.example:alice-virt\n")
        queue_message(self.layout, "a@mail.example", ["Info@Virt.Example"])
        self.start()
        self.assertEqual(self.local.recipients(), ["alice-virt-Info@Virt.Example"])

    def test_remote_batches(self) -> None:
        self.remote.max_recipients = 2
        rcpts = ["a@x.example", "b@x.example", "c@x.example"]
        mid = queue_message(self.layout, "s@mail.example", rcpts)
        self.start()
        self.assertEqual([j.recipients for j in self.remote.jobs], [("a@x.example", "b@x.example"), ("c@x.example",)])
        starts = [l for l in self.lines() if l.startswith("starting delivery")]
        self.assertEqual(
            starts,
            [f"starting delivery {n}: msg {mid} to remote {r}" for n, r in zip((1, 2, 3), rcpts)],
        )
        self.assertIn("delivery 3: success: did_1+0+0/", self.lines())

    def test_batches_hold_one_domain(self) -> None:
        self.remote.max_recipients = 10
        mid = queue_message(self.layout, "s@mail.example", ["a@x.example", "b@y.example", "c@X.Example"])
        self.start()
        self.assertEqual([j.recipients for j in self.remote.jobs], [("a@x.example", "c@X.Example"), ("b@y.example",)])
        starts = [l for l in self.lines() if l.startswith("starting delivery")]
        self.assertEqual(starts, [
            f"starting delivery 1: msg {mid} to remote a@x.example",
            f"starting delivery 2: msg {mid} to remote c@X.Example",
            f"starting delivery 3: msg {mid} to remote b@y.example",
        ])

    def test_verp_sender_expanded_per_recipient(self) -> None:
        self.remote.max_recipients = 10
        queue_message(self.layout, "list-owner-@lists.example-@[]", ["joe@b.example", "ann@c.example"])
        self.start()
        self.assertEqual(
            [(j.sender, j.recipients) for j in self.remote.jobs],
            [
                ("list-owner-joe=b.example@lists.example", ("joe@b.example",)),
                ("list-owner-ann=c.example@lists.example", ("ann@c.example",)),
            ],
        )

    def test_channel_errback_is_a_deferral(self) -> None:
        class Broken(RecordingChannel):
            def deliver(self, job):
                raise RuntimeError("boom")

        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        self.start(local=Broken())
        self.assertIn("delivery 1: deferral: delivery_channel_failed:_boom/", self.lines())
        self.assertTrue(os.path.exists(self.layout.local(mid)))

    def test_unrecordable_result_keeps_recipient_and_frees_slot(self) -> None:
        self.expect_internal_errors = True
        self.local.answer = lambda job, r: ("D", "bad \ud800 text") if r.startswith("x") else ("K", "ok\n")
        mid = queue_message(self.layout, "a@mail.example", ["x@mail.example"])
        s = self.start()
        self.assertTrue(any(l.startswith("alert: internal error in recording delivery 1") for l in self.lines()))
        with open(self.layout.local(mid), "rb") as f:
            self.assertEqual(f.read(), b"Tx@mail.example\0")
        self.assertEqual(s.status_text(), "status: local 0/10 remote 0/20")
        other = queue_message(self.layout, "a@mail.example", ["y@mail.example"])
        s.notify(other)
        self.clock.advance(0)
        self.assertIn(f"end msg {other}", self.lines())

    def test_mangled_report(self) -> None:
        self.local.answer = lambda job, r: ("X", "what")
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        self.start()
        self.assertIn("delivery 1: report mangled, will defer", self.lines())
        with open(self.layout.local(mid), "rb") as f:
            self.assertEqual(f.read(), b"Tbob@mail.example\0")


class RetryScheduleTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def attempt_ages(self, channel: RecordingChannel, birth: int, until_age: int) -> list[int]:
        ages = []
        seen = 0
        for age in range(0, until_age + 1, 50):
            self.advance_to_age(birth, age)
            while seen < len(channel.jobs):
                ages.append(int(self.clock.seconds()) - birth)
                seen += 1
        return ages

    def test_remote_schedule(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "try later\n")
        queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        ages = self.attempt_ages(self.remote, START, 14400)
        self.assertEqual(ages, [0, 400, 1600, 3600, 6400, 10000, 14400])
        self.assertIn("delivery 1: deferral: try_later/", self.lines())

    def test_local_schedule(self) -> None:
        self.local.answer = lambda job, r: ("Z", "mailbox busy\n")
        queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        self.start()
        ages = self.attempt_ages(self.local, START, 4900)
        self.assertEqual(ages, [0, 100, 400, 900, 1600, 2500, 3600, 4900])

    def test_queuelifetime_turns_deferral_into_failure(self) -> None:
        write_control(self.root, "queuelifetime", "3000\n")
        self.remote.answer = lambda job, r: ("Z", "Connection refused.")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        ages = self.attempt_ages(self.remote, START, 20000)
        # 0, 400, 1600 are normal; the pass at 3600 starts after birth + 3000 and is the last
        self.assertEqual(ages, [0, 400, 1600, 3600])
        self.assertIn(
            "delivery 4: failure: Connection_refused./I'm_not_going_to_try_again;"
            "_this_message_has_been_in_the_queue_too_long./",
            self.lines(),
        )
        self.assertEqual(len(self.sink.messages), 1)
        sender, recipients, origin, data = self.sink.messages[0]
        self.assertEqual((sender, recipients, origin), ("", ["a@mail.example"], "for bounce"))
        self.assertIn(
            b"<bob@other.example>:\nConnection refused.\n"
            b"I'm not going to try again; this message has been in the queue too long.\n\n"
            b"--- Below this line is a copy of the message.\n",
            data,
        )
        self.assertIn(f"bounce msg {mid} qp 777", self.lines())
        self.assertEqual(self.queue_files(), [])

    def test_sigalrm_runs_everything_now(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        s = self.start()
        self.advance_to_age(START, 97)
        self.assertEqual(len(self.remote.jobs), 1)
        s.run_all_now()
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 2)
        # an early pass at age 97 fixes the next retry at birth + (9 + 20)^2
        self.advance_to_age(START, 840)
        self.assertEqual(len(self.remote.jobs), 2)
        self.advance_to_age(START, 841)
        self.assertEqual(len(self.remote.jobs), 3)


class BounceTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def test_failures_gathered_into_one_bounce_after_last_recipient(self) -> None:
        self.remote.hold = True
        self.local.answer = lambda job, r: ("D", "Sorry, no mailbox here by that name. (#5.1.1)\n")
        mid = queue_message(self.layout, "a@src.example", ["x@mail.example", "y@mail.example", "r@other.example"])
        self.start()
        # two local failures recorded, but the remote recipient is still in flight: no bounce yet
        self.assertEqual(self.sink.messages, [])
        with open(self.layout.bounce(mid), "rb") as f:
            self.assertEqual(
                f.read(),
                b"<x@mail.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
                b"<y@mail.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n",
            )
        self.remote.release("K", "ok\n")
        self.clock.advance(0)
        self.assertEqual(len(self.sink.messages), 1)
        sender, recipients, origin, data = self.sink.messages[0]
        self.assertEqual((sender, recipients, origin), ("", ["a@src.example"], "for bounce"))
        lines = data.decode().split("\n")
        self.assertEqual(lines[1:4], ["From: MAILER-DAEMON@mail.example", "To: a@src.example", "Subject: failure notice"])
        self.assertEqual(lines[5], "Hi. This is the pymta-send program at mail.example.")
        self.assertEqual(lines[9:15], [
            "<x@mail.example>:", "Sorry, no mailbox here by that name. (#5.1.1)", "",
            "<y@mail.example>:", "Sorry, no mailbox here by that name. (#5.1.1)", "",
        ])
        self.assertEqual(lines[15], "--- Below this line is a copy of the message.")
        self.assertEqual(lines[17], "Return-Path: <a@src.example>")
        self.assertEqual(lines[18], "Received: (pymta 1 invoked by uid 1000); 1 Nov 2026 10:00:00 -0000")
        done = self.delivery_lines()
        self.assertEqual(done[-2:], [f"bounce msg {mid} qp 777", f"end msg {mid}"])
        self.assertEqual(self.queue_files(), [])

    def test_double_bounce(self) -> None:
        self.remote.answer = lambda job, r: ("D", "no such user\n")
        mid = queue_message(self.layout, "", ["r@other.example"])
        self.start()
        sender, recipients, origin, data = self.sink.messages[0]
        self.assertEqual((sender, recipients), ("#@[]", ["postmaster@mail.example"]))
        lines = data.decode().split("\n")
        self.assertEqual(lines[2], "To: postmaster@mail.example")
        self.assertEqual(lines[8:11], ["<r@other.example>:", "no such user", ""])
        self.assertEqual(lines[11], "--- Below this line is the original bounce.")
        self.assertEqual(lines[13], "Return-Path: <>")
        self.assertIn(f"bounce msg {mid} qp 777", self.lines())

    def test_verp_sender_bounce_goes_to_owner(self) -> None:
        self.remote.answer = lambda job, r: ("D", "no such user\n")
        queue_message(self.layout, "list-owner-@lists.example-@[]", ["joe@b.example"])
        self.start()
        sender, recipients, origin, data = self.sink.messages[0]
        self.assertEqual((sender, recipients), ("", ["list-owner-@lists.example"]))
        self.assertIn(b"\nReturn-Path: <list-owner-@lists.example>\n", data)

    def test_triple_bounce_dropped(self) -> None:
        self.local.answer = lambda job, r: ("D", "no postmaster\n")
        mid = queue_message(self.layout, "#@[]", ["postmaster@mail.example"])
        self.start()
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(self.delivery_lines()[-2:], [f"triple bounce: discarding bounce/{mid}", f"end msg {mid}"])
        self.assertEqual(self.queue_files(), [])

    def test_virtual_prepend_stripped_in_bounce(self) -> None:
        write_control(self.root, "virtualdomains", "virt.example:alice-virt\njoe@u.example:joe\n")
        self.local.answer = lambda job, r: ("D", "no\n")
        queue_message(self.layout, "a@src.example", ["Info@Virt.Example", "joe@u.example"])
        self.start()
        data = self.sink.messages[0][3]
        self.assertIn(b"<Info@Virt.Example>:\nno\n\n<joe-joe@u.example>:\nno\n\n", data)

    def test_bounce_injection_failure_retried(self) -> None:
        self.sink.fail = True
        self.local.answer = lambda job, r: ("D", "no\n")
        mid = queue_message(self.layout, "a@src.example", ["x@mail.example"])
        self.start()
        self.assertIn("warning: trouble injecting bounce message, will try later", self.lines())
        self.assertTrue(os.path.exists(self.layout.bounce(mid)))
        self.assertTrue(os.path.exists(self.layout.info(mid)))
        self.sink.fail = False
        self.clock.advance(122)
        self.assertEqual(self.sink.messages, [])
        self.clock.advance(1)
        self.assertEqual(len(self.sink.messages), 1)
        self.assertEqual(self.queue_files(), [])


class ConcurrencyTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"concurrencyremote": "5\n", "concurrencylocal": "0\n"}

    def test_limits_honoured_and_raised(self) -> None:
        self.remote.hold = True
        self.local.hold = True
        for n in range(30):
            queue_message(self.layout, "a@mail.example", [f"r{n}@other.example", f"l{n}@mail.example"])
        s = self.start()
        self.assertEqual(len(self.remote.held), 5)
        self.assertEqual(len(self.local.held), 0)  # concurrencylocal 0 = on hold
        self.assertIn("status: local 0/0 remote 5/5", self.lines())
        self.remote.release()
        self.clock.advance(0)
        self.assertEqual(len(self.remote.held), 5)
        write_control(self.root, "concurrencyremote", "500\n")
        write_control(self.root, "concurrencylocal", "300\n")
        self.assertTrue(s.reload())
        self.clock.advance(0)
        self.assertEqual(len(self.remote.held), 25)
        self.assertEqual(len(self.local.held), 30)
        self.remote.release()
        self.local.release()
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 30)
        self.assertEqual(self.queue_files(), [])

    def test_malformed_reload_keeps_old_values(self) -> None:
        s = self.start()
        write_control(self.root, "concurrencyremote", "lots\n")
        self.assertFalse(s.reload())
        self.assertEqual(s.controls.current.concurrencyremote, 5)
        self.assertTrue(any(l.startswith("alert: unable to reread controls: ") and "concurrencyremote" in l
                            for l in self.lines()))

    def test_pause_and_cont(self) -> None:
        write_control(self.root, "concurrencylocal", "10\n")
        s = self.start()
        s.pause()
        mid = queue_message(self.layout, "a@mail.example", ["l@mail.example"])
        s.notify(mid)
        self.clock.advance(0)
        self.assertEqual(self.local.jobs, [])
        self.assertTrue(os.path.exists(self.layout.local(mid)))  # preprocessed, not delivered
        s.cont()
        self.clock.advance(0)
        self.assertEqual(self.local.recipients(), ["l@mail.example"])


class BadQueueFileTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def test_corrupt_todo_quarantined_rest_flows(self) -> None:
        bad = queue_message(self.layout, "", [], todo=b"u1\0p2\0Fa@b\0Xjunk\0")
        truncated = queue_message(self.layout, "", [], todo=b"u1\0p2\0Fa@b\0Tbob@ma")
        good = queue_message(self.layout, "a@mail.example", ["bob@mail.example"])
        self.start()
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.assertIn(f"end msg {good}", self.lines())
        for mid in (bad, truncated):
            qdir = os.path.join(self.layout.dir("quarantine"), str(mid))
            self.assertEqual(sorted(os.listdir(qdir)), ["mess", "todo"])
            self.assertTrue(any(l.startswith(f"warning: msg {mid} quarantined in quarantine/{mid}: ")
                                for l in self.lines()))
        self.assertFalse(any(f.startswith(("todo", "mess")) for f in self.queue_files()))

    def test_corrupt_channel_file_quarantined(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        with open(self.layout.remote(mid), "wb") as f:
            f.write(b"Tbob@other.example\0Qjunk\0")
        self.clock.advance(400)
        self.assertEqual(len(self.remote.jobs), 1)
        qdir = os.path.join(self.layout.dir("quarantine"), str(mid))
        # the reason of the first deferral goes along with the message's other files
        self.assertEqual(sorted(os.listdir(qdir)), ["info", "mess", "reason", "remote"])
        self.assertTrue(any("unknown recipient record" in l for l in self.lines()))

    def test_missing_message_file_quarantined(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        os.unlink(self.layout.mess(mid))
        self.clock.advance(400)
        self.assertEqual(len(self.remote.jobs), 1)
        qdir = os.path.join(self.layout.dir("quarantine"), str(mid))
        self.assertEqual(sorted(os.listdir(qdir)), ["info", "reason", "remote"])
        self.assertIn(f"warning: msg {mid} quarantined in quarantine/{mid}: the message file is missing", self.lines())

    def test_unreadable_message_defers(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["bob@other.example"])
        self.start()
        mess = self.layout.mess(mid)
        os.rename(mess, mess + ".saved")
        os.mkdir(mess)
        self.clock.advance(400)
        self.assertEqual(len(self.remote.jobs), 1)
        self.assertIn(f"warning: trouble opening mess/{self.layout.subdir(mid)}/{mid}; will try again later",
                      self.lines())
        os.rmdir(mess)
        os.rename(mess + ".saved", mess)
        self.clock.advance(123)
        self.assertEqual(len(self.remote.jobs), 2)
