"""pymta.loginflow: one login through the limiter, the outcomes both protocols answer from."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.authlimit import AuthLimits, LoginLimiter
from pymta.loginflow import BUSY, ERROR, OK, REFUSED, TEMPORARY, WRONG, limited_login


class Wrong(Exception):
    pass


class Unsure(Exception):
    pass


class LimitedLoginTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.limiter = LoginLimiter(self.clock, AuthLimits(per_address=3, per_account=0, window=600, concurrency=1))
        self.checks = 0

    def login(self, check, peer: str = "192.0.2.1") -> defer.Deferred:  # type: ignore[no-untyped-def]
        def counted() -> defer.Deferred:
            self.checks += 1
            return check()

        return limited_login(
            self.limiter, self.clock, peer, b"alice", counted,
            is_wrong=lambda f: f.check(Wrong) is not None,
            is_temporary=lambda f: f.check(Unsure) is not None,
            base_delay=2.0, max_delay=5.0,
        )

    def outcome(self, d: defer.Deferred):  # type: ignore[no-untyped-def]
        results: list = []
        d.addCallback(results.append)
        self.clock.advance(10)
        self.assertEqual(len(results), 1)
        return results[0]

    def test_ok_carries_the_result(self) -> None:
        outcome = self.outcome(self.login(lambda: defer.succeed("account")))
        self.assertEqual((outcome.kind, outcome.result), (OK, "account"))

    def test_wrong_comes_after_a_growing_delay(self) -> None:
        for expected_delay in (2.0, 4.0):
            results: list = []
            self.login(lambda: defer.fail(Wrong())).addCallback(results.append)
            self.clock.advance(expected_delay - 0.01)
            self.assertEqual(results, [])
            self.clock.advance(0.01)
            self.assertEqual([o.kind for o in results], [WRONG])

    def test_over_budget_is_refused_without_a_check(self) -> None:
        for _ in range(3):
            self.assertEqual(self.outcome(self.login(lambda: defer.fail(Wrong()))).kind, WRONG)
        outcome = self.outcome(self.login(lambda: defer.succeed("account")))
        self.assertEqual((outcome.kind, outcome.budget, self.checks), (REFUSED, "address", 3))
        self.assertIn("from 192.0.2.1", outcome.reason)

    def test_temporary_is_not_counted(self) -> None:
        for _ in range(5):
            outcome = self.outcome(self.login(lambda: defer.fail(Unsure("try later"))))
            self.assertEqual(outcome.kind, TEMPORARY)
            self.assertIsInstance(outcome.failure, Failure)
        self.assertEqual(self.outcome(self.login(lambda: defer.succeed("account"))).kind, OK)

    def test_unexpected_error_is_counted(self) -> None:
        outcome = self.outcome(self.login(lambda: defer.fail(ZeroDivisionError())))
        self.assertEqual(outcome.kind, ERROR)
        self.assertTrue(outcome.failure.check(ZeroDivisionError))
        self.assertEqual(self.limiter.failures("192.0.2.1"), 1)

    def test_busy_when_the_gate_is_full(self) -> None:
        held: defer.Deferred = defer.Deferred()
        self.login(lambda: held)  # holds the only slot
        waiting = [self.login(lambda: defer.succeed("x"), peer=f"198.51.100.{i}") for i in range(8)]
        outcome = self.outcome(self.login(lambda: defer.succeed("x"), peer="203.0.113.9"))
        self.assertEqual(outcome.kind, BUSY)
        for d in waiting:
            d.cancel()
        held.callback("done")

    def test_cancelled_during_the_delay_answers_nothing(self) -> None:
        results: list = []
        d = self.login(lambda: defer.fail(Wrong()))
        d.addCallback(results.append)
        d.cancel()
        self.clock.advance(10)
        self.assertEqual(results, [None])
