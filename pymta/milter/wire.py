# -*- test-case-name: tests.milter.test_wire -*-
"""
The milter protocol's packets (Sendmail's milter protocol, version 6, as
Postfix speaks it), pure: no Twisted, no sockets.

Every packet, both ways, is a 4-byte big-endian length, then a command
byte, then C{length - 1} bytes of data.  Strings in the data end with a
NUL.  The MTA's commands are the C{SMFIC_*} bytes, the filter's answers
the C{SMFIR_*} bytes; L{PacketReader} cuts a stream into packets and
refuses one longer than L{MAX_PACKET} (a body chunk is at most
L{CHUNK_SIZE} bytes, so a longer packet is a broken or hostile filter).
L{parse_response} turns the filter's packet into a typed L{Response};
anything malformed is a L{ProtocolError}.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = [
    "ProtocolError", "PacketReader", "encode_packet", "MAX_PACKET", "CHUNK_SIZE",
    "Response", "parse_response", "encode_strings", "split_strings",
]

# the MTA's commands
SMFIC_ABORT = b"A"
SMFIC_BODY = b"B"
SMFIC_CONNECT = b"C"
SMFIC_MACRO = b"D"
SMFIC_BODYEOB = b"E"
SMFIC_HELO = b"H"
SMFIC_QUIT_NC = b"K"
SMFIC_HEADER = b"L"
SMFIC_MAIL = b"M"
SMFIC_EOH = b"N"
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"
SMFIC_RCPT = b"R"
SMFIC_DATA = b"T"
SMFIC_UNKNOWN = b"U"

# the filter's answers
SMFIR_ADDRCPT = b"+"
SMFIR_DELRCPT = b"-"
SMFIR_ADDRCPT_PAR = b"2"
SMFIR_SHUTDOWN = b"4"
SMFIR_ACCEPT = b"a"
SMFIR_REPLBODY = b"b"
SMFIR_CONTINUE = b"c"
SMFIR_DISCARD = b"d"
SMFIR_CHGFROM = b"e"
SMFIR_CONN_FAIL = b"f"
SMFIR_ADDHEADER = b"h"
SMFIR_INSHEADER = b"i"
SMFIR_SETSYMLIST = b"l"
SMFIR_CHGHEADER = b"m"
SMFIR_PROGRESS = b"p"
SMFIR_QUARANTINE = b"q"
SMFIR_REJECT = b"r"
SMFIR_SKIP = b"s"
SMFIR_TEMPFAIL = b"t"
SMFIR_REPLYCODE = b"y"
SMFIR_OPTNEG = b"O"

#: the most body bytes one SMFIC_BODY (or SMFIR_REPLBODY) carries
CHUNK_SIZE = 65535
#: the longest packet accepted from a filter (1 MiB, the largest chunk any
#: libmilter negotiates, and headroom for the command and strings)
MAX_PACKET = 1024 * 1024 + 64 * 1024

_LENGTH = struct.Struct(">I")

#: answers that end a stage (every other answer is a modification, PROGRESS or SKIP)
FINAL = frozenset([SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_DISCARD, SMFIR_REJECT, SMFIR_TEMPFAIL,
                   SMFIR_REPLYCODE, SMFIR_SKIP, SMFIR_CONN_FAIL, SMFIR_SHUTDOWN])
#: answers that change the message (end of message only)
MODIFICATIONS = frozenset([SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER, SMFIR_CHGFROM, SMFIR_ADDRCPT,
                           SMFIR_ADDRCPT_PAR, SMFIR_DELRCPT, SMFIR_REPLBODY, SMFIR_QUARANTINE])


class ProtocolError(Exception):
    """The filter broke the protocol (the text says how)."""


def encode_packet(command: bytes, data: bytes = b"") -> bytes:
    """One packet: length, command byte, data."""
    if len(command) != 1:
        raise ValueError("a command is one byte")
    return _LENGTH.pack(len(data) + 1) + command + data


def encode_strings(strings: Iterable[str | bytes]) -> bytes:
    """NUL-terminated strings (text as UTF-8); a string with a NUL is a L{ValueError}."""
    out = []
    for s in strings:
        raw = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
        if b"\0" in raw:
            raise ValueError("NUL inside a milter string")
        out.append(raw + b"\0")
    return b"".join(out)


def split_strings(data: bytes, count: int | None = None) -> list[str]:
    """
    The NUL-terminated strings of C{data} (exactly C{count} when given);
    L{ProtocolError} when the data does not end with a NUL or the count differs.
    """
    if not data.endswith(b"\0"):
        raise ProtocolError("string without its NUL")
    strings = [s.decode("utf-8", "surrogateescape") for s in data[:-1].split(b"\0")]
    if count is not None and len(strings) != count:
        raise ProtocolError(f"expected {count} strings, got {len(strings)}")
    return strings


class PacketReader:
    """Cuts received bytes into C{(command, data)} packets, bounded by C{limit}."""

    def __init__(self, limit: int = MAX_PACKET) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The packets completed by C{data}; L{ProtocolError} for an empty or oversized one."""
        self._buffer += data
        packets = []
        while len(self._buffer) >= 4:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length == 0:
                raise ProtocolError("empty packet")
            if length > self.limit:
                raise ProtocolError(f"packet of {length} bytes (limit {self.limit})")
            if len(self._buffer) < 4 + length:
                break
            packet = bytes(self._buffer[4:4 + length])
            del self._buffer[:4 + length]
            packets.append((packet[:1], packet[1:]))
        return packets


@dataclass(frozen=True)
class Response:
    """
    One answer of a filter: C{command} (an C{SMFIR_*} byte) and its fields
    parsed: C{strings} (names, values, addresses, the reply text),
    C{index} (INSHEADER/CHGHEADER) and C{body} (REPLBODY's bytes).
    """

    command: bytes
    strings: tuple[str, ...] = ()
    index: int = 0
    body: bytes = b""


def _reply_text(data: bytes) -> tuple[str, ...]:
    (text,) = split_strings(data, 1)
    return (text,)


def parse_response(command: bytes, data: bytes) -> Response:
    """The typed answer of one packet from a filter; L{ProtocolError} when it is malformed."""
    if command in (SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_DISCARD, SMFIR_REJECT, SMFIR_TEMPFAIL, SMFIR_SKIP,
                   SMFIR_PROGRESS, SMFIR_CONN_FAIL, SMFIR_SHUTDOWN):
        return Response(command)  # data, if any, is meaningless and ignored as libmilter's peers do
    if command == SMFIR_REPLYCODE:
        return Response(command, _reply_text(data))
    if command in (SMFIR_ADDHEADER,):
        return Response(command, tuple(split_strings(data, 2)))
    if command in (SMFIR_INSHEADER, SMFIR_CHGHEADER):
        if len(data) < 4:
            raise ProtocolError("header change without its index")
        (index,) = _LENGTH.unpack_from(data)
        return Response(command, tuple(split_strings(data[4:], 2)), index=index)
    if command in (SMFIR_ADDRCPT, SMFIR_DELRCPT, SMFIR_QUARANTINE):
        return Response(command, tuple(split_strings(data, 1)))
    if command in (SMFIR_CHGFROM, SMFIR_ADDRCPT_PAR):
        strings = split_strings(data)
        if not 1 <= len(strings) <= 2:
            raise ProtocolError(f"expected an address and its arguments, got {len(strings)} strings")
        return Response(command, tuple(strings) + ("",) * (2 - len(strings)))
    if command == SMFIR_REPLBODY:
        return Response(command, body=data)
    raise ProtocolError(f"unknown answer {command!r}")


def encode_connect(hostname: str, family: str, port: int, address: str) -> bytes:
    """SMFIC_CONNECT's data: name, family (C{4 6 L U}), then port and address unless unknown."""
    data = encode_strings([hostname]) + (family or "U").encode("ascii")
    if family in ("4", "6", "L"):
        data += struct.pack(">H", port & 0xFFFF) + encode_strings([address])
    return data


def encode_macros(stage: bytes, macros: Sequence[tuple[str, str]]) -> bytes:
    """SMFIC_MACRO's data: the command byte the macros belong to, then name and value pairs."""
    return stage + encode_strings([s for pair in macros for s in pair])
