# -*- test-case-name: tests.queue.test_inject -*-
"""
The inject socket's address and wire format, shared by its server
(L{pymta.queue.injectserver}), its Twisted client
(L{pymta.queue.injectclient}) and the blocking client (L{pymta.queue.client}).

The socket is C{ROOT/run/inject.sock} (L{inject_socket_path}).

Everything is netstrings (C{<decimal length>:<bytes>,}, as in QMQP).  One
connection carries one or more messages, one after the other::

    client: netstring( netstring(origin) netstring(sender) netstring(rcpt)... )
    client: netstring(chunk) ...        message bytes, each chunk 1..MAX_CHUNK bytes
    client: 0:,                         the empty netstring ends the message
    server: netstring(reply)            after the message is durable or refused

The envelope comes first so the server can start writing the message while
it streams in.  A message with DSN data (RFC 3461) ends its envelope with
one more netstring, a NUL and then the queue's own DSN records
(L{pymta.queue.envelope}; an empty C{T} record before each recipient's):
no address holds a NUL, so it cannot be taken for a recipient.  C{origin} is the text the caller asks for after C{invoked}
in the C{Received:} line (empty: "by uid <peer uid>"); the server grants it
only to trusted peers.  The reply is C{K<id> qp <qp>} once the message is
fsynced and linked into todo/, or C{Z<text>} (temporary) / C{D<text>}
(permanent) with qmail-queue's texts.  Closing the connection before the
end marker abandons the message.  A framing error gets a C{D} reply and the
connection is closed.
"""

from __future__ import annotations

import os
from typing import Sequence

from pymta.dsn.params import MessageDsn
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.envelope import (
    DsnRecords,
    EnvelopeError,
    address_bytes,
    address_text,
    encode_message_dsn,
    encode_recipient_dsn,
)

__all__ = [
    "INJECT_SOCKET",
    "inject_socket_path",
    "MAX_CHUNK",
    "MAX_ENVELOPE",
    "FramingError",
    "HELD_PART",
    "split_held",
    "netstring",
    "NetstringParser",
    "split_netstrings",
    "encode_envelope",
    "parse_envelope_dsn",
    "encode_reply",
    "parse_reply",
]

INJECT_SOCKET = os.path.join("run", "inject.sock")
MAX_CHUNK = 1 << 20
MAX_ENVELOPE = 16 << 20
_MAX_DIGITS = 10


def inject_socket_path(root: str) -> str:
    """C{ROOT/run/inject.sock}."""
    return os.path.join(root, INJECT_SOCKET)


class FramingError(ValueError):
    """Bytes on the inject socket that are not the expected netstrings."""


def netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


class NetstringParser:
    """
    Incremental netstring decoder: L{feed} bytes, get complete strings.  The
    longest string accepted is C{max_length}, changeable between calls.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def pending(self) -> int:
        """Bytes received but not yet returned."""
        return len(self._buffer)

    def _prefix(self) -> tuple[int, int] | None:
        """C{(colon position, length)} of the next netstring's C{LEN:} prefix, None until it has arrived."""
        buf = self._buffer
        colon = buf.find(b":", 0, _MAX_DIGITS + 1)
        if colon == -1:
            if len(buf) > _MAX_DIGITS or (buf and not buf.isdigit()):
                raise FramingError("netstring length expected")
            return None
        digits = bytes(buf[:colon])
        if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
            raise FramingError(f"bad netstring length {digits[:20]!r}")
        length = int(digits)
        if length > self.max_length:
            raise FramingError(f"netstring of {length} bytes exceeds {self.max_length}")
        return colon, length

    def next(self) -> bytes | None:
        """The next complete netstring, or C{None} until more bytes arrive."""
        prefix = self._prefix()
        if prefix is None:
            return None
        buf = self._buffer
        colon, length = prefix
        end = colon + 1 + length
        if len(buf) < end + 1:
            return None
        if buf[end] != ord(","):
            raise FramingError("netstring does not end with a comma")
        value = bytes(buf[colon + 1 : end])
        del buf[: end + 1]
        return value

    # -- streaming a long string (QMTP's message): prefix, bytes, comma --

    def next_length(self) -> int | None:
        """
        The length of the next netstring once its C{LEN:} prefix has
        arrived (checked as in L{next}), for a caller that streams the
        string: the prefix is consumed, the caller then takes the bytes
        with L{take} and the comma with L{take_comma}.  None until then.
        """
        prefix = self._prefix()
        if prefix is None:
            return None
        del self._buffer[: prefix[0] + 1]
        return prefix[1]

    def take(self, limit: int) -> bytes:
        """Up to C{limit} of the bytes received (possibly none)."""
        value = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return value

    def take_comma(self) -> bool:
        """Consume the comma that ends a streamed string: False until it has arrived, L{FramingError} if another byte came."""
        if not self._buffer:
            return False
        if self._buffer[0] != ord(","):
            raise FramingError("netstring does not end with a comma")
        del self._buffer[:1]
        return True


def split_netstrings(payload: bytes) -> list[bytes]:
    """The netstrings C{payload} is made of; L{FramingError} when it is anything else."""
    parser = NetstringParser(len(payload))
    parser.feed(payload)
    out = []
    while True:
        value = parser.next()
        if value is None:
            break
        out.append(value)
    if parser.pending():
        raise FramingError("trailing bytes in envelope")
    return out


#: the last part of an envelope whose message is to be queued held (after the DSN block, if any); never
#: an address (no NUL in one) nor a DSN block (which ends in NUL), and refused by a server that predates it
HELD_PART = netstring(b"\0held")


def split_held(payload: bytes) -> tuple[bytes, bool]:
    """An envelope netstring's payload without its L{HELD_PART}, and whether it had one."""
    if payload.endswith(HELD_PART):
        return payload[: -len(HELD_PART)], True
    return payload, False


def encode_envelope(origin: str, sender: str, recipients: Sequence[str], dsn: MessageDsn | None = None,
                    held: bool = False) -> bytes:
    """The first netstring of a message on the inject socket (C{dsn} only when it is meaningful)."""
    inner = [netstring(origin.encode("utf-8", "surrogateescape")), netstring(address_bytes(sender))]
    inner += [netstring(address_bytes(r)) for r in recipients]
    if dsn is not None and dsn.meaningful:
        records = [encode_message_dsn(dsn)]
        records += [b"T\0" + encode_recipient_dsn(dsn.for_recipient(i)) for i in range(len(recipients))]
        inner.append(netstring(b"\0" + b"".join(records)))
    if held:
        inner.append(HELD_PART)
    return netstring(b"".join(inner))


def _parse_dsn(block: bytes, count: int) -> MessageDsn | None:
    if block and not block.endswith(b"\0"):
        raise FramingError("DSN records without their final NUL")
    found = DsnRecords()
    try:
        for record in block.split(b"\0")[:-1] if block else []:
            if record == b"T":
                found.recipient()
            elif not found.take(record[:1], record[1:]):
                raise FramingError(f"unknown DSN record {record[:20]!r}")
    except EnvelopeError as e:
        raise FramingError(str(e)) from None
    if len(found.recipients) != count:
        raise FramingError("DSN records do not match the recipients")
    return found.result()


def parse_envelope_dsn(payload: bytes) -> tuple[str, str, list[str], MessageDsn | None]:
    """C{(origin, sender, recipients, dsn)} from an envelope netstring's payload."""
    parts = split_netstrings(payload)
    if len(parts) < 2:
        raise FramingError("envelope needs an origin and a sender")
    origin = parts[0].decode("utf-8", "surrogateescape")
    dsn = None
    if len(parts) > 2 and parts[-1].startswith(b"\0"):
        dsn = _parse_dsn(parts.pop()[1:], len(parts) - 2)
    return origin, address_text(parts[1]), [address_text(p) for p in parts[2:]], dsn


def encode_reply(result: QueueReceipt | QueueRefused) -> bytes:
    if isinstance(result, QueueReceipt):
        return netstring(b"K%d qp %d" % (result.message_id, result.qp))
    letter = "D" if result.permanent else "Z"
    return netstring((letter + result.text).encode("utf-8", "replace"))


def parse_reply(payload: bytes) -> QueueReceipt | QueueRefused:
    """A reply netstring's payload as a receipt or a L{QueueRefused} (not raised)."""
    kind, rest = payload[:1], payload[1:]
    if kind == b"K":
        fields = rest.split(b" ")
        if len(fields) == 3 and fields[0].isdigit() and fields[1] == b"qp" and fields[2].isdigit():
            return QueueReceipt(int(fields[0]), int(fields[2]))
        raise FramingError(f"bad K reply {payload[:60]!r}")
    if kind in (b"Z", b"D") and rest:
        return QueueRefused(rest.decode("utf-8", "replace"), permanent=kind == b"D")
    raise FramingError(f"bad reply {payload[:60]!r}")
