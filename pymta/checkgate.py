# -*- test-case-name: tests.test_checkgate -*-
"""
A bound on password checks running at once, with a bounded wait queue.

A password check can be expensive on purpose (ARGON2ID takes tens of
milliseconds and 64 MiB) or start a process (checkpassword), so a daemon
runs at most C{slots} of them at once, whoever asks.  L{CheckGate.run}
takes a function that starts one check and returns its Deferred:

  - with a free slot the check starts at once;
  - otherwise the request waits, first come first served; when
    C{max_waiting} requests already wait it fails at once with
    L{GateFull} and the check never starts;
  - cancelling the returned Deferred (the client has gone) takes a waiting
    request out of the queue, so its check never starts; for a running
    check it fails the returned Deferred at once and cancels the check's
    own Deferred (a checkpassword child is killed).  The slot is free again
    only when the check's Deferred has fired, so work that cannot be
    stopped (a hash in a thread) is counted until it ends.

L{CheckGate.resize} applies new bounds (at reload): more slots start
waiting checks at once, fewer take effect as running checks end.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["CheckGate", "GateFull"]


class GateFull(Exception):
    """Too many checks already wait for a slot; try again later."""


class _Request:
    """One call of L{CheckGate.run}: waiting (C{inner} is None) or running."""

    __slots__ = ("gate", "check", "inner", "outer")

    def __init__(self, gate: CheckGate, check: Callable[[], defer.Deferred]) -> None:
        self.gate = gate
        self.check = check
        self.inner: defer.Deferred | None = None
        self.outer: defer.Deferred = defer.Deferred(self._cancel)

    def _cancel(self, outer: defer.Deferred) -> None:
        if self.inner is None:
            self.gate._forget(self)
        elif not self.inner.called:
            self.inner.cancel()


class CheckGate:
    """At most C{slots} checks at once; at most C{max_waiting} more wait for a slot."""

    def __init__(self, slots: int, max_waiting: int) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("a check gate needs at least one slot and a non-negative queue")
        self.slots = slots
        self.max_waiting = max_waiting
        self.running = 0
        self._waiting: deque[_Request] = deque()
        self._starting = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def run(self, check: Callable[[], defer.Deferred]) -> defer.Deferred:
        """C{check()}'s result once a slot was free, or L{GateFull}; cancellable (see the module)."""
        if self.running >= self.slots or self._waiting:
            if len(self._waiting) >= self.max_waiting:
                return defer.fail(GateFull(f"{len(self._waiting)} password checks are waiting"))
        request = _Request(self, check)
        self._waiting.append(request)
        self._start_waiting()
        return request.outer

    def resize(self, slots: int, max_waiting: int) -> None:
        """New bounds; requests already waiting keep their place even beyond C{max_waiting}."""
        if slots < 1 or max_waiting < 0:
            raise ValueError("a check gate needs at least one slot and a non-negative queue")
        self.slots = slots
        self.max_waiting = max_waiting
        self._start_waiting()

    def _forget(self, request: _Request) -> None:
        try:
            self._waiting.remove(request)
        except ValueError:  # pragma: no cover - a waiting request is always queued
            pass

    def _start_waiting(self) -> None:
        # a loop, not recursion: checks that finish at once free their slot inside _start
        if self._starting:
            return
        self._starting = True
        try:
            while self._waiting and self.running < self.slots:
                self._start(self._waiting.popleft())
        finally:
            self._starting = False

    def _start(self, request: _Request) -> None:
        self.running += 1
        request.inner = defer.maybeDeferred(request.check)
        request.inner.addBoth(self._finished, request)

    def _finished(self, result: Any, request: _Request) -> None:
        self.running -= 1
        outer = request.outer
        if not outer.called:
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        # else: the client has gone; its result (a Failure too) is dropped here
        self._start_waiting()
        return None
