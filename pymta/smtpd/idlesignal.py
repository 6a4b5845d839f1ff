# -*- test-case-name: tests.smtpd.test_idlesignal -*-
"""
L{IdleSignal}: Deferreds waiting for an SMTP session to be idle - no
command waiting for its Deferred (a queue commit, a check, a lookup).
L{pymta.smtpd.protocol.SMTPServerProtocol.when_idle} hands them out; the
protocol fires them once it has nothing pending and has worked through
what its buffer held.
"""

from __future__ import annotations

from twisted.internet import defer

__all__ = ["IdleSignal"]


class IdleSignal:
    """Waiters for the next idle moment."""

    def __init__(self) -> None:
        self._waiting: list[defer.Deferred[None]] = []

    def wait(self, idle_now: bool) -> "defer.Deferred[None]":
        """Fired already when C{idle_now}, else at the next L{fire}."""
        if idle_now:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(d)
        return d

    def fire(self) -> None:
        """The session is idle: fire every waiter (each once)."""
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
