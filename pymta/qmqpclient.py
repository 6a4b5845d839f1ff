# -*- test-case-name: tests.test_qmqpclient -*-
"""
The null client's hand-over (qmail-qmqpc): one message to the first QMQP
server of control/qmqpservers (L{pymta.qmqpservers}) that answers.

L{send_qmqp} spools the message first (QMQP states its length up front,
and a server that fails may need it sent again), then tries the servers in
order.  A server that cannot be reached within L{CONNECT_TIMEOUT}, or that
drops the connection or stays silent for L{IO_TIMEOUT} before it replies,
is skipped for the next one.  The first reply decides, as in qmail-qmqpc:
C{K} returns a receipt (the message is durable there), C{Z} and C{D} raise
L{QueueFailure} with the server's text (temporary or permanent).  When no
server replies, the last failure is raised (qmail-qmqpc's exit code: 72
timeout, 73 refused, 74 dropped; all temporary).  So the caller
(C{pymta inject}: exit 111, C{sendmail}, a script) still has the message
whenever it was not accepted; nothing is kept here.

This client blocks (the command-line tools are blocking programs); the
daemons use L{pymta.qmqpprotocol} on the reactor, which shares
L{packet_head}, L{reply_outcome} and L{ServerSkipped} with it: one set of
rules for both.
"""

from __future__ import annotations

import socket
import tempfile
from typing import IO, Sequence

from pymta.interfaces import QueueReceipt
from pymta.qmqpservers import QMQPServer
from pymta.queue.errors import EXIT_PERMANENT_REFUSAL, EXIT_READ_ERROR, EXIT_TEMPORARY_REFUSAL, QueueFailure
from pymta.queue.framing import FramingError, NetstringParser, netstring

__all__ = ["send_qmqp", "encode_envelope", "packet_head", "reply_outcome", "ServerSkipped", "MAX_REPLY", "CONNECT_TIMEOUT", "IO_TIMEOUT", "EXIT_CONNECT_TIMEOUT",
           "EXIT_CONNECT_REFUSED", "EXIT_CONNECTION_DROPPED"]

#: seconds to wait for a server to accept the connection (qmail-qmqpc's)
CONNECT_TIMEOUT = 10.0
#: seconds any one read or write may wait (qmail-qmqpc's)
IO_TIMEOUT = 60.0

# qmail-qmqpc's exit codes (texts in L{pymta.queue.errors})
EXIT_CONNECT_TIMEOUT = 72
EXIT_CONNECT_REFUSED = 73
EXIT_CONNECTION_DROPPED = 74

_CHUNK = 65536
_SPOOL_IN_MEMORY = 1 << 20
#: the longest reply payload taken from a server
MAX_REPLY = 1000


def encode_envelope(sender: str, recipients: Sequence[str]) -> bytes:
    """The netstrings after the message: the sender's, then one per recipient."""
    return b"".join(netstring(address.encode("utf-8")) for address in (sender, *recipients))


def packet_head(length: int, envelope: bytes) -> bytes:
    """
    What goes before a message of C{length} bytes: the packet's netstring
    prefix (the message's netstring, then C{envelope}, inside it) and the
    message's own.  After the message come C{b","}, C{envelope} and C{b","}.
    """
    inner = b"%d:" % length
    return b"%d:" % (len(inner) + length + 1 + len(envelope)) + inner


def _spool(message: bytes | IO[bytes]) -> tuple[IO[bytes], int]:
    """The message in a rewindable file, and its length."""
    spool = tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY)
    if isinstance(message, (bytes, bytearray, memoryview)):
        spool.write(message)
    else:
        while True:
            try:
                data = message.read(_CHUNK)
            except OSError as e:
                spool.close()
                raise QueueFailure(EXIT_READ_ERROR, f"reading the message: {e.strerror}") from e
            if not data:
                break
            spool.write(data)
    return spool, spool.tell()


class ServerSkipped(Exception):
    """This server did not reply; try the next one (C{failure} says why)."""

    def __init__(self, failure: QueueFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _exchange(server: QMQPServer, spool: IO[bytes], length: int, envelope: bytes,
              connect_timeout: float, io_timeout: float) -> bytes:
    """The payload of C{server}'s reply; L{ServerSkipped} when it gives none."""
    try:
        sock = socket.create_connection((server.host, server.port), timeout=connect_timeout)
    except TimeoutError as e:
        raise ServerSkipped(QueueFailure(EXIT_CONNECT_TIMEOUT, f"{server}: connection timed out")) from e
    except OSError as e:
        raise ServerSkipped(QueueFailure(EXIT_CONNECT_REFUSED, f"{server}: {e.strerror or e}")) from e
    try:
        sock.settimeout(io_timeout)
        sock.sendall(packet_head(length, envelope))
        spool.seek(0)
        while data := spool.read(_CHUNK):
            sock.sendall(data)
        sock.sendall(b"," + envelope + b",")
        parser = NetstringParser(MAX_REPLY)
        while (payload := parser.next()) is None:
            data = sock.recv(4096)
            if not data:
                raise ServerSkipped(QueueFailure(EXIT_CONNECTION_DROPPED, f"{server}: connection closed before the reply"))
            parser.feed(data)
        return payload
    except FramingError as e:
        raise ServerSkipped(QueueFailure(EXIT_CONNECTION_DROPPED, f"{server}: not a QMQP reply: {e}")) from e
    except OSError as e:  # a timeout included
        raise ServerSkipped(QueueFailure(EXIT_CONNECTION_DROPPED, f"{server}: {e.strerror or 'timed out'}")) from e
    finally:
        sock.close()


def _qp(text: bytes) -> int:
    """The qp number of a C{K} reply (C{ok <time> qp <qp>}), 0 when it has none."""
    fields = text.split()
    return int(fields[-1]) if len(fields) >= 2 and fields[-2] == b"qp" and fields[-1].isdigit() else 0


def reply_outcome(server: QMQPServer, payload: bytes) -> QueueReceipt:
    """
    What C{server}'s reply decides: C{K} a receipt; C{D} a permanent
    L{QueueFailure}; C{Z}, or anything else, a temporary one.
    """
    kind, text = payload[:1], payload[1:].decode("utf-8", "replace")
    if kind == b"K":
        return QueueReceipt(0, _qp(payload[1:]))
    if kind == b"D":
        raise QueueFailure(EXIT_PERMANENT_REFUSAL, f"{server}", text=text or None, permanent=True)
    raise QueueFailure(EXIT_TEMPORARY_REFUSAL, f"{server}", text=text or None, permanent=False)


def send_qmqp(servers: Sequence[QMQPServer], message: bytes | IO[bytes], sender: str, recipients: Sequence[str],
              *, connect_timeout: float = CONNECT_TIMEOUT, io_timeout: float = IO_TIMEOUT) -> QueueReceipt:
    """Hand the message to the first server that replies; see the module's description."""
    envelope = encode_envelope(sender, recipients)
    spool, length = _spool(message)
    last = QueueFailure(EXIT_CONNECT_REFUSED, "no QMQP server listed")
    try:
        for server in servers:
            try:
                payload = _exchange(server, spool, length, envelope, connect_timeout, io_timeout)
            except ServerSkipped as e:
                last = e.failure
                continue
            return reply_outcome(server, payload)
    finally:
        spool.close()
    raise last
