# -*- test-case-name: tests.inject.test_headers -*-
"""
Splitting a message into header fields and body, as qmail-inject does.

- Line ends: CRLF becomes LF (mail from PHP scripts and Windows tools
  arrives with CRLF); a last line without a line end gets one.
- A field starts with a name of printable characters (no space, no C{:}),
  optional blanks, then C{:}; lines starting with a space or tab continue
  the field before them.
- A line starting with C{From } (an mbox separator) becomes the field
  C{MBOX-Line: From ...}.
- The header ends at the first empty line (which stays as the separator in
  the body), or at the first line that is neither a field nor a
  continuation: then an empty line is put before that line.
- At the end of input the header simply ends; there is no body.

Text is handled as C{str} decoded from UTF-8 with C{surrogateescape}, so
any 8-bit bytes come out again unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

__all__ = [
    "HeaderField",
    "ParsedHeader",
    "read_header",
    "field_name",
    "is_field_start",
    "known_field",
    "KNOWN_FIELDS",
    "lf_chunks",
    "decode",
    "encode",
]

KNOWN_FIELDS = frozenset(
    (
        "sender", "from", "reply-to", "to", "cc", "bcc", "date", "message-id", "subject",
        "resent-sender", "resent-from", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc",
        "resent-date", "resent-message-id", "return-receipt-to", "errors-to", "apparently-to",
        "received", "return-path", "delivered-to", "content-length", "content-type",
        "content-transfer-encoding", "notice-requested-upon-delivery-to", "mail-followup-to",
    )
)

MAX_LINE = 1 << 20  # a header line longer than this is read in pieces


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def is_field_start(line: str) -> bool:
    """Whether C{line} begins a header field: C{name[blanks]:} with a printable, non-empty name."""
    colon = line.find(":")
    if colon == -1:
        return False
    name = line[:colon].rstrip(" \t")
    if not name:
        return False
    return all(32 < ord(ch) < 127 for ch in name)


def field_name(text: str) -> str:
    """The name of a field (text before the colon, trailing blanks removed)."""
    return text[: text.index(":")].rstrip(" \t")


def known_field(text: str) -> str | None:
    """The lowercased name of a field pymta treats specially, else None."""
    name = field_name(text).lower()
    if name in KNOWN_FIELDS and name.isascii():
        return name
    return None


@dataclass
class HeaderField:
    """One field with its continuation lines; C{text} ends with a line end."""

    text: str

    @property
    def name(self) -> str:
        return field_name(self.text)

    @property
    def known(self) -> str | None:
        return known_field(self.text)

    @property
    def value(self) -> str:
        return self.text[self.text.index(":") + 1 :]


@dataclass
class ParsedHeader:
    """The header fields and the start of the body (C{b""} when there is none)."""

    fields: list[HeaderField]
    body_start: bytes
    has_body: bool


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of C{stream} with LF ends (CRLF normalised; a final partial line completed)."""
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            return
        while not line.endswith(b"\n") and len(line) >= MAX_LINE:
            more = stream.readline(MAX_LINE)
            if not more:
                break
            line += more
        if line.endswith(b"\r\n"):
            line = line[:-2] + b"\n"
        elif line.endswith(b"\r"):  # last line: CR + the LF we add is a CRLF
            line = line[:-1] + b"\n"
        elif not line.endswith(b"\n"):
            line += b"\n"
        yield line


def read_header(stream: BinaryIO) -> ParsedHeader:
    """Read the header from C{stream}, leaving it positioned at the rest of the body."""
    fields: list[HeaderField] = []
    current: str | None = None
    for raw in _lines(stream):
        line = decode(raw)
        if current is not None and line[0] in " \t":
            current += line
            continue
        if current is not None:
            fields.append(HeaderField(current))
            current = None
        if line == "\n":
            return ParsedHeader(fields, b"\n", True)
        if line.startswith("From "):
            current = "MBOX-Line: " + line
        elif is_field_start(line):
            current = line
        else:
            return ParsedHeader(fields, b"\n" + raw, True)
    if current is not None:
        fields.append(HeaderField(current))
    return ParsedHeader(fields, b"", False)


def lf_chunks(stream: BinaryIO, size: int = 65536) -> Iterator[bytes]:
    """
    The rest of C{stream} in chunks with every CRLF turned into LF; a last
    line without a line end gets one (as qmail-inject does), and a CR at
    the very end becomes that line end.
    """
    carry = b""
    last = b"\n"
    while True:
        data = stream.read(size)
        if not data:
            if carry or not last.endswith(b"\n"):
                yield b"\n"  # a final CR with the LF we add is a CRLF
            return
        data = carry + data
        if data.endswith(b"\r"):
            data, carry = data[:-1], b"\r"
        else:
            carry = b""
        data = data.replace(b"\r\n", b"\n")
        if data:
            yield data
            last = data
