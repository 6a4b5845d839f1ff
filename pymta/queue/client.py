# -*- test-case-name: tests.queue.test_client -*-
"""
The blocking queue client of command-line tools (C{pymta queue}, C{pymta
inject}, C{pymta sendmail}, local delivery helpers).

L{enqueue} sends a message through the inject socket C{ROOT/run/inject.sock}
when a queue manager listens there.  When nothing listens, a caller that
may write the queue itself (root, or the owner of C{ROOT/queue}) writes it
directly with the same crash-safe writer the daemon uses; anyone else gets a
temporary error that says what is wrong.  On a null client (a root with
control/qmqpservers) the message goes to a QMQP server instead.  Either way the function returns
only once the message is durable, or raises L{QueueRefused}.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import IO, Sequence

from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.envelope import check_envelope
from pymta.queue.errors import EXIT_CONFIG, EXIT_NETWORK, EXIT_TIMEOUT, EXIT_READ_ERROR, QueueFailure
from pymta.queue.framing import FramingError, NetstringParser, encode_envelope, inject_socket_path, netstring, parse_reply
from pymta.queue.disk import QueueDisk
from pymta.queue.layout import QueueLayout
from pymta.queue.store import Queue
from pymta.qmqpservers import null_client_path
from pymta.nullclient import send_to_qmqp_servers

__all__ = ["enqueue", "enqueue_direct", "enqueue_socket", "may_write_queue", "SocketUnavailable"]

_CHUNK = 65536
_REPLY_TIMEOUT = 3600.0


class SocketUnavailable(Exception):
    """Nothing accepts connections on the inject socket (absent, refused, no permission)."""


def _chunks(message: bytes | IO[bytes]):
    if isinstance(message, (bytes, bytearray, memoryview)):
        view = memoryview(message)
        for start in range(0, len(view), _CHUNK):
            yield bytes(view[start : start + _CHUNK])
        return
    while True:
        try:
            data = message.read(_CHUNK)
        except OSError as e:
            raise QueueFailure(EXIT_READ_ERROR, f"reading the message: {e.strerror}") from e
        if not data:
            return
        yield data


def may_write_queue(queuedir: str) -> bool:
    """Whether this process may write into the queue C{queuedir} directly (root or its owner)."""
    try:
        owner = os.stat(queuedir).st_uid
    except OSError:
        return False
    euid = os.geteuid()
    return euid == 0 or euid == owner


def enqueue_socket(socket_path: str, message: bytes | IO[bytes], sender: str, recipients: Sequence[str], origin: str = "") -> QueueReceipt:
    """
    Send one message through the inject socket.  Raises L{SocketUnavailable}
    when no server accepts the connection (nothing was sent), L{QueueRefused}
    for the server's refusal or a broken connection.
    """
    envelope = encode_envelope(origin, sender, recipients)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(socket_path)
        except OSError as e:
            raise SocketUnavailable(f"{socket_path}: {e.strerror}") from e
        sock.settimeout(_REPLY_TIMEOUT)
        try:
            sock.sendall(envelope)
            for chunk in _chunks(message):
                sock.sendall(netstring(chunk))
            sock.sendall(b"0:,")
            parser = NetstringParser(4096)
            while True:
                payload = parser.next()
                if payload is not None:
                    break
                data = sock.recv(4096)
                if not data:
                    raise QueueFailure(EXIT_NETWORK, "inject socket: connection lost before the reply")
                parser.feed(data)
            result = parse_reply(payload)
        except FramingError as e:
            raise QueueFailure(EXIT_NETWORK, f"inject socket: {e}") from e
        except TimeoutError as e:
            raise QueueFailure(EXIT_TIMEOUT, "inject socket: no reply") from e
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                # the server refused early and closed; its reply may be waiting
                refused = _late_reply(sock)
                if refused is not None:
                    raise refused from e
            raise QueueFailure(EXIT_NETWORK, f"inject socket: {e.strerror or e}") from e
    finally:
        sock.close()
    if isinstance(result, QueueRefused):
        raise result
    return result


def _late_reply(sock: socket.socket) -> QueueRefused | None:
    parser = NetstringParser(4096)
    try:
        sock.settimeout(1.0)
        while True:
            data = sock.recv(4096)
            if not data:
                return None
            parser.feed(data)
            payload = parser.next()
            if payload is not None:
                result = parse_reply(payload)
                return result if isinstance(result, QueueRefused) else None
    except (OSError, FramingError):
        return None


def enqueue_direct(
    layout: QueueLayout, message: bytes | IO[bytes], sender: str, recipients: Sequence[str], origin: str | None = None
) -> QueueReceipt:
    """Write the message into the queue from this process (the caller must be allowed to)."""
    check_envelope(sender, recipients)
    uid = os.getuid()
    pending = Queue(QueueDisk.plain(layout)).begin(origin or f"by uid {uid}", uid, os.getpid())
    try:
        for chunk in _chunks(message):
            pending.write(chunk)
    except BaseException:
        pending.abort()
        raise
    return pending.commit(sender, recipients)


def enqueue(
    root: str,
    message: bytes | IO[bytes],
    sender: str,
    recipients: Sequence[str],
    origin: str | None = None,
) -> QueueReceipt:
    """
    Queue C{message} for C{recipients}; returns once it is durable.  Raises
    L{QueueRefused} (a L{QueueFailure} with qmail-queue's exit code) when
    the queue does not take it.  C{origin} (e.g. C{"by alias"}) is honoured
    for trusted callers only; the default is C{by uid <uid>}.
    """
    check_envelope(sender, recipients)
    if os.path.exists(null_client_path(root)):  # a null client: no local queue (docs/qmqp.md)
        return send_to_qmqp_servers(root, message, sender, recipients)
    path = inject_socket_path(root)
    try:
        return enqueue_socket(path, message, sender, recipients, origin or "")
    except SocketUnavailable as e:
        unavailable = str(e)
    layout_dir = os.path.join(root, "queue")
    if not os.path.isdir(layout_dir):
        raise QueueFailure(EXIT_NETWORK, f"no queue manager on {unavailable}, and {layout_dir} is not a queue directory")
    if not may_write_queue(layout_dir):
        raise QueueFailure(
            EXIT_NETWORK,
            f"no queue manager on {unavailable}; only root or the owner of {layout_dir} may write the queue directly",
        )
    try:
        layout = QueueLayout(layout_dir)
    except (OSError, ValueError) as e:
        raise QueueFailure(EXIT_CONFIG, str(e)) from e
    return enqueue_direct(layout, message, sender, recipients, origin)
