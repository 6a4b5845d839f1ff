# -*- test-case-name: tests.local.test_wire -*-
"""
Framing on the pipe between L{pymta.local.channel} and the spawner: each
record is a netstring (C{LEN:DATA,}) whose data is one JSON object, at
most L{MAX_RECORD} bytes.  What the objects hold, and their checks, is
L{pymta.local.spawnrecords}.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["encode_record", "RecordReader", "WireError", "MAX_RECORD"]

MAX_RECORD = 16 * 1024 * 1024


class WireError(Exception):
    """The byte stream is not a sequence of netstring-framed JSON objects."""


#: what C{json.dumps(record, separators=(",", ":"), ensure_ascii=True)} makes, with the encoder made once
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


_DECODER = json.JSONDecoder()


def _decode(data: bytes) -> Any:
    """
    C{json.loads(data)}: a record as L{encode_record} makes it (C{{} and no
    NUL second byte: what C{json.loads} reads as UTF-8) decoded without its
    detection of the encoding; anything else through C{json.loads} itself.
    """
    if data[:1] == b"{" and data[1:2] != b"\0":
        return _DECODER.decode(data.decode("utf-8", "surrogatepass"))
    return json.loads(data)


def encode_record(record: dict[str, Any]) -> bytes:
    data = _ENCODER.encode(record).encode("ascii")
    return b"%d:%s," % (len(data), data)


class RecordReader:
    """Incremental decoder: C{feed(bytes)} returns the complete records so far."""

    def __init__(self, limit: int = MAX_RECORD) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        records = []
        while True:
            colon = self._buffer.find(b":", 0, 12)
            if colon == -1:
                if len(self._buffer) >= 12 or (self._buffer and not self._buffer[:1].isdigit()):
                    raise WireError("bad netstring length")
                break
            digits = bytes(self._buffer[:colon])
            if not digits.isdigit():
                raise WireError("bad netstring length")
            length = int(digits)
            if length > self.limit:
                raise WireError(f"record of {length} bytes exceeds the limit")
            end = colon + 1 + length
            if len(self._buffer) < end + 1:
                break
            if self._buffer[end] != ord(","):
                raise WireError("netstring not terminated by ','")
            try:
                record = _decode(bytes(self._buffer[colon + 1 : end]))
            except ValueError as e:
                raise WireError(f"bad JSON: {e}") from None
            if not isinstance(record, dict):
                raise WireError("record is not a JSON object")
            records.append(record)
            del self._buffer[: end + 1]
        return records

    @property
    def pending(self) -> int:
        return len(self._buffer)
