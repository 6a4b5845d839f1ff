# -*- test-case-name: tests.queue.test_inject -*-
"""
The server side of the inject socket C{ROOT/run/inject.sock}: how other
processes put mail into the queue.  It runs inside C{pymta-send}, the only
process that writes the queue (the client side is
L{pymta.queue.injectclient}; the blocking client of command-line tools is
L{pymta.queue.client}).

L{InjectServerFactory} streams each message into a
L{pymta.interfaces.MessageSink} (normally L{pymta.queue.sink.QueueSink})
and answers only once the message is durable.  Wire format: see
L{pymta.queue.framing}.  In short, per message::

    netstring( netstring(origin) netstring(sender) netstring(rcpt)... )
    netstring(chunk)...   0:,
    <- netstring("K<id> qp <qp>" | "Z<text>" | "D<text>")

The caller's uid and pid come from the kernel (C{SO_PEERCRED}), never from
the client's words: the C{u} record and the default C{Received:} origin
C{by uid <uid>} are the peer's real uid.  A requested origin (C{from
network}, C{for bounce}, C{by alias}, C{by uid N}) is granted only to
trusted peers: the server's own uid and the uids given in C{trusted_uids}
(the uid smtpd runs as).  So is the hold a content filter's quarantine
asks for: an untrusted peer asking for it is refused (temporarily), not
queued unheld, so a quarantine never turns into a delivery.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from typing import Any, Callable, Iterable

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from pymta.interfaces import MessageSink, MessageWriter, QueueReceipt, QueueRefused
from pymta.queue.errors import EXIT_BUG, QueueFailure
from pymta.queue.framing import (
    MAX_CHUNK,
    MAX_ENVELOPE,
    FramingError,
    NetstringParser,
    encode_reply,
    inject_socket_path,
    parse_envelope_dsn,
    split_held,
)
from pymta.queue.listening import listen_unix
from pymta.queue.sink import RefusedWriter
from pymta.streamtransport import ISocketStreamTransport

__all__ = [
    "peer_credentials",
    "InjectServerProtocol",
    "InjectServerFactory",
    "listen_inject",
]

log = Logger(namespace="pymta.inject")

_GRANTABLE_ORIGIN = re.compile(r"from network|for bounce|by alias|by uid \d{1,10}")
_UCRED = struct.Struct("3i")


def peer_credentials(transport) -> tuple[int, int, int] | None:
    """C{(pid, uid, gid)} of the process at the other end of a UNIX socket transport."""
    sock = getattr(transport, "socket", None)
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    return _UCRED.unpack(raw)


class InjectServerProtocol(Protocol, TimeoutMixin):
    """One client connection on the inject socket; messages one after another."""

    timeOut = 3600
    transport: ISocketStreamTransport  # the methods below run once connected

    def __init__(self, factory: "InjectServerFactory") -> None:
        self.factory = factory
        self._parser = NetstringParser(MAX_ENVELOPE)
        self._state = "envelope"
        self._writer: MessageWriter | None = None
        self._peer: tuple[int, int, int] | None = None
        self._connected = False

    def connectionMade(self) -> None:
        self._connected = True
        self.setTimeout(self.timeOut)
        self._peer = self.factory.credentials(self.transport)
        if self._peer is None:
            log.warn("inject: unable to learn the peer's uid; closing")
            self._reply(QueueFailure(EXIT_BUG, text="unable to identify the injecting process (#4.3.0)"))
            self._state = "closed"
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._state == "closed":
            return
        self.resetTimeout()
        self._parser.feed(data)
        self._process()

    def _process(self) -> None:
        while self._state in ("envelope", "data"):
            try:
                value = self._parser.next()
                if value is None:
                    return
                if self._state == "envelope":
                    self._start(value)
                elif value:
                    assert self._writer is not None  # _start set it with the state "data"
                    self._writer.write(value)
                else:
                    self._finish()
            except FramingError as e:
                self._framing_error(str(e))
                return

    def _start(self, payload: bytes) -> None:
        payload, held = split_held(payload)
        requested, sender, recipients, dsn = parse_envelope_dsn(payload)
        assert self._peer is not None  # connectionMade closed the connection without one
        pid, uid, _ = self._peer
        origin = f"by uid {uid}"
        if requested:
            if uid in self.factory.trusted_uids and _GRANTABLE_ORIGIN.fullmatch(requested):
                origin = requested
            else:
                log.info("inject: uid {uid} may not claim origin {origin!r}", uid=uid, origin=requested)
        extra: dict[str, Any] = {"dsn": dsn} if dsn is not None else {}  # a sink that predates DSN data is still a sink
        if held and uid not in self.factory.trusted_uids:
            log.info("inject: uid {uid} may not ask to hold a message: refused", uid=uid)
            self._writer = RefusedWriter(QueueRefused("only a trusted uid may queue a message held (#4.3.0)"))
            self._state = "data"
            self._parser.max_length = MAX_CHUNK
            return
        if held:  # a content filter's quarantine, asked for by smtpd
            extra["held"] = True
        self._writer = self.factory.sink.open_message(sender, recipients, origin=origin, uid=uid, pid=pid, **extra)
        self._state = "data"
        self._parser.max_length = MAX_CHUNK

    def _finish(self) -> None:
        self._state = "waiting"
        self.transport.pauseProducing()
        writer, self._writer = self._writer, None
        assert writer is not None  # _start set it with the state "data"
        d = writer.finish()
        d.addCallbacks(self._committed, self._refused)

    def _committed(self, receipt: QueueReceipt) -> None:
        assert self._peer is not None  # only a message from a known peer is committed
        pid, uid, _ = self._peer
        log.info("inject: msg {id} from uid {uid} pid {pid}", id=receipt.message_id, uid=uid, pid=pid)
        self._answered(receipt)

    def _refused(self, failure: Failure) -> None:
        if failure.check(QueueRefused):
            self._answered(failure.value)
        else:
            log.failure("inject: unexpected error", failure)
            self._answered(QueueFailure(EXIT_BUG, str(failure.value)))

    def _answered(self, result: QueueReceipt | QueueRefused) -> None:
        if self._state != "waiting":
            return
        self._reply(result)
        self._state = "envelope"
        self._parser.max_length = MAX_ENVELOPE
        self.transport.resumeProducing()
        self._process()

    def _reply(self, result: QueueReceipt | QueueRefused) -> None:
        if self._connected:
            self.transport.write(encode_reply(result))

    def _framing_error(self, reason: str) -> None:
        log.info("inject: bad framing from uid {uid}: {reason}", uid=self._peer[1] if self._peer else "?", reason=reason)
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._reply(QueueRefused(f"inject protocol violation: {reason} (#5.5.2)", permanent=True))
        self._state = "closed"
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        log.info("inject: client timed out")
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._state = "closed"
        self.transport.abortConnection()

    def connectionLost(self, reason=None) -> None:
        self._connected = False
        self.setTimeout(None)
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._state = "closed"


class InjectServerFactory(Factory):
    """
    Builds L{InjectServerProtocol}s writing into C{sink}.  C{trusted_uids}
    may ask for an origin; the server's own uid always may.
    """

    protocol = InjectServerProtocol

    def __init__(
        self,
        sink: MessageSink,
        trusted_uids: Iterable[int] = (),
        credentials: Callable[[object], tuple[int, int, int] | None] = peer_credentials,
    ) -> None:
        self.sink = sink
        self.trusted_uids = frozenset(trusted_uids) | {os.getuid()}
        self.credentials = credentials

    def buildProtocol(self, addr) -> InjectServerProtocol:
        return self.protocol(self)


def listen_inject(reactor, root: str, factory: InjectServerFactory) -> "defer.Deferred":
    """
    Listen on C{ROOT/run/inject.sock} (mode 0666; the lock file
    C{inject.sock.lock} lets a new server replace a dead one's socket).
    Fires with the listening port.
    """
    return listen_unix(reactor, inject_socket_path(root), 0o666, factory)
