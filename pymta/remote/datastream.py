# -*- test-case-name: tests.remote.test_datastream -*-
"""
The DATA encoding of a stored message (qmail-remote's C{blast}, notqmail rules).

A message is stored with LF line ends.  On the wire every line ends in CRLF;
a stored CRLF stays one CRLF; a CR not followed by LF is sent as CRLF (as
notqmail does); a line starting with C{.} gets another C{.} in front.  The
encoder keeps its state between chunks, so the result does not depend on
where the message is cut into chunks.

A final line without a line end gets one (pymta's choice; qmail bounces
such a message with "SMTP cannot transfer messages with partial final
lines. (#5.6.2)").  L{DataEncoder.finish} returns the rest and the
terminating C{.CRLF}.
"""

from __future__ import annotations

__all__ = ["DataEncoder", "encode_message"]


class DataEncoder:
    """Turns stored message bytes into SMTP DATA bytes, chunk by chunk."""

    def __init__(self) -> None:
        self._at_line_start = True
        self._pending_cr = False
        self.partial_final_line = False

    def encode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        prefix = b""
        if self._pending_cr:
            self._pending_cr = False
            prefix = b"\r\n"
            self._at_line_start = True
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return prefix
        if chunk.endswith(b"\r"):
            self._pending_cr = True
            chunk = chunk[:-1]
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not chunk:
            return prefix
        if self._at_line_start and chunk[:1] == b".":
            chunk = b"." + chunk
        chunk = chunk.replace(b"\n.", b"\n..").replace(b"\n", b"\r\n")
        self._at_line_start = chunk.endswith(b"\n")
        return prefix + chunk

    def finish(self) -> bytes:
        """The bytes that end the DATA section (a missing line end, then C{.CRLF})."""
        tail = b""
        if self._pending_cr:
            self._pending_cr = False
            self._at_line_start = True
            tail = b"\r\n"
        elif not self._at_line_start:
            self.partial_final_line = True
            self._at_line_start = True
            tail = b"\r\n"
        return tail + b".\r\n"


def encode_message(message: bytes, chunk_size: int | None = None) -> bytes:
    """The whole DATA encoding of C{message} (for tests and small callers)."""
    encoder = DataEncoder()
    if chunk_size is None:
        return encoder.encode(message) + encoder.finish()
    parts = [encoder.encode(message[i : i + chunk_size]) for i in range(0, len(message), chunk_size)]
    return b"".join(parts) + encoder.finish()
