# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The timers of pymta-send's main loop on one clock (a reactor or a
L{twisted.internet.task.Clock}): a coalesced "run soon", one wake-up at the
next job's attempt time, one-shot retries, periodic calls - all cancelled
at once when the service stops - and a bounded wait for work in flight.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["LoopTimers"]


class LoopTimers:
    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._soon: IDelayedCall | None = None
        self._wake: IDelayedCall | None = None
        self._wake_at: float | None = None
        self._later: set[IDelayedCall] = set()
        self._loops: list[task.LoopingCall] = []

    def soon(self, f: Callable[[], Any]) -> None:
        """Call C{f} on the clock's next turn; requests before then make one call."""
        if self._soon is not None:
            return  # pending: set only while its call is (run and cancel_all clear it)

        def run() -> None:
            self._soon = None
            f()

        self._soon = self.clock.callLater(0, run)

    def wake_at(self, when: float | None, f: Callable[[], Any]) -> None:
        """Call C{f} at C{when} (None: never) instead of at the time set before."""
        if self._wake is not None and self._wake.active():
            if self._wake_at == when:
                return
            self._wake.cancel()
        self._wake = None
        self._wake_at = when
        if when is None:
            return

        def run() -> None:
            self._wake = None
            self._wake_at = None
            f()

        self._wake = self.clock.callLater(max(0.0, when - self.clock.seconds()), run)

    def later(self, delay: float, f: Callable[..., Any], *args: Any) -> None:
        """Call C{f(*args)} after C{delay} seconds (unless cancelled first)."""
        call: IDelayedCall

        def run() -> None:
            self._later.discard(call)
            f(*args)

        call = self.clock.callLater(delay, run)
        self._later.add(call)

    def every(self, interval: float, f: Callable[[], Any]) -> None:
        """Call C{f} every C{interval} seconds, the first time after one interval."""
        loop = task.LoopingCall(f)
        loop.clock = self.clock
        loop.start(interval, now=False)
        self._loops.append(loop)

    def cancel_all(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        for call in [*self._later, self._soon, self._wake]:
            if call is not None and call.active():
                call.cancel()
        self._later.clear()
        self._soon = self._wake = None
        self._wake_at = None

    def drain(self, pending: Iterable[defer.Deferred], timeout: float) -> "defer.Deferred[None]":
        """Fires once every one of C{pending} has fired, or after C{timeout} seconds, whichever is first."""
        pending = list(pending)
        if not pending:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()

        def finish(_: object = None) -> None:
            if timer.active():
                timer.cancel()
            if not done.called:
                done.callback(None)

        timer = self.clock.callLater(timeout, finish)
        defer.DeferredList(pending, consumeErrors=True).addBoth(finish)
        return done
