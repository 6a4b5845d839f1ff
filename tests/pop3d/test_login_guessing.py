"""
Acceptance: POP3 password guessing over real sockets against pymta-pop3d's
service with ROOT/users/passwd (ARGON2ID), the password checks counted by a
wrapper around the real checker.
"""

from __future__ import annotations

import os
import socket
import time

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.passwdfile import set_password
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.service import build_pop3_service
from tests.countingchecker import CountingChecker
from tests.guessing import pop3_login_attempt, run_clients
from tests.pop3d.helpers import sample_maildir

OK = "+OK"
FROM_ADDRESS = "-ERR [LOGIN-DELAY] too many failed logins from your address, try again later"
FOR_ACCOUNT = "-ERR [LOGIN-DELAY] too many failed logins for this account, try again later"


class GuessingTestBase(TestCase):
    timeout = 120
    controls: dict[str, str] = {}
    hold = False

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "control"))
        for name, value in {"me": "pop.test", **self.controls}.items():
            with open(os.path.join(self.root, "control", name), "w") as f:
                f.write(value + "\n")
        home = os.path.join(self.root, "home", "alice")
        sample_maildir(os.path.join(home, "Maildir"))
        uid = os.getuid() or 4242
        set_password(os.path.join(self.root, "users", "passwd"), "alice", "correct horse", uid, uid, home)
        self.svc = build_pop3_service(
            self.root, ControlReader(self.root), ["tcp:0:interface=127.0.0.1"], reactor=reactor,
            allow_plaintext=True, failure_delay=0.05, open_mailbox=MailboxOpener(reactor, euid=lambda: uid),
        )
        # count the checks of the real users/passwd checker
        passwd_auth = self.svc.settings.authenticator.inner  # type: ignore[attr-defined]
        self.checker = CountingChecker(passwd_auth.checker, hold=self.hold)
        passwd_auth.checker = self.checker
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.port = next(iter(self.svc))._waitingForPort.result.getHost().port  # type: ignore[attr-defined]

    def connections(self) -> int:
        return sum(len(factory.connections) for factory in self.svc.factories)

    def attempt(self, source: str, password: bytes, hang_up: bool = False) -> defer.Deferred:
        return threads.deferToThread(pop3_login_attempt, self.port, source, b"alice", password, hang_up)

    def parallel(self, count: int, sources: list[str], attempts: int = 4, hang_up_every: int = 2) -> defer.Deferred:
        def attempt(client: int, n: int) -> str:
            source = sources[client % len(sources)]
            hang_up = client % hang_up_every == hang_up_every - 1
            return pop3_login_attempt(self.port, source, b"alice", b"guess-%d-%d" % (client, n), hang_up)

        return threads.deferToThread(run_clients, count, attempt, attempts, 30.0)

    async def settled(self) -> None:
        for _ in range(1000):
            if self.connections() == 0 and self.checker.running == 0:
                return
            await task.deferLater(reactor, 0.02, lambda: None)


class DefaultBudgets(GuessingTestBase):
    @defer.inlineCallbacks
    def test_many_parallel_wrong_passwords(self):  # type: ignore[no-untyped-def]
        replies = yield self.parallel(60, ["127.0.0.1"], attempts=2)
        yield defer.Deferred.fromCoroutine(self.settled())
        self.assertIn(FROM_ADDRESS, replies)
        self.assertEqual(self.checker.calls, 10)  # control/authfailuresperip's default
        self.assertLessEqual(self.checker.most_running, 4)  # control/authconcurrency's default
        reply = yield self.attempt("127.0.0.1", b"correct horse")
        self.assertEqual(reply, FROM_ADDRESS)
        self.assertEqual(self.checker.calls, 10)
        reply = yield self.attempt("127.0.0.2", b"correct horse")
        self.assertEqual(reply, OK)


class AccountBudget(GuessingTestBase):
    controls = {"authfailuresperip": "3", "authfailuresperaccount": "5"}

    @defer.inlineCallbacks
    def test_attack_from_several_addresses(self):  # type: ignore[no-untyped-def]
        reply = yield self.attempt("127.0.0.2", b"correct horse")
        self.assertEqual(reply, OK)
        replies = yield self.parallel(12, ["127.0.0.3", "127.0.0.4", "127.0.0.5"])
        yield defer.Deferred.fromCoroutine(self.settled())
        self.assertIn(FOR_ACCOUNT, replies)
        self.assertEqual(self.checker.calls, 1 + 5)
        reply = yield self.attempt("127.0.0.6", b"correct horse")
        self.assertEqual(reply, FOR_ACCOUNT)
        reply = yield self.attempt("127.0.0.2", b"correct horse")
        self.assertEqual(reply, OK)


class AbandonedChecks(GuessingTestBase):
    controls = {"authconcurrency": "1", "authfailuresperip": "50"}
    hold = True

    @defer.inlineCallbacks
    def test_checks_of_clients_that_left_do_not_run(self):  # type: ignore[no-untyped-def]
        replies = yield self.parallel(8, ["127.0.0.1"], attempts=1, hang_up_every=1)
        self.assertEqual(replies, ["hung up"] * 8)
        for _ in range(1000):
            if self.connections() == 0:
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(self.connections(), 0)
        self.assertEqual(self.checker.calls, 1)
        self.checker.release()
        yield defer.Deferred.fromCoroutine(self.settled())
        self.assertEqual(self.checker.calls, 1)
        self.assertEqual(self.svc.settings.limiter.failures("127.0.0.1"), 1)  # type: ignore[union-attr]


class AbandonedCheckpassword(TestCase):
    """A client that hangs up while its checkpassword program runs: the program is killed."""

    timeout = 60

    @defer.inlineCallbacks
    def test_program_killed(self):  # type: ignore[no-untyped-def]
        from tests.pop3d.test_checkpassword import write_checkpassword

        root = os.path.abspath(self.mktemp())
        home = os.path.join(root, "home")
        os.makedirs(os.path.join(root, "control"))
        os.makedirs(home)
        program = write_checkpassword(os.path.join(root, "checkpw"), home)
        svc = build_pop3_service(
            root, ControlReader(root), ["tcp:0:interface=127.0.0.1"], reactor=reactor,
            allow_plaintext=True, checkpassword=[program], open_mailbox=lambda account: defer.fail(AssertionError()),
        )
        svc.startService()
        self.addCleanup(svc.stopService)
        port = next(iter(svc))._waitingForPort.result.getHost().port  # type: ignore[attr-defined]
        pidfile = os.path.join(home, "slow.pid")

        def client() -> int:
            """Log in, wait until the program runs (it then sleeps 60 s), hang up."""
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.recv(512)
                s.sendall(b"USER slow\r\nPASS x\r\n")
                for _ in range(1000):
                    if os.path.exists(pidfile) and os.path.getsize(pidfile):
                        break
                    time.sleep(0.02)
            with open(pidfile) as f:
                return int(f.read())

        pid = yield threads.deferToThread(client)
        for _ in range(1000):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.assertRaises(ProcessLookupError, os.kill, pid, 0)
        self.assertEqual(svc.settings.limiter.failures("127.0.0.1"), 1)  # type: ignore[union-attr]
