"""
Tests for pymta.queue.queuecontrol through the control socket's answer():
pymta ctl delete/hold/release/retry/bounce and --dry-run on a scheduler
running on a task.Clock with recording channels.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.queue.ctlrequest import CtlRequest
from pymta.queue.ctlserver import answer
from pymta.queue.messagestate import Stage
from pymta.queue.scheduler import Scheduler
from tests.queue.test_scheduler import SchedulerTestMixin, queue_message

DEFER = ("Z", "connect to 127.0.0.9 failed\n")


class QueueControlTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.remote.answer = lambda job, r: DEFER

    def ctl(self, s: Scheduler, command: str, *args: str) -> list[str]:
        return answer(s, CtlRequest(command, args))

    def deferred(self, recipients: tuple[str, ...] = ("r@dead.example",), sender: str = "a@mail.example"
                 ) -> tuple[Scheduler, int]:
        mid = queue_message(self.layout, sender, list(recipients))
        s = self.start()
        self.assertEqual(s.messages.stage(mid), Stage.SCHEDULED)
        return s, mid

    def files_of(self, mid: int) -> list[str]:
        layout = self.layout
        paths = [layout.mess(mid), layout.info(mid), layout.local(mid), layout.remote(mid), layout.bounce(mid),
                 layout.hold(mid), layout.todo(mid), layout.intd(mid)]
        return [os.path.relpath(p, layout.queuedir) for p in paths if os.path.exists(p)]

    def test_hold_release(self) -> None:
        s, mid = self.deferred()
        self.assertEqual(self.ctl(s, "hold", str(mid)),
                         ["ok", f"msg {mid}: held", "1 matched: 1 held, 0 after work in flight, 0 left alone"])
        self.assertEqual(s.messages.stage(mid), Stage.HELD)
        self.assertTrue(os.path.exists(self.layout.hold(mid)))
        self.assertIn(f"hold msg {mid}", self.lines())
        self.assertEqual(self.ctl(s, "queue"), ["ok", f"msg {mid} remote held"])
        self.assertEqual(s.counts()["held"], 1)
        # never attempted while held, even after a doqueue and days
        s.run_all_now()
        self.clock.advance(3 * 86400)
        self.assertEqual(len(self.remote.jobs), 1)
        self.assertEqual(self.ctl(s, "hold", str(mid))[1], f"msg {mid}: left alone: already held")
        self.assertEqual(self.ctl(s, "retry", str(mid))[1], f"msg {mid}: left alone: held; release it")
        self.assertEqual(self.ctl(s, "release", str(mid))[1], f"msg {mid}: released")
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 2)  # tried again at once
        self.assertFalse(os.path.exists(self.layout.hold(mid)))
        self.assertIn(f"release msg {mid}", self.lines())
        self.assertEqual(self.ctl(s, "release", str(mid))[1], f"msg {mid}: left alone: not held")

    def test_held_survives_a_restart(self) -> None:
        s, mid = self.deferred()
        self.ctl(s, "hold", str(mid))
        s.stopService()
        s2 = self.start()
        self.assertEqual(s2.messages.stage(mid), Stage.HELD)
        self.clock.advance(7 * 86400)
        self.assertEqual(len(self.remote.jobs), 1)
        self.ctl(s2, "release", str(mid))
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 2)

    def test_held_time_counts_toward_queuelifetime(self) -> None:
        s, mid = self.deferred()
        self.ctl(s, "hold", str(mid))
        self.clock.advance(8 * 86400)  # past the default queuelifetime (7 days)
        self.ctl(s, "release", str(mid))
        self.clock.advance(0)
        self.assertTrue(any("I'm_not_going_to_try_again;" in line for line in self.lines()))
        self.assertEqual(len(self.sink.messages), 1)  # bounced on its one last attempt

    def test_retry_makes_due_now(self) -> None:
        s, mid = self.deferred()
        self.clock.advance(10)
        self.assertEqual(len(self.remote.jobs), 1)
        self.assertEqual(self.ctl(s, "retry", "--domain", "dead.example")[1:],
                         [f"msg {mid}: due now", "1 matched: 1 due now, 0 after work in flight, 0 left alone"])
        self.clock.advance(0)
        self.assertEqual(len(self.remote.jobs), 2)

    def test_delete(self) -> None:
        s, mid = self.deferred()
        keep = queue_message(self.layout, "a@mail.example", ["x@alive.example"])
        s.notify(keep)
        self.clock.advance(0)
        reply = self.ctl(s, "delete", "--domain", "DEAD.example")
        self.assertEqual(reply, ["ok", f"msg {mid}: deleted", "1 matched: 1 deleted, 0 after work in flight, 0 left alone"])
        self.assertEqual(self.files_of(mid), [])
        self.assertNotIn(mid, s.messages)
        self.assertEqual(self.lines()[-2:], [f"delete msg {mid} by ctl", f"end msg {mid}"])
        self.assertIn(keep, s.messages)
        s.run_all_now()
        self.clock.advance(0)
        self.assertEqual([j.message_id for j in self.remote.jobs].count(mid), 1)

    def test_delete_held(self) -> None:
        s, mid = self.deferred()
        self.ctl(s, "hold", str(mid))
        self.assertEqual(self.ctl(s, "delete", str(mid))[1], f"msg {mid}: deleted")
        self.assertEqual(self.files_of(mid), [])

    def test_bounce_with_reason(self) -> None:
        s, mid = self.deferred(("r@dead.example", "s@dead.example"))
        reply = self.ctl(s, "bounce", str(mid), "--reason", "Undeliverable: the route is gone for good")
        self.assertEqual(reply[1], f"msg {mid}: bounced")
        self.clock.advance(0)
        self.assertEqual(len(self.sink.messages), 1)
        sender, recipients, _, data = self.sink.messages[0]
        self.assertEqual((sender, recipients), ("", ["a@mail.example"]))
        self.assertIn(b"<r@dead.example>:\nUndeliverable: the route is gone for good\n\n", data)
        self.assertIn(b"<s@dead.example>:\nUndeliverable: the route is gone for good\n\n", data)
        self.assertIn(f"bounce msg {mid} by ctl: Undeliverable:_the_route_is_gone_for_good", self.lines())
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(self.files_of(mid), [])

    def test_bounce_held(self) -> None:
        s, mid = self.deferred()
        self.ctl(s, "hold", str(mid))
        self.assertEqual(self.ctl(s, "bounce", str(mid))[1], f"msg {mid}: bounced")
        self.clock.advance(0)
        self.assertIn(b"bounced by the postmaster\n", self.sink.messages[0][3])
        self.assertEqual(self.files_of(mid), [])

    def test_dry_run_changes_nothing(self) -> None:
        s, mid = self.deferred(("r@dead.example", "bob@mail.example"))
        self.clock.advance(2 * 3600 + 5 * 60)
        before = self.files_of(mid)
        reply = self.ctl(s, "delete", "--older-than", "2h", "--dry-run")
        self.assertEqual(reply, ["ok", f"msg {mid} age 2h05m from <a@mail.example> to r@dead.example",
                                 "dry run: 1 message(s) would be deleted; nothing changed"])
        self.assertEqual((self.files_of(mid), s.messages.stage(mid)), (before, Stage.SCHEDULED))
        self.assertEqual(self.ctl(s, "delete", "--older-than", "3h", "--dry-run"), ["ok", "no message matched"])

    def test_selectors_combine_and_look_at_undelivered_recipients(self) -> None:
        s, mid = self.deferred(("r@dead.example", "bob@mail.example"), sender="Ann@Mail.Example")
        # bob@mail.example was delivered: the message no longer matches its domain or address
        self.assertEqual(self.ctl(s, "hold", "--domain", "mail.example"), ["ok", "no message matched"])
        self.assertEqual(self.ctl(s, "hold", "--recipient", "bob@mail.example"), ["ok", "no message matched"])
        self.assertEqual(self.ctl(s, "hold", "--sender", "Ann@mail.example", "--domain", "other.example"),
                         ["ok", "no message matched"])
        self.assertEqual(self.ctl(s, "hold", "--sender", "Ann@mail.example", "--recipient", "r@DEAD.example")[1],
                         f"msg {mid}: held")
        self.assertEqual(self.ctl(s, "release", "12345", str(mid))[1:3],
                         ["msg 12345: not in the queue", f"msg {mid}: released"])

    def test_in_flight_hold_and_delete_wait_for_the_delivery(self) -> None:
        self.remote.hold = True
        s, mid = self.deferred()
        self.assertEqual(len(self.remote.held), 1)
        self.assertEqual(self.ctl(s, "hold", str(mid))[1],
                         f"msg {mid}: busy; will be held when its deliveries in flight end")
        self.assertEqual(s.messages.stage(mid), Stage.SCHEDULED)
        self.remote.release("Z", "still dead\n")
        self.assertEqual(s.messages.stage(mid), Stage.HELD)
        self.assertTrue(os.path.exists(self.layout.hold(mid)))
        self.ctl(s, "release", str(mid))
        self.clock.advance(0)
        self.assertEqual(len(self.remote.held), 1)
        self.assertEqual(self.ctl(s, "delete", str(mid))[1],
                         f"msg {mid}: busy; will be deleted when its deliveries in flight end")
        self.assertTrue(os.path.exists(self.layout.mess(mid)))  # never pulled from under a delivery
        self.remote.release("Z", "still dead\n")
        self.assertEqual(self.files_of(mid), [])
        self.assertIn(f"delete msg {mid} by ctl", self.lines())

    def test_pending_delete_forgotten_when_delivered(self) -> None:
        self.remote.hold = True
        s, mid = self.deferred()
        self.ctl(s, "delete", str(mid))
        self.remote.release("K", "ok\n")
        self.clock.advance(0)
        self.assertNotIn(f"delete msg {mid} by ctl", self.lines())
        self.assertIn(f"end msg {mid}", self.lines())

    def test_hold_of_a_new_message_before_its_first_attempt(self) -> None:
        s = self.start()
        s.pause()
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        s.notify(mid)
        self.assertEqual(self.ctl(s, "hold", str(mid))[1], f"msg {mid}: busy; will be held once preprocessed")
        s.cont()
        self.clock.advance(0)
        self.assertEqual((s.messages.stage(mid), self.remote.jobs), (Stage.HELD, []))

    def test_delete_of_a_waiting_message(self) -> None:
        s = self.start()
        s.pause()
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        s.notify(mid)
        self.assertEqual(self.ctl(s, "delete", str(mid))[1], f"msg {mid}: deleted")
        s.cont()
        self.clock.advance(61)
        self.assertEqual((self.files_of(mid), self.remote.jobs), ([], []))

    def test_errors(self) -> None:
        s, _ = self.deferred()
        self.assertEqual(self.ctl(s, "delete"), ["error: select messages: message ids and/or --domain, --sender, "
                                                 "--recipient, --older-than"])
        self.assertEqual(self.ctl(s, "hold", "--older-than", "2w"),
                         ["error: bad age '2w': a number and s, m, h or d (30m, 2h, 3d)"])
        self.assertTrue(self.ctl(s, "hold", "--frob")[0].startswith("error: unknown option '--frob'"))
        self.assertEqual(self.ctl(s, "stat", "x"), ["error: stat takes no arguments"])
        self.assertEqual(self.ctl(s, "hold", "--domain", "nowhere.example"), ["ok", "no message matched"])
