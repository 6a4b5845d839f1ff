"""SMTP AUTH through the login limiter, over StringTransport with task.Clock: budgets, the check gate, abandoned checks."""

from __future__ import annotations

import base64
import hmac

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.auth import build_portal
from pymta.smtpd.context import ListenerSettings, SMTPDContext
from tests.countingchecker import CountingChecker
from tests.smtpd.helpers import Session, make_root

SUBMISSION = ListenerSettings(submission=True)


def plain(user: bytes, password: bytes) -> str:
    return "AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0" + password).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class AuthLimitTests(SynchronousTestCase):
    controls = {"authfailuresperip": "3", "authfailuresperaccount": "5", "authconcurrency": "1"}
    hold = False

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), **self.controls)
        db = InMemoryUsernamePasswordDatabaseDontUse()
        db.addUser(b"alice", b"secret")
        db.addUser(b"bob", b"builder")
        self.checker = CountingChecker(db, hold=self.hold)
        first = self.session(context=None)
        self.context: SMTPDContext = first.context
        self.first = first

    def session(self, peer: str = "192.0.2.7", context: SMTPDContext | None = None) -> Session:
        if context is None and hasattr(self, "context"):
            context = self.context
        kw: dict[str, object] = {}
        if context is None:
            kw = {"portal": build_portal([self.checker]), "auth_without_tls": True, "auth_failure_delay": 1.0}
        s = Session(self.root, settings=SUBMISSION, peer=peer, context=context, **kw)  # type: ignore[arg-type]
        s.take()
        self.addCleanup(s.close)
        return s

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self.context.clock


class Budgets(AuthLimitTests):
    def test_reconnecting_gets_no_fresh_checks(self) -> None:
        for _ in range(3):
            s = self.session()
            self.assertEqual(s.cmd(plain(b"alice", b"guess")), [])
            s.close()  # hang up before the (delayed) 535
        self.assertEqual(self.checker.calls, 3)
        s = self.session()
        self.assertEqual(
            s.cmd(plain(b"alice", b"secret")),
            ["421 too many failed logins from your address, try again later (#4.7.0)"],
        )
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(self.checker.calls, 3)
        # the window slides
        self.clock.advance(601)
        self.assertEqual(self.session().cmd(plain(b"alice", b"secret")), ["235 ok, go ahead (#2.0.0)"])

    def test_one_log_line_per_refusal_without_password(self) -> None:
        from twisted.logger import formatEvent, globalLogPublisher

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for _ in range(3):
            self.session().cmd(plain(b"alice", b"guess"))
        self.session().cmd(plain(b"alice", b"s3cr3t-pw"))
        lines = [formatEvent(e) for e in events if "smtpd: " in formatEvent(e)]
        refusals = [line for line in lines if "refused" in line]
        self.assertEqual(
            refusals,
            ["smtpd: 192.0.2.7: AUTH PLAIN refused for alice: 3 failed or running logins from 192.0.2.7 within 600 seconds"],
        )
        self.assertFalse([line for line in lines if "guess" in line or "s3cr3t" in line])

    def test_every_mechanism_is_limited(self) -> None:
        s = self.session()
        s.cmd("AUTH LOGIN " + b64(b"alice"))
        s.cmd(b64(b"guess"))
        self.clock.advance(1)
        self.assertEqual(s.take(), ["535 authorization failed (#5.7.8)"])
        reply = s.cmd("AUTH CRAM-MD5")[0]
        challenge = base64.b64decode(reply[4:])
        s.cmd(b64(b"alice " + hmac.new(b"wrong", challenge, "md5").hexdigest().encode()))
        self.clock.advance(2)
        self.assertEqual(s.take(), ["535 authorization failed (#5.7.8)"])
        s.cmd(plain(b"alice", b"guess"))
        self.clock.advance(3)
        self.assertEqual(s.take(), ["421 too many authentication failures (#4.7.0)"])
        self.assertEqual(self.checker.calls, 3)
        s = self.session()
        self.assertEqual(s.cmd("AUTH LOGIN " + b64(b"alice")), ["334 UGFzc3dvcmQ6"])
        self.assertEqual(s.cmd(b64(b"secret")), ["421 too many failed logins from your address, try again later (#4.7.0)"])
        self.assertEqual(self.checker.calls, 3)

    def test_success_does_not_count(self) -> None:
        for _ in range(5):
            s = self.session()
            self.assertEqual(s.cmd(plain(b"alice", b"secret")), ["235 ok, go ahead (#2.0.0)"])
        self.assertEqual(self.context.auth_limiter.failures("192.0.2.7"), 0)  # type: ignore[union-attr]

    def test_account_budget_and_known_good_address(self) -> None:
        self.assertEqual(self.session("198.51.100.1").cmd(plain(b"alice", b"secret")), ["235 ok, go ahead (#2.0.0)"])
        for i in range(5):
            self.session(f"192.0.2.{i + 1}").cmd(plain(b"ALICE", b"guess"))
        calls = self.checker.calls
        s = self.session("192.0.2.99")
        self.assertEqual(
            s.cmd(plain(b"alice", b"secret")),
            ["421 too many failed logins for this account, try again later (#4.7.0)"],
        )
        self.assertEqual(self.checker.calls, calls)
        self.assertEqual(self.session("198.51.100.1").cmd(plain(b"alice", b"secret")), ["235 ok, go ahead (#2.0.0)"])
        self.assertEqual(self.session("192.0.2.99").cmd(plain(b"bob", b"builder")), ["235 ok, go ahead (#2.0.0)"])

    def test_reload_applies_new_budgets(self) -> None:
        import os

        with open(os.path.join(self.root, "control", "authfailuresperip"), "w") as f:
            f.write("1\n")
        self.context.reader.reload()  # the limiter follows the reader: nothing else to call
        self.session().cmd(plain(b"alice", b"guess"))
        self.assertEqual(
            self.session().cmd(plain(b"alice", b"secret")),
            ["421 too many failed logins from your address, try again later (#4.7.0)"],
        )


class Gate(AuthLimitTests):
    hold = True
    controls = {"authfailuresperip": "100", "authconcurrency": "1"}

    def test_parallel_sessions_share_the_budget(self) -> None:
        self.context.auth_limiter.configure(  # type: ignore[union-attr]
            type(self.context.auth_limiter.limits)(per_address=3, per_account=0, window=600, concurrency=4)  # type: ignore[union-attr]
        )
        sessions = [self.session() for _ in range(6)]
        replies = [s.cmd(plain(b"alice", b"guess")) for s in sessions]
        self.assertEqual(replies[:3], [[], [], []])
        self.assertEqual(replies[3:], [["421 too many failed logins from your address, try again later (#4.7.0)"]] * 3)
        self.assertEqual(self.checker.calls, 3)

    def test_one_check_at_a_time_and_queue_bound(self) -> None:
        sessions = [self.session(f"192.0.2.{i + 1}") for i in range(9)]
        for s in sessions:
            self.assertEqual(s.cmd(plain(b"alice", b"guess")), [])
        self.assertEqual(self.checker.calls, 1)  # 1 running, 8 waiting
        extra = self.session("192.0.2.50")
        self.assertEqual(extra.cmd(plain(b"alice", b"secret")), ["454 temporary authentication failure, try again later (#4.7.0)"])
        self.assertFalse(extra.transport.disconnecting)
        for _ in range(9):
            self.checker.release()
        self.assertEqual(self.checker.most_running, 1)
        self.assertEqual(self.checker.calls, 9)
        self.assertEqual(self.context.auth_limiter.failures("192.0.2.50"), 0)  # type: ignore[union-attr]

    def test_abandoned_checks_do_not_run(self) -> None:
        running = self.session("192.0.2.1")
        running.cmd(plain(b"alice", b"guess"))
        waiting = [self.session(f"192.0.2.{i + 2}") for i in range(5)]
        for s in waiting:
            s.cmd(plain(b"alice", b"guess"))
        self.assertEqual(self.checker.calls, 1)
        for s in waiting[:4]:
            s.close()
        self.checker.release()
        self.assertEqual(self.checker.calls, 2)  # only the one still connected
        self.checker.release()
        self.clock.advance(5)
        self.assertEqual(waiting[4].take(), ["535 authorization failed (#5.7.8)"])
        for i in range(4):
            self.assertEqual(self.context.auth_limiter.failures(f"192.0.2.{i + 2}"), 0)  # type: ignore[union-attr]
