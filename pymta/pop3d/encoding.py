# -*- test-case-name: tests.pop3d.test_encoding -*-
"""
POP3 multi-line encoding of a stored message, correct at any chunk boundary.

A Maildir file has LF (or CRLF) line ends.  On the wire every line ends in
CRLF, a line starting with C{.} gets one more C{.} (RFC 1939 byte-stuffing),
and the reply ends with C{.\\r\\n} on a line of its own.  A final line
without a line end gets one.  A bare CR that is not followed by LF is data.

L{MessageEncoder} is fed raw chunks of any size (the state between chunks is
"at line start" and "a CR is pending") and returns encoded bytes; with
C{top_lines} it implements TOP: the header, the empty line, then that many
body lines.  A message that ends inside its header (no empty line at all)
still gets the empty line after it, as RFC 1939 describes TOP's answer and
qmail-pop3d sends it: C{TOP n 0} is always the header, an empty line, C{.}.  L{crlf_size} counts what a message occupies with CRLF line ends
and without stuffing - the size STAT/LIST report and the client receives.
"""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["MessageEncoder", "crlf_size", "file_crlf_size", "TERMINATOR", "CHUNK_SIZE"]

TERMINATOR = b".\r\n"
CHUNK_SIZE = 65536


class MessageEncoder:
    """Stateful LF->CRLF conversion and dot-stuffing; optional TOP limit."""

    def __init__(self, top_lines: int | None = None) -> None:
        if top_lines is not None and top_lines < 0:
            raise ValueError("top_lines must be >= 0")
        self._top = top_lines
        self._in_header = True
        self._at_line_start = True
        self._held_cr = False
        self._partial = b""  # TOP mode only: an unfinished line
        self.done = False  # TOP limit reached: the rest of the message is not needed

    def feed(self, data: bytes) -> bytes:
        if self.done or not data:
            return b""
        if self._held_cr:
            data = b"\r" + data
            self._held_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._held_cr = True
        if self._top is not None:
            return self._feed_top(data)
        return self._encode_whole_lines(data)

    def _encode_whole_lines(self, data: bytes) -> bytes:
        if not data:
            return b""
        data = data.replace(b"\r\n", b"\n").replace(b"\n.", b"\n..")
        if self._at_line_start and data[:1] == b".":
            data = b"." + data
        self._at_line_start = data.endswith(b"\n")
        return data.replace(b"\n", b"\r\n")

    def _feed_top(self, data: bytes) -> bytes:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out: list[bytes] = []
        for line in lines:
            if self._emit_top_line(line, out):
                break
        return b"".join(out)

    def _emit_top_line(self, line: bytes, out: list[bytes], terminated: bool = True) -> bool:
        """Append one line in TOP mode; True when the limit is reached."""
        if terminated and line.endswith(b"\r"):
            line = line[:-1]
        if not self._in_header:
            if self._top == 0:
                self.done = True
                self._partial = b""
                return True
            self._top -= 1  # type: ignore[operator]
        elif line == b"":
            self._in_header = False
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
        return False

    def finish(self) -> bytes:
        """Whatever is held back, a line end if the message lacked one, and the terminator."""
        tail = b""
        if not self.done:
            rest = (b"\r" if self._held_cr else b"")
            if self._top is not None:
                rest = self._partial + rest
                self._partial = b""
                out: list[bytes] = []
                if rest:
                    self._emit_top_line(rest, out, terminated=False)
                if self._in_header:
                    out.append(b"\r\n")  # the header's end, which the message lacked
                tail = b"".join(out)
            else:
                tail = self._encode_whole_lines(rest)
                if not self._at_line_start:
                    tail += b"\r\n"
        self._held_cr = False
        self.done = True
        return tail + TERMINATOR


class _SizeCounter:
    def __init__(self) -> None:
        self.size = 0
        self._last = b""

    def feed(self, data: bytes) -> None:
        if not data:
            return
        lf = data.count(b"\n")
        crlf = data.count(b"\r\n") + (1 if self._last == b"\r" and data[:1] == b"\n" else 0)
        self.size += len(data) + lf - crlf
        self._last = data[-1:]

    def result(self) -> int:
        if self._last not in (b"", b"\n"):
            return self.size + 2
        return self.size


def crlf_size(data: bytes) -> int:
    """Octets of C{data} with CRLF line ends, as a POP3 client receives it (unstuffed)."""
    counter = _SizeCounter()
    counter.feed(data)
    return counter.result()


def file_crlf_size(f: BinaryIO) -> int:
    """L{crlf_size} of an open binary file, read in chunks from its current position."""
    counter = _SizeCounter()
    while True:
        chunk = f.read(CHUNK_SIZE)
        if not chunk:
            return counter.result()
        counter.feed(chunk)
