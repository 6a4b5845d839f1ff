# -*- test-case-name: tests.local.test_requestwriter -*-
"""
How the local channel's delivery requests reach the spawner's stdin.

The plain path (L{TransportRequests}) is the process transport's
C{writeToChild}: Twisted keeps the bytes in its buffer, stops watching the
pipe for its end, watches it for writing, writes on the reactor's next turn,
then swaps the two watches back: four C{epoll_ctl} calls and one more
reactor event around a single C{write}, for every delivery.

L{DirectRequests} writes a request at once, with one C{write} on the pipe of
a process Twisted spawned.  It keeps the order of the bytes by the rule of
L{pymta.smtpd.replywriter}: it is the only writer of the pipe, and the first
request the pipe does not take whole (a spawner that stops reading, a pipe
whose reader is gone) hands what is left to the transport, and every later
request goes through the transport as well, since Twisted's buffer may hold
bytes from then on.  Twisted then meets the error or drains the buffer as on
the plain path.  It writes only while the transport still holds the pipe
open (Twisted closes the descriptor when it drops the pipe from the
transport's C{pipes}), and not once the pipe is being closed.  A transport
that is not Twisted's own process (a test's fake) takes the plain path.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from twisted.internet import process

__all__ = ["RequestWriter", "TransportRequests", "DirectRequests", "request_writer"]

#: the spawner's stdin, the child's descriptor the requests go to
STDIN = 0


class RequestWriter(Protocol):
    """Writes the requests to one spawner, in order."""

    def write(self, data: bytes) -> None:
        """Send C{data} after every request written before it."""


class TransportRequests:
    """Through the transport (Twisted's buffer and the reactor): the plain path."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        self._transport.writeToChild(STDIN, data)


class DirectRequests:
    """Straight to the stdin pipe of a spawned process while it takes each request whole (see the module's description)."""

    def __init__(self, transport: Any, writer: process.ProcessWriter) -> None:
        self._transport = transport
        self._writer: process.ProcessWriter | None = writer

    @property
    def direct(self) -> bool:
        """Whether requests still go straight to the pipe."""
        return self._writer is not None

    def write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or self._transport.pipes.get(STDIN) is not writer or writer.disconnecting:
            self._writer = None  # gone or closing: its descriptor is not ours to write any more
            self._transport.writeToChild(STDIN, data)
            return
        try:
            sent = os.write(writer.fd, data)
        except OSError:  # full (EAGAIN) or its reader gone (EPIPE): the transport will find out which
            sent = 0
        if sent < len(data):
            self._writer = None  # from now on Twisted's buffer may hold bytes: everything goes behind them
            self._transport.writeToChild(STDIN, data[sent:])


def request_writer(transport: Any) -> RequestWriter:
    """L{DirectRequests} for a process Twisted spawned with a stdin pipe, else L{TransportRequests}."""
    if type(transport) is process.Process:
        writer = transport.pipes.get(STDIN)
        if type(writer) is process.ProcessWriter:
            return DirectRequests(transport, writer)
    return TransportRequests(transport)
