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
  - otherwise calls C{loseConnection} and then:
      - L{ConnectionCloser.close} (a close the server imposes: a deadline,
        a refusal, an error) aborts if the connection is still not gone
        C{grace} seconds later;
      - L{ConnectionCloser.finish} (the close after a complete reply the
        client must get: POP3 C{+OK} after QUIT, SMTP 221) lets the
        output drain as long as it moves: every C{grace} seconds it looks
        at what is still buffered (L{pending_output}); once all of it is
        with the kernel it closes the socket in order (the kernel sends the
        rest, a TLS peer's close_notify is not waited for), and it aborts
        only when nothing has been sent for C{idle} seconds (the session's
        timeout).  A slow client reading a long RETR that was answered
        before QUIT therefore gets all of it.

The protocol says when TLS starts (implicit TLS: at connection;
STARTTLS/STLS: when it calls C{startTLS}) and when the handshake is done
(Twisted's L{IHandshakeListener.handshakeCompleted}, or L{received}: the
first decrypted bytes, for a wrapping endpoint such as C{haproxy:ssl:} that
does not pass C{handshakeCompleted} on), and calls L{lost} from
C{connectionLost}.  The time a handshake takes counts against the
protocol's own input deadline (L{pymta.linedeadline}), which then closes
through here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConnectionCloser", "CLOSE_GRACE_SECONDS", "pending_output"]

CLOSE_GRACE_SECONDS = 5.0  # after loseConnection, until the connection is aborted (or its output looked at again)
MAX_LAYERS = 4  # transports wrapped in transports: TLS over HAProxy over TCP


def _layers(transport: Any) -> list[Any]:
    """C{transport} and the transports under it (a wrapper's C{transport}), top first."""
    layers: list[Any] = []
    while transport is not None and len(layers) < MAX_LAYERS:
        layers.append(transport)
        transport = getattr(transport, "transport", None)
    return layers


def pending_output(transport: Any) -> int | None:
    """
    Bytes written to C{transport} (or to the transports under it) that
    Twisted has not yet handed to the kernel, or None when no layer says.

    Twisted has no public counter for this: it reads a TCP transport's
    write buffer (L{twisted.internet.abstract.FileDescriptor}) and a TLS
    layer's data held back until its handshake ends.
    """
    total: int | None = None
    for layer in _layers(transport):
        held = getattr(layer, "_appSendBuffer", None)
        if isinstance(held, list):
            total = (total or 0) + sum(len(chunk) for chunk in held)
        buffer = getattr(layer, "dataBuffer", None)
        if isinstance(buffer, (bytes, memoryview)):
            unsent = len(buffer) - int(getattr(layer, "offset", 0)) + int(getattr(layer, "_tempDataLen", 0))
            total = (total or 0) + max(0, unsent)
    return total


class ConnectionCloser:
    """One connection's end, driven by C{clock} (an IReactorTime such as C{task.Clock})."""

    def __init__(self, clock: Any, grace: float = CLOSE_GRACE_SECONDS, idle: float = 600.0) -> None:
        self.clock = clock
        self.grace = grace
        self.idle = idle  # finish(): abort once nothing has been sent for this long
        self.closing = False  # close() was called
        self._handshaking = False
        self._abort_call: Any = None
        self._pending: int | None = None  # finish(): output still buffered at the last look
        self._moved_at = 0.0  # finish(): when the output last moved on
        self._bottom_closed = False

    def tls_started(self) -> None:
        """A TLS handshake begins (implicit TLS at connection, or STARTTLS/STLS)."""
        self._handshaking = True

    def handshake_completed(self) -> None:
        self._handshaking = False

    def received(self) -> None:
        """Decrypted bytes arrived (C{dataReceived}): a handshake in progress is over."""
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

    def finish(self, transport: Any) -> None:
        """
        End the connection after a complete reply: abort now while
        handshaking, else lose it and let what is buffered drain while it
        moves (see the module's description).
        """
        if self.closing:
            return
        if self._handshaking or getattr(transport, "abortConnection", None) is None:
            self.close(transport)
            return
        self.closing = True
        transport.loseConnection()
        self._pending = pending_output(transport)
        self._moved_at = self.clock.seconds()
        self._abort_call = self.clock.callLater(self.grace, self._look, transport)

    def _look(self, transport: Any) -> None:
        """finish(): every C{grace} seconds, see whether the output moved on."""
        self._abort_call = None
        now = self.clock.seconds()
        pending = pending_output(transport)
        if pending is not None and self._pending is not None and pending < self._pending:
            self._moved_at = now
        self._pending = pending
        if not pending and not self._bottom_closed:
            # all of it is with the kernel: close the socket in order, the kernel sends the rest
            self._bottom_closed = True
            self._moved_at = now
            _layers(transport)[-1].loseConnection()
        elif now - self._moved_at >= self.idle or (not pending and self._bottom_closed):
            self._abort(transport)
            return
        self._abort_call = self.clock.callLater(self.grace, self._look, transport)

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
