# -*- test-case-name: tests.smtpd.test_data -*-
"""
The DATA state machine of qmail-smtpd, streaming.

Input is the raw bytes after C{354}; output is the message as stored (LF line
ends, leading dots removed), handed on in pieces as it arrives, never held
whole.  Rules (qmail-smtpd's):

- Only a line consisting of exactly C{.} and ended by CRLF ends the data:
  C{CRLF . CRLF}.  A leading dot is removed from every other line, except
  where a CR follows it: C{CRLF . CR} and anything but LF keeps its dot, as
  qmail's reader does (after C{. CR} it only looks for the LF of the end).
- A bare LF anywhere in the data (also right after a dot) is refused the way
  qmail refuses it: C{451 See https://cr.yp.to/docs/smtplf.html.} and the
  connection is closed, the message dropped.  pymta does not normalise bare
  LFs: refusing them means neither C{LF . LF} nor C{LF . CRLF} can end a
  message early, so no second message can be smuggled inside the first.
- A CR not followed by LF is kept as it is (also C{CRLF . CR ...}, which is
  an ordinary data line).
- Hop count: header lines (up to the first empty line) starting with
  C{received} or C{delivered} (any case) as sent, before a dot is removed
  (C{.Received} is no hop); 100 or more refuses the message at the end (554).
- databytes: bytes as stored; more than the limit refuses the message at the
  end (552); nothing more is written once the limit is passed (the header
  lines of one read go on together, so such a piece is dropped whole).
- A line longer than C{max_line} bytes without its LF ends the session
  (the client is sending an endless line); at most that much is buffered.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["DataStream", "END", "BARE_LF", "LINE_TOO_LONG", "MAX_HOPS", "crlf_to_lf"]

END = "end"
BARE_LF = "bare-lf"
LINE_TOO_LONG = "line-too-long"

#: qmail refuses a message with this many Received/Delivered-To lines
MAX_HOPS = 100


#: from this many bytes a line on average, splitting at CRLF and joining with LF is cheaper than replace()
_SPLIT_FROM = 32


def crlf_to_lf(lines: bytes) -> bytes | None:
    """
    Complete lines with their CRLFs made LFs; None when an LF has no CR
    before it (a bare LF).  A CR not before an LF stays.  The plain way is
    C{lines.replace(b"\\r\\n", b"\\n")}; for longer lines one split and
    join does the same in one pass instead of replace()'s two.
    """
    lfs = lines.count(b"\n")
    if lfs and len(lines) >= _SPLIT_FROM * lfs:
        parts = lines.split(b"\r\n")
        return b"\n".join(parts) if len(parts) - 1 == lfs else None
    unix = lines.replace(b"\r\n", b"\n")
    # one byte removed for each CRLF: every LF had its CR
    return unix if len(lines) - len(unix) == lfs else None


def _stuffed(line: bytes) -> bool:
    """A line (without its line end) whose first byte is a dot to remove: a dot not followed by a CR."""
    return line[:1] == b"." and line[1:2] != b"\r"


def _is_hop_line(line: bytes) -> bool:
    return line[:8].lower() == b"received" or line[:9].lower() == b"delivered"


class DataStream:
    """
    Feed it the client's bytes with L{feed}; it calls C{write} with stored
    bytes and tells when the data has ended or must be refused.
    """

    def __init__(self, write: Callable[[bytes], None], databytes: int = 0, max_line: int = 128 * 1024) -> None:
        self._write = write
        self.databytes = databytes
        self.max_line = max_line
        self.size = 0
        self.hops = 0
        self.in_header = True

    @property
    def too_big(self) -> bool:
        return self.databytes > 0 and self.size > self.databytes

    @property
    def too_many_hops(self) -> bool:
        return self.hops >= MAX_HOPS

    def _out(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.too_big or self.too_many_hops:
            return
        self._write(data)

    def feed(self, buf: bytes) -> tuple[int, str | None]:
        """
        Process C{buf}; returns C{(consumed, outcome)}.  C{outcome} is None
        when more input is needed (the unconsumed rest is an incomplete line
        to be fed again with more bytes), L{END} after the final dot line
        (C{consumed} includes it; the rest of C{buf} are commands), or
        L{BARE_LF} / L{LINE_TOO_LONG}.
        """
        pos = 0
        n = len(buf)
        if self.in_header:
            # header lines one by one (for the hop count), handed on together
            header: list[bytes] = []
            outcome: str | None = None
            while pos < n:
                nl = buf.find(b"\n", pos)
                if nl == -1:
                    break
                if nl == pos or buf[nl - 1] != 13:
                    outcome = BARE_LF
                    break
                content = buf[pos : nl - 1]
                if content == b".":
                    pos = nl + 1
                    outcome = END
                    break
                pos = nl + 1
                if not content:
                    header.append(content)
                    self.in_header = False
                    break
                if _is_hop_line(content):
                    self.hops += 1
                header.append(content[1:] if _stuffed(content) else content)
            if header:
                header.append(b"")
                self._out(b"\n".join(header))
            if outcome is not None:
                return pos, outcome
        if not self.in_header:
            # the body: every complete line at once (the rest waits for its line end)
            last = buf.rfind(b"\n", pos)
            if last != -1:
                chunk = buf[pos : last + 1]
                if b"." not in chunk:
                    # no line can start with a dot: no end, nothing to unstuff (one memchr; base64 has no dot)
                    unix = crlf_to_lf(chunk)
                    if unix is None:
                        return pos, BARE_LF
                    self._out(unix)
                    pos = last + 1
                    return self._rest(buf, pos)
                if chunk.startswith(b".\r\n"):
                    end_at = 0
                else:
                    i = chunk.find(b"\n.\r\n")
                    end_at = i + 1 if i != -1 else -1
                body = chunk if end_at == -1 else chunk[:end_at]
                converted = crlf_to_lf(body)
                if converted is None:
                    return pos, BARE_LF
                data = converted
                if data.startswith(b".") or b"\n." in data:
                    data = b"\n".join(line[1:] if _stuffed(line) else line for line in data.split(b"\n"))
                self._out(data)
                if end_at != -1:
                    return pos + end_at + 3, END
                pos = last + 1
        return self._rest(buf, pos)

    def _rest(self, buf: bytes, pos: int) -> tuple[int, str | None]:
        """C{buf} is consumed up to C{pos}; the rest is an incomplete line: wait for more, unless it is too long."""
        if len(buf) - pos > self.max_line:
            return pos, LINE_TOO_LONG
        return pos, None
