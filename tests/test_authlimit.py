"""pymta.authlimit with task.Clock: keys, reservations, the window, known-good addresses, memory bounds."""

from __future__ import annotations

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.authlimit import (
    KNOWN_GOOD_SECONDS,
    AuthLimits,
    GateFull,
    LoginLimiter,
    OverBudget,
    account_key,
    failure_delay,
)
from pymta.control import load_controls


def wrong() -> defer.Deferred:
    return defer.fail(UnauthorizedLogin("wrong"))


def right() -> defer.Deferred:
    return defer.succeed("alice")


class KeyTests(SynchronousTestCase):
    def test_account(self) -> None:
        self.assertEqual(account_key(b" Alice\t"), "alice")
        self.assertEqual(account_key("ALICE"), account_key(b"alice"))
        self.assertEqual(account_key(b"\xff"), "\udcff")
        self.assertEqual(len(account_key("x" * 10_000)), 256)

    def test_failure_delay(self) -> None:
        self.assertEqual(failure_delay(0, 1.0, 30.0), 0.0)
        self.assertEqual(failure_delay(3, 2.0, 30.0), 6.0)
        self.assertEqual(failure_delay(100, 2.0, 30.0), 30.0)

    def test_limits_from_controls(self) -> None:
        root = self.mktemp()
        import os

        os.makedirs(os.path.join(root, "control"))
        self.assertEqual(AuthLimits.from_controls(load_controls(root)), AuthLimits(10, 30, 600.0, 4))
        for name, value in (("authfailuresperip", "3"), ("authfailuresperaccount", "0"),
                            ("authfailurewindow", "60"), ("authconcurrency", "2")):
            with open(os.path.join(root, "control", name), "w") as f:
                f.write(value + "\n")
        self.assertEqual(AuthLimits.from_controls(load_controls(root)), AuthLimits(3, 0, 60.0, 2))


class LimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.limiter = LoginLimiter(self.clock, AuthLimits(per_address=3, per_account=5, window=600, concurrency=2))

    def fail_once(self, ip: str = "192.0.2.1", user: str = "alice") -> None:
        attempt = self.limiter.begin(ip, user)
        self.failureResultOf(attempt.run(wrong), UnauthorizedLogin)

    def test_parallel_attempts_share_the_address_budget(self) -> None:
        pending = [self.limiter.begin("192.0.2.1", f"user{i}") for i in range(3)]
        refusal = self.assertRaises(OverBudget, self.limiter.begin, "192.0.2.1", "user9")
        self.assertEqual((refusal.kind, refusal.key, refusal.count), ("address", "192.0.2.1", 3))
        self.assertIn("3 failed or running logins from 192.0.2.1 within 600 seconds", str(refusal))
        # a success gives its reservation back
        self.successResultOf(pending[0].run(right))
        self.limiter.begin("192.0.2.1", "user9")

    def test_window_slides(self) -> None:
        for _ in range(3):
            self.fail_once()
            self.clock.advance(100)
        self.assertRaises(OverBudget, self.limiter.begin, "192.0.2.1", "bob")
        self.clock.advance(300)  # the first failure is now 600 s old
        self.limiter.begin("192.0.2.1", "bob")
        self.assertRaises(OverBudget, self.limiter.begin, "192.0.2.1", "bob")

    def test_failures_count_grows_for_the_delay(self) -> None:
        counts = []
        for _ in range(3):
            attempt = self.limiter.begin("192.0.2.1", "alice")
            attempt.run(wrong).addErrback(lambda f: None)
            counts.append(attempt.failures)
        self.assertEqual(counts, [1, 2, 3])

    def test_ipv6_neighbours_share_a_budget(self) -> None:
        for i in range(3):
            self.fail_once(f"2001:db8:0:1::{i + 1}")
        self.assertRaises(OverBudget, self.limiter.begin, "2001:db8:0:1:ffff::9", "bob")
        self.limiter.begin("2001:db8:0:2::1", "bob")

    def test_account_budget_spares_known_good_addresses(self) -> None:
        self.successResultOf(self.limiter.begin("198.51.100.9", "alice").run(right))  # alice at home
        for i in range(5):
            self.fail_once(f"192.0.2.{i + 1}", "Alice")
        refusal = self.assertRaises(OverBudget, self.limiter.begin, "192.0.2.77", "alice")
        self.assertEqual((refusal.kind, refusal.key), ("account", "alice"))
        self.successResultOf(self.limiter.begin("198.51.100.9", "alice").run(right))
        self.limiter.begin("192.0.2.77", "bob")  # other accounts are not affected
        self.clock.advance(KNOWN_GOOD_SECONDS)  # remembered for 30 days
        for i in range(5):
            self.fail_once(f"192.0.2.{i + 10}", "alice")
        self.assertRaises(OverBudget, self.limiter.begin, "198.51.100.9", "alice")
        self.assertFalse(self.limiter.known_good("alice", "198.51.100.9"))

    def test_account_budget_off(self) -> None:
        self.limiter.configure(AuthLimits(per_address=3, per_account=0, window=600, concurrency=2))
        for i in range(10):
            self.fail_once(f"192.0.2.{i + 1}")
        self.limiter.begin("192.0.2.99", "alice")

    def test_temporary_failure_gives_back(self) -> None:
        for _ in range(5):
            attempt = self.limiter.begin("192.0.2.1", "alice")
            d = attempt.run(lambda: defer.fail(RuntimeError("checker down")), is_temporary=lambda f: True)
            self.failureResultOf(d, RuntimeError)
        self.assertEqual(self.limiter.failures("192.0.2.1"), 0)

    def test_gate_full_gives_back(self) -> None:
        self.limiter.configure(AuthLimits(per_address=100, per_account=0, window=600, concurrency=1))
        held: defer.Deferred = defer.Deferred()
        self.limiter.begin("192.0.2.1", "a").run(lambda: held)
        waiting = [self.limiter.begin(f"192.0.2.{i + 2}", "a").run(wrong) for i in range(8)]
        refused = self.limiter.begin("192.0.2.50", "a").run(wrong)
        self.failureResultOf(refused, GateFull)
        self.assertEqual(self.limiter.failures("192.0.2.50"), 0)
        held.callback("a")
        for d in waiting:
            self.failureResultOf(d, UnauthorizedLogin)

    def test_abandoned_before_check_gives_back_and_never_runs(self) -> None:
        self.limiter.configure(AuthLimits(per_address=3, per_account=5, window=600, concurrency=1))
        held: defer.Deferred = defer.Deferred()
        self.limiter.begin("192.0.2.9", "x").run(lambda: held)
        ran: list[str] = []
        waiting = self.limiter.begin("192.0.2.1", "alice").run(lambda: ran.append("checked") or wrong())  # type: ignore[func-returns-value]
        self.assertEqual(self.limiter.failures("192.0.2.1"), 1)  # reserved
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        held.callback("x")
        self.assertEqual(ran, [])
        self.assertEqual(self.limiter.failures("192.0.2.1"), 0)

    def test_abandoned_while_running_counts_as_failure(self) -> None:
        running: defer.Deferred = defer.Deferred()
        d = self.limiter.begin("192.0.2.1", "alice").run(lambda: running)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.limiter.failures("192.0.2.1"), 1)
        self.clock.advance(601)
        self.assertEqual(self.limiter.failures("192.0.2.1"), 0)

    def test_checks_bounded_across_addresses(self) -> None:
        self.limiter.configure(AuthLimits(per_address=3, per_account=0, window=600, concurrency=2))
        running: list[defer.Deferred] = []

        def check() -> defer.Deferred:
            d: defer.Deferred = defer.Deferred()
            running.append(d)
            return d

        for i in range(10):
            self.limiter.begin(f"192.0.2.{i + 1}", "alice").run(check).addErrback(lambda f: None)
        self.assertEqual(len(running), 2)
        running[0].errback(UnauthorizedLogin())
        self.assertEqual(len(running), 3)

    def test_tables_bounded_under_a_spray(self) -> None:
        limiter = LoginLimiter(self.clock, AuthLimits(per_address=3, per_account=5, window=600), table_size=100)
        for i in range(1000):
            attempt = limiter.begin(f"10.0.{i // 256}.{i % 256}", f"user{i}")
            attempt.run(wrong).addErrback(lambda f: None)
            self.successResultOf(limiter.begin(f"10.1.{i // 256}.{i % 256}", f"user{i}").run(right))
        self.assertLessEqual(len(limiter.addresses), 100)
        self.assertLessEqual(len(limiter.accounts), 100)
        self.assertLessEqual(len(limiter._known_good), 100)
        # the newest are kept
        self.assertEqual(limiter.failures("10.0.3.231"), 1)

    def test_eviction_keeps_attempts_in_flight(self) -> None:
        limiter = LoginLimiter(self.clock, AuthLimits(per_address=3, per_account=0, window=600), table_size=10)
        held: defer.Deferred = defer.Deferred()
        limiter.begin("192.0.2.1", "a").run(lambda: held).addErrback(lambda f: None)
        for i in range(50):
            limiter.begin(f"10.0.0.{i}", "b").run(wrong).addErrback(lambda f: None)
        self.assertEqual(limiter.failures("192.0.2.1"), 1)
        held.errback(Failure(UnauthorizedLogin()))
        self.assertEqual(limiter.failures("192.0.2.1"), 1)
