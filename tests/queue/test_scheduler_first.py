"""
Tests for pymta.queue.scheduler's first attempt from memory: a message
committed in-process whose recipients fit one delivery is tried before any
info/local/remote file exists; other outcomes are recorded after the usual
preprocessing exactly as a pass would have recorded them.
"""

from __future__ import annotations

import os
from typing import Sequence

from twisted.internet import defer
from twisted.trial import unittest

from pymta.interfaces import DeliveryJob, DeliveryResult
from pymta.queue import preprocess as preprocess_module
from pymta.queue import scheduler as scheduler_module
from pymta.queue.envelope import Envelope
from pymta.queue.layout import QueueLayout
from pymta.queue.messagestate import Stage
from pymta.queue.preprocess import BatchResult
from pymta.queue.retry import next_retry
from pymta.queue.scheduler import Scheduler
from pymta.queue.sendfiles import read_channel_file

from tests.queue.test_scheduler import RecordingChannel, SchedulerTestMixin, queue_message, write_control


def commit(layout: QueueLayout, sender: str, recipients: Sequence[str]) -> tuple[int, Envelope, int]:
    """A committed message as the queue writer leaves it (mess, intd and todo), and what notify() is given."""
    mid = queue_message(layout, sender, recipients)
    os.link(layout.todo(mid), layout.intd(mid))
    return mid, Envelope(1000, 4242, sender, tuple(recipients)), os.stat(layout.mess(mid)).st_size


class FilesAtDelivery(RecordingChannel):
    """Records which queue files exist while each delivery runs."""

    def __init__(self, test: SchedulerTestMixin, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.test = test
        self.files: list[list[str]] = []

    def deliver(self, job: DeliveryJob):  # type: ignore[no-untyped-def]
        self.files.append([f.split(os.sep)[0] for f in self.test.queue_files()])
        return super().deliver(job)


class FirstAttemptMixin(SchedulerTestMixin):
    """A scheduler test that commits messages and notifies the scheduler as the queue writer does."""

    def notify(self, s: Scheduler, sender: str, recipients: Sequence[str]) -> int:
        mid, envelope, size = commit(self.layout, sender, recipients)
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        return mid


class FirstAttemptTests(FirstAttemptMixin, unittest.SynchronousTestCase):
    def test_success_never_writes_info_or_channel_files(self) -> None:
        self.local = FilesAtDelivery(self)
        s = self.start()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["bob@mail.example"])
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.assertEqual(sorted(self.local.files[0]), ["intd", "mess", "todo"])
        self.assertEqual(
            self.delivery_lines(),
            [
                f"new msg {mid}",
                f"info msg {mid}: bytes {size} from <a@mail.example> qp 4242 uid 1000",
                f"starting delivery 1: msg {mid} to local bob@mail.example",
                "delivery 1: success: did_1+0+0/",
                f"end msg {mid}",
            ],
        )
        self.assertEqual(self.queue_files(), [])
        self.assertEqual(s.stats["first_attempts"], 1)
        self.assertEqual(s.stats["messages_done"], 1)

    def test_routing_applies(self) -> None:
        self.controls = {"virtualdomains": "virt.example:alice\n"}
        self.setUp()
        s = self.start()
        self.notify(s, "a@mail.example", ["x@virt.example"])
        self.assertEqual(self.local.recipients(), ["alice-x@virt.example"])
        self.assertEqual(self.queue_files(), [])

    def test_deferral_is_recorded_on_qmails_schedule(self) -> None:
        self.local.answer = lambda job, r: ("Z", "mailbox busy\n")
        s = self.start()
        now = int(self.clock.seconds())
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        lines = self.delivery_lines()
        self.assertEqual(lines.count(f"new msg {mid}"), 1)
        self.assertEqual(sum(l.startswith(f"info msg {mid}") for l in lines), 1)
        self.assertIn("delivery 1: deferral: mailbox_busy/", lines)
        records = read_channel_file(self.layout.local(mid))
        self.assertEqual([(r.address, r.done) for r in records], [("bob@mail.example", False)])
        self.assertFalse(os.path.exists(self.layout.todo(mid)))
        retry = next_retry(now, now, "local")
        [view] = s.jobs()
        self.assertEqual((view.message_id, view.due, view.running), (mid, retry, False))
        self.clock.advance(retry - now - 1)
        self.assertEqual(len(self.local.jobs), 1)
        self.local.answer = lambda job, r: ("K", "ok\n")
        self.clock.advance(1)
        self.assertEqual(len(self.local.jobs), 2)
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(self.queue_files(), [])

    def test_failure_bounces_once(self) -> None:
        self.local.answer = lambda job, r: ("D", "Sorry, no mailbox here by that name. (#5.1.1)\n")
        s = self.start()
        mid = self.notify(s, "a@other.example", ["nobody@mail.example"])
        self.assertEqual(len(self.local.jobs), 1)
        [(sender, recipients, origin, data)] = self.sink.messages
        self.assertEqual((sender, recipients, origin), ("", ["a@other.example"], "for bounce"))
        self.assertIn(b"<nobody@mail.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n", data)
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(self.queue_files(), [])

    def test_failing_channel_counts_as_a_deferral(self) -> None:
        class Broken(RecordingChannel):
            def deliver(self, job):  # type: ignore[no-untyped-def]
                raise RuntimeError("spawner gone")

        s = self.start(local=Broken())
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        self.assertIn("delivery 1: deferral: delivery_channel_failed:_spawner_gone/", self.lines())
        self.assertTrue(os.path.exists(self.layout.local(mid)))
        self.assertEqual(len(s.jobs()), 1)

    def test_remote_recipients_of_one_domain_share_the_attempt(self) -> None:
        self.remote = RecordingChannel(max_recipients=100)
        self.remote.answer = lambda job, r: ("K", "ok\n") if r.startswith("a") else ("D", "no such user\n")
        s = self.start()
        mid = self.notify(s, "s@mail.example", ["a1@far.example", "b2@FAR.example", "a3@far.example"])
        self.assertEqual([j.recipients for j in self.remote.jobs],
                         [("a1@far.example", "b2@FAR.example", "a3@far.example")])
        [(_, recipients, _, data)] = self.sink.messages
        self.assertIn(b"<b2@FAR.example>:\nno such user\n", data)
        self.assertNotIn(b"<a1@far.example>", data)
        self.assertEqual(self.queue_files(), [])
        self.assertIn(f"end msg {mid}", self.lines())

    def test_messages_needing_several_deliveries_go_the_usual_way(self) -> None:
        self.local = FilesAtDelivery(self)
        self.remote = RecordingChannel(max_recipients=100)
        s = self.start()
        self.notify(s, "a@mail.example", ["bob@mail.example", "carol@mail.example"])
        self.notify(s, "a@mail.example", ["bob@mail.example", "x@far.example"])
        self.notify(s, "a@mail.example", ["x@one.example", "y@two.example"])
        self.assertEqual(len(self.local.files), 3)
        for files in self.local.files:
            self.assertIn("info", files)
        self.assertEqual(len(self.remote.jobs), 3)
        self.assertEqual(s.stats["first_attempts"], 0)
        self.assertEqual(self.queue_files(), [])

    def test_verp_sender_is_one_recipient_per_delivery(self) -> None:
        self.remote = RecordingChannel(max_recipients=100)
        s = self.start()
        self.notify(s, "list-@mail.example-@[]", ["x@far.example"])
        self.notify(s, "list-@mail.example-@[]", ["x@far.example", "y@far.example"])
        self.assertEqual(self.remote.jobs[0].sender, "list-x=far.example@mail.example")
        self.assertEqual(s.stats["first_attempts"], 1)
        self.assertEqual(len(self.remote.jobs), 3)

    def test_concurrency_limit_and_pause(self) -> None:
        self.controls = {"concurrencylocal": "2\n"}
        self.setUp()
        self.local = RecordingChannel(hold=True)
        s = self.start()
        s.pause()
        mids = [self.notify(s, "a@mail.example", [f"u{i}@mail.example"]) for i in range(5)]
        self.assertEqual(self.local.jobs, [])
        self.assertEqual(s.counts()["jobs_waiting"], 5)
        self.assertEqual(s.counts()["messages"], 5)
        s.cont()
        self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 2)
        self.assertEqual(s.counts()["jobs_running"], 2)
        while self.local.held:
            self.local.release()
            self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 5)
        for mid in mids:
            self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(self.queue_files(), [])

    def test_waiting_and_running_first_attempts_are_not_preprocessed_by_a_scan(self) -> None:
        self.local = RecordingChannel(hold=True)
        s = self.start()
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        s.scan_todo()
        self.clock.advance(0)
        s.notify(mid)  # a retry of an earlier life of this id, say
        self.clock.advance(0)
        self.assertFalse(os.path.exists(self.layout.info(mid)))
        self.local.release()
        self.clock.advance(0)
        s.scan_todo()
        self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 1)
        self.assertEqual(self.delivery_lines().count(f"new msg {mid}"), 1)

    def test_an_id_already_known_goes_the_usual_way(self) -> None:
        s = self.start()
        s.pause()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["bob@mail.example"])
        s.notify(mid)  # e.g. a todo/ scan saw it first
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        self.assertTrue(os.path.exists(self.layout.info(mid)))
        self.assertEqual(s.stats["first_attempts"], 0)
        s.cont()
        self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 1)

    def test_a_channel_switched_off_gets_no_first_attempts(self) -> None:
        self.controls = {"concurrencylocal": "0\n"}
        self.setUp()
        s = self.start()
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        self.assertTrue(os.path.exists(self.layout.local(mid)))
        self.assertEqual(s.stats["first_attempts"], 0)
        self.assertEqual(self.local.jobs, [])

    def test_backlog_is_bounded(self) -> None:
        self.patch(scheduler_module, "FIRST_ATTEMPT_BACKLOG", 2)
        s = self.start()
        s.pause()
        mids = [self.notify(s, "a@mail.example", [f"u{i}@mail.example"]) for i in range(3)]
        self.assertEqual([os.path.exists(self.layout.info(m)) for m in mids], [False, False, True])
        s.cont()
        self.clock.advance(0)
        self.assertEqual(len(self.local.jobs), 3)
        self.assertEqual(self.queue_files(), [])

    def test_a_restart_during_the_attempt_delivers_from_todo(self) -> None:
        self.local = RecordingChannel(hold=True)
        s = self.start()
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        self.assertEqual(len(self.local.jobs), 1)
        # pymta-send dies here: nothing but the committed message is on disk
        self.assertEqual(sorted(f.split(os.sep)[0] for f in self.queue_files()), ["intd", "mess", "todo"])
        after = RecordingChannel()
        again = self.make_scheduler(local=after)
        again.startService()
        self.clock.advance(0)
        self.assertEqual(after.recipients(), ["bob@mail.example"])
        self.assertFalse(os.path.exists(self.layout.todo(mid)))
        self.assertFalse(os.path.exists(self.layout.mess(mid)))

    def test_stop_waits_for_a_running_first_attempt(self) -> None:
        self.local = RecordingChannel(hold=True)
        s = self.start()
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        stopped = s.stopService()
        self.assertNoResult(stopped)
        self.local.release()
        self.clock.advance(0)
        self.successResultOf(defer.maybeDeferred(lambda: stopped))
        self.assertFalse(os.path.exists(self.layout.todo(mid)))


class FinishedResultsAreCheckpointedAtOnce(FirstAttemptMixin, unittest.SynchronousTestCase):
    """A first attempt's finished deliveries reach the disk before anything else happens (review findings)."""

    def attempt(self, s: Scheduler, recipients: Sequence[str]) -> tuple[int, defer.Deferred]:
        mid, envelope, size = commit(self.layout, "a@mail.example", recipients)
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        (_, d), = self.remote.held
        self.remote.held = []
        return mid, d

    def restart(self) -> RecordingChannel:
        """A new scheduler on this queue, everything due at once (C{pymta ctl doqueue})."""
        again = RecordingChannel(max_recipients=10)
        s2 = self.make_scheduler(remote=again)
        s2.startService()
        s2.run_all_now()
        self.clock.advance(0)
        return again

    def test_partial_success_survives_a_kill(self) -> None:
        self.remote = RecordingChannel(max_recipients=10, hold=True)
        s = self.start()
        mid, d = self.attempt(s, ["u1@far.example", "u2@far.example"])
        d.callback([DeliveryResult("K", "accepted u1\n"), DeliveryResult("Z", "try later\n")])
        records = read_channel_file(self.layout.remote(mid))
        self.assertEqual([(r.address, r.done) for r in records], [("u1@far.example", True), ("u2@far.example", False)])
        # SIGKILL: this scheduler never runs again
        s.exiting = True
        self.assertEqual(self.restart().recipients(), ["u2@far.example"])

    def test_results_during_a_clean_stop_are_recorded(self) -> None:
        self.remote = RecordingChannel(max_recipients=10, hold=True)
        s = self.start()
        mid, d = self.attempt(s, ["u1@far.example", "u2@far.example"])
        stopped = s.stopService()
        d.callback([DeliveryResult("K", "accepted u1\n"), DeliveryResult("D", "no such user\n")])
        self.clock.advance(0)
        self.successResultOf(defer.maybeDeferred(lambda: stopped))
        self.assertIn("delivery 2: failure: no_such_user/", self.lines())
        again = self.restart()
        self.assertEqual(again.recipients(), [])
        [(sender, recipients, _, data)] = self.sink.messages
        self.assertEqual(recipients, ["a@mail.example"])
        self.assertIn(b"<u2@far.example>:\nno such user\n", data)

    def test_status_line_follows_the_result_as_in_qmail(self) -> None:
        s = self.start()
        del self.events[:]
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        lines = self.lines()
        done = lines.index("delivery 1: success: did_1+0+0/")
        self.assertEqual(lines[done + 1:done + 3], ["status: local 0/10 remote 0/20", f"end msg {mid}"])

    def test_results_are_logged_at_once_even_if_routing_changes(self) -> None:
        self.remote = RecordingChannel(max_recipients=10, hold=True)
        s = self.start()
        mid, d = self.attempt(s, ["u1@far.example"])
        write_control(self.root, "locals", "mail.example\nfar.example\n")
        s.reload()
        d.callback([DeliveryResult("Z", "later\n")])
        self.clock.advance(0)
        self.assertIn("delivery 1: deferral: later/", self.lines())
        # routed anew: tried again locally at once (the remote deferral does not apply to it)
        self.assertEqual(self.local.recipients(), ["u1@far.example"])
        self.assertIn(f"end msg {mid}", self.lines())

    def test_waiting_attempts_go_the_usual_way_after_a_reload(self) -> None:
        s = self.start()
        s.pause()
        mid = self.notify(s, "a@mail.example", ["u1@far.example"])
        write_control(self.root, "locals", "mail.example\nfar.example\n")
        s.reload()
        s.cont()
        self.clock.advance(0)
        self.assertEqual(self.remote.jobs, [])
        self.assertEqual(self.local.recipients(), ["u1@far.example"])
        self.assertEqual(self.delivery_lines().count(f"new msg {mid}"), 1)
        self.assertIn(f"end msg {mid}", self.lines())

    def test_a_vanished_todo_leaves_the_files_alone(self) -> None:
        self.local = RecordingChannel(hold=True)
        s = self.start()
        mid = self.notify(s, "a@mail.example", ["bob@mail.example"])
        os.unlink(self.layout.todo(mid))
        self.local.release()
        self.clock.advance(0)
        self.assertTrue(os.path.exists(self.layout.mess(mid)))
        self.assertNotIn(f"end msg {mid}", self.lines())
        self.assertTrue(any("vanished" in line for line in self.lines()))

    def test_a_failure_during_a_clean_stop_is_recorded(self) -> None:
        self.local = RecordingChannel(hold=True)
        s = self.start()
        mid = self.notify(s, "a@other.example", ["nobody@mail.example"])
        stopped = s.stopService()
        self.local.release("D", "no mailbox here\n")
        self.clock.advance(0)
        self.successResultOf(defer.maybeDeferred(lambda: stopped))
        # recorded: the recipient is done (its channel file gone), the failure waits in bounce/ID
        self.assertIn("delivery 1: failure: no_mailbox_here/", self.lines())
        self.assertFalse(os.path.exists(self.layout.todo(mid)))
        self.assertFalse(os.path.exists(self.layout.local(mid)))
        self.assertTrue(os.path.exists(self.layout.bounce(mid)))
        # the next start sends the bounce and delivers nothing again
        self.assertEqual(self.restart().recipients(), [])
        self.assertEqual(self.local.recipients(), ["nobody@mail.example"])
        [(_, recipients, _, data)] = self.sink.messages
        self.assertEqual(recipients, ["a@other.example"])
        self.assertIn(f"end msg {mid}", self.lines())


class FreshEnvelopeTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    """Messages committed in this process are preprocessed from the envelope notify() was given."""

    def record_known(self) -> list:
        seen: list = []
        real = preprocess_module.preprocess_batch

        def preprocess_batch(layout, ids, controls, **kw):  # type: ignore[no-untyped-def]
            seen.append((list(ids), dict(kw.get("known") or {})))
            return real(layout, ids, controls, **kw)

        self.patch(preprocess_module, "preprocess_batch", preprocess_batch)
        return seen

    def test_several_deliveries_preprocessed_from_the_known_envelope(self) -> None:
        seen = self.record_known()
        self.remote = RecordingChannel(max_recipients=100)
        s = self.start()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["bob@mail.example", "x@far.example"])
        with open(self.layout.todo(mid), "wb") as f:
            f.write(b"garbage")  # read back, it would be quarantined
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        self.assertEqual(seen, [([mid], {mid: (envelope, size)})])
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.assertEqual(len(self.remote.jobs), 1)
        self.assertNotIn(mid, s.messages)  # finished: nothing of it is kept
        self.assertEqual(self.queue_files(), [])

    def test_a_message_waiting_for_a_retry_is_not_fresh(self) -> None:
        real = preprocess_module.preprocess_batch
        calls: list[list[int]] = []

        def preprocess_batch(layout, ids, controls, **kw):  # type: ignore[no-untyped-def]
            calls.append(list(ids))
            if len(calls) == 1:  # a preprocessing that fails for now
                return BatchResult(trouble=[(i, "disk hiccup") for i in ids])
            return real(layout, ids, controls, **kw)

        self.patch(preprocess_module, "preprocess_batch", preprocess_batch)
        s = self.start()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["bob@mail.example"])
        s.notify(mid)  # found by a scan, say
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.LATER)
        self.assertIn(f"warning: trouble with todo/{mid}: disk hiccup; will try again later", self.lines())
        s.notify(mid, envelope, size)  # a late notification of its commit: picked up again, not tried from memory
        self.clock.advance(0)
        self.assertEqual(s.stats["first_attempts"], 0)
        self.assertEqual(calls, [[mid], [mid]])
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.clock.advance(scheduler_module.SYSFAIL_DELAY)
        self.assertEqual(self.local.recipients(), ["bob@mail.example"])
        self.assertEqual(calls, [[mid], [mid]])
        self.assertNotIn(mid, s.messages)

    def test_a_failure_whose_preprocessing_had_trouble_is_recorded_at_a_stop(self) -> None:
        real = preprocess_module.preprocess_batch
        calls: list[list[int]] = []

        def preprocess_batch(layout, ids, controls, **kw):  # type: ignore[no-untyped-def]
            calls.append(list(ids))
            if len(calls) == 1:
                return BatchResult(trouble=[(i, "disk hiccup") for i in ids])
            return real(layout, ids, controls, **kw)

        self.patch(preprocess_module, "preprocess_batch", preprocess_batch)
        self.local.answer = lambda job, r: ("D", "no mailbox here\n")
        s = self.start()
        mid, envelope, size = commit(self.layout, "a@mail.example", ["nobody@mail.example"])
        s.notify(mid, envelope, size)
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.LATER)
        self.successResultOf(s.stopService())
        # not tried again, but written down as a pass would have: the failure in bounce/, the job closed
        self.assertEqual(len(self.local.jobs), 1)
        self.assertFalse(os.path.exists(self.layout.local(mid)))
        self.assertTrue(os.path.exists(self.layout.info(mid)))  # the next start bounces it
        with open(self.layout.bounce(mid), "rb") as f:
            self.assertIn(b"no mailbox here", f.read())
        self.assertFalse(os.path.exists(self.layout.todo(mid)))

    def test_a_message_found_by_a_scan_is_read_from_disk(self) -> None:
        seen = self.record_known()
        s = self.start()
        mid = queue_message(self.layout, "a@mail.example", ["bob@mail.example", "carol@mail.example"])
        s.notify(mid)
        self.clock.advance(0)
        self.assertEqual(seen, [([mid], {})])
        self.assertEqual(sorted(self.local.recipients()), ["bob@mail.example", "carol@mail.example"])

    def test_first_attempts_leave_nothing_behind(self) -> None:
        self.local.answer = lambda job, r: ("K", "ok\n") if r.startswith("bob") else ("Z", "busy\n")
        s = self.start()
        mids = []
        for rcpt in ("bob@mail.example", "carol@mail.example"):
            mid, envelope, size = commit(self.layout, "a@mail.example", [rcpt])
            s.notify(mid, envelope, size)
            mids.append(mid)
        self.clock.advance(0)
        self.assertEqual(s.stats["first_attempts"], 2)
        # one finished and forgotten, one deferred, preprocessed and scheduled: no envelope kept in memory
        self.assertNotIn(mids[0], s.messages)
        deferred = s.messages.get(mids[1])
        assert deferred is not None
        self.assertEqual((deferred.stage, deferred.fresh, deferred.first), (Stage.SCHEDULED, None, None))


class ScanRacingTheCommitTests(unittest.SynchronousTestCase):
    """A todo/ scan that picks a message up before its commit's notify() arrives: delivered once."""

    def test_late_notify_does_not_preprocess_again(self) -> None:
        from twisted.logger import Logger

        from pymta.control import ControlReader
        from pymta.queue.qmaillog import QmailLog
        from tests.queue.helpers import disk_for
        from tests.queue.test_scheduler import CollectingSink, make_root
        from tests.queue.test_spares import HeldPool, ThreadedClock

        root, layout = make_root(self)
        clock = ThreadedClock()
        clock.advance(1795000000)
        pool = HeldPool()
        local = RecordingChannel(hold=True)
        events: list[dict] = []
        s = Scheduler(disk_for(layout), ControlReader(root), {"local": local, "remote": RecordingChannel()},
                      CollectingSink(), clock, log=QmailLog(Logger(observer=events.append)), threadpool=pool)
        s.startService()
        self.addCleanup(s.stopService)
        clock.advance(0)
        pool.run_all()
        # the commit thread has linked todo/X; a scan (trigger, timer) runs before the receipt arrives
        mid, envelope, size = commit(layout, "a@mail.example", ["bob@mail.example"])
        s.scan_todo()
        clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.PREPROCESSING)
        s.notify(mid, envelope, size)
        state = s.messages.get(mid)
        assert state is not None
        self.assertEqual((state.stage, state.fresh), (Stage.PREPROCESSING, None))  # handled already: not fresh
        pool.run_all()
        clock.advance(0)
        local.release()
        clock.advance(0)
        for _ in range(3):
            pool.run_all()
            clock.advance(0)
            local.release()
            clock.advance(0)
        lines = [e["qmail_line"] for e in events if "qmail_line" in e]
        self.assertEqual(len(local.jobs) + len(local.held), 1, lines)
        self.assertEqual(lines.count(f"new msg {mid}"), 1)
        self.assertEqual(lines.count(f"end msg {mid}"), 1)
