# -*- test-case-name: tests.test_messagedeadline -*-
"""
The deadline of one message as a client sends it: the whole of it, not
each read (a QMQP packet, L{pymta.qmqpd.protocol}; each message of a QMTP
connection, L{pymta.qmtpd.protocol}: its three netstrings).

An idle timeout per read lets a client that sends a byte every few
seconds hold a connection slot for ever; a L{MessageDeadline} bounds the
whole message by smtpd's rule for DATA (L{pymta.linedeadline}): C{seconds}
(control/timeoutsmtpd) whatever its size; after that, the bytes received
since the start must average at least C{min_rate} (control/mindatarate)
bytes a second.  With C{min_rate} 0 the message has C{seconds} in all: the
rate is what lets a large message take longer, and without one nothing
would bound a trickle.

The clock starts when the server waits for the message (when the client
is admitted: a reverse lookup for its rule is the server's time; for the
next message of a QMTP connection, when the one before is answered) and
stops for good once the message is whole (the queue's commit is the
server's time too) or the connection is gone.
The timer is lazy: one C{callLater}, which looks again when it fires.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["MessageDeadline"]


class MessageDeadline:
    """
    One message's deadline on C{clock} (an IReactorTime); calls C{expired()}
    once, unless stopped first.
    """

    def __init__(self, clock: Any, seconds: float, min_rate: int, expired: Callable[[], None]) -> None:
        self.clock = clock
        self.seconds = seconds
        self.min_rate = max(0, min_rate)
        self._expired = expired
        self._start: float | None = None
        self._bytes = 0
        self._stopped = False
        self._call: Any = None

    def start(self) -> None:
        """The client's time starts now (once; later calls change nothing)."""
        if self._start is None and not self._stopped:
            self._start = self.clock.seconds()
            self._schedule()

    def received(self, count: int) -> None:
        """C{count} bytes of the message arrived (they may let a large message take longer)."""
        self._bytes += count

    def stop(self) -> None:
        """No deadline any more, for good: the message is whole or the connection is gone."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def due(self) -> float | None:
        """When the client's time runs out, or None before L{start} or after L{stop}."""
        if self._start is None or self._stopped:
            return None
        allowed = max(self.seconds, self._bytes / self.min_rate) if self.min_rate else self.seconds
        return self._start + allowed

    def _schedule(self) -> None:
        due = self.due()
        if due is not None:
            self._call = self.clock.callLater(max(0.0, due - self.clock.seconds()), self._check)

    def _check(self) -> None:
        self._call = None
        due = self.due()
        if due is None:
            return
        if self.clock.seconds() >= due:
            self.stop()
            self._expired()
        else:
            self._schedule()
