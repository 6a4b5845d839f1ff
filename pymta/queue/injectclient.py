# -*- test-case-name: tests.queue.test_inject_flow -*-
"""
The client side of the inject socket C{ROOT/run/inject.sock} for Twisted
processes other than the queue manager (C{pymta-smtpd}, C{sendmail -bs}):
L{InjectClientSink} is a L{pymta.interfaces.MessageSink} whose messages go
to the server in C{pymta-send} (L{pymta.queue.injectserver}).  The blocking
client of command-line tools is L{pymta.queue.client}; the wire format is
L{pymta.queue.framing}.

One message at a time travels on a connection (L{_InjectClientConnection});
its L{_InjectClientWriter} holds what is written before the connection is
made, streams chunks afterwards and settles with the server's reply.
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.dsn.params import MessageDsn
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.envelope import check_envelope
from pymta.queue.errors import EXIT_BUG, EXIT_NETWORK, EXIT_TIMEOUT, QueueFailure
from pymta.queue.framing import FramingError, NetstringParser, encode_envelope, netstring, parse_reply
from pymta.queue.handoff import HandOffLog, describe_connect_failure
from pymta.queue.sink import RefusedWriter
from pymta.streamtransport import ISocketStreamTransport

__all__ = ["InjectClientSink"]

_CLIENT_CHUNK = 65536
# bytes a writer holds for a connection not yet made before it asks its feeder to pause
_PRECONNECT_LIMIT = 4 * _CLIENT_CHUNK


@implementer(IPushProducer)
class _InjectClientConnection(Protocol):
    """
    One client connection to the inject socket, carrying one message at a
    time (the framing allows several in a row).  It is the streaming producer
    registered with its transport and hands Twisted's pause/resume to the
    message writer attached at the moment.  After a clean reply to a finished
    message the sink may keep it for the next message.
    """

    transport: ISocketStreamTransport  # used once connected

    def __init__(self, sink: "InjectClientSink") -> None:
        self.sink = sink
        self.writer: _InjectClientWriter | None = None
        self.paused = False
        self.idle_timer = None
        self._parser = NetstringParser(4096)

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if self.writer is not None:
            self.writer.attached(self)

    def pauseProducing(self) -> None:
        self.paused = True
        if self.writer is not None:
            self.writer.transport_paused(True)

    def resumeProducing(self) -> None:
        self.paused = False
        if self.writer is not None:
            self.writer.transport_paused(False)

    def stopProducing(self) -> None:
        self.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        writer = self.writer
        if writer is None:
            # nothing is owed to an idle connection: a server that talks now is confused
            self.transport.abortConnection()
            return
        self._parser.feed(data)
        try:
            payload = self._parser.next()
            if payload is None:
                return
            result = parse_reply(payload)
        except FramingError as e:
            self.writer = None
            self.transport.abortConnection()
            writer.settle(QueueFailure(EXIT_NETWORK, f"inject socket: {e}"))
            return
        self.writer = None
        # back in the pool before the outcome fires: the caller may start its next message at once
        if writer.replied_in_turn() and not self._parser.pending() and not self.transport.disconnecting:
            self.sink.keep(self)
        else:
            self.transport.loseConnection()
        writer.settle(result)

    def drop(self) -> None:
        """Close at once: the message on it was given up."""
        self.writer = None
        self.transport.abortConnection()

    def connectionLost(self, reason=None) -> None:
        self.sink.forget(self)
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.settle(QueueFailure(EXIT_NETWORK, "inject socket: connection lost before the reply"))


class _InjectClientWriter:
    """
    One message streamed to the inject socket; see L{InjectClientSink}.

    Back-pressure: Twisted pauses the connection (its streaming producer)
    when the socket's send buffer holds more than the transport's
    C{bufferSize}; before the connection is made the writer counts the bytes
    it holds.  Either way it tells the feeder registered with
    L{watch_backlog} to stop reading and, once the data has drained (or the
    message is settled), to go on.
    """

    def __init__(
        self, reactor, timeout: float, envelope: bytes,
        report: Callable[[QueueReceipt | QueueRefused], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._report = report
        self._timeout = timeout
        self._outgoing: list[bytes] | None = [envelope]
        self._buffer = bytearray()
        self._state = "open"
        self._outcome: QueueReceipt | QueueRefused | None = None
        self._waiting: defer.Deferred | None = None
        self._timer = None
        self._connection: _InjectClientConnection | None = None
        self._outgoing_bytes = len(envelope)
        self._paused_by_transport = False
        self._backlogged = False
        self._flow: tuple[Callable[[], None], Callable[[], None]] | None = None

    # back-pressure

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """
        Call C{pause()} when more data is buffered for the inject socket than
        the bound, C{resume()} when it has drained or the message is settled.
        """
        self._flow = (pause, resume)
        if self._backlogged:
            pause()

    def _update_backlog(self) -> None:
        backlogged = self._outcome is None and (
            self._paused_by_transport or (self._outgoing is not None and self._outgoing_bytes > _PRECONNECT_LIMIT)
        )
        if backlogged == self._backlogged:
            return
        self._backlogged = backlogged
        if self._flow is not None:
            pause, resume = self._flow
            (pause if backlogged else resume)()

    def transport_paused(self, paused: bool) -> None:
        """The connection's transport paused (or resumed) its producer."""
        self._paused_by_transport = paused
        self._update_backlog()

    # MessageWriter

    def write(self, data: bytes) -> None:
        if self._state != "open" or self._outcome is not None:
            return
        self._buffer += data
        if len(self._buffer) >= _CLIENT_CHUNK:
            self._send(netstring(bytes(self._buffer)))
            self._buffer.clear()

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        if self._state != "open":
            return defer.fail(QueueFailure(EXIT_BUG, f"finish() on a message that is {self._state}"))
        self._state = "finishing"
        if self._buffer:
            self._send(netstring(bytes(self._buffer)))
            self._buffer.clear()
        self._send(b"0:,")
        # a local reference: when the outcome is already known, _deliver_outcome fires and clears _waiting
        waiting = self._waiting = defer.Deferred()
        if self._outcome is not None:
            self._deliver_outcome()
        else:
            self._timer = self._reactor.callLater(self._timeout, self._timed_out)
        return waiting

    def abort(self) -> None:
        if self._state in ("open", "finishing"):
            self._state = "aborted"
            self._outcome = self._outcome or QueueFailure(EXIT_BUG, "aborted")
            self._update_backlog()
            connection, self._connection = self._connection, None
            if connection is not None and connection.writer is self:
                connection.drop()

    # connection

    def _send(self, data: bytes) -> None:
        if self._outgoing is not None:
            self._outgoing.append(data)
            self._outgoing_bytes += len(data)
            self._update_backlog()
        elif self._connection is not None:
            self._connection.transport.write(data)

    def attached(self, connection: _InjectClientConnection) -> None:
        """C{connection} is connected and carries this message now: send what is held."""
        if self._state == "aborted":
            connection.drop()
            return
        self._connection = connection
        pending, self._outgoing = self._outgoing, None
        self._outgoing_bytes = 0
        self._paused_by_transport = connection.paused
        connection.transport.writeSequence(pending or [])
        self._update_backlog()

    def connect_failed(self, failure: Failure, detail: str | None = None) -> None:
        self._outgoing = None
        self._outgoing_bytes = 0
        self.settle(QueueFailure(EXIT_NETWORK, detail or f"inject socket: {failure.getErrorMessage()}"))

    def replied_in_turn(self) -> bool:
        """The reply came after the whole message was sent (the connection is then ready for another)."""
        return self._state == "finishing" and self._outcome is None

    def _timed_out(self) -> None:
        self._timer = None
        connection, self._connection = self._connection, None
        self.settle(QueueFailure(EXIT_TIMEOUT, "inject socket: no reply"))
        if connection is not None and connection.writer is self:
            connection.drop()

    def settle(self, result: QueueReceipt | QueueRefused) -> None:
        """The outcome of this message (the first one counts)."""
        self._connection = None
        if self._outcome is not None:
            return
        self._outcome = result
        self._update_backlog()
        if self._report is not None and self._state != "aborted":
            self._report(result)
        if self._waiting is not None:
            self._deliver_outcome()

    def _deliver_outcome(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        d, self._waiting = self._waiting, None
        if d is None:
            return
        self._state = "done"
        if isinstance(self._outcome, QueueReceipt):
            d.callback(self._outcome)
        else:
            d.errback(self._outcome)


class InjectClientSink:
    """
    A L{pymta.interfaces.MessageSink} for processes other than the queue
    manager, writing to the inject socket at C{socket_path}.  C{origin} is
    sent as a request (granted to trusted uids); C{uid}/C{pid} are ignored,
    the server reads them from the kernel.  A socket that is down or a
    connection lost before the reply fails C{finish()} with the temporary
    C{qq trouble making network connection (#4.3.0)}; no reply within
    C{timeout} seconds with C{qq timeout (#4.3.0)}.

    With C{keep_connections} > 0, up to that many connections whose last
    message got a clean reply are kept for the next messages (closed after
    C{idle_timeout} seconds unused, well before the server's own idle
    timeout); a kept connection the server has closed is noticed when it
    closes and never reused.  With 0 (the default) each message is one
    connection.  L{close} drops the kept ones.

    Every outcome goes to C{handoffs} (a L{HandOffLog}: why hand-offs fail,
    logged once per condition).
    """

    def __init__(
        self,
        reactor,
        socket_path: str,
        timeout: float = 3600.0,
        keep_connections: int = 0,
        idle_timeout: float = 60.0,
        handoffs: HandOffLog | None = None,
    ) -> None:
        self.reactor = reactor
        self.handoffs = handoffs if handoffs is not None else HandOffLog()
        self.socket_path = socket_path
        self.timeout = timeout
        self.keep_connections = keep_connections
        self.idle_timeout = idle_timeout
        self.idle: list[_InjectClientConnection] = []

    def open_message(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        origin: str,
        uid: int | None = None,
        pid: int | None = None,
        dsn: MessageDsn | None = None,
        held: bool = False,
    ):
        try:
            check_envelope(sender, recipients)
        except QueueRefused as e:
            return RefusedWriter(e)
        writer = _InjectClientWriter(self.reactor, self.timeout, encode_envelope(origin, sender, recipients, dsn, held),
                                     self.handoffs.outcome)
        while self.idle:
            connection = self.idle.pop()
            self._stop_idle_timer(connection)
            if connection.transport is not None and not connection.transport.disconnecting:
                connection.writer = writer
                writer.attached(connection)
                return writer
        connection = _InjectClientConnection(self)
        connection.writer = writer
        d = connectProtocol(UNIXClientEndpoint(self.reactor, self.socket_path, timeout=30), connection)
        d.addErrback(lambda failure: writer.connect_failed(failure, describe_connect_failure(failure, self.socket_path)))
        return writer

    def keep(self, connection: _InjectClientConnection) -> None:
        """C{connection} is free again: keep it for the next message, or close it."""
        if len(self.idle) >= self.keep_connections:
            connection.transport.loseConnection()
            return
        connection.idle_timer = self.reactor.callLater(self.idle_timeout, self._expire, connection)
        self.idle.append(connection)

    def forget(self, connection: _InjectClientConnection) -> None:
        """C{connection} is closed."""
        self._stop_idle_timer(connection)
        if connection in self.idle:
            self.idle.remove(connection)

    def _expire(self, connection: _InjectClientConnection) -> None:
        connection.idle_timer = None
        if connection in self.idle:
            self.idle.remove(connection)
            connection.transport.loseConnection()

    @staticmethod
    def _stop_idle_timer(connection: _InjectClientConnection) -> None:
        if connection.idle_timer is not None and connection.idle_timer.active():
            connection.idle_timer.cancel()
        connection.idle_timer = None

    def close(self) -> None:
        """Close the kept connections."""
        idle, self.idle = self.idle, []
        for connection in idle:
            self._stop_idle_timer(connection)
            connection.transport.loseConnection()
