# -*- test-case-name: tests.test_qmqpprotocol -*-
"""
The null client's hand-over on the reactor: L{pymta.qmqpclient}'s rules
(the servers in order, qmail-qmqpc's timeouts, the first reply decides)
without a thread, for the daemons (L{pymta.qmqpsink}).  The blocking
L{pymta.qmqpclient.send_qmqp} stays for the command-line tools; both share
its packet encoding and its reply and exit-code mapping.

L{QMQPSendProtocol} sends one packet on one connection: the netstring
head (the spooled message's length is known), the message from its spool
through a L{FileSender} (a pull producer: the memory used stays flat
whatever the message's size), the envelope, then reads the one reply
netstring (at most L{MAX_REPLY} bytes).  A connection that makes no
progress for C{io_timeout} seconds (nothing written, nothing read), that
drops before the reply, or that answers something that is not a netstring
is a server that did not reply: L{ServerSkipped}, as in the blocking
client.

L{QMQPHandOver} tries the servers in order, each connection within
C{connect_timeout}, moving on only when a server did not reply.  Its
promise: L{QMQPHandOver.start} fires with a receipt only after a server's
C{K}; L{QMQPHandOver.abort} closes the connection in progress, and then
nothing is promised (the Deferred fails).
"""

from __future__ import annotations

from typing import IO, Any, Callable, NoReturn, Sequence

from twisted.internet import defer, error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.basic import FileSender
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from pymta.interfaces import QueueReceipt
from pymta.qmqpclient import (
    CONNECT_TIMEOUT,
    EXIT_CONNECT_REFUSED,
    EXIT_CONNECT_TIMEOUT,
    EXIT_CONNECTION_DROPPED,
    IO_TIMEOUT,
    MAX_REPLY,
    ServerSkipped,
    packet_head,
    reply_outcome,
)
from pymta.qmqpservers import QMQPServer
from pymta.queue.errors import QueueFailure
from pymta.queue.framing import FramingError, NetstringParser
from pymta.streamtransport import ISocketStreamTransport

__all__ = ["QMQPSendProtocol", "QMQPHandOver", "server_endpoint"]


def server_endpoint(reactor: Any, server: QMQPServer, timeout: float) -> IStreamClientEndpoint:
    """A TCP endpoint for C{server} (an IP address: nothing is resolved)."""
    if ":" in server.host:
        return TCP6ClientEndpoint(reactor, server.host, server.port, timeout=timeout)
    return TCP4ClientEndpoint(reactor, server.host, server.port, timeout=timeout)


class _Progress:
    """The transport as the L{FileSender}'s consumer: each write is progress (the I/O timeout restarts)."""

    def __init__(self, transport: Any, progress: Callable[[], None]) -> None:
        self.transport = transport
        self.progress = progress

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    def write(self, data: bytes) -> None:
        self.progress()
        self.transport.write(data)


class QMQPSendProtocol(Protocol, TimeoutMixin):
    """
    One packet to C{server}; C{reply} fires with the reply's payload, or
    fails with L{ServerSkipped} when the server gives none.  C{spool} is
    read from its start, C{length} bytes.
    """

    transport: ISocketStreamTransport  # used once connected

    def __init__(self, server: QMQPServer, spool: IO[bytes], length: int, envelope: bytes,
                 clock: Any, io_timeout: float = IO_TIMEOUT) -> None:
        self.server = server
        self.spool = spool
        self.length = length
        self.envelope = envelope
        self.clock = clock
        self.io_timeout = io_timeout
        self.reply: defer.Deferred[bytes] = defer.Deferred()
        self._parser = NetstringParser(MAX_REPLY)

    def callLater(self, period: float, func: Any) -> Any:  # TimeoutMixin's scheduler: the injected clock
        return self.clock.callLater(period, func)

    def connectionMade(self) -> None:
        self.setTimeout(self.io_timeout)
        self.transport.write(packet_head(self.length, self.envelope))
        self.spool.seek(0)
        sent = FileSender().beginFileTransfer(self.spool, _Progress(self.transport, self.resetTimeout))
        sent.addCallbacks(self._message_sent, lambda _: None)  # stopped: connectionLost decides

    def _message_sent(self, _: object) -> None:
        if not self.reply.called:
            self.resetTimeout()
            self.transport.write(b"," + self.envelope + b",")

    def dataReceived(self, data: bytes) -> None:
        if self.reply.called:
            return
        self.resetTimeout()
        self._parser.feed(data)
        try:
            payload = self._parser.next()
        except FramingError as e:
            self._skip(f"not a QMQP reply: {e}")
            return
        if payload is not None:
            self.setTimeout(None)
            self.reply.callback(payload)
            self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self._skip("timed out")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        if not self.reply.called:
            self.reply.errback(ServerSkipped(QueueFailure(
                EXIT_CONNECTION_DROPPED, f"{self.server}: connection closed before the reply")))

    def _skip(self, why: str) -> None:
        self.setTimeout(None)
        self.reply.errback(ServerSkipped(QueueFailure(EXIT_CONNECTION_DROPPED, f"{self.server}: {why}")))
        self.transport.abortConnection()


def _connect_failure(server: QMQPServer, reason: Failure) -> QueueFailure:
    """qmail-qmqpc's exit code for a connection that did not open: 72 timed out, 73 otherwise."""
    if reason.check(error.TimeoutError):
        return QueueFailure(EXIT_CONNECT_TIMEOUT, f"{server}: connection timed out")
    return QueueFailure(EXIT_CONNECT_REFUSED, f"{server}: {reason.getErrorMessage()}")


class QMQPHandOver:
    """
    One spooled message to the first of C{servers} that replies; see the
    module's description.  C{endpoint(server)} connects to a server (by
    default L{server_endpoint} with C{connect_timeout}); C{reactor} is also
    the clock of the I/O timeout.
    """

    def __init__(self, reactor: Any, servers: Sequence[QMQPServer], spool: IO[bytes], length: int,
                 envelope: bytes, *, connect_timeout: float = CONNECT_TIMEOUT, io_timeout: float = IO_TIMEOUT,
                 endpoint: Callable[[QMQPServer], IStreamClientEndpoint] | None = None) -> None:
        self.reactor = reactor
        self.servers = list(servers)
        self.spool = spool
        self.length = length
        self.envelope = envelope
        self.io_timeout = io_timeout
        self.endpoint = endpoint or (lambda server: server_endpoint(reactor, server, connect_timeout))
        self.result: defer.Deferred[QueueReceipt] = defer.Deferred()
        self._last = QueueFailure(EXIT_CONNECT_REFUSED, "no QMQP server listed")
        self._connecting: defer.Deferred[Any] | None = None
        self._protocol: QMQPSendProtocol | None = None
        self._aborted = False

    def start(self) -> "defer.Deferred[QueueReceipt]":
        self._next(0)
        return self.result

    def abort(self) -> None:
        """Stop: the connection in progress is closed; C{result} fails unless a reply has decided."""
        if self.result.called or self._aborted:
            return
        self._aborted = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.transport.abortConnection()

    def _next(self, index: int) -> None:
        if self._aborted:
            self.result.errback(QueueFailure(EXIT_CONNECTION_DROPPED, "the message was abandoned before a reply"))
            return
        if index >= len(self.servers):
            self.result.errback(self._last)
            return
        server = self.servers[index]
        protocol = QMQPSendProtocol(server, self.spool, self.length, self.envelope, self.reactor, self.io_timeout)
        self._connecting = self.endpoint(server).connect(Factory.forProtocol(lambda: protocol))

        def connected(_: object) -> Any:
            self._connecting, self._protocol = None, protocol
            return protocol.reply

        def not_connected(reason: Failure) -> NoReturn:
            self._connecting = None
            raise ServerSkipped(_connect_failure(server, reason))

        def replied(payload: bytes) -> None:
            self._protocol = None
            try:
                self.result.callback(reply_outcome(server, payload))
            except QueueFailure as e:
                self.result.errback(e)

        def skipped(reason: Failure) -> None:
            self._protocol = None
            if not reason.check(ServerSkipped):
                self.result.errback(reason)
                return
            self._last = reason.value.failure
            self._next(index + 1)

        self._connecting.addCallbacks(connected, not_connected).addCallbacks(replied, skipped)
