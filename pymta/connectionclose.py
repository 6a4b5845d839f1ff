# -*- test-case-name: tests.test_connectionclose -*-
"""
Closing a server connection for good, so that it really goes (smtpd, pop3d).

C{loseConnection} alone is polite and can wait for ever: it first sends
what is buffered, so a client that stops reading keeps the socket (and the
server's connection slot) as long as it likes; on a TLS connection whose
handshake has not finished, Twisted cannot even encrypt the last reply
and waits for a handshake the client never completes.  A
L{ConnectionCloser} therefore:

  - aborts at once (C{abortConnection}, what is unsent is dropped) while a
    TLS handshake is unfinished: a reply cannot reach the client anyway,
    and waiting for the handshake would let a silent client hold the
    socket (an over-limit refusal on an implicit-TLS listener is such a
    close: the client gets no reply, only the end of the connection);
  - otherwise calls C{loseConnection} and, if the connection is still not
    gone C{grace} seconds later, aborts it.

The protocol says when TLS starts (implicit TLS: at connection;
STARTTLS/STLS: when it calls C{startTLS}) and when the handshake is done
(Twisted's L{IHandshakeListener.handshakeCompleted}), and calls L{lost}
from C{connectionLost}.  The time a handshake takes counts against the
protocol's own input deadline (L{pymta.linedeadline}), which then closes
through here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConnectionCloser", "CLOSE_GRACE_SECONDS"]

CLOSE_GRACE_SECONDS = 5.0  # after loseConnection, until the connection is aborted


class ConnectionCloser:
    """One connection's end, driven by C{clock} (an IReactorTime such as C{task.Clock})."""

    def __init__(self, clock: Any, grace: float = CLOSE_GRACE_SECONDS) -> None:
        self.clock = clock
        self.grace = grace
        self.closing = False  # close() was called
        self._handshaking = False
        self._abort_call: Any = None

    def tls_started(self) -> None:
        """A TLS handshake begins (implicit TLS at connection, or STARTTLS/STLS)."""
        self._handshaking = True

    def handshake_completed(self) -> None:
        self._handshaking = False

    @property
    def handshaking(self) -> bool:
        """True while a TLS handshake is unfinished: nothing written now reaches the client."""
        return self._handshaking

    def close(self, transport: Any) -> None:
        """End the connection: abort now while handshaking, else lose it and abort after the grace period."""
        if self.closing:
            return
        self.closing = True
        if self._handshaking:
            self._abort(transport)
            return
        transport.loseConnection()
        if getattr(transport, "abortConnection", None) is not None:  # stdio has none: its loseConnection is all there is
            self._abort_call = self.clock.callLater(self.grace, self._abort, transport)

    def lost(self) -> None:
        """The connection is gone (C{connectionLost}): nothing left to abort."""
        self.closing = True
        call, self._abort_call = self._abort_call, None
        if call is not None and call.active():
            call.cancel()

    def _abort(self, transport: Any) -> None:
        self._abort_call = None
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()
