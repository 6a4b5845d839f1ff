"""
Waiting for a condition instead of sleeping a fixed time.

A test that drives a real process or a real socket cannot advance a
C{task.Clock}; it has to wait for something to happen.  Sleeping a fixed
time is both slow (the time is spent even when the thing happened at once)
and unsteady (on a loaded machine it may not have happened yet).  Poll the
condition instead, with a bounded deadline:

  - L{wait_until}: blocking, for synchronous tests and for code running in
    a thread (C{threads.deferToThread}) while the reactor serves;
  - L{eventually}: on the reactor, for C{async def} and C{inlineCallbacks}
    tests whose condition the reactor itself makes true.

The default bound (30 s) is generous: it costs nothing when the condition
comes true, and only a test that is failing anyway waits it out.  Both
fail loudly rather than return quietly: L{wait_until} returns whether
the condition held (the caller asserts it), L{eventually} fails its Deferred
with an C{AssertionError} naming what was awaited.

A condition that must I{not} happen (nothing is removed, no spurious
wake-up) cannot be polled for; wait for the event that settles it (the
process has ended, the connection is closed) and then assert.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.internet import defer, task

__all__ = ["wait_until", "eventually", "process_ended"]


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.02) -> bool:
    """Call C{predicate} every C{interval} seconds until it is true (then True) or C{timeout} passes (then False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def eventually(
    predicate: Callable[[], object],
    timeout: float = 30.0,
    what: str = "the condition",
    clock: Any = None,
    interval: float = 0.01,
) -> "defer.Deferred[None]":
    """
    A Deferred that fires once C{predicate} is true, checked now and then
    every C{interval} seconds of C{clock} (the global reactor by default);
    it fails with C{AssertionError} after C{timeout} seconds.
    """
    if clock is None:
        from twisted.internet import reactor as clock

    async def poll() -> None:
        deadline = clock.seconds() + timeout
        while not predicate():
            if clock.seconds() >= deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await task.deferLater(clock, interval, lambda: None)

    return defer.Deferred.fromCoroutine(poll())


def process_ended(pid: int) -> bool:
    """Whether process C{pid} has ended: it is gone, or a zombie its parent has not reaped yet (Linux C{/proc})."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    # pid (comm) state ...: comm may hold blanks and parentheses, the state follows the last ")"
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X")
