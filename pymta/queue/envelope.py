# -*- test-case-name: tests.queue.test_store_envelope -*-
"""
The queue's envelope records, byte for byte as qmail writes them
(see docs/internals.md, 'Queue records').

- C{todo/ID}, C{intd/ID}: C{u<uid>\\0p<pid>\\0F<sender>\\0T<r1>\\0T<r2>\\0...}
  (no extra NUL at the end).  A message with DSN data (RFC 3461, only when
  a client asked for more than the defaults) has pymta's own records as
  well: C{R<FULL|HDRS>} and C{E<envid>} after C{F}, C{N<notify>} and
  C{O<orcpt>} right after the C{T} they belong to (docs/internals.md,
  "DSN data in the queue").
- C{info/N/ID}: C{F<sender>\\0}.
- C{local/N/ID}, C{remote/N/ID}: C{T<addr>\\0} (to do) or C{D<addr>\\0} (done)
  records; marking done overwrites the one C{T} byte at the record's offset.
- qmail-queue's own input on fd 1: C{F<sender>\\0} then C{T<r>\\0}... then
  one more C{\\0}.

Addresses are C{str} in pymta and UTF-8 on disk; bytes that are not UTF-8
survive a round trip through C{surrogateescape}, so the queue stays 8-bit
clean like qmail.  An address may not contain NUL (the record separator) or
LF (it would corrupt logs and bounces), and may be at most
L{MAX_ADDRESS_BYTES} bytes long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from pymta.address import MAX_ADDRESS_BYTES
from pymta.dsn.params import DsnSyntaxError, MessageDsn, RecipientDsn, check_envid, check_notify, check_orcpt, check_ret
from pymta.queue.errors import (
    EXIT_ADDRESS_TOO_LONG,
    EXIT_ENVELOPE_FORMAT,
    EXIT_PERMANENT_REFUSAL,
    EXIT_READ_ERROR,
    QueueFailure,
)

__all__ = [
    "MAX_ADDRESS_BYTES",
    "BAD_ADDRESS_TEXT",
    "EnvelopeError",
    "Envelope",
    "RecipientRecord",
    "address_bytes",
    "address_text",
    "check_address",
    "check_envelope",
    "encode_todo",
    "encode_message_dsn",
    "encode_recipient_dsn",
    "DsnRecords",
    "parse_todo",
    "encode_info",
    "parse_info",
    "encode_recipients",
    "parse_recipients",
    "encode_qq_envelope",
    "parse_qq_envelope",
]

BAD_ADDRESS_TEXT = "sorry, I can't accept addresses like that (#5.1.3)"


class EnvelopeError(ValueError):
    """A queue file's records are malformed (truncated, unknown record, missing sender)."""


@dataclass(frozen=True)
class Envelope:
    """A committed message's envelope: who queued it and for whom (C{dsn}: its DSN data, if any)."""

    uid: int
    pid: int
    sender: str
    recipients: tuple[str, ...]
    dsn: MessageDsn | None = None


@dataclass(frozen=True)
class RecipientRecord:
    """One record of a channel file: its byte offset, whether it is done, and the address."""

    offset: int
    done: bool
    address: str


def address_bytes(address: str) -> bytes:
    """An address as stored on disk (UTF-8, undecodable bytes restored)."""
    return address.encode("utf-8", "surrogateescape")


def address_text(raw: bytes) -> str:
    """An address read from disk or the wire, as pymta's C{str}."""
    return raw.decode("utf-8", "surrogateescape")


def check_address(address: str) -> bytes:
    """
    The stored form of C{address}, or L{QueueFailure}: permanent
    C{envelope address too long for qq (#5.1.3)} over L{MAX_ADDRESS_BYTES}
    bytes, permanent L{BAD_ADDRESS_TEXT} with NUL or LF inside.
    """
    raw = address_bytes(address)
    if b"\0" in raw or b"\n" in raw:
        raise QueueFailure(EXIT_PERMANENT_REFUSAL, f"NUL or LF in address {raw[:80]!r}", text=BAD_ADDRESS_TEXT, permanent=True)
    if len(raw) > MAX_ADDRESS_BYTES:
        raise QueueFailure(EXIT_ADDRESS_TOO_LONG, f"address of {len(raw)} bytes")
    return raw


def check_envelope(sender: str, recipients: Sequence[str]) -> tuple[bytes, list[bytes]]:
    """Validate a whole envelope; the stored forms of sender and recipients."""
    return check_address(sender), [check_address(r) for r in recipients]


def encode_todo(uid: int, pid: int, sender: str, recipients: Iterable[str], dsn: MessageDsn | None = None) -> bytes:
    """The content of C{intd/ID} and C{todo/ID}; validates every address (C{dsn}: only when meaningful)."""
    parts = [b"u%d\0p%d\0F" % (uid, pid), check_address(sender), b"\0"]
    if dsn is not None and not dsn.meaningful:
        dsn = None
    if dsn is not None:
        parts.append(encode_message_dsn(dsn))
    for index, r in enumerate(recipients):
        parts += [b"T", check_address(r), b"\0"]
        if dsn is not None:
            parts.append(encode_recipient_dsn(dsn.for_recipient(index)))
    return b"".join(parts)


def encode_message_dsn(dsn: MessageDsn) -> bytes:
    """The C{R} and C{E} records of C{dsn} (values are ASCII, checked when received)."""
    out = b""
    if dsn.ret is not None:
        out += b"R" + dsn.ret.encode("ascii") + b"\0"
    if dsn.envid is not None:
        out += b"E" + dsn.envid.encode("ascii") + b"\0"
    return out


def encode_recipient_dsn(request: RecipientDsn) -> bytes:
    """The C{N} and C{O} records of one recipient's request."""
    out = b""
    if request.notify is not None:
        out += b"N" + ",".join(request.notify).encode("ascii") + b"\0"
    if request.orcpt is not None:
        out += b"O" + request.orcpt.encode("ascii") + b"\0"
    return out


class DsnRecords:
    """
    Gathers the DSN records of a queue file as they are read: C{R}, C{E}
    for the message, C{N}, C{O} for the recipient read last (L{recipient}
    opens one).  L{EnvelopeError} for a malformed or misplaced one.
    """

    def __init__(self) -> None:
        self.ret: str | None = None
        self.envid: str | None = None
        self.recipients: list[RecipientDsn] = []
        self.seen = False

    def recipient(self) -> None:
        self.recipients.append(RecipientDsn())

    def take(self, kind: bytes, value: bytes) -> bool:
        """Record C{kind}/C{value} if it is a DSN record (True), else False."""
        if kind not in (b"R", b"E", b"N", b"O"):
            return False
        try:
            text = value.decode("ascii")
            if kind == b"R" and self.ret is None:
                self.ret = check_ret(text)
            elif kind == b"E" and self.envid is None:
                self.envid = check_envid(text)
            elif kind in (b"N", b"O") and self.recipients:
                last = self.recipients[-1]
                if kind == b"N" and last.notify is None:
                    self.recipients[-1] = RecipientDsn(check_notify(text), last.orcpt)
                elif kind == b"O" and last.orcpt is None:
                    self.recipients[-1] = RecipientDsn(last.notify, check_orcpt(text))
                else:
                    raise EnvelopeError(f"second {kind.decode()} record for one recipient")
            else:
                raise EnvelopeError(f"misplaced or repeated {kind.decode()} record")
        except (UnicodeDecodeError, DsnSyntaxError):
            raise EnvelopeError(f"bad {kind.decode()} record {value[:40]!r}") from None
        self.seen = True
        return True

    def result(self) -> MessageDsn | None:
        """The message's DSN data, or None when the file had none."""
        if not self.seen:
            return None
        return MessageDsn(self.ret, self.envid, tuple(self.recipients))


def _records(data: bytes) -> list[bytes]:
    if data and not data.endswith(b"\0"):
        raise EnvelopeError("truncated: last record has no NUL")
    return data.split(b"\0")[:-1] if data else []


def parse_todo(data: bytes) -> Envelope:
    """
    Read a C{todo/ID} file.  Raises L{EnvelopeError} when it is truncated,
    has no C{F} record, a C{T} before C{F}, a bad number or an unknown record.
    """
    uid = pid = -1
    sender: str | None = None
    recipients: list[str] = []
    dsn = DsnRecords()
    for rec in _records(data):
        kind, value = rec[:1], rec[1:]
        if sender is not None and dsn.take(kind, value):
            continue
        if kind in (b"u", b"p"):
            if not value.isdigit():
                raise EnvelopeError(f"bad number in {kind.decode()} record: {value[:40]!r}")
            if kind == b"u":
                uid = int(value)
            else:
                pid = int(value)
        elif kind == b"F":
            if sender is not None:
                raise EnvelopeError("second F record")
            sender = address_text(value)
        elif kind == b"T":
            if sender is None:
                raise EnvelopeError("T record before F record")
            recipients.append(address_text(value))
            dsn.recipient()
        else:
            raise EnvelopeError(f"unknown record {rec[:40]!r}")
    if sender is None:
        raise EnvelopeError("no F record")
    return Envelope(uid, pid, sender, tuple(recipients), dsn.result())


def encode_info(sender: str) -> bytes:
    """The content of C{info/N/ID}."""
    return b"F" + address_bytes(sender) + b"\0"


def parse_info(data: bytes) -> str:
    """The sender from an C{info/N/ID} file; L{EnvelopeError} if it is not one C{F} record."""
    records = _records(data)
    if len(records) != 1 or not records[0].startswith(b"F"):
        raise EnvelopeError("info file is not one F record")
    return address_text(records[0][1:])


def encode_recipients(recipients: Iterable[str]) -> bytes:
    """C{T<addr>\\0} records for a fresh channel file."""
    return b"".join(b"T" + address_bytes(r) + b"\0" for r in recipients)


def parse_recipients(data: bytes) -> list[RecipientRecord]:
    """
    The records of a C{local}/C{remote} file with their offsets (where the
    C{T} to overwrite with C{D} sits).  A truncated last record (a crash while
    the file was written) raises L{EnvelopeError}.
    """
    out = []
    offset = 0
    for rec in _records(data):
        kind = rec[:1]
        if kind not in (b"T", b"D"):
            raise EnvelopeError(f"unknown recipient record at offset {offset}: {rec[:40]!r}")
        out.append(RecipientRecord(offset, kind == b"D", address_text(rec[1:])))
        offset += len(rec) + 1
    return out


def encode_qq_envelope(sender: str, recipients: Iterable[str]) -> bytes:
    """qmail-queue's fd 1 input: C{F<sender>\\0T<r>\\0...\\0}; validates every address."""
    parts = [b"F", check_address(sender), b"\0"]
    for r in recipients:
        parts += [b"T", check_address(r), b"\0"]
    parts.append(b"\0")
    return b"".join(parts)


def parse_qq_envelope(data: bytes) -> tuple[str, list[str]]:
    """
    Parse qmail-queue's fd 1 input.  Raises L{QueueFailure} with
    qmail-queue's exit code: 54 when it ends before the final NUL, 91 when
    the first record is not C{F} or a later one not C{T}, 11 for an address
    over the limit.  Bytes after the final NUL are ignored, as qmail does.
    """
    pos = 0
    sender: str | None = None
    recipients: list[str] = []
    while True:
        if pos >= len(data):
            raise QueueFailure(EXIT_READ_ERROR, "envelope ended before its final NUL")
        if data[pos] == 0:
            if sender is None:
                raise QueueFailure(EXIT_ENVELOPE_FORMAT, "envelope has no F record")
            return sender, recipients
        end = data.find(b"\0", pos)
        if end == -1:
            raise QueueFailure(EXIT_READ_ERROR, "envelope ended inside a record")
        kind, value = data[pos : pos + 1], data[pos + 1 : end]
        if sender is None and kind != b"F":
            raise QueueFailure(EXIT_ENVELOPE_FORMAT, "envelope does not start with F")
        if sender is not None and kind != b"T":
            raise QueueFailure(EXIT_ENVELOPE_FORMAT, f"envelope record {kind!r} is not T")
        if len(value) > MAX_ADDRESS_BYTES:
            raise QueueFailure(EXIT_ADDRESS_TOO_LONG, f"address of {len(value)} bytes")
        text = address_text(value)
        if sender is None:
            sender = text
        else:
            recipients.append(text)
        pos = end + 1
