# -*- test-case-name: tests.smtpd.test_replywriter -*-
"""
How smtpd's reply lines reach the client.

The plain path (L{TransportReplies}) is the transport's own C{write}:
Twisted keeps the bytes in its buffer, asks the reactor to watch the socket
for writing, sends them on the reactor's next turn and stops watching.  For
a short reply that a waiting client reads at once, that is two C{epoll_ctl}
calls and one more reactor event around a single C{send}, seven times in
each message's dialogue.

L{DirectReplies} sends a reply at once, with one C{send} on the socket of a
plain TCP connection.  It keeps the order of the bytes by one rule: it is
the only writer of the connection, and the first reply the socket does not
take whole (a client that stops reading, an error) hands what is left to the
transport, and every later reply goes through the transport as well, since
Twisted's buffer may hold bytes from then on.  Twisted then meets the error
or drains the buffer as on the plain path.  A connection that starts in TLS,
a wrapped transport (C{haproxy:}, a test's C{StringTransport}) and anything
but Twisted's TCP server take the plain path; STARTTLS changes to it before
the handshake begins.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

from twisted.internet import tcp

__all__ = ["ReplyWriter", "TransportReplies", "DirectReplies", "reply_writer"]


class ReplyWriter(Protocol):
    """Writes a session's replies, in order."""

    def write(self, data: bytes) -> None:
        """Send C{data} after every reply written before it."""


class TransportReplies:
    """Through the transport (Twisted's buffer and the reactor): the plain path."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)


class DirectReplies:
    """Straight to the socket of a plain TCP connection while it takes each reply whole (see the module's description)."""

    def __init__(self, transport: Any, sock: socket.socket) -> None:
        self._transport = transport
        self._socket: socket.socket | None = sock

    @property
    def direct(self) -> bool:
        """Whether replies still go straight to the socket."""
        return self._socket is not None

    def write(self, data: bytes) -> None:
        sock = self._socket
        if sock is None or not self._transport.connected:
            self._transport.write(data)
            return
        try:
            sent = sock.send(data)
        except OSError:  # full (EAGAIN) or broken: the transport will find out which
            sent = 0
        if sent < len(data):
            self._socket = None  # from now on Twisted's buffer may hold bytes: everything goes behind them
            self._transport.write(data[sent:])


def reply_writer(transport: Any, tls: bool) -> ReplyWriter:
    """
    L{DirectReplies} for a plain TCP connection (C{tls} false), else
    L{TransportReplies}.  The direct path turns Nagle's algorithm off: the
    replies to a pipelined group (MAIL, RCPT, DATA in one packet) are
    separate sends, and the kernel would otherwise hold the second until the
    client acknowledged the first - which a client waiting for the whole
    group delays (delayed ACK, about 40 ms on Linux).  Twisted's own path
    writes one reactor turn's replies in one send.
    """
    if not tls and type(transport) is tcp.Server:
        sock = transport.getHandle()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            return TransportReplies(transport)
        return DirectReplies(transport, sock)
    return TransportReplies(transport)
