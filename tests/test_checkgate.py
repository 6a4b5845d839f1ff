"""pymta.checkgate: checks running at once, the bounded wait queue, abandoned checks."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.checkgate import CheckGate, GateFull


class Checks:
    """Checks whose Deferreds the test fires; records which ones started."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.deferreds: dict[int, defer.Deferred] = {}
        self.cancelled: list[int] = []

    def make(self, n: int, cancellable: bool = True):  # type: ignore[no-untyped-def]
        def check() -> defer.Deferred:
            self.started.append(n)

            def cancel(d: defer.Deferred) -> None:
                self.cancelled.append(n)

            d: defer.Deferred = defer.Deferred(cancel if cancellable else None)
            self.deferreds[n] = d
            return d

        return check


class CheckGateTests(SynchronousTestCase):
    def test_bound_and_order(self) -> None:
        gate, checks = CheckGate(2, 10), Checks()
        results = [gate.run(checks.make(i)) for i in range(5)]
        self.assertEqual(checks.started, [0, 1])
        self.assertEqual((gate.running, gate.waiting), (2, 3))
        checks.deferreds[1].callback("one")
        self.assertEqual(self.successResultOf(results[1]), "one")
        self.assertEqual(checks.started, [0, 1, 2])
        checks.deferreds[0].errback(ValueError("bad"))
        self.failureResultOf(results[0], ValueError)
        self.assertEqual(checks.started, [0, 1, 2, 3])
        for n in (2, 3):
            checks.deferreds[n].callback(n)
        checks.deferreds[4].callback(4)
        self.assertEqual([self.successResultOf(r) for r in results[2:]], [2, 3, 4])
        self.assertEqual((gate.running, gate.waiting), (0, 0))

    def test_full_queue_refused_without_running(self) -> None:
        gate, checks = CheckGate(1, 2), Checks()
        for i in range(3):
            gate.run(checks.make(i))
        refused = gate.run(checks.make(99))
        self.failureResultOf(refused, GateFull)
        self.assertNotIn(99, checks.started)
        self.assertEqual(gate.waiting, 2)

    def test_cancelled_while_waiting_never_runs(self) -> None:
        gate, checks = CheckGate(1, 5), Checks()
        first = gate.run(checks.make(0))
        waiting = gate.run(checks.make(1))
        later = gate.run(checks.make(2))
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertEqual(gate.waiting, 1)
        checks.deferreds[0].callback("done")
        self.successResultOf(first)
        self.assertEqual(checks.started, [0, 2])
        self.assertNoResult(later)

    def test_cancelled_while_running_cancels_the_check(self) -> None:
        gate, checks = CheckGate(1, 5), Checks()
        running = gate.run(checks.make(0))
        waiting = gate.run(checks.make(1))
        running.cancel()
        self.failureResultOf(running, defer.CancelledError)
        self.assertEqual(checks.cancelled, [0])
        self.assertEqual(checks.started, [0, 1])  # its slot was freed when the check's Deferred fired
        self.assertNoResult(waiting)

    def test_slot_held_until_unstoppable_work_ends(self) -> None:
        """A check whose Deferred only fires when its work is done (a thread) keeps its slot until then."""
        gate = CheckGate(1, 5)
        work: defer.Deferred = defer.Deferred()

        def thread_like() -> defer.Deferred:
            def cancel(d: defer.Deferred) -> None:
                d.pause()
                work.addBoth(lambda _: d.unpause())

            return defer.Deferred(cancel)

        running = gate.run(thread_like)
        started: list[int] = []
        gate.run(lambda: started.append(1) or defer.succeed(1))  # type: ignore[func-returns-value]
        running.cancel()
        self.failureResultOf(running, defer.CancelledError)  # the client is told at once
        self.assertEqual((gate.running, started), (1, []))
        work.callback(None)
        self.assertEqual((gate.running, started), (0, [1]))

    def test_result_after_cancel_is_dropped(self) -> None:
        gate, checks = CheckGate(1, 1), Checks()
        running = gate.run(checks.make(0, cancellable=False))
        running.cancel()
        self.failureResultOf(running, defer.CancelledError)
        self.assertEqual(gate.running, 0)

    def test_synchronous_checks_do_not_recurse(self) -> None:
        gate = CheckGate(1, 5000)
        blocker: defer.Deferred = defer.Deferred()
        first = gate.run(lambda: blocker)
        results = [gate.run(lambda n=n: defer.succeed(n)) for n in range(4000)]  # type: ignore[misc]
        blocker.callback(None)
        self.successResultOf(first)
        self.assertEqual(self.successResultOf(results[-1]), 3999)
        self.assertEqual((gate.running, gate.waiting), (0, 0))

    def test_exception_in_check_frees_slot(self) -> None:
        gate = CheckGate(1, 1)

        def broken() -> defer.Deferred:
            raise RuntimeError("checker bug")

        self.failureResultOf(gate.run(broken), RuntimeError)
        self.assertEqual(gate.running, 0)

    def test_resize(self) -> None:
        gate, checks = CheckGate(1, 1), Checks()
        gate.run(checks.make(0))
        gate.run(checks.make(1))
        self.failureResultOf(gate.run(checks.make(2)), GateFull)
        gate.resize(3, 4)
        self.assertEqual(checks.started, [0, 1])
        gate.run(checks.make(3))
        self.assertEqual(checks.started, [0, 1, 3])
        gate.resize(1, 0)
        self.failureResultOf(gate.run(checks.make(4)), GateFull)
        for n in (0, 1):
            checks.deferreds[n].callback(n)
        self.assertEqual(gate.running, 1)
        self.assertRaises(ValueError, gate.resize, 0, 1)
        self.assertRaises(ValueError, CheckGate, 1, -1)
