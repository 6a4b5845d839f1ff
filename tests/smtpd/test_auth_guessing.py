"""
Acceptance: SMTP AUTH guessing over real sockets against the submission
listener with the real portal over ROOT/users/passwd (ARGON2ID), the
password checks counted by a wrapper around the real checker.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.passwdfile import PasswdFileChecker, set_password
from pymta.smtpd.service import build_smtpd_service
from tests.countingchecker import CountingChecker
from tests.guessing import run_clients, smtp_auth_attempt
from tests.smtpd.helpers import MemorySink, make_root

OK = "235 ok, go ahead (#2.0.0)"
FROM_ADDRESS = "421 too many failed logins from your address, try again later (#4.7.0)"
FOR_ACCOUNT = "421 too many failed logins for this account, try again later (#4.7.0)"


class GuessingTestBase(TestCase):
    timeout = 120
    controls: dict[str, str] = {}
    hold = False

    def setUp(self) -> None:
        self.root = make_root(os.path.abspath(self.mktemp()), **self.controls)
        passwd = os.path.join(self.root, "users", "passwd")
        set_password(passwd, "alice", "correct horse", 1000, 1000, "/home/alice")
        self.checker = CountingChecker(PasswdFileChecker(passwd, reactor=reactor), hold=self.hold)
        self.svc = build_smtpd_service(
            self.root, ControlReader(self.root), MemorySink(), [], ["tcp:0:interface=127.0.0.1"],
            reactor=reactor, portal_checkers=[self.checker], auth_without_tls=True,
        )
        self.svc.context.auth_failure_delay = 0.1
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.port = next(iter(self.svc))._waitingForPort.result.getHost().port  # type: ignore[attr-defined]

    def attempt(self, source: str, password: bytes, user: bytes = b"alice", hang_up: bool = False) -> defer.Deferred:
        return threads.deferToThread(smtp_auth_attempt, self.port, source, user, password, hang_up)

    def parallel(self, count: int, sources: list[str], attempts: int = 6) -> defer.Deferred:
        """C{count} guessers from C{sources} (round robin); every other one hangs up before its answer."""

        def attempt(client: int, n: int) -> str:
            source = sources[client % len(sources)]
            return smtp_auth_attempt(self.port, source, b"alice", b"guess-%d-%d" % (client, n), hang_up=client % 2 == 1)

        return threads.deferToThread(run_clients, count, attempt, attempts, 30.0)

    async def settled(self) -> None:
        """Wait until every session has ended and every check has finished (bounded)."""
        for _ in range(1000):
            if self.svc.context.limiter.total == 0 and self.checker.running == 0:
                return
            await task.deferLater(reactor, 0.02, lambda: None)


class DefaultBudgets(GuessingTestBase):
    @defer.inlineCallbacks
    def test_parallel_guessers_get_the_budgeted_checks(self):  # type: ignore[no-untyped-def]
        replies = yield self.parallel(24, ["127.0.0.1"])
        yield defer.Deferred.fromCoroutine(self.settled())
        self.assertIn(FROM_ADDRESS, replies)
        self.assertEqual(self.checker.calls, 10)  # control/authfailuresperip's default
        self.assertLessEqual(self.checker.most_running, 4)  # control/authconcurrency's default
        # reconnecting, even with the right password, gets no fresh check
        reply = yield self.attempt("127.0.0.1", b"correct horse")
        self.assertEqual(reply, FROM_ADDRESS)
        self.assertEqual(self.checker.calls, 10)
        # the owner at another address still logs in: one address's attack stays within the account budget
        reply = yield self.attempt("127.0.0.2", b"correct horse")
        self.assertEqual(reply, OK)


class AccountBudget(GuessingTestBase):
    controls = {"authfailuresperip": "3", "authfailuresperaccount": "5"}

    @defer.inlineCallbacks
    def test_attack_from_several_addresses(self):  # type: ignore[no-untyped-def]
        reply = yield self.attempt("127.0.0.2", b"correct horse")  # the owner, before the attack
        self.assertEqual(reply, OK)
        replies = yield self.parallel(12, ["127.0.0.3", "127.0.0.4", "127.0.0.5"])
        yield defer.Deferred.fromCoroutine(self.settled())
        self.assertIn(FOR_ACCOUNT, replies)
        self.assertEqual(self.checker.calls, 1 + 5)
        # the right password from an address new to the account waits until the attack has stopped ...
        reply = yield self.attempt("127.0.0.6", b"correct horse")
        self.assertEqual(reply, FOR_ACCOUNT)
        # ... but the owner's address is not locked out
        reply = yield self.attempt("127.0.0.2", b"correct horse")
        self.assertEqual(reply, OK)
        self.assertEqual(self.checker.calls, 1 + 5 + 1)


class AbandonedChecks(GuessingTestBase):
    controls = {"authconcurrency": "1", "authfailuresperip": "50"}
    hold = True

    @defer.inlineCallbacks
    def test_checks_of_clients_that_left_do_not_run(self):  # type: ignore[no-untyped-def]
        def attempt(client: int, n: int) -> str:
            return smtp_auth_attempt(self.port, "127.0.0.1", b"alice", b"guess-%d" % client, hang_up=True)

        replies = yield threads.deferToThread(run_clients, 8, attempt, 1, 30.0)
        self.assertEqual(replies, ["hung up"] * 8)
        for _ in range(1000):  # until the server has seen every client go
            if self.svc.context.limiter.total == 0:
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(self.svc.context.limiter.total, 0)
        self.assertEqual(self.checker.calls, 1)  # the first check runs; the others waited for its slot
        self.checker.release()  # the running check (a thread cannot be stopped) ends now
        yield defer.Deferred.fromCoroutine(self.settled())
        self.assertEqual(self.checker.calls, 1)
        self.assertEqual(self.svc.context.auth_limiter.failures("127.0.0.1"), 1)  # type: ignore[union-attr]
